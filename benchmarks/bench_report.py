"""Deployment report benchmark: Spikingformer cifar10-4-384 and imagenet-8-768 (random weights, published
firing rates) against Loihi 2 - cores, chips, system, energy - plus the Loihi 2 compiler calibration networks
(MNIST 784-128-64-10: 5 cores, PilotNet-LIF: 74 cores).  Prints JSON; the whole run should take < 30 s.

    python benchmarks/bench_report.py [--target loihi2] [-o FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

MODELS = ["spikingformer-cifar10-4-384", "spikingformer-imagenet-8-768"]
COMPILER_CORES = {"mnist-784-128-64-10": 5, "pilotnet-lif": 74}  # lava_loihi.md 3.7


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="loihi2")
    ap.add_argument("-o", "--output")
    args = ap.parse_args(argv)
    t_all = time.perf_counter()
    import torch

    from neurodeploy.mapping.reference_nets import mlp, pilotnet_lif
    from neurodeploy.mapping import fit
    from neurodeploy.models import build_model
    from neurodeploy.profiles import load_profile
    from neurodeploy.report import build_report

    prof = load_profile(args.target)
    out = {"target": args.target, "models": [], "calibration": []}
    for arch in MODELS:
        t0 = time.perf_counter()
        torch.manual_seed(0)
        model = build_model(arch).eval()
        model.arch = arch
        doc = build_report(model, targets=[args.target])
        t = doc["targets"][0]
        e = doc["energy"]["paper"]
        out["models"].append({
            "model": arch,
            "weights": "random (seed 0)",
            "firing_rates": doc["firing_rates"]["source"],
            "fits": t["fits"],
            "verdict": t["verdict"],
            "cores": t["cores"],
            "chips": t["chips"],
            "system": t["system"],
            "bottleneck": t["bottleneck"],
            "latency_steps": t["latency_steps"],
            "interchip_spikes_per_step": t["interchip_spikes_per_step"],
            "energy_paper_mj": e["energy_mj"],
            "macs_g": e["macs"] / 1e9,
            "acs_g": e["acs"] / 1e9,
            "energy_target_uj": (t["energy_estimate"] or {}).get("energy_uj"),
            "energy_target_breakdown_uj": (t["energy_estimate"] or {}).get("breakdown_uj"),
            "seconds": round(time.perf_counter() - t0, 2),
        })
    for name, net in (("mnist-784-128-64-10", mlp([784, 128, 64, 10], "mnist")), ("pilotnet-lif", pilotnet_lif())):
        r = fit(net, prof)
        out["calibration"].append({"network": name, "cores": r.n_cores,
                                   "compiler_cores": COMPILER_CORES[name] if args.target == "loihi2" else None,
                                   "per_layer": {L["layer"]: L["cores"] for L in r.per_layer}})
    out["seconds_total"] = round(time.perf_counter() - t_all, 2)
    text = json.dumps(out, indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
