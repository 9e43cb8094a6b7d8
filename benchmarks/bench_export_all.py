"""Every architecture, as a user runs it (issue 11): a random-weight checkpoint written by
``neurodeploy.checkpoint.save_checkpoint(build_model(ARCH), path)``, then
``neurodeploy export CKPT -o OUT --target loihi2`` in a child process of its own.

Prints one JSON object: per variant the exit code, wall-clock seconds and peak RSS of the export process, the
Loihi 2 verdict, cores, chips and system from ``OUT/report.json``, and the size of ``OUT/loihi2/``.  The
checkpoint and OUT are deleted after each variant (imagenet-8-768: 264 MB + 276 MB).  Wall-clock times are
inflated when the machine is shared.

    python benchmarks/bench_export_all.py [--arch A ...] [--out DIR] [--python PY ...]

``--python PY1 PY2``: the same checkpoint (written once, by PY1) exported by each interpreter in turn, so two
code trees (e.g. before and after a change, each installed in its own virtual environment) are measured in
one run, interleaved per variant; the children run in the scratch folder, so a source tree in the current
folder does not shadow an interpreter's own package.  Then each variant has ``runs`` (one per interpreter) and
``seconds_ratio`` / ``peak_rss_ratio`` (last over first).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

# the export in a child that reports its own exit code and peak RSS (ru_maxrss of the process itself)
_CHILD = r"""
import json, resource, sys
from neurodeploy.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}),
      file=sys.stderr)
"""

_SAVE = r"""
import sys, torch
torch.manual_seed(0)
from neurodeploy.checkpoint import save_checkpoint
from neurodeploy.models.registry import build_model
save_checkpoint(build_model(sys.argv[1]), sys.argv[2])
"""


def _size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _export(python: str, arch: str, ckpt: str, out: str, work: str) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run([python, "-c", _CHILD, "export", ckpt, "-o", out, "--target", "loihi2"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=work)
    res = {"arch": arch, "seconds": round(time.perf_counter() - t0, 1)}
    tail = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("{")]
    res.update(json.loads(tail[-1]) if tail else {"rc": r.returncode, "error": r.stderr.strip()[-300:]})
    try:
        with open(os.path.join(out, "report.json")) as f:
            t = json.load(f)["targets"][0]
        res.update(verdict=t["verdict"][:120], cores=t["cores"], chips=t["chips"], system=t.get("system"),
                   latency_steps=t["latency_steps"], artifact_mib=round(_size(os.path.join(out, "loihi2")) / 2**20, 1))
    except (OSError, KeyError, IndexError, ValueError) as exc:
        res["report_error"] = str(exc)
    shutil.rmtree(out, ignore_errors=True)
    return res


def run_variant(arch: str, work: str, pythons=None) -> dict:
    pythons = pythons or [sys.executable]
    ckpt, out = os.path.join(work, f"{arch}.pt"), os.path.join(work, f"{arch}.out")
    subprocess.run([pythons[0], "-c", _SAVE, arch, ckpt], check=True, cwd=work)
    runs = [dict(_export(py, arch, ckpt, out, work), python=py) for py in pythons]
    os.remove(ckpt)
    if len(runs) == 1:
        runs[0].pop("python")
        return runs[0]
    res = {"arch": arch, "rc": max((r.get("rc", 1) for r in runs), key=abs), "runs": runs}
    a, b = runs[0], runs[-1]
    if a.get("seconds") and b.get("seconds"):
        res["seconds_ratio"] = round(b["seconds"] / a["seconds"], 2)
    if a.get("peak_rss_gib") and b.get("peak_rss_gib"):
        res["peak_rss_ratio"] = round(b["peak_rss_gib"] / a["peak_rss_gib"], 2)
    same = ("verdict", "cores", "chips", "latency_steps", "artifact_mib")
    res["same_report_figures"] = all(a.get(k) == b.get(k) for k in same)
    return res


def main(argv=None) -> int:
    from neurodeploy import arch_names
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", nargs="*", default=None, help="variants (default: all of neurodeploy.arch_names())")
    ap.add_argument("--out", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--python", nargs="*", default=None,
                    help="interpreters to export with, in turn (default: this one); the first writes the checkpoint")
    a = ap.parse_args(argv)
    work = os.path.abspath(a.out or tempfile.mkdtemp(prefix="bench-export-all-"))
    os.makedirs(work, exist_ok=True)
    results = []
    for arch in a.arch or arch_names():
        results.append(run_variant(arch, work, a.python))
        print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({"benchmark": "export_all", "command": "neurodeploy export CKPT -o OUT --target loihi2",
                      "note": "random weights; wall-clock and peak RSS of the export process on a shared machine",
                      "all_exit_0": all(r.get("rc") == 0 for r in results), "variants": results}, indent=1))
    return 0 if all(r.get("rc") == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
