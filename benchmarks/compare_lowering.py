"""Behaviour unchanged, byte for byte (issue 23): export the same checkpoints with two code trees and compare.

    python benchmarks/compare_lowering.py export --python PY --out DIR [--model NAME ...]
    python benchmarks/compare_lowering.py compare DIR_BEFORE DIR_AFTER

``export`` runs ``neurodeploy export CKPT -o DIR/NAME --target loihi2`` with the interpreter PY (the tree it has
installed), one child process per model, for: the trained digits checkpoint (``/work/trained/digits/*.pt``,
exported with ``--data digits``, so activity, NeuroBench and fidelity are compared too) and random seed-0
full-size Spikingformers (checkpoints written as ``benchmarks/bench_export_all.py`` writes them:
``torch.manual_seed(0)``, ``save_checkpoint(build_model(ARCH), path)``; the checkpoint is written by the
*after* tree's interpreter PY too, so both trees get the same file only when the model code is unchanged;
``export`` records the checkpoint's sha256 so ``compare`` can tell).

``compare`` prints one JSON object: per model whether every file under ``loihi2/`` (``network.npz`` included)
is byte-equal, and whether ``report.json`` is equal once timing fields (``elapsed_seconds`` and any key
ending in ``_seconds``/``_s``) are dropped, with the first differing paths when not.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

DIGITS = "/work/trained/digits"
CKPT_DIR = "/tmp/compare-lowering-checkpoints"
RANDOM = ["spikingformer-cifar10-4-384", "spikingformer-gesture-2-256", "spikingformer-imagenet-8-384"]

_SAVE = r"""
import sys, torch
torch.manual_seed(0)
from neurodeploy.checkpoint import save_checkpoint
from neurodeploy.models.registry import build_model
save_checkpoint(build_model(sys.argv[1]), sys.argv[2])
"""

_CHILD = r"""
import json, resource, sys
from neurodeploy.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}),
      file=sys.stderr)
"""


def _sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export(python: str, out: str, models: list[str], digits: str | None = None, ckpt_dir: str = CKPT_DIR) -> dict:
    """Export ``models`` with the interpreter ``python``, each child run in ``out`` (not in a source tree, whose
    package would shadow the interpreter's own), its checkpoint in ``ckpt_dir`` (the same path for both trees,
    so report.json's model path agrees)."""
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    os.makedirs(ckpt_dir, exist_ok=True)
    results = {}
    done = os.path.join(out, "exports.json")
    if os.path.exists(done):                    # a later call adds or replaces models
        with open(done) as f:
            results = json.load(f)["models"]
    for name in models:
        dest = os.path.join(out, name)
        shutil.rmtree(dest, ignore_errors=True)
        if name == "digits":
            ckpt = digits or sorted(glob.glob(os.path.join(DIGITS, "*.pt")))[0]
            extra = ["--data", "digits"]
        else:
            ckpt = os.path.join(ckpt_dir, f"{name}.pt")
            subprocess.run([python, "-c", _SAVE, name, ckpt], check=True, cwd=out)
            extra = []
        t0 = time.perf_counter()
        r = subprocess.run([python, "-c", _CHILD, "export", ckpt, "-o", dest, "--target", "loihi2", *extra],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=out)
        res = {"seconds": round(time.perf_counter() - t0, 1), "checkpoint_sha256": _sha(ckpt),
               "python_package": subprocess.run([python, "-c", "import neurodeploy; print(neurodeploy.__file__)"],
                                                capture_output=True, text=True, cwd=out).stdout.strip()}
        tail = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("{")]
        res.update(json.loads(tail[-1]) if tail else {"rc": r.returncode, "error": r.stderr.strip()[-300:]})
        if name != "digits":
            os.remove(ckpt)
        results[name] = res
        print(json.dumps({name: res}), file=sys.stderr)
    with open(os.path.join(out, "exports.json"), "w") as f:
        json.dump({"python": python, "models": results}, f, indent=1)
    return results


def _strip_timing(x):
    if isinstance(x, dict):
        return {k: _strip_timing(v) for k, v in x.items()
                if not (k.endswith("_seconds") or k.endswith("_s") or k in ("seconds", "wall_seconds"))}
    if isinstance(x, list):
        return [_strip_timing(v) for v in x]
    return x


def _diff(a, b, path="", found=None):
    found = [] if found is None else found
    if len(found) >= 8:
        return found
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                found.append(f"{path}/{k}: only in {'after' if k in b else 'before'}")
            else:
                _diff(a[k], b[k], f"{path}/{k}", found)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (u, v) in enumerate(zip(a, b)):
            _diff(u, v, f"{path}[{i}]", found)
    elif a != b:
        found.append(f"{path}: {str(a)[:80]} != {str(b)[:80]}")
    return found


def _npz_parts(path: str) -> tuple[dict, dict]:
    """The members of an .npz (name -> sha256 of its bytes) other than ``__meta__``, and the parsed ``__meta__``."""
    import zipfile

    import numpy as np

    with zipfile.ZipFile(path) as z:
        members = {n: hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist() if n != "__meta__.npy"}
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z["__meta__"]).decode("utf-8"))
    return members, meta


def _npz_detail(a: str, b: str) -> dict:
    """Where two network.npz files differ: the arrays (each member byte for byte) and the JSON document."""
    ma, ja = _npz_parts(a)
    mb, jb = _npz_parts(b)
    return {"arrays": len(ma), "arrays_byte_equal": ma == mb,
            "arrays_differing": sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))[:8],
            "meta_json_equal": ja == jb, "meta_json_differences": _diff(ja, jb)}


def compare(before: str, after: str) -> dict:
    out = {}
    ea = json.load(open(os.path.join(before, "exports.json")))["models"]
    eb = json.load(open(os.path.join(after, "exports.json")))["models"]
    for name in sorted(set(ea) & set(eb)):
        a, b = os.path.join(before, name), os.path.join(after, name)
        files_a = sorted(os.path.relpath(os.path.join(d, f), a) for d, _, fs in os.walk(os.path.join(a, "loihi2"))
                         for f in fs)
        files_b = sorted(os.path.relpath(os.path.join(d, f), b) for d, _, fs in os.walk(os.path.join(b, "loihi2"))
                         for f in fs)
        differing = [f for f in files_a if f in files_b and _sha(os.path.join(a, f)) != _sha(os.path.join(b, f))]
        ra = _strip_timing(json.load(open(os.path.join(a, "report.json"))))
        rb = _strip_timing(json.load(open(os.path.join(b, "report.json"))))
        npz = "loihi2/network.npz"
        out[name] = {
            "same_checkpoint": ea[name]["checkpoint_sha256"] == eb[name]["checkpoint_sha256"],
            "packages": [ea[name].get("python_package"), eb[name].get("python_package")],
            "rc": [ea[name].get("rc"), eb[name].get("rc")],
            "network_npz_byte_equal": npz in files_a and npz in files_b and npz not in differing,
            "network_npz_sha256": _sha(os.path.join(a, npz)) if npz in files_a else None,
            "loihi2_files": len(files_a),
            "loihi2_files_same_set": files_a == files_b,
            "loihi2_files_differing": differing,
            "network_npz_detail": _npz_detail(os.path.join(a, npz), os.path.join(b, npz)) if npz in differing else None,
            "json_differences": {f: _diff(json.load(open(os.path.join(a, f))), json.load(open(os.path.join(b, f))))
                                 for f in differing if f.endswith(".json")},
            "report_json_equal_without_timing": ra == rb,
            "report_json_differences": _diff(ra, rb),
            "seconds": [ea[name].get("seconds"), eb[name].get("seconds")],
            "peak_rss_gib": [ea[name].get("peak_rss_gib"), eb[name].get("peak_rss_gib")],
        }
    out["all_equal"] = all(v["network_npz_byte_equal"] and v["report_json_equal_without_timing"]
                           and not v["loihi2_files_differing"] and v["loihi2_files_same_set"]
                           for v in out.values() if isinstance(v, dict))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--python", default=sys.executable)
    e.add_argument("--out", required=True)
    e.add_argument("--model", nargs="*", default=["digits", *RANDOM])
    e.add_argument("--digits", default=None, help=f"the trained digits checkpoint (default: the one in {DIGITS})")
    c = sub.add_parser("compare")
    c.add_argument("before")
    c.add_argument("after")
    a = ap.parse_args(argv)
    if a.cmd == "export":
        print(json.dumps({"exports": export(a.python, a.out, a.model, a.digits)}, indent=1))
    else:
        res = compare(a.before, a.after)
        print(json.dumps({"benchmark": "compare_lowering", "before": a.before, "after": a.after, **res}, indent=1))
        return 0 if res["all_equal"] else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
