"""``neurodeploy export MODEL -o OUT``: write OUT/model.nir (atomically).

MODEL is our checkpoint, an official checkpoint (with ``--arch``) or a .nir file from any tool.  Later
stages hook in through :func:`post_export` (the lowering's ``--target`` option adds its arguments in
:func:`add_stage_arguments` and its work in ``post_export``): both receive everything they need and the
export itself does not change.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import BadInputError

MODEL_FILE = "model.nir"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="export a model (checkpoint or .nir file) to OUT/model.nir",
        description="Export a model to NIR (docs/nir.md): our checkpoint, an official checkpoint with --arch, or a .nir file.",
    )
    p.add_argument("model", metavar="MODEL", help="checkpoint (.pt/.pth/.pth.tar) or .nir file")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder (created); writes OUT/model.nir")
    p.add_argument("--arch", default=None, help="architecture of an official checkpoint (a name from neurodeploy.arch_names(), e.g. spikingformer-imagenet-8-768)")
    p.add_argument("--expand-attention", action="store_true",
                   help="write the attention as standard NIR primitives (exact; small models only)")
    p.add_argument("--input-shape", type=int, nargs=3, metavar=("C", "H", "W"), default=None,
                   help="input image shape (default: the model config's)")
    p.add_argument("--nir-compat", choices=("strict", "nirtorch", "snntorch", "norse"), default=None,
                   help="write only what that consumer reads (docs/nir.md); refuses, naming the node, what it cannot")
    add_stage_arguments(p)
    p.set_defaults(func=run)
    return p


def add_stage_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the stages after the export: lowering for a target and the deployment report."""
    parser.add_argument("--target", action="append", default=None, metavar="TARGET",
                        help="also deploy for TARGET (repeatable): 'loihi2' lowers to Loihi 2 fixed point and writes "
                             "OUT/loihi2/ (lowered network, netx .net file, summary.json); every target gets the "
                             "deployment report OUT/report.{json,md,html}. 'neurodeploy targets' lists them")
    parser.add_argument("--data", default=None, metavar="FILE",
                        help="sample inputs (.npy/.npz/.pt, or 'digits') for firing rates and fidelity in the report")


def validate_stage_arguments(args: argparse.Namespace) -> None:
    """Fail before anything is written when a stage option is bad (unknown target name)."""
    if args.target:
        from ..profiles import load_profiles

        load_profiles(args.target, None)


def validated_samples(graph, args: argparse.Namespace):
    """The --data samples, read and checked against the graph's input shape (None without --data)."""
    if args.data is None:
        return None
    from ..analysis.check import resolve_samples
    from ..graph.simulate import input_sequence

    x, _ = resolve_samples(graph, args.data, {"arch": (graph.metadata or {}).get("neurodeploy.arch")})
    input_sequence(graph, x)
    return x


def post_export(graph, out_dir: Path, args: argparse.Namespace) -> list[Path]:
    """After OUT/model.nir: lower for Loihi 2 (OUT/loihi2/) and write the deployment report; returns the files."""
    if not args.target:
        return []
    files: list[Path] = []
    if "loihi2" in args.target:
        from ..lava.export import export_loihi2

        summary = export_loihi2(graph, out_dir)
        files += [Path(f) for f in summary["files"].values() if f]
        print(f"loihi2: latency {summary['latency_steps']} steps, {summary['neurons']} neurons, "
              f"{summary['synapses']} synapses")
    from ..report import build_report, write_report_files

    samples = getattr(args, "samples", None)
    doc = build_report(graph, targets=args.target, data=args.data if samples is None else samples)
    files += write_report_files(doc, out_dir)
    for t in doc["targets"]:
        fit = "fits" if t["fits"] else "does NOT fit"
        print(f"{t['target']}: {fit}" + (f" ({t['chips']} chip(s), {t.get('system') or ''})" if t["fits"] else ""))
    return files


def export_to_folder(model, out_dir, arch=None, expand_attention=False, input_shape=None):
    """Python API behind the command: returns (graph, path of model.nir)."""
    from neurodeploy.exporters import to_nir
    from neurodeploy.graph import write_graph

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"{out_dir}: exists and is not a folder")
    graph = to_nir(model, arch=arch, expand_attention=expand_attention, input_shape=input_shape)
    path = write_graph(graph, out_dir / MODEL_FILE)
    return graph, path


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    model = Path(args.model)
    if model.suffix.lower() == ".nir" and args.arch:
        raise BadInputError(f"{model}: --arch applies to checkpoints, not to .nir files")
    validate_stage_arguments(args)
    from neurodeploy.exporters import to_nir
    from neurodeploy.graph import write_graph

    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"{out_dir}: exists and is not a folder")
    graph = to_nir(model, arch=args.arch, expand_attention=args.expand_attention, input_shape=args.input_shape,
                   compat=getattr(args, "nir_compat", None))
    args.samples = validated_samples(graph, args) if args.target else None  # bad --data: fail before writing
    path = write_graph(graph, out_dir / MODEL_FILE)
    extra = post_export(graph, out_dir, args)
    arch = (graph.metadata or {}).get("neurodeploy.arch", "?")
    print(f"wrote {path} ({arch}: {len(graph.nodes)} nodes, {len(graph.edges)} edges, "
          f"{time.perf_counter() - t0:.1f} s)")
    for p in extra:
        print(f"wrote {p}")
    return 0
