"""Every command's front door: the model as a NIR graph, the facts a command sets on it, and its samples.

* :func:`load_graph`: a NIR graph, a torch model, a .nir file, a checkpoint (ours, or an official one with
  ``arch``) or an architecture name (untrained weights, seed 0) -> ``(graph, info)``.
* :func:`set_facts`: the one place where ``-T/--steps``, ``--input-domain`` and ``--dt`` are written into the
  graph's metadata (``neurodeploy.time_steps`` / ``input_domain`` / ``dt``), so ``OUT/model.nir`` holds them.
* :func:`resolve_data`: the one place where ``--data`` is resolved: a file in any layout
  :func:`neurodeploy.data.graph_samples` reads, ``"digits"``, an array, ``(x, y)``, or nothing (the bundled
  digits for the digits demo models) -> :class:`Samples` (inputs, labels, the steps the data fixes, a line
  saying what they are).

``export``, ``simulate``, ``check`` and ``report`` all come in here (through
:class:`neurodeploy.deploy.Deployment` or directly).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nir
import numpy as np
import torch

from .data import apply_dt, apply_input_domain, float_batch, graph_samples, is_task
from .errors import BadInputError
from .exporters import to_nir
from .graph.core import input_names, meta, node_shape, output_names
from .graph.primitives import is_graph
from .models.registry import arch_names, build_model
from .training import digits_split

DIGITS = "digits"
DIGITS_SHAPE = (1, 8, 8)


def load_graph(model, arch: str | None = None) -> tuple[nir.NIRGraph, dict]:
    """(graph, model info) from a NIR graph, a torch model, a .nir file, a checkpoint (ours, or an official
    one with ``arch``) or an architecture name (untrained weights: purity is a property of the structure)."""
    info: dict = {}
    if is_graph(model):
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


def set_facts(graph, steps: int | None = None, input_domain: str | None = None, dt: float | None = None) -> None:
    """Write ``-T/--steps`` (only into a graph that fixes no time steps), ``--input-domain`` and ``--dt`` into
    the graph's metadata; None keeps what the graph has."""
    if steps is not None and int(steps) < 1:
        raise BadInputError(f"-T/--steps must be >= 1, got {steps}")
    apply_input_domain(graph, input_domain)
    apply_dt(graph, dt)
    if steps and not int(meta(graph, "neurodeploy.time_steps", 0) or 0):
        graph.metadata = {**(graph.metadata or {}), "neurodeploy.time_steps": int(steps)}


def num_classes(graph) -> int | None:
    """Size of the graph output (the number of classes of a classifier), None when unknown."""
    outs = output_names(graph)
    shape = node_shape(graph.nodes[outs[0]], "input") or node_shape(graph.nodes[outs[0]], "output") if outs else None
    return int(np.prod(shape)) if shape else None


def input_shape(graph) -> tuple[int, ...] | None:
    ins = input_names(graph)
    if len(ins) != 1:
        return None
    node = graph.nodes[ins[0]]
    return node_shape(node, "output") or node_shape(node, "input")


def digits_samples(limit: int | None = 64) -> torch.Tensor:
    """The bundled digits test split ([B, 1, 8, 8], normalised as for training)."""
    _, _, x_te, _ = digits_split()
    return x_te[:limit]


@dataclass
class Samples:
    """What ``--data`` resolved to: inputs [N, ...] (numpy; a memory-mapped file stays mapped when no limit
    is asked), labels or None, the time steps the data fixes (None: the graph's own) and what they are."""

    x: np.ndarray | None
    y: np.ndarray | None = None
    steps: int | None = None
    desc: str = ""


def resolve_data(graph, data, info: dict | None = None, limit: int | None = None, steps: int | None = None,
                 labels=None) -> Samples:
    """``--data`` for ``graph`` (whose facts :func:`set_facts` has written): a file in every layout
    :func:`neurodeploy.data.graph_samples` reads, ``"digits"``, an array or ``(x, y)``; None gives the
    bundled digits for the digits demo models, and no samples otherwise.  ``limit``: the first K samples.
    The steps the data fixes (event tensors, or ``steps``) become the graph's time steps when it has none."""
    if isinstance(data, tuple) and labels is None:
        data, labels = data
    arch = str((info or {}).get("arch") or meta(graph, "neurodeploy.arch", "") or "")
    T = steps
    if isinstance(data, (str, os.PathLike)) and not (is_task(data) and input_shape(graph) == DIGITS_SHAPE):
        # a file in any layout, or the digits task rendered at this input (neurodeploy.tasks: images, or
        # [T, 2, H, W] events); of the task only what is used is rendered
        x, y, T = graph_samples(graph, data, steps=steps, limit=limit if is_task(data) else None)
        desc = f"{data} (first {limit})" if limit is not None and len(x) > limit else str(data)
        if limit is not None:
            x = float_batch(x, 0, limit)        # in memory (a memory-mapped file: only these rows are read)
        if is_task(data):
            desc = f"bundled digits task at {list(input_shape(graph) or [])} (test split, first {len(x)})"
            # the digits labels belong to a model of 10 or more classes (not to a test model of that input)
            y = y if (num_classes(graph) or 0) >= 10 else None
        digits = False
    elif data is None or (isinstance(data, str) and data == DIGITS):
        shape = input_shape(graph)
        if data is None and not (arch.endswith("-digits") and shape == DIGITS_SHAPE):
            return Samples(None, None, steps, "")
        if shape != DIGITS_SHAPE:
            raise BadInputError(f"--data digits: the graph input is {list(shape or [])}, the digits are [1, 8, 8]")
        x = digits_samples(limit).numpy()
        desc, y, digits = f"bundled digits (test split{f', first {limit}' if limit is not None else ''})", None, True
    else:
        x = np.asarray(torch.as_tensor(np.asarray(data), dtype=torch.float32)[:limit])
        desc, y, digits = "array", None, False
    set_facts(graph, steps=T)
    if labels is not None:
        y = labels
    elif digits and num_classes(graph) == 10:
        # the digits labels belong to a 10-class digits model (not to a test model of the same input)
        y = digits_split()[3].numpy()
    if y is not None:
        y = np.asarray(y)[:len(x)]
    return Samples(x, y, T, desc)
