"""`neurodeploy simulate` with and without the engine's speed-ups, in ONE process (issue 27; JSON on stdout).

The model is read and lowered once (as `neurodeploy simulate MODEL --data FILE` does), then the same samples
run through :func:`neurodeploy.fidelity.simulate_lowered` (fast back-end, same batch, same threads) in each
mode: ``off`` (one engine run of T + latency steps per batch, every population every step: the engine before
issue 27), ``no-pipeline`` (one run per batch, idle/silent skipping on) and ``on`` (the default: batches
follow each other through the pipeline T steps apart, idle populations skipped).  Every mode measures its
own float reference on the same samples (``float_reference_s``) next to ``fixed_point_s``; the ratio is
``fixed_point_s / float_reference_s`` of the same mode.  ``same_predictions``: every mode gave the same
fixed-point predictions.  The machine's 1-minute load average is printed around each mode.

    python benchmarks/bench_simulate.py CKPT [--data FILE] [--limit 16] [--batch 8] [--modes off on]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

MODES = {"off": {"pipeline": False, "engine_options": {"skip_idle": False, "skip_silent": False}},
         "no-pipeline": {"pipeline": False},
         "on": {"pipeline": True}}


def layer_counts(net, x, T, batch, record_bytes: int = 1 << 30) -> dict:
    """Spike count of every non-input population per sample (its own window): Engine.run_stream with every
    skip on vs one chained run per batch with every skip off."""
    import numpy as np
    from neurodeploy.fidelity import _encode, _encode_stream
    from neurodeploy.data import float_batch
    from neurodeploy.lower.chain import chain_inputs, chain_network
    from neurodeploy.sim import Engine
    L = int(net.metadata["latency"])
    chained = chain_network(net, T + L, bias_as_graded=False, one_window=True)
    lat = chained.latency()
    pops = [p.name for p in chained.populations if p.kind != "input"]
    fast, ref = Engine(chained), Engine(chained, skip_idle=False, skip_silent=False)
    in_dims = len(net.inputs[0].shape) if not net.encoders else x.ndim - 1
    # the populations recorded in groups of at most record_bytes of (T + latency) x batch x 4-byte records,
    # each group its own pair of runs: memory stays bounded at full size (8 M neurons at once need ~10 GB)
    groups, cur, size = [], [], 0
    for n in pops:
        b = chained.pop(n).size * (T + L) * batch * 4
        if cur and size + b > record_bytes:
            groups.append(cur)
            cur, size = [], 0
        cur.append(n)
        size += b
    groups.append(cur)
    same, total, t_fast, t_ref = True, 0, 0.0, 0.0
    for i in range(0, len(x), batch):
        xb = float_batch(x, i, i + batch)
        for rec in groups:
            t0 = time.perf_counter()
            got = fast.run_stream([_encode_stream(net, xb, T, "cpu", in_dims)], T, record=rec)
            t_fast += time.perf_counter() - t0
            t0 = time.perf_counter()
            want = ref.run(chain_inputs(chained, _encode(net, xb, T, L, "cpu", in_dims), batched=True), T + L,
                           record=rec)
            t_ref += time.perf_counter() - t0
            for n in rec:
                a = got[n]["s"].ne(0).sum(0).sum(-1).numpy()
                b = want[n]["s"][lat[n]:lat[n] + T].ne(0).sum(0).sum(-1).numpy()
                same &= bool(np.array_equal(a, b))
                total += int(b.sum())
            del got, want
    return {"populations": len(pops), "samples": len(x), "identical": same, "spikes_and_payloads": total,
            "record_groups": len(groups), "stream_skips_s": round(t_fast, 2), "per_batch_no_skips_s": round(t_ref, 2)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--data", default=None, help="samples (.npz); default: the digits test split for digits models")
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--modes", nargs="+", default=["off", "on"], choices=sorted(MODES))
    ap.add_argument("--layer-counts", action="store_true",
                    help="also compare every population's spike count per sample: pipelined with skips "
                         "(Engine.run_stream) against one run per batch without skips (memory: every layer "
                         "recorded for one batch; small models)")
    args = ap.parse_args(argv)
    import torch
    from neurodeploy.commands.simulate import load_artifact
    from neurodeploy.fidelity import simulate_lowered

    t0 = time.perf_counter()
    graph, impl, art, x, y, T = load_artifact(args.model, "loihi2", data=args.data)
    x = x[:args.limit]
    out = {"model": os.path.basename(args.model), "samples": len(x), "batch": args.batch,
           "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "load_s": round(time.perf_counter() - t0, 2),
           "modes": {}}
    preds = {}
    for m in args.modes:
        load0 = round(os.getloadavg()[0], 2)
        r = simulate_lowered(graph, art.net, x, None, steps=T, batch=args.batch, progress=False, layers=False,
                             **MODES[m])
        preds[m] = r["predictions"]
        out["modes"][m] = {"fixed_point_s": round(r["fixed_point_s"], 3),
                           "float_reference_s": round(r["float_reference_s"], 3),
                           "fixed_over_float": round(r["fixed_point_s"] / r["float_reference_s"], 3),
                           "samples_per_s": round(r["samples_per_s"], 3),
                           "pipelined_samples": r["pipelined_samples"], "batch": r["batch"],
                           "steps_per_sample": r["steps_per_sample"], "latency_steps": r["latency_steps"],
                           "prediction_agreement_vs_float": r["prediction_agreement"],
                           "load_avg_1min": [load0, round(os.getloadavg()[0], 2)]}
        print(json.dumps({m: out["modes"][m]}), file=sys.stderr)
    out["same_predictions"] = len({tuple(p) for p in preds.values()}) == 1
    if args.layer_counts:
        from neurodeploy.fidelity import graph_time_steps
        out["layer_counts"] = layer_counts(art.net, x, graph_time_steps(graph, T), args.batch)
    if "off" in out["modes"] and "on" in out["modes"]:
        out["speedup_on_vs_off"] = round(out["modes"]["off"]["fixed_point_s"] / out["modes"]["on"]["fixed_point_s"], 2)
    json.dump(out, sys.stdout, indent=2)
    print()
    return out


if __name__ == "__main__":
    main()
