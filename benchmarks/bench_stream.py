"""The residual stream built once against expanded (issue 28 part 1): what the stream's one shared integer
scale costs in rounding, on a trained checkpoint.

Lowers CKPT twice (``lower_graph(residual_stream="relay")``, the default, and ``"expanded"``: every LIF of the
stream holds every earlier branch conv at its own scale) and runs both on our engine over the samples (the
bundled digits test split by default): fixed-point accuracy, prediction agreement with the float model,
per-layer spike agreement float vs fixed (first batch, layer-synchronous), each population's scale, latency
and stored weights.  Prints one JSON object.

    python benchmarks/bench_stream.py CKPT [--samples N]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("--samples", type=int, default=0, help="first N test samples (0: all)")
    a = ap.parse_args(argv)
    from neurodeploy.commands.simulate import load_graph
    from neurodeploy.fidelity import simulate_lowered
    from neurodeploy.lower.loihi2 import lower_graph
    from neurodeploy.training import digits_split

    g = load_graph(a.ckpt)
    _, _, x, y = digits_split()
    x, y = x.numpy(), y.numpy()
    if a.samples:
        x, y = x[:a.samples], y[:a.samples]
    out = {"checkpoint": a.ckpt, "samples": int(len(x))}
    preds = {}
    for form in ("expanded", "relay"):
        t0 = time.perf_counter()
        net, rep = lower_graph(g, input_range=(float(x.min()), float(x.max())), residual_stream=form)
        low_s = time.perf_counter() - t0
        res = simulate_lowered(g, net, x, y, backend="fast", batch=120, progress=False)
        stored = sum(s.weights.nnz if s.kind == "sparse" else int(np.prod(np.shape(s.weights)))
                     for s in net.synapses if s.kind != "einsum")
        out[form] = {
            "accuracy_fixed": round(100 * res["loihi2_accuracy"], 2),
            "accuracy_float": round(100 * res["float_accuracy"], 2),
            "prediction_agreement": round(100 * res["prediction_agreement"], 2),
            "layer_spike_agreement": {k: round(100 * v, 3) for k, v in res["layer_spike_agreement"].items()},
            "scales": {l["population"]: l["scale"] for l in rep["layers"]},
            "group_rel_error_max": {l["population"]: round(max([gr["rel_error"] for gr in l["groups"]] + [0]), 5)
                                    for l in rep["layers"]},
            "latency_steps": int(net.metadata["latency"]),
            "stored_weights": int(stored),
            "lowering_s": round(low_s, 2),
        }
        preds[form] = res.get("predictions")
    if preds["relay"] is not None and preds["expanded"] is not None:
        out["predictions_identical_fraction"] = float(np.mean(np.asarray(preds["relay"]) == np.asarray(preds["expanded"])))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
