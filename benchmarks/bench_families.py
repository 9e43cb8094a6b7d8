"""The side-by-side table of the spiking-transformer families on Loihi 2: one row per family x variant.

For each variant: build it with random weights (seed 0), save it in the container its official training
code writes, and run ``neurodeploy export CKPT --arch NAME -o OUT --target loihi2`` as a subprocess (wall
time and peak memory of that process; a process past ``--max-rss-gib`` is stopped and the row says so).
From OUT/report.json: the purity verdict, Loihi 2 cores / chips / smallest system (default configuration),
latency in steps.  With ``--max-chips N`` the same export runs again with ``--max-chips N`` (the search over
the lowering configurations): the configuration chosen within N chips, or, when none fits (exit 1), the
smallest fit it names.  A variant whose export is refused (exit 2) gets the refusal's first line, which
names the module and the reason.  Parameters are the official module tree's (``FAMILY_PARAMETER_COUNTS``);
the papers' accuracy and energy (their own method: ImageNet, 45 nm operation energies) are quoted with
their source.

Energy per inference (``energy``), computed by the functions ``neurodeploy report`` uses
(``Deployment.annotate``: ``energy.paper_energy``; ``Deployment.map``: ``energy.target_energy`` with the
Loihi 2 profile) on OUT/model.nir of the default export, in a child process (``--energy-of``, same RSS limit),
for three sets of firing rates:

* ``uniform``: every spiking node at one rate, the mean of the 64 published Spikingformer-8-512 rates
  (``energy.published_firing_rates``; 15.23 %): the same activity for every family, so the figures compare
  the op counts (what each architecture costs per spike), not trained activity;
* ``random_input``: the rates ``--data`` gives (the float model on ``--energy-samples`` uniform [0, 1) random
  inputs of the model's input shape, seed 0). With random weights the blocks are silent (rates ~0): this is
  the floor (encoder MACs, head, and on Loihi 2 neuron updates + static power), not a trained figure;
* ``published``: the report's default without ``--data`` (Spikingformer family only: its published rates,
  borrowed by position for the other sizes).

``paper_mj``: the Spikingformer papers' method, E = 4.6 pJ x MACs (encoder conv over T, head) + 0.9 pJ x ACs
(rate x T x dense ops of every spiking-input layer, plus the attention's T*heads*N*d^2*(min(fr_k, fr_v)+fr_q)),
45 nm (Horowitz 2014); ``loihi2_uj``: our Loihi 2 profile's estimate, synaptic ops (ACs + MACs) x 6.8 pJ +
neurons x T x 10.8 pJ + 0.232 W x 2.45 ms x T (whole-system upper bounds; hardware_profiles/loihi2.toml).

With ``--digits CKPT_DIR`` the digits-size model of each family (``neurodeploy train --arch X-digits``) is
also simulated in fixed point on all 360 digits test images (``neurodeploy simulate CKPT --target loihi2
--json``, our engine): float vs fixed-point accuracy and prediction agreement.

    python benchmarks/bench_families.py [--only ARCH,...] [--max-chips 8] [--digits DIR] [--markdown] > families.json
    python benchmarks/bench_families.py --energy-of OUT/model.nir    # one energy figure set (the child process)
    python benchmarks/bench_families.py --table families.json [more.json ...]     # the README table again
                                                      # (a later file's row of a variant replaces an earlier one)

Prints one JSON object on stdout (``--markdown``: also the README table on stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import re
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
    ("sdt-cifar10-2-256", None, "not in the paper's CIFAR-10 table", None, None),
    ("sdt-cifar10-2-512", 95.6, "Spike-driven Transformer paper (NeurIPS 2023), CIFAR-10", None, None),
    ("sdt-imagenet-8-384", 72.28, "Spike-driven Transformer README, ImageNet", 3.90, "Spikingformer paper's table"),
    ("qkformer-cifar10-4-384", 96.18, "QKFormer paper (NeurIPS 2024), CIFAR-10", None, None),
    ("qkformer-imagenet-10-384", 78.80, "QKFormer README, ImageNet 224", None, None),
    ("sdtv2-imagenet-8-384", 77.2, "Meta-SpikeFormer paper (ICLR 2024), 31.3M at T=4 (shared/reference: from "
     "memory, not checked against the paper)", None, None),
]
#: MAE/DeiT-style save_model (QKFormer ImageNet, SDT V2); the others: timm CheckpointSaver
CONTAINER = {"qkformer-imagenet-10-384": "model", "sdtv2-imagenet-8-384": "model"}
DIGITS = ("spikingformer-digits", "spikformer-digits", "sdt-digits", "qkformer-digits")


def _family(arch: str) -> str:
    from neurodeploy.models.registry import family_of
    return family_of(arch) or "?"


def _parameters(arch: str) -> int:
    from neurodeploy.models.registry import FAMILY_PARAMETER_COUNTS, OFFICIAL_PARAMETER_COUNTS
    return {**OFFICIAL_PARAMETER_COUNTS, **FAMILY_PARAMETER_COUNTS}[arch]


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:")), 0)
    except OSError:
        return 0


def run_export(cmd: list, log: Path, max_rss_gib: float) -> dict:
    """Run one export process: exit code, wall seconds, its own peak RSS (GiB); stopped past ``max_rss_gib``."""
    t0 = time.perf_counter()
    stopped = False
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if _rss_kib(proc.pid) > max_rss_gib * 2**20:
                proc.kill()
                stopped = True
            time.sleep(0.5)
    out = {"exit_code": os.waitstatus_to_exitcode(status), "s": round(time.perf_counter() - t0, 1),
           "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2)}
    if stopped:
        out["stopped"] = f"peak RSS over {max_rss_gib} GiB: stopped"
    return out


def _error_line(log: Path) -> str:
    text = log.read_text()
    err = [ln for ln in text.splitlines() if "error:" in ln]
    return err[-1].split("error:", 1)[1].strip() if err else text.strip()[-300:]


def export_row(arch: str, tmp: Path, max_chips: int | None = None, max_rss_gib: float = 8.0,
               energy_samples: int = 2) -> dict:
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
    r = run_export(cmd, log, max_rss_gib)
    row = {"export_exit_code": r["exit_code"], "export_s": r["s"], "export_peak_rss_gib": r["peak_rss_gib"]}
    if r["exit_code"] != 0:
        row["refused"] = r.get("stopped") or _error_line(log)
        row["purity"] = "not checked (export refused)" if not r.get("stopped") else "not checked (stopped)"
        return row
    rep = json.loads((out / "report.json").read_text())
    t = rep["summary"]["rows"][0]
    row.update({"purity": rep["purity"]["verdict"], "purity_violations": rep["purity"]["summary"]["violations"],
                "loihi2_cores": t.get("cores"), "loihi2_chips": t.get("chips"), "loihi2_system": t.get("system"),
                "loihi2_verdict": t.get("verdict"), "latency_steps": t.get("latency_steps"),
                "loihi2_energy_uj": t.get("total_uj")})
    e = run_energy(out / "model.nir", tmp / f"{arch}.energy.log", max_rss_gib, energy_samples)
    row["energy"] = e
    if max_chips:
        row["budget"] = budget_row(cmd + ["--max-chips", str(max_chips)], out, tmp / f"{arch}.budget.log",
                                   max_chips, max_rss_gib)
    return row


def uniform_rate() -> float:
    """The mean of the 64 published Spikingformer-8-512 firing rates (tokenizer LIFs and pools, 8 blocks x 7)."""
    from neurodeploy.energy import published_firing_rates
    rates, _ = published_firing_rates("spikingformer-imagenet-8-512")
    return sum(rates.values()) / len(rates)


def _energy_figures(dep, rates: dict | None, note: str = "") -> dict:
    """Paper-method and Loihi 2 energy of ``dep`` (its graph annotated with ``rates``; None: the report's own
    choice, measured on dep's samples or published), as ``neurodeploy report`` computes them."""
    from neurodeploy.energy import target_energy
    dep.annotate(rates, note)
    if not dep.rates:
        return {"rates": None, "note": "no rates (none published for this family, no --data)"}
    e = dep.energy
    t = target_energy(dep.ops, dep.rates, dep.targets[0].profile)
    vals = [dep.rates[n] for n in dep.ops.neurons if n in dep.rates]
    return {"rates": dep.rates_source, "mean_rate": round(sum(vals) / len(vals), 5) if vals else None,
            "paper_mj": round(e["energy_mj"], 4), "macs_g": round(e["macs"] / 1e9, 4), "acs_g": round(e["acs"] / 1e9, 4),
            "missing_rates": len(e["missing_rates"]),
            "loihi2_uj": round(t["energy_uj"], 1) if t else None,
            "loihi2_breakdown_uj": {k: round(v, 1) for k, v in t["breakdown_uj"].items()} if t else None,
            "loihi2_synaptic_ops_g": round(t["synaptic_ops"] / 1e9, 4) if t else None}


def energy_of(nir: Path, samples: int = 2) -> dict:
    """The ``--energy-of`` child: energy figures of an exported model.nir for the three rate sets."""
    import numpy as np
    from neurodeploy.deploy import Deployment
    from neurodeploy.energy import ops_from_graph
    dep = Deployment.build(str(nir), targets=["loihi2"], annotate=False)
    ops_nodes = list(ops_from_graph(dep.annotated).neurons)
    r = uniform_rate()
    out = {"time_steps": None, "spiking_nodes": len(ops_nodes),
           "uniform": _energy_figures(dep, {n: r for n in ops_nodes},
                                      f"every spiking node at {100 * r:.2f} % (mean of the published "
                                      "Spikingformer-8-512 rates)")}
    out["time_steps"] = dep.ops.time_steps
    shape = [int(v) for v in dep.graph.nodes["input"].input_type["input"]]
    with tempfile.TemporaryDirectory() as td:
        x = Path(td) / "random.npy"
        np.save(x, np.random.default_rng(0).random((samples, *shape), dtype=np.float32))
        dr = Deployment.build(str(nir), targets=["loihi2"], data=str(x), samples=samples, annotate=False)
        out["random_input"] = _energy_figures(dr, None)
    out["random_input"]["rates"] = f"measured (float model) on {samples} uniform [0, 1) random inputs of shape {shape}, seed 0"
    out["published"] = _energy_figures(dep, None)
    return out


def run_energy(nir: Path, log: Path, max_rss_gib: float, samples: int) -> dict:
    """``--energy-of`` in a child process (wall time, peak RSS, stopped past ``max_rss_gib``)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--energy-of", str(nir), "--energy-samples", str(samples)]
    r = run_export(cmd, log, max_rss_gib)
    if r["exit_code"] != 0:
        return {"exit_code": r["exit_code"], "error": r.get("stopped") or log.read_text().strip()[-300:]}
    res = json.loads(log.read_text().strip().splitlines()[-1])
    res.update(s=r["s"], peak_rss_gib=r["peak_rss_gib"])
    return res


def budget_row(cmd: list, out: Path, log: Path, max_chips: int, max_rss_gib: float) -> dict:
    """The same export with ``--max-chips N``: the chosen configuration, or the smallest fit named (exit 1)."""
    import shutil
    shutil.rmtree(out, ignore_errors=True)
    r = run_export(cmd, log, max_rss_gib)
    row = {"max_chips": max_chips, "exit_code": r["exit_code"], "s": r["s"], "peak_rss_gib": r["peak_rss_gib"]}
    if r["exit_code"] != 0:
        row["result"] = r.get("stopped") or _error_line(log)
        return row
    rep = json.loads((out / "report.json").read_text())
    t = rep["summary"]["rows"][0]
    art = next((x.get("artifact") or {} for x in rep.get("targets", []) if x.get("target") == "loihi2"), {})
    row.update({"cores": t.get("cores"), "chips": t.get("chips"), "system": t.get("system"),
                "latency_steps": t.get("latency_steps"),
                "configuration": (art.get("lowering_config") or {}).get("name")})
    return row


def digits_row(arch: str, ckpt: Path) -> dict:
    """Float vs fixed-point (our engine, Loihi 2 lowering) accuracy on all 360 digits test images, as
    ``neurodeploy simulate CKPT --target loihi2 --json`` reports them."""
    proc = subprocess.run([sys.executable, "-m", "neurodeploy", "simulate", str(ckpt), "--target", "loihi2", "--json"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {"arch": arch, "simulate_exit_code": proc.returncode, "error": proc.stderr.strip()[-300:]}
    res = json.loads(proc.stdout)
    keep = ("samples", "float_accuracy", "loihi2_accuracy", "prediction_agreement", "latency_steps")
    return {"arch": arch, **{k: res[k] for k in keep if k in res}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=None, help="comma-separated architecture names")
    ap.add_argument("--max-chips", type=int, default=None, metavar="N",
                    help="also export each deployable variant with --max-chips N (the configuration search)")
    ap.add_argument("--max-rss-gib", type=float, default=8.0, help="stop an export process past this RSS (8)")
    ap.add_argument("--digits", default=None, metavar="DIR", help="directory with ARCH.pt digits checkpoints")
    ap.add_argument("--markdown", action="store_true", help="also print the README table on stderr")
    ap.add_argument("--table", nargs="+", default=None, metavar="JSON",
                    help="print the README tables of earlier outputs of this script (rows in the order given)")
    ap.add_argument("--energy-of", default=None, metavar="NIR", help=argparse.SUPPRESS)
    ap.add_argument("--energy-samples", type=int, default=2, metavar="K",
                    help="random inputs for the measured ('random_input') firing rates (2)")
    a = ap.parse_args(argv)
    if a.energy_of:
        print(json.dumps(energy_of(Path(a.energy_of), a.energy_samples)))
        return 0
    if a.table:
        outs = [json.loads(Path(f).read_text()) for f in a.table]
        # a later file's row of a variant replaces an earlier one's (a re-run of some rows); ROWS order
        by_arch = {r["arch"]: r for o in outs for r in o.get("rows", [])}
        order = [r[0] for r in ROWS]
        rows = sorted(by_arch.values(), key=lambda r: order.index(r["arch"]) if r["arch"] in order else len(order))
        print(markdown({"rows": rows,
                        "uniform_rate": next((o["uniform_rate"] for o in outs if o.get("uniform_rate")), None),
                        "digits": [r for o in outs for r in o.get("digits", [])]}))
        return 0
    only = set(a.only.split(",")) if a.only else None
    rows = []
    with tempfile.TemporaryDirectory() as td:
        for arch, acc, acc_src, mj, mj_src in ROWS:
            if only and arch not in only:
                continue
            row = {"family": _family(arch), "arch": arch, "parameters": _parameters(arch),
                   "paper_top1": acc, "paper_top1_source": acc_src, "paper_energy_mj": mj,
                   "paper_energy_source": mj_src}
            row.update(export_row(arch, Path(td), a.max_chips, a.max_rss_gib, a.energy_samples))
            rows.append(row)
            sys.stderr.write(json.dumps(row) + "\n")
    out = {"rows": rows, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
           "uniform_rate": uniform_rate(),
           "note": "random weights (seed 0); Loihi 2 default configuration; energy: see the script's docstring"}
    if a.digits:
        out["digits"] = []
        for arch in DIGITS:
            ck = Path(a.digits) / f"{arch}.pt"
            if ck.exists() and (not only or arch in only):
                out["digits"].append(digits_row(arch, ck))
                sys.stderr.write(json.dumps(out["digits"][-1]) + "\n")
    print(json.dumps(out, indent=1))
    if a.markdown:
        sys.stderr.write(markdown(out) + "\n")
    return 0


def _budget_cell(r: dict) -> str:
    b = r.get("budget")
    if not b:
        return "not run"
    if b["exit_code"] == 0:
        return f"{b['cores']:,} / {b['chips']} / {b['system']} ({b['configuration']}, {b['latency_steps']} steps)"
    m = re.search(r"no configuration fits (\d+) chips: the smallest fit found is '([^']+)' with (\d+) chips "
                  r"\(([\d,]+) cores, ([^)]+)\), latency (\d+) steps", b["result"])
    if m:   # the refusal names the smallest exact configuration; the rest of its text is in the JSON
        return (f"does not fit; smallest: {m[4]} / {m[3]} / {m[5]} ('{m[2]}', {m[6]} steps)")
    return b["result"].replace("loihi2: ", "")


def _energy_cell(r: dict, key: str, unit: str) -> str:
    """'uniform / random input' figures of one energy column."""
    e = r.get("energy") or {}
    if "uniform" not in e:
        return "-" if not e else f"failed: {e.get('error', '')[:80]}"
    fmt = (lambda v: f"{v:.3g}") if unit == "mJ" else (lambda v: f"{v / 1e3:,.2f}")
    return " / ".join(fmt(e[k][key]) if e[k].get(key) is not None else "-" for k in ("uniform", "random_input"))


def markdown(out: dict) -> str:
    rate = out.get("uniform_rate")
    rtxt = f"{100 * rate:.2f} %" if rate else "uniform"
    lines = ["| family | variant | params | paper top-1 | purity | Loihi 2 cores / chips / system (default) "
             "| `--max-chips 8` | latency (steps) | paper energy (quoted) "
             f"| paper method, ours (mJ): rates {rtxt} / random input | Loihi 2 (mJ): rates {rtxt} / random input "
             "| export |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["rows"]:
        if r.get("export_exit_code") == 0:
            hw = f"{r['loihi2_cores']:,} / {r['loihi2_chips']} / {r['loihi2_system']}"
            exp = f"{r['export_s']} s, {r['export_peak_rss_gib']} GiB"
        elif "stopped" in r.get("refused", ""):     # past --max-rss-gib: not a verdict on the model
            hw = "not measured (export stopped at the RSS limit)"
            exp = f"stopped at {r['export_peak_rss_gib']} GiB RSS after {r['export_s']} s"
        else:
            hw = "not deployable: " + r.get("refused", "")
            exp = f"refused (exit {r['export_exit_code']}) after {r['export_s']} s"
        mj = f"{r['paper_energy_mj']} mJ" if r.get("paper_energy_mj") else "-"
        pub = (r.get("energy") or {}).get("published") or {}
        if pub.get("paper_mj") is not None:   # the Spikingformer family: ours at its published rates
            mj += f" (ours at published rates{', borrowed' if 'borrowed' in pub['rates'] else ''}: {pub['paper_mj']:.3g} mJ)"
        acc = r["paper_top1"] if r.get("paper_top1") is not None else "-"
        purity = r["purity"] + (f" ({r['purity_violations']} violation{'s' if r['purity_violations'] != 1 else ''})"
                                 if r.get("purity_violations") else "")
        lines.append(f"| {r['family']} | {r['arch']} | {r['parameters'] / 1e6:.2f}M | {acc} | "
                     f"{purity} | {hw} | {_budget_cell(r)} | {r.get('latency_steps', '-')} | {mj} | "
                     f"{_energy_cell(r, 'paper_mj', 'mJ')} | {_energy_cell(r, 'loihi2_uj', 'uJ')} | {exp} |")
    if out.get("digits"):
        lines += ["", "| digits model | float accuracy | fixed point (Loihi 2) | agreement |", "|---|---|---|---|"]
        for d in out["digits"]:
            if "float_accuracy" in d:
                lines.append(f"| {d['arch']} | {100 * d['float_accuracy']:.2f} % | {100 * d['loihi2_accuracy']:.2f} % | "
                             f"{100 * d['prediction_agreement']:.2f} % ({d['samples']} images) |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
