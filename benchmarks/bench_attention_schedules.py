"""Attention schedules (``lower_graph(..., attention_schedule=...)``) per Spikingformer variant, one JSON object on
stdout: per schedule the product neurons, GradedVec neurons and added latency from
:func:`neurodeploy.lower.attention_graded.schedule_cost` (the budget search reads the same function), checked
against the built records, and the Loihi 2 cores the mapper gives the attention ops alone (Q, K, V, the attention
LIF and the graded parts, built from the model config as in ``bench_attention.py``); with ``--full VARIANT`` also
the whole lowered network (random weights, seed 0) mapped: cores, chips, latency, lowering time.  The
token-tiled schedules (tiled-8 .. serial) are built with the variant's T (their tiles are T steps apart).

    python benchmarks/bench_attention_schedules.py [--variants a,b,...] [--full spikingformer-cifar10-4-384]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from bench_attention import _graph  # noqa: E402
from test_attention_graded import _config_net  # noqa: E402

VARIANTS = ["spikingformer-digits", "spikingformer-cifar10-4-384", "spikingformer-gesture-2-256",
            "spikingformer-imagenet-8-768"]


def attention_only(arch, schedule, map_cores=True):
    from neurodeploy.lower.attention_graded import attention_to_graded, schedule_cost
    from neurodeploy.mapping import fit, from_lowered
    from neurodeploy.profiles import load_profile
    net, cfg = _config_net(arch)
    N, H, D = cfg.tokens_side ** 2, cfg.num_heads, cfg.embed_dim
    T = int(getattr(cfg, "T", 0) or 16)         # token tiles are T steps apart; event models: 16 frames (paper)
    net.metadata["time_steps"] = T
    cost = schedule_cost(schedule, H, N, D, T=T)
    out = {"heads": H, "tokens": N, "head_dim": D // H, "depth": cfg.depth,
           "product_neurons_per_op": cost["product_neurons"], "graded_vec_neurons_per_op": cost["graded_vec_neurons"],
           "latency_added_steps": cost["latency_added_steps"],
           "product_neurons": cfg.depth * cost["product_neurons"]}
    for k in ("digit_bits", "digits_per_word", "j_chunk", "words", "tile_tokens", "tiles", "gate_neurons"):
        if k in cost:
            out[k] = cost[k]
    if not map_cores:
        return out
    for p in net.populations:
        if p.kind == "input":            # q, k, v are LIF populations of the model: on chip
            p.kind, p.input_kind = "lif", ""
    g = attention_to_graded(net, schedule=schedule)
    built = sum(p.size for p in g.populations if p.kind == "prod")
    assert built == out["product_neurons"], (arch, schedule, built, out["product_neurons"])
    r = fit(from_lowered(g, arch), load_profile("loihi2"))
    ops = {a.name for a in net.attention}
    out["attention_cores"] = sum(L["cores"] for L in r.per_layer if L["layer"] in ops)
    out["cores_qkv_lif_and_attention"] = r.n_cores
    return out


def full(arch, schedule):
    from neurodeploy.lower.loihi2 import lower_graph
    from neurodeploy.mapping import fit, from_lowered
    from neurodeploy.profiles import load_profile
    g = _graph(arch)
    t0 = time.perf_counter()
    net, _ = lower_graph(g, input_range=(-1.0, 2.5), attention_schedule=schedule)
    lower_s = time.perf_counter() - t0
    r = fit(from_lowered(net, arch), load_profile("loihi2"))
    c = net.counts()
    return {"cores": r.n_cores, "chips": r.n_chips, "system": r.system, "fits": r.fits,
            "neurons": c["neurons"], "product_neurons": c["product_neurons"],
            "graded_vec_neurons": c["graded_vec_neurons"], "latency_steps": net.metadata.get("latency"),
            "lowering_s": round(lower_s, 1)}


def engine_speed(arch, batch=64, repeats=2):
    """Our engine's sample-steps/s per schedule on ``arch`` (random weights, seed 0; random images), one
    thread, best of ``repeats`` (the same run for every schedule, so the ratio is comparable)."""
    import numpy as np

    from neurodeploy.lower.attention_graded import ATTENTION_SCHEDULES
    from neurodeploy.lower.loihi2 import lower_graph
    from neurodeploy.sim import Engine
    g = _graph(arch)
    shape = tuple(int(x) for x in np.asarray(next(iter(g.input_type.values()))).tolist())
    x = np.random.default_rng(0).random((batch,) + shape).astype(np.float32) * 2 - 0.5
    out = {}
    for s in ATTENTION_SCHEDULES:
        net, _ = lower_graph(g, input_range=(-1.0, 2.5), attention_schedule=s)
        steps = net.metadata["time_steps"] + net.metadata["latency"]
        eng = Engine(net, threads=1)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            eng.run(net.encode_inputs(x), steps, record=["readout"])
            best = min(best, time.perf_counter() - t0)
        out[s] = {"steps": steps, "batch": batch, "seconds": round(best, 2),
                  "sample_steps_per_s": round(batch * steps / best, 1),
                  "samples_per_s": round(batch / best, 2),
                  # the engine runs every step of the period (T + latency): the tiled schedules' longer periods
                  # cost time in proportion, whatever the bank saves in neurons
                  "neurons": net.counts()["neurons"]}
    return out


def main():
    from neurodeploy.lower.attention_graded import ATTENTION_SCHEDULES
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--full", default="", help="comma list of variants to lower and map whole")
    ap.add_argument("--engine", default="", help="comma list of variants to time in our engine (batch 64)")
    args = ap.parse_args()
    out = {"schedules": list(ATTENTION_SCHEDULES), "attention": {}, "full": {}}
    for arch in args.variants.split(","):
        out["attention"][arch] = {s: attention_only(arch, s, map_cores="imagenet" not in arch)
                                  for s in ATTENTION_SCHEDULES}
    for arch in filter(None, args.full.split(",")):
        out["full"][arch] = {s: full(arch, s) for s in ATTENTION_SCHEDULES}
    out["engine"] = {arch: engine_speed(arch) for arch in filter(None, args.engine.split(","))}
    out["load_avg_1min"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
