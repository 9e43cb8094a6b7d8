"""Benchmark (issue 14): simulation memory must not grow with the number of time steps.

Runs ``neurodeploy simulate spikingformer-digits --steps N --limit K`` (untrained weights: memory does not
depend on training; the bundled digits test split, first K samples) in a fresh process for each N and
prints one JSON object: per N the peak resident memory of that process (``ru_maxrss`` from ``wait4``) and
its wall time; ``growth_kib_per_step`` compares the largest N with the smallest one in the same run (the
peer here is the same command at few steps); ``ok`` is whether the largest run stays under the target
(1.5 GiB).  Usage: ``python benchmarks/bench_reliability.py [--steps 200 20000] [--limit 1]``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

TARGET_GIB = 1.5


def run(steps: int, limit: int) -> dict:
    cmd = [sys.executable, "-m", "neurodeploy", "simulate", "spikingformer-digits", "--steps", str(steps),
           "--limit", str(limit), "--json"]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({code}): {err.read().decode()[-2000:]}")
        res = json.loads(out.read().decode())
    return {"steps": steps, "samples": limit, "peak_rss_gib": round(usage.ru_maxrss / 2**20, 3),
            "wall_s": round(wall, 1), "prediction_agreement": res["prediction_agreement"],
            "steps_per_s": round(res["steps_per_s"], 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, nargs="+", default=[200, 20000])
    ap.add_argument("--limit", type=int, default=1)
    args = ap.parse_args(argv)
    runs = [run(n, args.limit) for n in sorted(args.steps)]
    lo, hi = runs[0], runs[-1]
    growth = (hi["peak_rss_gib"] - lo["peak_rss_gib"]) * 2**20 / max(hi["steps"] - lo["steps"], 1)
    print(json.dumps({
        "benchmark": "simulate memory vs time steps (spikingformer-digits, fast engine, cpu)",
        "runs": runs,
        "growth_kib_per_step": round(growth, 2),
        "target_peak_rss_gib": TARGET_GIB,
        "ok": hi["peak_rss_gib"] < TARGET_GIB,
        "note": "peak RSS of each simulate process (ru_maxrss via wait4); wall times are inflated when other "
                "jobs share the CPU",
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
