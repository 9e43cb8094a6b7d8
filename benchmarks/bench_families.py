"""The side-by-side table of the spiking-transformer families on Loihi 2: one row per family x variant.

For each variant: build it with random weights (seed 0), save it in the container its official training
code writes, and run ``neurodeploy export CKPT --arch NAME -o OUT --target loihi2`` as a subprocess (wall
time and peak memory of that process).  From OUT/report.json: the purity verdict, Loihi 2 cores / chips /
smallest system (default configuration), latency in steps.  A variant whose export is refused (exit 2)
gets the refusal's first line, which names the module and the reason.  Parameters are the official
module tree's (``FAMILY_PARAMETER_COUNTS``); the papers' accuracy and energy (their own method: ImageNet,
45 nm operation energies) are quoted with their source.  Loihi 2 energy needs firing rates (``--data``):
not measured here (null).

With ``--digits CKPT_DIR`` the digits-size model of each family (``neurodeploy train --arch X-digits``) is
also simulated in fixed point on all 360 digits test images: float vs fixed-point accuracy and agreement.

    python benchmarks/bench_families.py [--only ARCH,...] [--digits DIR] [--markdown] > families.json

Prints one JSON object on stdout (``--markdown``: also the README table on stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

#: (arch, paper top-1 %, source, paper energy mJ or None, source)
ROWS = [
    ("spikingformer-cifar10-4-384", 95.81, "Spikingformer README (4-384, 400 epochs)", None, None),
    ("spikingformer-imagenet-8-384", 72.45, "Spikingformer paper, ImageNet table", 4.69, "Spikingformer paper"),
    ("spikformer-cifar10-4-384", 95.19, "Spikformer paper (ICLR 2023), CIFAR-10, 300 epochs", None, None),
    ("spikformer-imagenet-8-384", 70.24, "Spikformer paper (ICLR 2023), ImageNet", 12.43,
     "recomputed by the Spikingformer authors (Spikingformer paper)"),
    ("sdt-cifar10-2-512", 95.6, "Spike-driven Transformer paper (NeurIPS 2023), CIFAR-10", None, None),
    ("sdt-imagenet-8-384", 72.28, "Spike-driven Transformer README, ImageNet", 3.90, "Spikingformer paper's table"),
    ("qkformer-cifar10-4-384", 96.18, "QKFormer paper (NeurIPS 2024), CIFAR-10", None, None),
    ("qkformer-imagenet-10-384", 78.80, "QKFormer README, ImageNet 224", None, None),
]
CONTAINER = {"qkformer-imagenet-10-384": "model"}  # MAE-style save_model; the others: timm CheckpointSaver


def _family(arch: str) -> str:
    from neurodeploy.models.registry import family_of
    return family_of(arch) or "?"


def _parameters(arch: str) -> int:
    from neurodeploy.models.registry import FAMILY_PARAMETER_COUNTS, OFFICIAL_PARAMETER_COUNTS
    return {**OFFICIAL_PARAMETER_COUNTS, **FAMILY_PARAMETER_COUNTS}[arch]


def export_row(arch: str, tmp: Path) -> dict:
    from neurodeploy import build_model
    torch.manual_seed(0)
    model = build_model(arch)
    ck = tmp / f"{arch}.pth.tar"
    key = CONTAINER.get(arch, "state_dict")
    torch.save({key: model.state_dict(), "epoch": 0}, ck)
    del model
    out = tmp / f"{arch}-out"
    cmd = [sys.executable, "-m", "neurodeploy", "export", str(ck), "--arch", arch, "-o", str(out), "--target", "loihi2"]
    log = tmp / f"{arch}.log"
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS (KiB on Linux)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    row = {"export_exit_code": code, "export_s": round(wall, 1), "export_peak_rss_gib": round(usage.ru_maxrss / 2**20, 2)}
    if code != 0:
        text = log.read_text()
        err = [ln for ln in text.splitlines() if "error:" in ln]
        row["refused"] = (err[-1].split("error:", 1)[1].strip() if err else text.strip()[-300:])
        row["purity"] = "not checked (export refused)"
        return row
    rep = json.loads((out / "report.json").read_text())
    t = rep["summary"]["rows"][0]
    row.update({"purity": rep["purity"]["verdict"], "purity_violations": rep["purity"]["summary"]["violations"],
                "loihi2_cores": t.get("cores"), "loihi2_chips": t.get("chips"), "loihi2_system": t.get("system"),
                "loihi2_verdict": t.get("verdict"), "latency_steps": t.get("latency_steps"),
                "loihi2_energy_uj": t.get("total_uj")})
    return row


def digits_row(arch: str, ckpt: Path) -> dict:
    """Float vs fixed-point (our engine, Loihi 2 lowering) accuracy on all 360 digits test images."""
    from neurodeploy import load_model
    from neurodeploy.exporters import to_nir
    from neurodeploy.fidelity import simulate_loihi2
    from neurodeploy.training import digits_split
    _, _, x, y = digits_split()
    model = load_model(ckpt)
    with torch.no_grad():
        float_acc = float((model(x).argmax(-1) == y).float().mean())
    res = simulate_loihi2(to_nir(model), x.numpy(), y.numpy(), progress=False)
    keep = {k: res[k] for k in ("float_accuracy", "loihi2_accuracy", "prediction_agreement", "samples") if k in res}
    return {"arch": arch, "torch_float_accuracy": round(float_acc, 4), **keep}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=None, help="comma-separated architecture names")
    ap.add_argument("--digits", default=None, metavar="DIR", help="directory with ARCH.pt digits checkpoints")
    ap.add_argument("--markdown", action="store_true", help="also print the README table on stderr")
    a = ap.parse_args(argv)
    only = set(a.only.split(",")) if a.only else None
    rows = []
    with tempfile.TemporaryDirectory() as td:
        for arch, acc, acc_src, mj, mj_src in ROWS:
            if only and arch not in only:
                continue
            row = {"family": _family(arch), "arch": arch, "parameters": _parameters(arch),
                   "paper_top1": acc, "paper_top1_source": acc_src, "paper_energy_mj": mj,
                   "paper_energy_source": mj_src}
            row.update(export_row(arch, Path(td)))
            rows.append(row)
            sys.stderr.write(json.dumps(row) + "\n")
    out = {"rows": rows, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
           "note": "random weights (seed 0); Loihi 2 default configuration; energy on Loihi 2 needs --data"}
    if a.digits:
        out["digits"] = []
        for arch in ("spikingformer-digits", "spikformer-digits", "sdt-digits", "qkformer-digits"):
            ck = Path(a.digits) / f"{arch}.pt"
            if ck.exists() and (not only or arch in only):
                out["digits"].append(digits_row(arch, ck))
                sys.stderr.write(json.dumps(out["digits"][-1]) + "\n")
    print(json.dumps(out, indent=1))
    if a.markdown:
        sys.stderr.write(markdown(out) + "\n")
    return 0


def markdown(out: dict) -> str:
    lines = ["| family | variant | params | paper top-1 | purity | Loihi 2 cores / chips / system | latency (steps) "
             "| paper energy | export |", "|---|---|---|---|---|---|---|---|---|"]
    for r in out["rows"]:
        if r.get("export_exit_code") == 0:
            hw = f"{r['loihi2_cores']:,} / {r['loihi2_chips']} / {r['loihi2_system']}"
            exp = f"{r['export_s']} s"
        else:
            hw = "not deployable: " + r.get("refused", "")[:60].split(":")[0]
            exp = "refused (exit 2)"
        mj = f"{r['paper_energy_mj']} mJ" if r.get("paper_energy_mj") else "-"
        lines.append(f"| {r['family']} | {r['arch']} | {r['parameters'] / 1e6:.2f}M | {r['paper_top1']} | "
                     f"{r['purity']} | {hw} | {r.get('latency_steps', '-')} | {mj} | {exp} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
