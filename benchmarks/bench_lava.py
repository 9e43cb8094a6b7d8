"""Our fixed-point engine against Lava (Loihi2SimCfg fixed_pt), both in the same run (JSON on stdout):
steps/s single sample for both, ours batched at 64, ratios, peak memory; on the lowered digits
Spikingformer and lava-dl's pilotnet_lif.  Lava is timed after compilation and a first step.  For the
digits model also Lava's chained mode (many samples in one process graph, conv groups as Sparse).

    python benchmarks/bench_lava.py [--steps N] [--lava-steps M]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from bench_sim import digits_workload, peak_rss_mib, pilotnet_workload, time_ours  # noqa: E402


def time_lava(w, steps):
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from neurodeploy.lava.run import LavaNetwork
    net = w["net"]
    inp = w["inputs"](1, steps + 1)
    inp = {k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in inp.items()}
    lnet = LavaNetwork(net, inp, steps + 1, record=net.outputs)
    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    try:
        t0 = time.perf_counter()
        lnet.anchor.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
        t_compile = time.perf_counter() - t0
        t0 = time.perf_counter()
        lnet.anchor.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
        dt = time.perf_counter() - t0
    finally:
        lnet.anchor.stop()
    return {"lava_steps_per_s": steps / dt, "lava_compile_and_first_step_s": t_compile,
            "lava_processes": len(lnet.procs) + len(lnet.recorders)}


def time_lava_chained(w, samples):
    """Many samples in ONE Lava process graph (chained mode): steady steps/s after the first sample."""
    from neurodeploy.lava.run import run_lava_chained
    net = w["net"]
    inp = {k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in w["inputs"](samples, 0).items()}
    P = int(net.metadata["time_steps"]) + int(net.metadata["latency"])
    t0 = time.perf_counter()
    _, _, timing = run_lava_chained(net, inp, P, record=net.outputs, chunk=P)
    total = time.perf_counter() - t0
    return {"lava_chained_samples": samples, "lava_chained_period_steps": P,
            "lava_chained_steps_per_s": timing["rest_steps"] / timing["rest_s"],
            "lava_chained_samples_per_s": timing["rest_steps"] / P / timing["rest_s"],
            "lava_chained_compile_and_first_sample_s": timing["first_s"], "lava_chained_total_s": total}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=32, help="steps timed for our engine")
    ap.add_argument("--lava-steps", type=int, default=16, help="steps timed in Lava")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--chained-samples", type=int, default=40, help="samples of the chained Lava run (digits)")
    args = ap.parse_args(argv)
    from neurodeploy.lava_compat import ensure_lava
    ensure_lava()
    res = {"workloads": []}
    for make in (digits_workload, pilotnet_workload):
        w = make()
        lava = time_lava(w, args.lava_steps)
        if w["name"].startswith("spikingformer-digits") and args.chained_samples:
            lava.update(time_lava_chained(w, args.chained_samples))
        single = time_ours(w, args.steps, 1)
        batched = time_ours(w, args.steps, args.batch)
        ours_b = batched["samples_steps_per_s"]
        res["workloads"].append({
            "name": w["name"], "source": w["source"], "neurons": w["net"].counts()["neurons"], **lava,
            "ours_single_steps_per_s": single["steps_per_s"],
            f"ours_batch{args.batch}_sample_steps_per_s": ours_b,
            "speedup_single": single["steps_per_s"] / lava["lava_steps_per_s"],
            f"speedup_batch{args.batch}": ours_b / lava["lava_steps_per_s"]})
    res["peak_rss_mib"] = peak_rss_mib()
    json.dump(res, sys.stdout, indent=2)
    print()
    return res


if __name__ == "__main__":
    main()
