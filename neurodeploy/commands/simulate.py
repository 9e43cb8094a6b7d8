"""``neurodeploy simulate MODEL --target loihi2 --backend fast|lava [--data FILE] [--steps N]``.

MODEL is our checkpoint, a .nir file, an architecture name, or a folder written by ``neurodeploy export
--target T`` (OUT, or OUT/<target>): then the artifact in that folder is simulated as it is, not lowered
again, so the figure equals the one in OUT/report.json for the same samples.  The target's simulator runs
the artifact on the data (Loihi 2: ``fast`` is our fixed-point engine, batched and bit-exact with Lava;
``lava`` runs all samples chained in time in ONE Lava process graph) and prints the float model's accuracy,
the target's accuracy, their prediction agreement and per-layer spike agreement.  ``--data``: an .npz with
``x`` [N, ...] (and ``y`` for accuracy); default: the digits test split for digits models.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import BadInputError, first_line
from ..lava_compat import require_lava
from .common import MAX_BATCH, MAX_SAMPLES, add_data_arguments, add_lowering_arguments, arch_name, lowering_options, positive_int
from ..data import float_batch
from ..deploy import Deployment, get_target
from ..front_door import load_graph as load_model_graph, resolve_data, set_facts
from ..graph import graph_dt, meta, read_graph


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "simulate", help="simulate a model lowered to a neuromorphic target (Loihi 2 fixed point)",
        description="Lower MODEL for Loihi 2 and simulate it: our fast fixed-point engine or Lava.")
    p.add_argument("model", metavar="MODEL", help="checkpoint (.pt), .nir file, or a folder written by export --target")
    p.add_argument("--target", default="loihi2", help="a target with a simulator (default loihi2)")
    p.add_argument("--backend", default=None, help="the target's simulator (loihi2: fast (default) or lava)")
    add_data_arguments(p)  # --data (static, [N, T, ...], event files), --input-domain, -T/--steps
    add_lowering_arguments(p)  # --split-signs
    p.add_argument("--limit", type=positive_int("--limit", MAX_SAMPLES), default=None, metavar="K",
                   help="first K samples (default: all for fast, 100 for lava)")
    p.add_argument("--batch", type=positive_int("--batch", MAX_BATCH), default=64, help="batch size of the fast engine")
    p.add_argument("--device", default="cpu", help="torch device of the fast engine (cpu, cuda)")
    p.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="memory budget of the fast engine's batches, e.g. 4G, 512M or bytes (default 4G): the batch "
                        "is cut to what fits")
    p.add_argument("--no-pipeline", action="store_true",
                   help="fast engine: run each batch alone for T + latency steps instead of letting consecutive "
                        "batches follow each other through the pipeline T steps apart (same integers; slower)")
    p.add_argument("--no-skip", action="store_true",
                   help="fast engine: compute every population at every step (no skipping of idle populations "
                        "and silent sources; same integers; slower)")
    p.add_argument("--no-events", action="store_true",
                   help="fast engine: sum every input of a dense synapse group, not only the active ones "
                        "(event-driven accumulation off; same integers; slower)")
    p.add_argument("--arch", type=arch_name(), default=None, help="architecture of an official checkpoint")
    p.add_argument("--layers", action="store_true",
                   help="also measure per-layer spike agreement float vs fixed point (the first samples of the batch "
                        "that fit --max-memory with every layer recorded; costs a float run with records and a "
                        "layer-synchronous engine run)")
    p.add_argument("--profile-time", action="store_true",
                   help="print where the time went: reading/lowering, float reference, fixed point, layer agreement")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
    return p


def load_graph(model: str, arch: str | None = None):
    """The NIR graph of MODEL (checkpoint, official checkpoint with ``arch``, .nir file, architecture name)."""
    return load_model_graph(model, arch)[0]


def load_data(data: str | None, graph, steps=None, input_domain=None):
    """(x, y, T) to simulate: --data in every form the front door takes (labels optional), or the bundled
    digits test split for digits models."""
    set_facts(graph, input_domain=input_domain)
    got = resolve_data(graph, data, steps=steps)
    if got.x is None:
        raise BadInputError(f"model '{meta(graph, 'neurodeploy.arch', '')}': give --data FILE (.npz with x and y)")
    return got.x, got.y, got.steps


def _check_options(args: argparse.Namespace) -> None:
    import torch

    for opt in ("batch", "limit", "steps"):
        value = getattr(args, opt)
        if value is not None and value < 1:
            raise BadInputError(f"--{opt} must be >= 1, got {value}")
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise BadInputError(f"--device {args.device!r}: {first_line(exc)}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInputError(f"--device {args.device!r}: no CUDA device is available")
    if device.type not in ("cpu", "cuda"):
        raise BadInputError(f"--device {args.device!r}: use cpu or cuda")


def load_artifact(model: str, target: str, arch: str | None = None, data: str | None = None, steps=None,
                  input_domain=None, dt: float | None = None, lowering: dict | None = None):
    """(graph, target implementation, artifact, x, y, T): from an export folder (OUT or OUT/<target>: the
    artifact as written), else lowered from MODEL now as `export --target` would (input range calibrated on
    the first 64 samples of the same data)."""
    path = Path(model)
    if path.is_dir():
        # OUT (with OUT/<target>/) or OUT/<target> itself; the float model is OUT/model.nir
        folder = path / target if (path / target).is_dir() else path
        nir_file = folder.parent / "model.nir"
        if not nir_file.is_file():
            raise BadInputError(f"{path}: not an export folder (no model.nir beside the {target}/ artifact)")
        impl = get_target(target)
        graph = read_graph(nir_file)
        if dt is not None and dt != graph_dt(graph):
            raise BadInputError(f"--dt {dt:g}: {folder} was lowered with dt {graph_dt(graph):g} s "
                                f"({nir_file}); export again with --dt")
        artifact = impl.read(folder)
        split = bool((lowering or {}).get("split_signs", False))
        if split and not bool(getattr(artifact, "net", None) and artifact.net.metadata.get("split_signs")):
            raise BadInputError(f"--split-signs: {folder} was lowered without it; export again with --split-signs")
        ss = (lowering or {}).get("stream_scale")
        built_ss = getattr(artifact, "net", None) and artifact.net.metadata.get("stream_scale", "level")
        if ss and built_ss and ss != built_ss:
            raise BadInputError(f"--stream-scale {ss}: {folder} was lowered with '{built_ss}'; export again "
                                f"with --stream-scale {ss}")
        sched = (lowering or {}).get("attention_schedule")
        built = getattr(artifact, "net", None) and artifact.net.metadata.get("attention_schedule", "parallel")
        if sched and built and sched != built:
            raise BadInputError(f"--attention-schedule {sched}: {folder} was lowered with '{built}'; export again "
                                f"with --attention-schedule {sched}")
        x, y, T = load_data(data, graph, steps, input_domain)
        return graph, impl, artifact, x, y, T
    dep = Deployment.build(model, targets=[target], arch=arch, data=None, annotate=False, dt=dt,
                           lowering=lowering)
    x, y, T = load_data(data, dep.graph, steps, input_domain)      # the data's steps become the graph's (front door)
    if data is not None:
        dep.samples, dep.samples_desc = float_batch(x, 0, 64), f"{data} (first {min(64, len(x))})"
    dep.lower()
    t = dep.targets[0]
    if not t.deployable:
        raise BadInputError(f"{target}: cannot deploy: {t.cannot_deploy}")
    return dep.graph, t.target, t.artifact, x, y, T


def init_distributed(device: str):
    """Under torchrun (WORLD_SIZE > 1): join the process group (gloo on CPU, nccl on CUDA) with torchrun's
    rendezvous (MASTER_ADDR/MASTER_PORT or --rdzv-endpoint); returns the rank, or None for one process."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return dist.get_rank()


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    rank = init_distributed(args.device)
    try:
        return _run(args, rank)
    finally:
        if rank is not None:
            import torch.distributed as dist

            dist.destroy_process_group()


def _run(args: argparse.Namespace, rank) -> int:
    impl = get_target(args.target)
    if not impl.backends:
        raise BadInputError(f"--target {args.target}: this target has no simulator")
    backend = args.backend or impl.backends[0]
    if backend not in impl.backends:
        raise BadInputError(f"--backend {backend!r}: target {args.target} has {', '.join(impl.backends)}")
    if backend == "lava":  # before any reading, lowering or progress bar
        require_lava()
    import time

    t0 = time.perf_counter()
    graph, impl, artifact, x, y, T = load_artifact(args.model, args.target, args.arch, args.data, args.steps,
                                                   args.input_domain, args.dt, lowering_options(args))
    t_load = time.perf_counter() - t0
    limit = args.limit if args.limit is not None else (100 if backend == "lava" else None)
    if limit is not None:
        x = x[:limit]
        y = None if y is None else y[:limit]
    if len(x) == 0:
        raise BadInputError("no samples to simulate")
    opts = {"batch": args.batch, "device": args.device, "layers": bool(args.layers)}
    if args.no_pipeline:
        opts["pipeline"] = False
    if args.no_skip:
        opts["engine_options"] = {"skip_idle": False, "skip_silent": False}
    if args.no_events:
        opts["engine_options"] = dict(opts.get("engine_options", {}), event_driven=False)
    if args.max_memory is not None:
        opts["max_memory"] = parse_size(args.max_memory, "--max-memory")
    if T:
        opts["steps"] = T
    t0 = time.perf_counter()
    res = impl.simulate(artifact, graph, x, y, backend=backend, progress=not args.json, **opts)
    res["profile_time_s"] = _profile(res, t_load, time.perf_counter() - t0,
                                     "read" if Path(args.model).is_dir() else "lower")
    if rank:            # torchrun: every rank computed the same gathered result; rank 0 prints it
        return 0
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    acc = res.get("loihi2_accuracy", res.get("target_accuracy"))
    if "float_accuracy" in res:
        print(f"float accuracy   {100 * res['float_accuracy']:.2f} %  ({res['samples']} samples)")
        print(f"{args.target} accuracy  {100 * acc:.2f} %  (backend {res['backend']}"
              + (f", {res['steps_per_sample']} steps + {res['latency_steps']} latency" if "latency_steps" in res else "")
              + ")")
    print(f"prediction agreement float vs {args.target}: {100 * res['prediction_agreement']:.2f} %")
    for name, a in res.get("layer_spike_agreement", {}).items():
        print(f"  spike agreement {name}: {100 * a:.2f} %")
    if "sample_steps_per_s" in res:
        print(f"{res['samples_per_s']:.1f} samples/s, {res['sample_steps_per_s']:.0f} sample-steps/s "
              f"(batch {res['batch']}; fixed point only, float reference {res['float_reference_s']:.1f} s apart)")
    if args.profile_time:
        print("time: " + ", ".join(f"{k} {v:.2f} s" for k, v in res["profile_time_s"].items()))
    if res.get("lava"):
        lv = res["lava"]
        steady = f", steady {lv['steady_steps_per_s']:.1f} steps/s" if lv["steady_steps_per_s"] else ""
        print(f"lava: one process graph for all samples (chained); compile + first "
              f"{lv['first_chunk_steps']} steps {lv['compile_and_first_chunk_s']:.1f} s{steady}")
    return 0


def parse_size(text: str, option: str) -> int:
    """``4G`` / ``512M`` / ``100K`` / plain bytes -> bytes (powers of 1024)."""
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if mult > 1 else t) * mult
    except ValueError:
        raise BadInputError(f"{option} {text!r}: give a size such as 4G, 512M or a number of bytes") from None
    if not value >= 1 << 20:
        raise BadInputError(f"{option} {text!r}: at least 1M")
    if not value <= 1 << 50:
        raise BadInputError(f"{option} {text!r}: at most 1024T")
    return int(value)


def _profile(res: dict, t_load: float, t_sim: float, first: str) -> dict:
    """Seconds per stage: model/data reading and lowering (or reading the exported artifact), float reference,
    fixed point (engine or Lava, with encoding/decoding), per-layer agreement, and what is left (gathering,
    bookkeeping)."""
    parts = {f"{first} (model, data, artifact)": t_load}
    for key, name in (("float_reference_s", "float reference"), ("fixed_point_s", "fixed point"),
                      ("layer_agreement_s", "layer agreement")):
        if key in res:
            parts[name] = float(res[key])
    parts["other"] = max(0.0, t_sim - sum(v for k, v in parts.items() if not k.startswith(first)))
    parts["total"] = t_load + t_sim
    return {k: round(v, 3) for k, v in parts.items()}
