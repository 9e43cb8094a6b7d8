"""Fit to a budget (issue 28 part 3): every candidate lowering configuration of each variant, lowered and mapped.

For each variant (random weights, ``torch.manual_seed(0)``, as ``benchmarks/bench_export_all.py``) and each
configuration of ``neurodeploy.deploy.configs.CANDIDATES`` and ``FALLBACK`` (lowered as ``export`` does, with
the profile: conv populations cut by channels where the core model saves cores): cores, chips, smallest system, latency per
inference (T + pipeline depth, in steps and in ms at the Loihi 2 profile's step time), energy per inference
(``configs.config_energy`` at the variant's published firing rates), neurons, synapses, and the seconds of
lowering + mapping (wall clock; inflated when the machine is shared), and the process's peak RSS so far
(``ru_maxrss``: cumulative over the variants run before).  Prints one JSON line per variant, then one JSON
object with all of them.

imagenet-8-768 is lowered only in the configurations of :data:`LIMITED` unless ``--all-configs`` (each of
its lowerings takes minutes and ~8 GiB; the others would double the run).

    python benchmarks/bench_fit.py [--arch A ...] [--all-configs]
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import torch

DEFAULT_ARCHS = ["spikingformer-digits", "spikingformer-gesture-2-256", "spikingformer-cifar10-4-384",
                 "spikingformer-imagenet-8-768"]
#: variants lowered in a subset of the candidates by default: the configuration ``export --max-chips 1152``
#: chooses for it (the lowest latency that fits Hala Point)
LIMITED = {"spikingformer-imagenet-8-768": ["stream built once, packed attention", "stream expanded, packed attention",
                                            "stream built once, tiled-8 attention", "stream built once, tiled-4 attention",
                                            "stream built once, tiled-2 attention"]}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", action="append", default=None)
    ap.add_argument("--all-configs", action="store_true", help="every candidate for every variant (see LIMITED)")
    ap.add_argument("--steps", action="append", default=[], metavar="ARCH=T",
                    help="time steps of a model that takes them from its data (default: gesture-2-256 16)")
    a = ap.parse_args(argv)
    a.steps = dict({"spikingformer-gesture-2-256": 16}, **{k: int(v) for k, v in (x.split("=") for x in a.steps)})
    from neurodeploy.deploy import Deployment
    from neurodeploy.errors import UnsupportedError
    from neurodeploy.deploy.configs import CANDIDATES, FALLBACK, config_energy
    from neurodeploy.deploy.loihi2 import DEFAULT_INPUT_RANGE, attention_bound, config_row
    from neurodeploy.models.registry import build_model

    out = {"configurations": [c.to_dict() for c in CANDIDATES + FALLBACK], "variants": {}}
    for arch in a.arch or DEFAULT_ARCHS:
        torch.manual_seed(0)
        model = build_model(arch).eval()
        # models that take T from their data (event cameras): the published 16 frames, so that the token-tiled
        # fallbacks (tiles T steps apart) can be built
        dep = Deployment.build(model, targets=["loihi2"], steps=a.steps.get(arch))
        t = dep.target("loihi2")
        step_s = t.profile.energy("step_time_s")
        est = None
        from neurodeploy.energy import target_energy
        if dep.rates:
            est = target_energy(dep.ops, dep.rates, t.profile)
        rows, bound = [], None
        for cfg in CANDIDATES + FALLBACK:
            if not a.all_configs and arch in LIMITED and cfg.name not in LIMITED[arch]:
                continue
            t0 = time.perf_counter()
            try:
                art = t.target._lower_one(dep, cfg, DEFAULT_INPUT_RANGE, "default", t.profile)
            except UnsupportedError as exc:         # as the search records it
                rows.append({"name": cfg.name, "config": cfg.to_dict(), "refused": str(exc).splitlines()[0]})
                continue
            t1 = time.perf_counter()
            res = t.target.map(art, t.profile, dep.rates or None)
            t2 = time.perf_counter()
            row = config_row(cfg, art, res, step_s)
            row.update(lowering_s=round(t1 - t0, 2), mapping_s=round(t2 - t1, 2))
            rows.append(row)
            bound = bound or attention_bound(art.summary, t.profile)
            del art
        config_energy(rows, est, t.profile)
        out["variants"][arch] = {"rows": rows, "rates": dep.rates_source, "attention_full_rate_bound": bound,
                                 "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
        print(json.dumps({arch: out["variants"][arch]}), flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
