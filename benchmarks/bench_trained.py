"""Fidelity on trained weights at full size (issue 24; JSON on stdout).

For each architecture: ``neurodeploy train --arch ARCH --data digits -o OUT/ARCH.pt --max-minutes M``
(the bundled digits task rendered at the architecture's input, docs/data.md; skipped when the checkpoint
exists and ``--reuse`` is given), then ``neurodeploy simulate OUT/ARCH.pt --target loihi2 --data digits
--json --layers [--limit K]``: float accuracy, Loihi 2 fixed-point accuracy (our engine, bit-exact with
Lava), prediction agreement and per-layer spike agreement (first batch) on the test split (all 360 samples
unless ``--limit``).  Prints one JSON object per architecture with the training metrics (steps, epochs,
seconds, the float test accuracy measured by train), the simulate figures, the gap in points and the
wall-clock seconds of each stage.  Run niced on a shared machine; wall-clock figures are inflated there.

    nice -n 10 python benchmarks/bench_trained.py [--arch A ...] [--max-minutes M] [--limit K]
        [--batch-size B] [--out DIR] [--reuse] [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

DEFAULT = ["spikingformer-cifar10-4-384", "spikingformer-gesture-2-256"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neurodeploy", *args], capture_output=True, text=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", nargs="+", default=DEFAULT)
    ap.add_argument("--max-minutes", type=float, default=30.0)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None, help="first K test samples in simulate (default all 360)")
    ap.add_argument("--out", default="bench-trained")
    ap.add_argument("--reuse", action="store_true", help="keep existing checkpoints under --out")
    ap.add_argument("--device", default=None, help="training device (simulate runs on CPU)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for arch in args.arch:
        ckpt = out / f"{arch}.pt"
        row: dict = {"arch": arch, "checkpoint": str(ckpt)}
        t0 = time.perf_counter()
        if not (args.reuse and ckpt.exists()):
            cmd = ["train", "--arch", arch, "--data", "digits", "-o", str(ckpt), "--max-minutes", str(args.max_minutes)]
            cmd += ["--batch-size", str(args.batch_size)] if args.batch_size else []
            cmd += ["--device", args.device] if args.device else []
            r = _cli(*cmd)
            if r.returncode:
                row["error"] = (r.stderr.strip().splitlines() or ["?"])[-1]
                print(json.dumps(row), flush=True)
                continue
        row["train_wall_s"] = round(time.perf_counter() - t0, 1)
        import torch

        row["train"] = torch.load(ckpt, map_location="cpu", weights_only=True).get("metrics", {})
        t0 = time.perf_counter()
        cmd = ["simulate", str(ckpt), "--target", "loihi2", "--data", "digits", "--json", "--layers"]
        cmd += ["--limit", str(args.limit)] if args.limit else []
        r = _cli(*cmd)
        row["simulate_wall_s"] = round(time.perf_counter() - t0, 1)
        if r.returncode:
            row["error"] = (r.stderr.strip().splitlines() or ["?"])[-1]
        else:
            res = json.loads(r.stdout)
            keep = ("samples", "float_accuracy", "loihi2_accuracy", "prediction_agreement", "layer_spike_agreement",
                    "steps_per_sample", "latency_steps", "samples_per_s")
            row["simulate"] = {k: res[k] for k in keep if k in res}
            if "float_accuracy" in res and "loihi2_accuracy" in res:
                row["gap_points"] = round(100 * (res["float_accuracy"] - res["loihi2_accuracy"]), 2)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
