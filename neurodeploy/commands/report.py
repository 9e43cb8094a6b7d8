"""``neurodeploy report MODEL --target loihi2 [--target speck ...] [--profile FILE] [--data FILE]
[--firing-rates FILE] [--format json|md|html] [-o FILE] [--max-chips N] [--max-energy-uj X] [--min-fidelity P]
[--strict]``

Exit codes: 0 report written and every budget met; 1 a budget exceeded, or with ``--strict`` a verdict rests on
an ``assumption`` or ``unverified`` profile number (the report is still written);
2 bad input (one line on stderr, nothing written).
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import EXIT_CHECK_FAILED, EXIT_OK, BadInputError
from ..fileio import write_text_atomic
from .common import (MAX_CHIPS, MAX_ENERGY_UJ, MAX_SAMPLES, add_budget_arguments, add_data_arguments, arch_name,
                     add_lowering_arguments, fraction, lowering_options, positive_float, positive_int)
from ..report import build_report
from ..rates import load_firing_rates
from ..report.render import render


def add_parser(subparsers):
    p = subparsers.add_parser(
        "report", help="deployment report: chip fit per target, energy, firing rates, fidelity (JSON/Markdown/HTML)",
        description="Chip fit (cores, chips, system, bottleneck), energy (paper method, NeuroBench metrics, target "
                    "estimates), spike purity and fidelity. Exit 0 ok, 1 a budget exceeded, 2 bad input.")
    p.add_argument("model", metavar="MODEL", help="architecture name, our checkpoint, an official one with --arch, or a .nir file")
    p.add_argument("--arch", type=arch_name(), help="architecture of an official checkpoint")
    p.add_argument("--target", action="append", default=[], metavar="NAME",
                   help="built-in target (see `neurodeploy targets`); may be repeated (default loihi2)")
    p.add_argument("--profile", action="append", default=[], metavar="FILE", help="a hardware profile TOML; may be repeated")
    p.add_argument("--data", metavar="FILE", help="sample inputs for firing rates and fidelity (.npy/.npz/.pt, or 'digits')")
    p.add_argument("--firing-rates", metavar="FILE", help="JSON {node: rate in [0,1]} (or a `check --format json` report)")
    p.add_argument("--format", choices=("json", "md", "html"), default="md", help="output format (md)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report here (atomically) instead of stdout")
    p.add_argument("--max-chips", type=positive_int("--max-chips", MAX_CHIPS), metavar="N",
                   help="budget: loihi2 chooses the lowest-latency lowering configuration that fits N chips; exit 1 if "
                        "none does or a target needs more chips (or does not fit)")
    p.add_argument("--max-energy-uj", type=positive_float("--max-energy-uj", MAX_ENERGY_UJ), metavar="X", help="budget: exit 1 if the energy per inference exceeds X uJ")
    p.add_argument("--min-fidelity", type=fraction("--min-fidelity"), metavar="P",
                   help="budget: exit 1 if the float vs fixed-point prediction agreement is below P (0..1)")
    p.add_argument("--samples", type=positive_int("--samples", MAX_SAMPLES), default=64, help="at most this many samples from --data (64)")
    add_data_arguments(p, data=False)  # --input-domain, -T/--steps: as simulate takes them
    add_lowering_arguments(p)  # --split-signs
    add_budget_arguments(p, max_chips=False)  # --system (--max-chips above also drives the Loihi 2 search)
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a verdict rests on a profile number of confidence 'assumption' or 'unverified' "
                        "(the report is still written)")
    p.set_defaults(func=run)
    return p


def _budget_text(c: dict) -> str:
    """'max_chips loihi2: 3 > 2', 'min_fidelity loihi2: 0.9 < 0.95', 'max_chips loihi: does not fit the target'."""
    where = f"{c['budget']} {c['target']}" if c.get("target") else c["budget"]
    if c["value"] is None:
        return f"{where}: {c.get('why', 'not met')}"
    op = "<" if c["budget"].startswith("min_") else ">"
    return f"{where}: {c['value']:g} {op} {c['limit']:g}"


def run(args) -> int:
    lowering = lowering_options(args, args.target or ["loihi2"], report=True)    # --max-chips, --system: checked here
    if args.max_energy_uj is not None and not args.max_energy_uj > 0:
        raise BadInputError(f"--max-energy-uj must be > 0, got {args.max_energy_uj}")
    if args.min_fidelity is not None and not 0.0 <= args.min_fidelity <= 1.0:
        raise BadInputError(f"--min-fidelity must be a fraction in [0, 1], got {args.min_fidelity}")
    if args.samples < 1:
        raise BadInputError(f"--samples must be >= 1, got {args.samples}")
    if args.output and Path(args.output).is_dir():
        raise BadInputError(f"-o {args.output}: is a directory")
    rates = load_firing_rates(args.firing_rates) if args.firing_rates else None
    doc = build_report(args.model, targets=args.target, profile_files=args.profile, arch=args.arch, data=args.data,
                       firing_rates=rates, max_chips=args.max_chips, max_energy_uj=args.max_energy_uj,
                       min_fidelity=args.min_fidelity, samples=args.samples, steps=args.steps,
                       input_domain=args.input_domain, dt=args.dt, lowering=lowering)
    text = render(doc, args.format)
    ok = doc["budgets"]["ok"]
    if args.output:
        write_text_atomic(args.output, text)
        fits = ", ".join(f"{t['target']}: " + ("cannot deploy" if t.get("verdict_kind") == "cannot_deploy" else
                                               "fits" if t["fits"] else "does not fit")
                         + (f" ({t['cores']:,} cores, {t['chips']} chip(s), {t['system']})" if t["fits"] else "")
                         for t in doc["targets"])
        sys.stdout.write(f"{doc['model']['name']}: {fits}; report written to {args.output}\n")
    else:
        sys.stdout.write(text)
    rc = EXIT_OK
    if not ok:
        bad = [c for c in doc["budgets"]["checks"] if not c["ok"]]
        sys.stderr.write("neurodeploy: budget exceeded: " + "; ".join(_budget_text(c) for c in bad) + "\n")
        rc = EXIT_CHECK_FAILED
    if args.strict and not doc["summary"]["strict"]["ok"]:
        weak = doc["summary"]["strict"]["weak"]
        sys.stderr.write("neurodeploy: --strict: verdict rests on weak numbers: " + "; ".join(
            f"{w['target']}: {w['key']} ({w['confidence']})" for w in weak) + "\n")
        rc = EXIT_CHECK_FAILED
    return rc
