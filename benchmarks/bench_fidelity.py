"""Fixed-point fidelity throughput, in one run: our engine alone, the `simulate` path (what the CLI calls:
neurodeploy.fidelity.simulate_lowered), and Lava, on the same lowered network and samples.

Figures (JSON, one object):
  engine_sample_steps_per_s   Engine.run on the chained network, batches of --batch, nothing else timed
  cli_sample_steps_per_s      simulate_lowered's fixed-point part (encoding + engine + decoding), same batches
  cli_end_to_end_s            simulate_lowered wall time including the float reference (layers off)
  cli_over_engine             cli / engine sample-steps per second (target >= 0.5)
  lava_sample_steps_per_s     Lava fixed_pt, all --lava-samples chained in one process graph (incl. compile)
A sample-step is one time step of one sample (T + latency steps per sample).

    python benchmarks/bench_fidelity.py [--arch spikingformer-digits] [--samples 360] [--lava-samples 20]
    python benchmarks/bench_fidelity.py --arch spikingformer-cifar10-4-384 --samples 256 --lava-samples 0
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="spikingformer-digits")
    ap.add_argument("--samples", type=int, default=360)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lava-samples", type=int, default=20)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "0")) or None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from neurodeploy.exporters import to_nir
    from neurodeploy.fidelity import _encode, simulate_lowered
    from neurodeploy.lower.chain import chain_inputs, chain_network
    from neurodeploy.lower.loihi2 import lower_graph
    from neurodeploy.models.registry import build_model, default_config
    from neurodeploy.sim import Engine

    torch.manual_seed(0)
    model = build_model(args.arch).eval()
    graph = to_nir(model)
    cfg = default_config(args.arch)
    shape = (cfg.in_channels, cfg.img_size, cfg.img_size) if hasattr(cfg, "img_size") else None
    if args.arch.endswith("digits"):
        from neurodeploy.training import digits_split

        x = digits_split()[2].numpy()[:args.samples]
    else:
        x = np.random.default_rng(0).normal(size=(args.samples,) + tuple(shape)).astype(np.float32)
    t0 = time.perf_counter()
    net, _ = lower_graph(graph, input_range=(float(x.min()), float(x.max())))
    t_lower = time.perf_counter() - t0
    T = int(net.metadata["time_steps"])
    L = int(net.metadata["latency"])
    P = T + L
    out = {"arch": args.arch, "samples": len(x), "batch": args.batch, "steps_per_sample": P,
           "threads": torch.get_num_threads(), "lowering_s": t_lower}

    # the engine alone
    chained = chain_network(net, P, bias_as_graded=False, one_window=True)      # as simulate_lowered (fast)
    eng = Engine(chained)
    inputs = [chain_inputs(chained, _encode(net, x[i:i + args.batch], T, L, "cpu", x.ndim - 1), batched=True)
              for i in range(0, len(x), args.batch)]
    eng.run(inputs[0], P, record=net.outputs)          # warm-up
    t0 = time.perf_counter()
    for inp in inputs:
        eng.run(inp, P, record=net.outputs)
    t_eng = time.perf_counter() - t0
    out["engine_sample_steps_per_s"] = len(x) * P / t_eng

    # the simulate path
    t0 = time.perf_counter()
    res = simulate_lowered(graph, net, x, batch=args.batch, progress=False, layers=False)
    out["cli_end_to_end_s"] = time.perf_counter() - t0
    out["cli_sample_steps_per_s"] = res["sample_steps_per_s"]
    out["cli_float_reference_s"] = res["float_reference_s"]
    out["cli_over_engine"] = res["sample_steps_per_s"] / out["engine_sample_steps_per_s"]
    out["prediction_agreement"] = res["prediction_agreement"]

    if args.lava_samples:
        t0 = time.perf_counter()
        lres = simulate_lowered(graph, net, x[:args.lava_samples], backend="lava", progress=False, layers=False)
        out["lava_samples"] = args.lava_samples
        out["lava_sample_steps_per_s"] = args.lava_samples * P / (time.perf_counter() - t0)
        out["lava_agrees_with_engine"] = lres["predictions"] == res["predictions"][:args.lava_samples]
        out["engine_over_lava"] = out["engine_sample_steps_per_s"] / out["lava_sample_steps_per_s"]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
