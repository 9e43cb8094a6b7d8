"""``check_model``: the whole spike-purity check (what ``neurodeploy check`` runs), as a Python API.

model -> NIR graph (the exporters' front door) -> [readout folding + verification by simulation] ->
value domains and classes -> [dynamic check on sample data] -> :class:`PurityReport`.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import nir
import numpy as np
import torch

from ..errors import BadInputError, NeurodeployError
from ..graph.core import input_names, meta, node_shape
from ..data import is_task, load_samples, task_test_samples
from .activity import digits_samples, record_activity
from .domains import graph_input_domain
from .fold import fold_readout, verify_fold
from .purity import PurityReport, check_purity
from ..exporters import to_nir
from ..models.registry import arch_names, build_model


def load_graph(model, arch: str | None = None) -> tuple[nir.NIRGraph, dict]:
    """(graph, model info) from a NIR graph, a torch model, a .nir file, a checkpoint (ours, or an official
    one with ``arch``) or an architecture name (untrained weights: purity is a property of the structure)."""
    info: dict = {}
    if isinstance(model, nir.NIRGraph):
        graph = model
        info["name"] = str(meta(graph, "neurodeploy.arch", "nir-graph"))
    elif isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.exists():
            graph = to_nir(path, arch=arch)
            info.update(name=path.name, path=str(model))
        elif str(model) in arch_names():
            if arch is not None and arch != str(model):
                raise BadInputError(f"MODEL is architecture {model!r} but --arch says {arch!r}")

            with torch.random.fork_rng():  # reproducible weights, the caller's RNG untouched
                torch.manual_seed(0)
                graph = to_nir(build_model(str(model)).eval())
            info.update(name=str(model), untrained=True)
        else:
            raise BadInputError(f"{model}: no such file (and not an architecture name; known: {', '.join(arch_names())})")
    elif isinstance(model, torch.nn.Module):
        graph = to_nir(model)
        info["name"] = str(getattr(model, "arch", type(model).__name__))
    else:
        raise BadInputError(f"cannot check a {type(model).__name__}: pass a model, a checkpoint, a .nir file or a graph")
    info["arch"] = meta(graph, "neurodeploy.arch")
    info.setdefault("path", None)
    return graph, info


def _input_shape(graph) -> tuple[int, ...] | None:
    ins = input_names(graph)
    if len(ins) != 1:
        return None
    node = graph.nodes[ins[0]]
    return node_shape(node, "output") or node_shape(node, "input")


def resolve_samples(graph, data, info: dict, limit: int = 64) -> tuple[torch.Tensor | None, str]:
    """Sample inputs for the dynamic check: a file, ``"digits"``, or (None) the bundled digits for the
    digits demo models; (None, "") when there is nothing to run."""
    shape = _input_shape(graph)
    arch = str(info.get("arch") or "")
    if data is None:
        if arch.endswith("-digits") and shape == (1, 8, 8):
            return digits_samples(limit), f"bundled digits (test split, first {limit})"
        return None, ""
    if is_task(data):
        if shape is None:
            raise BadInputError("--data digits: the graph has no single input with a shape")
        if shape == (1, 8, 8):
            return digits_samples(limit), f"bundled digits (test split, first {limit})"
        # the digits task rendered at this input (images, or [T, 2, H, W] events: neurodeploy.tasks)
        x, _ = task_test_samples(shape, int(meta(graph, "neurodeploy.time_steps", 0) or 0) or None, limit)
        return torch.from_numpy(x), f"bundled digits task at {list(shape)} (test split, first {len(x)})"
    if isinstance(data, (str, os.PathLike)):
        return load_samples(data, limit), str(data)
    return torch.as_tensor(np.asarray(data), dtype=torch.float32)[:limit], "array"


def _check_declared(x: torch.Tensor, declared: str, where: str) -> None:
    if declared == "binary" and not bool(((x == 0) | (x == 1)).all()):
        bad = float(x[(x != 0) & (x != 1)].reshape(-1)[0])
        raise BadInputError(f"{where}: the input is declared binary but the samples hold {bad:g}")
    if declared == "counts" and not bool(((x >= 0) & (x == x.round())).all()):
        bad = float(x[(x < 0) | (x != x.round())].reshape(-1)[0])
        raise BadInputError(f"{where}: the input is declared counts (integers >= 0) but the samples hold {bad:g}")


def _random_inputs(graph, declared: str, n: int = 8) -> torch.Tensor:
    shape = _input_shape(graph)
    if shape is None:
        raise BadInputError("cannot verify the folding: the graph input has no shape")
    g = torch.Generator().manual_seed(0)
    T = int(meta(graph, "neurodeploy.time_steps", 0) or 0)
    full = (n,) + tuple(shape) if T else (n, 4) + tuple(shape)
    if declared == "binary":
        return (torch.rand(full, generator=g) < 0.3).float()
    if declared == "counts":
        return torch.randint(0, 3, full, generator=g).float()
    return torch.rand(full, generator=g)


def check_model(model, arch: str | None = None, allow=None, input_domain: str | None = None, data=None,
                fold: bool = False, T: int | None = None, samples: int = 64, dynamic: bool = True) -> PurityReport:
    """Run the spike-purity check.  ``data``: file / array / "digits" / None (digits demo models use the
    bundled digits).  Raises BadInputError for bad input, NeurodeployError for an internal error found by
    the dynamic check or a failed folding verification."""
    t0 = time.perf_counter()
    graph, info = load_graph(model, arch)
    declared = graph_input_domain(graph, input_domain)
    x, data_desc = resolve_samples(graph, data, info, samples) if dynamic else (None, "")
    if x is not None:
        _check_declared(x, declared, data_desc)
    extra: dict = {"model": info}
    if fold:
        folded, finfo = fold_readout(graph, input_domain=declared)
        xv = x if x is not None else _random_inputs(graph, declared)
        ver = verify_fold(graph, folded, xv, T)
        ver["data"] = data_desc or f"random {declared} inputs (seed 0)"
        if not ver["equal"]:
            raise NeurodeployError(f"internal error: the folded readout changes the logits "
                                   f"(max |diff| {ver['max_abs_diff']:.3g}); not folding")
        finfo["verification"] = ver
        extra["folding"] = finfo
        graph = folded
    t_an = time.perf_counter()
    report = check_purity(graph, input_domain=declared, allow=allow)
    extra["analysis_seconds"] = time.perf_counter() - t_an
    if x is not None:
        act = record_activity(graph, x, T, analysis=report.analysis)
        act["data"] = data_desc
        extra["dynamic"] = act
        if act["internal_errors"]:  # a value the analysis proved impossible: never report a verdict on it
            raise NeurodeployError(act["internal_errors"][0] + f" ({len(act['internal_errors'])} in all)")
    extra["elapsed_seconds"] = time.perf_counter() - t0
    report.extra = extra
    report.graph = graph
    return report
