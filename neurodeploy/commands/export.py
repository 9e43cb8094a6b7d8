"""``neurodeploy export MODEL [-o OUT] [--target T ...] [--data FILE]`` (OUT: ``./<model stem>-deploy/`` by default).

MODEL is our checkpoint, an official checkpoint (with ``--arch``) or a .nir file from any tool.  Writes
OUT/model.nir; with ``--target`` it builds one :class:`~neurodeploy.deploy.Deployment`, lowers the model once
per target (``OUT/<target>/``: the artifact, e.g. OUT/loihi2/network.npz), measures fidelity and chip fit
on that same artifact and writes the deployment report OUT/report.{json,md,html}.

The folder is written all-or-nothing: everything is built in a temporary sibling folder that replaces OUT
only when every file is complete (:func:`neurodeploy.fileio.staged_dir`); a failed run leaves an older OUT
as it was.  A target whose lowering refuses the model fails the export (exit 2, the reason on one line).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from .. import limits
from ..errors import BadInputError, UnsupportedError
from .common import MAX_SAMPLES, add_budget_arguments, add_data_arguments, add_lowering_arguments, arch_name, lowering_options, positive_int
from ..exporters import to_nir
from ..fileio import staged_dir, check_output_path
from ..graph import write_graph
from ..deploy import Deployment, registered_targets
from ..front_door import set_facts
from ..profiles import load_profiles
from ..report import build_report, write_report_files

MODEL_FILE = "model.nir"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="export a model (checkpoint or .nir file) to OUT/model.nir, and deploy it for targets",
        description="Export a model to NIR (docs/nir.md): our checkpoint, an official checkpoint with --arch, or a "
                    ".nir file; with --target also lower it for each target (OUT/<target>/) and write the "
                    "deployment report (OUT/report.{json,md,html}).",
    )
    p.add_argument("model", metavar="MODEL", help="checkpoint (.pt/.pth/.pth.tar) or .nir file")
    p.add_argument("-o", "--out", default=None, metavar="OUT",
                   help="output folder, replaced as a whole (default: ./<model stem>-deploy/, e.g. model.pt -> "
                        "./model-deploy/, replaced only when an earlier export wrote it)")
    p.add_argument("--arch", type=arch_name(), default=None, help="architecture of an official checkpoint (a name from neurodeploy.arch_names(), e.g. spikingformer-imagenet-8-768)")
    p.add_argument("--expand-attention", action="store_true",
                   help="write the attention as standard NIR primitives (exact; small models only)")
    p.add_argument("--input-shape", type=positive_int("--input-shape", limits.MAX_CHANNELS), nargs=3, metavar=("C", "H", "W"), default=None,
                   help="input image shape (default: the model config's)")
    p.add_argument("--nir-compat", choices=("strict", "nirtorch", "snntorch", "norse"), default=None,
                   help="write only what that consumer reads (docs/nir.md); refuses, naming the node, what it cannot")
    add_stage_arguments(p)
    p.set_defaults(func=run)
    return p


def add_stage_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the stages after the export: deployment per target and the report."""
    parser.add_argument("--target", action="append", default=None, metavar="TARGET",
                        help="also deploy for TARGET (repeatable): 'loihi2' lowers to Loihi 2 fixed point and writes "
                             "OUT/loihi2/ (lowered network, netx .net file, summary.json); every target gets the "
                             "deployment report OUT/report.{json,md,html}. 'neurodeploy targets' lists them")
    parser.add_argument("--profile", action="append", default=[], metavar="FILE",
                        help="a hardware profile TOML (a target of its own; repeatable)")
    parser.add_argument("--data", default=None, metavar="FILE",
                        help="sample inputs (.npy/.npz/.pt, or 'digits'): input-range calibration, firing rates and "
                             "fidelity")
    parser.add_argument("--samples", type=positive_int("--samples", MAX_SAMPLES), default=64, metavar="K",
                        help="at most K samples from --data for calibration, rates and fidelity (64)")
    add_data_arguments(parser, data=False)  # --input-domain, -T/--steps: as simulate takes them
    add_lowering_arguments(parser)  # --split-signs
    add_budget_arguments(parser)    # --max-chips, --system


def default_out(model: str | Path) -> Path:
    """The folder ``export`` writes when no ``-o`` is given: ``./<model stem>-deploy/`` in the working folder
    (``model.pt`` -> ``model-deploy``, ``ckpt.pth.tar`` -> ``ckpt-deploy``, an architecture name as it is)."""
    name = Path(str(model)).name
    for suffix in (".tar", ".pth", ".pt", ".nir"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[:-len(suffix)]
    return Path(f"{name}-deploy")


def check_default_out(out_dir: Path) -> None:
    """The default folder is replaced only when an earlier export wrote it (it holds ``model.nir``): anything
    else there is the user's, and is never replaced without ``-o``."""
    if out_dir.is_symlink() or (out_dir.exists() and not (out_dir.is_dir() and (out_dir / MODEL_FILE).is_file())):
        raise BadInputError(f"{out_dir}: exists and is not a folder an earlier 'neurodeploy export' wrote (no "
                            f"{MODEL_FILE}): it is not replaced; give -o OUT to choose the output folder")


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    model = Path(args.model)
    if model.suffix.lower() == ".nir" and args.arch:
        raise BadInputError(f"{model}: --arch applies to checkpoints, not to .nir files")
    if args.samples < 1:
        raise BadInputError(f"--samples must be >= 1, got {args.samples}")

    if args.out is None:
        out_dir = default_out(args.model)
        check_default_out(out_dir)
    else:
        out_dir = Path(args.out)
    check_output_path(out_dir, kind="dir")  # a file, link or device at OUT, a name over NAME_MAX: before any work

    targets = list(args.target or [])
    if targets or args.profile:
        load_profiles(targets, args.profile)  # an unknown target or a bad profile: fail before any work
    lowering = lowering_options(args, targets)  # a bad chip budget or system: the same
    graph = to_nir(model, arch=args.arch, expand_attention=args.expand_attention, input_shape=args.input_shape,
                   compat=args.nir_compat)
    dep = doc = None
    if not (targets or args.profile):
        set_facts(graph, args.steps, args.input_domain, args.dt)     # recorded in OUT/model.nir
    else:
        # -T, --input-domain, --dt and --data enter through the Deployment (front_door), recorded in OUT/model.nir
        dep = Deployment.build(graph, targets=targets, profile_files=args.profile, data=args.data,
                               samples=args.samples, annotate=False, steps=args.steps, input_domain=args.input_domain,
                               dt=args.dt, lowering=lowering)
        dep.info.update(name=model.name, path=str(model))
        dep.lower()                 # a target that refuses the model fails the export, before any other work
        refused = [t for t in dep.targets if not t.deployable]
        if refused:
            raise UnsupportedError(f"{refused[0].name}: cannot deploy: {refused[0].cannot_deploy}")
        dep.annotate()              # purity, op counts, firing rates, paper energy
        dep.measure_fidelity(progress=False)
        dep.map()
    written = []
    # all-or-nothing: OUT is built in a staging sibling and swapped in whole; entries of an existing OUT that
    # an export does not write (the user's own files) are carried over
    owned = [MODEL_FILE, "report.json", "report.md", "report.html"] + [t.name for t in (dep.targets if dep else [])]
    owned += registered_targets()           # an older export's target folders are replaced, never mixed
    with staged_dir(out_dir, owned=owned) as tmp:
        tmp = Path(tmp)
        write_graph(graph, tmp / MODEL_FILE)
        written.append(MODEL_FILE)
        if dep is not None:
            written += [str(p.relative_to(tmp)) for p in dep.write(tmp)]
            doc = build_report(dep)
            written += [str(p.relative_to(tmp)) for p in write_report_files(doc, tmp)]
    if dep is not None:
        for t in dep.targets:
            s = t.artifact.summary if hasattr(t.artifact, "summary") else {}
            if s:
                # the artifact's pipeline depth L; the report's latency is T + L (render.py: "T + pipeline depth")
                cfg = s.get("lowering_config") or {}
                print(f"{t.name}: pipeline depth {s.get('latency_steps')} steps, {s.get('neurons'):,} neurons, "
                      f"{s.get('synapses'):,} synapses" + (f"; configuration '{cfg['name']}' ({cfg.get('chosen_by')})"
                                                           if cfg.get("name") else ""))
        for t in doc["targets"]:
            fit = "fits" if t["fits"] else "does NOT fit"
            fid = t.get("fidelity", {}).get("prediction_agreement")
            print(f"{t['target']}: {fit}" + (f" ({t['chips']} chip(s), {t.get('system') or ''})" if t["fits"] else "")
                  + (f"; fidelity {100 * fid:.2f} % on {t['fidelity']['samples']} samples" if fid is not None else ""))
    arch = (graph.metadata or {}).get("neurodeploy.arch", "?")
    print(f"wrote {out_dir / MODEL_FILE} ({arch}: {len(graph.nodes)} nodes, {len(graph.edges)} edges, "
          f"{time.perf_counter() - t0:.1f} s)")
    for rel in written[1:]:
        print(f"wrote {out_dir / rel}")
    return 0
