"""``neurodeploy check MODEL``: is the model spike-pure (every synaptic operation an accumulate)?

Exit codes: 0 spike-pure (apart from the allowed exceptions), 1 violations, 2 bad input or an internal
error (nothing written).  See docs/purity.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import EXIT_CHECK_FAILED, EXIT_OK, BadInputError
from ..fileio import write_text_atomic
from .common import MAX_SAMPLES, add_data_arguments, arch_name, positive_int
from ..analysis.check import check_model
from ..analysis.formats import render


def add_parser(subparsers):
    p = subparsers.add_parser(
        "check", help="spike-purity check: prove which layers are accumulate-only, name every violation",
        description="Value-domain analysis of the model's NIR graph: every synaptic node is AC (binary input), "
                    "INTxFLOAT (integer input) or MAC (real input). Exit 0 if spike-pure, 1 if not, 2 on bad input.")
    p.add_argument("model", metavar="MODEL",
                   help="our checkpoint (.pt), an official checkpoint with --arch, a .nir file, or an architecture "
                        "name (untrained weights: purity is a property of the structure)")
    p.add_argument("--arch", type=arch_name(), help="architecture of an official checkpoint")
    p.add_argument("--allow", action="append", default=[], metavar="LIST",
                   help="comma-separated exceptions: roles 'encoder' (layer reading the real input), 'readout' "
                        "(non-spiking head), or node names / source module paths; may be repeated")
    p.add_argument("--data", metavar="FILE",
                   help="sample inputs (.npy/.npz/.pt, [B, ...] or [B, T, ...]) or 'digits' for the dynamic check; "
                        "digits demo models use the bundled digits by default")
    add_data_arguments(p, data=False, dt=False)  # --input-domain, -T/--steps (also --time-steps)
    p.add_argument("--no-dynamic", action="store_true", help="skip the dynamic check (no simulation)")
    p.add_argument("--samples", type=positive_int("--samples", MAX_SAMPLES), default=64, help="at most this many samples for the dynamic check (64)")
    p.add_argument("--fold-readout", action="store_true",
                   help="rewrite the non-spiking head exactly as accumulates of spikes (verified by simulation)")
    p.add_argument("--format", choices=("text", "json", "junit", "sarif"), default="text", help="output format")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report here (atomically) instead of stdout")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    if args.samples < 1:
        raise BadInputError(f"--samples must be >= 1, got {args.samples}")
    if args.steps is not None and args.steps < 1:
        raise BadInputError(f"-T/--steps must be >= 1, got {args.steps}")
    if args.output and Path(args.output).is_dir():
        raise BadInputError(f"-o {args.output}: is a directory")
    report = check_model(args.model, arch=args.arch, allow=args.allow, input_domain=args.input_domain,
                         data=args.data, fold=args.fold_readout, T=args.steps, samples=args.samples,
                         dynamic=not args.no_dynamic)
    model_path = report.extra["model"].get("path")
    text = render(report, args.format, artifact_uri=model_path,
                  elapsed=float(report.extra.get("elapsed_seconds", 0.0)))
    if args.output:
        write_text_atomic(args.output, text)
        verdict = "spike-pure" if report.pure else f"NOT spike-pure ({len(report.violations)} violation(s))"
        sys.stdout.write(f"{report.extra['model'].get('name')}: {verdict}; report written to {args.output}\n")
    else:
        sys.stdout.write(text)
    return EXIT_OK if report.pure else EXIT_CHECK_FAILED
