"""Speed of our fixed-point engine (JSON on stdout): steps/s single sample and batched (64), on the
lowered digits Spikingformer and on lava-dl's pilotnet_lif netx network; peak memory.

    python benchmarks/bench_sim.py [--steps N] [--device cpu|cuda] [--batch 64]

bench_lava.py runs the same workloads in Lava too and prints the ratios."""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch


def digits_workload():
    """(name, lowered network, inputs(batch) -> dict, latency)."""
    from neurodeploy.exporters import to_nir
    from neurodeploy.lower.from_nir import lower_graph
    ckpt = os.path.join(os.path.dirname(__file__), "..", "demo-out", "spikingformer-digits.pt")
    if os.path.exists(ckpt):
        from neurodeploy.checkpoint import load_model
        model, source = load_model(ckpt).eval(), "demo-out/spikingformer-digits.pt"
    else:
        from neurodeploy.models.registry import build_model
        torch.manual_seed(0)
        model, source = build_model("spikingformer-digits").eval(), "untrained spikingformer-digits"
    g = to_nir(model, arch="spikingformer-digits")
    net, _ = lower_graph(g, input_range=(-1.0, 2.5))
    rng = np.random.default_rng(0)

    def inputs(batch, steps):
        x = rng.random((batch, 1, 8, 8)).astype(np.float32) * 2 - 0.5
        return {k: v for k, v in net.encode_inputs(x).items()}
    return {"name": "spikingformer-digits (lowered)", "source": source, "net": net, "inputs": inputs}


def pilotnet_workload():
    from neurodeploy.sim.netx import netx_test_dir, read_netx
    root = os.path.join(netx_test_dir(), "gts", "pilotnet_lif")
    net = read_netx(os.path.join(root, "network.net"), reset_interval=16)
    img = np.load(os.path.join(root, "image.npy")).transpose(2, 1, 0)[None]

    def inputs(batch, steps):
        return {"input": np.repeat(img, batch, axis=0)}
    return {"name": "pilotnet_lif (netx)", "source": "lava-dl 0.6.0 wheel", "net": net, "inputs": inputs}


def time_ours(w, steps, batch, device="cpu", repeats=2):
    from neurodeploy.sim import Engine
    eng = Engine(w["net"], device=device)
    inp = w["inputs"](batch, steps)
    eng.run(inp, 2)                       # warm-up (allocations, first conv call)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        eng.run(inp, steps)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    out = {"steps_per_s": steps / best, "samples_steps_per_s": steps * batch / best, "batch": batch}
    if device.startswith("cuda"):
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return out


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    res = {"engine": "neurodeploy.sim (fixed point)", "device": args.device, "threads": torch.get_num_threads(),
           "workloads": []}
    for make in (digits_workload, pilotnet_workload):
        w = make()
        single = time_ours(w, args.steps, 1, args.device)
        batched = time_ours(w, args.steps, args.batch, args.device)
        res["workloads"].append({"name": w["name"], "source": w["source"], "neurons": w["net"].counts()["neurons"],
                                 "ours_single_steps_per_s": single["steps_per_s"],
                                 f"ours_batch{args.batch}_samples_per_s": batched["samples_steps_per_s"] / args.steps,
                                 f"ours_batch{args.batch}_sample_steps_per_s": batched["samples_steps_per_s"],
                                 **({"peak_gpu_mib": batched["peak_gpu_mib"]} if "peak_gpu_mib" in batched else {})})
    res["peak_rss_mib"] = peak_rss_mib()
    json.dump(res, sys.stdout, indent=2)
    print()
    return res


if __name__ == "__main__":
    main()
