"""``neurodeploy simulate MODEL --target loihi2 --backend fast|lava [--data FILE] [--steps N]``.

Lowers MODEL (our checkpoint, or a .nir file) for Loihi 2, runs the integer network on the data with our
fixed-point engine (``fast``: batched, bit-exact with Lava) or in Lava itself (``lava``: all samples
chained in time in ONE Lava process graph, :func:`neurodeploy.lava.run.run_lava_chained`), and prints the float model's accuracy, the Loihi 2 accuracy, their prediction agreement and
per-layer spike agreement.  ``--data``: an .npz with ``x`` [N, ...] (and ``y`` for accuracy); default:
the digits test split for digits models.
"""
from __future__ import annotations

import argparse
import json


from ..errors import BadInputError
from ..fidelity import simulate_loihi2
from .common import add_data_arguments


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "simulate", help="simulate a model lowered to a neuromorphic target (Loihi 2 fixed point)",
        description="Lower MODEL for Loihi 2 and simulate it: our fast fixed-point engine or Lava.")
    p.add_argument("model", metavar="MODEL", help="checkpoint (.pt) or .nir file")
    p.add_argument("--target", default="loihi2", choices=["loihi2"])
    p.add_argument("--backend", default="fast", choices=["fast", "lava"])
    add_data_arguments(p)  # --data (static, [N, T, ...], event files), --input-domain, -T/--steps
    p.add_argument("--limit", type=int, default=None, metavar="K",
                   help="first K samples (default: all for fast, 100 for lava)")
    p.add_argument("--batch", type=int, default=64, help="batch size of the fast engine")
    p.add_argument("--device", default="cpu", help="torch device of the fast engine (cpu, cuda)")
    p.add_argument("--arch", default=None, help="architecture of an official checkpoint")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
    return p


def load_graph(model: str, arch: str | None = None):
    """The NIR graph of MODEL (checkpoint, official checkpoint with ``arch``, .nir file, architecture name)."""
    from ..analysis.check import load_graph as load_model_graph

    return load_model_graph(model, arch)[0]


def load_data(data: str | None, graph, steps=None, input_domain=None):
    """(x, y, T) to simulate: --data FILE (labels optional; every layout of neurodeploy.data.graph_samples),
    or the bundled digits test split for digits models."""
    if data is not None:
        from ..data import graph_samples

        return graph_samples(graph, data, steps=steps, input_domain=input_domain)
    from ..data import apply_input_domain

    apply_input_domain(graph, input_domain)
    if data is None:
        arch = str((graph.metadata or {}).get("neurodeploy.arch", ""))
        if "digits" not in arch:
            raise BadInputError(f"model '{arch}': give --data FILE (.npz with x and y)")
        from ..training import digits_split
        _, _, x, y = digits_split()
        return x.numpy(), y.numpy(), steps


def _check_options(args: argparse.Namespace) -> None:
    import torch

    for opt in ("batch", "limit", "steps"):
        value = getattr(args, opt)
        if value is not None and value < 1:
            raise BadInputError(f"--{opt} must be >= 1, got {value}")
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise BadInputError(f"--device {args.device!r}: {str(exc).splitlines()[0]}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInputError(f"--device {args.device!r}: no CUDA device is available")
    if device.type not in ("cpu", "cuda"):
        raise BadInputError(f"--device {args.device!r}: use cpu or cuda")


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    graph = load_graph(args.model, args.arch)
    x, y, T = load_data(args.data, graph, args.steps, args.input_domain)
    limit = args.limit if args.limit is not None else (100 if args.backend == "lava" else None)
    if limit is not None:
        x = x[:limit]
        y = None if y is None else y[:limit]
    if len(x) == 0:
        raise BadInputError("no samples to simulate")
    res = simulate_loihi2(graph, x, y, steps=T, backend=args.backend, batch=args.batch,
                          device=args.device)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    if "float_accuracy" in res:
        print(f"float accuracy   {100 * res['float_accuracy']:.2f} %  ({res['samples']} samples)")
        print(f"loihi2 accuracy  {100 * res['loihi2_accuracy']:.2f} %  (backend {res['backend']}, "
              f"{res['steps_per_sample']} steps + {res['latency_steps']} latency)")
    print(f"prediction agreement float vs loihi2: {100 * res['prediction_agreement']:.2f} %")
    for name, a in res["layer_spike_agreement"].items():
        print(f"  spike agreement {name}: {100 * a:.2f} %")
    print(f"{res['steps_per_s']:.1f} steps/s, {res['samples_per_s']:.1f} samples/s")
    if res.get("lava"):
        lv = res["lava"]
        steady = f", steady {lv['steady_steps_per_s']:.1f} steps/s" if lv["steady_steps_per_s"] else ""
        print(f"lava: one process graph for all samples (chained); compile + first "
              f"{lv['first_chunk_steps']} steps {lv['compile_and_first_chunk_s']:.1f} s{steady}")
    return 0
