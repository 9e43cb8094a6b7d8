"""Import a NIR graph written by any tool (.nir file or in-memory ``nir.NIRGraph``) into neurodeploy's
conventions: every node must be one the reference simulator runs (else an error naming the node and
listing what is supported; nothing is dropped), and graph metadata records where it came from.
Reading and type checking are nir's own (``nir.read``); only the checks are ours."""
from __future__ import annotations

from pathlib import Path

import nir
import numpy as np

from neurodeploy.errors import BadInputError, UnsupportedError, first_line
from neurodeploy.graph.attention import attention_spec
from neurodeploy.graph.core import (DT_DEFAULT, FORMAT_VERSION, input_names, output_names, validate_graph, node_shape, predecessors, successors)
from neurodeploy.graph.io import read_graph
from neurodeploy.graph.simulate import SUPPORTED_TYPES

_SIMPLE = {t for t in SUPPORTED_TYPES if " " not in t}


def check_supported(graph: nir.NIRGraph, where: str = "", prefix: str = "") -> None:
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        path = f"{prefix}{name}"
        if isinstance(node, nir.NIRGraph):
            if attention_spec(node) is None:
                check_supported(node, where, prefix=f"{path}.")
            continue
        if kind not in _SIMPLE:
            raise UnsupportedError(f"{where}node {path!r}: NIR type {kind} is not supported; supported: {', '.join(SUPPORTED_TYPES)}")
    if not prefix:
        if len(input_names(graph)) != 1 or len(output_names(graph)) != 1:
            raise UnsupportedError(f"{where}graph must have exactly one Input and one Output node, "
                                   f"found inputs {input_names(graph)} and outputs {output_names(graph)}")


_PARAMS = {"LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"), "IF": ("r", "v_threshold", "v_reset"),
           "LI": ("tau", "r", "v_leak"), "I": ("r",), "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
           "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"), "Scale": ("scale",), "Threshold": ("threshold",),
           "Delay": ("delay",)}


def _shape_of(node) -> tuple | None:
    if isinstance(node, (nir.Affine, nir.Linear)) and np.ndim(node.weight) == 2:
        return (int(np.shape(node.weight)[0]),)
    try:
        return node_shape(node, "output")
    except (TypeError, ValueError):
        return None


def _expected_ndim(node) -> int | None:
    kind = type(node).__name__
    if kind in ("Affine", "Linear"):
        return 1
    if kind == "Conv1d":
        return 2
    if kind in ("Conv2d", "SumPool2d", "AvgPool2d"):
        return 3
    if kind in _PARAMS:
        nd = {np.ndim(getattr(node, f)) for f in _PARAMS[kind] if getattr(node, f, None) is not None}
        return nd.pop() if len(nd) == 1 and 0 not in nd else None
    return None


def _fix_quirks(graph: nir.NIRGraph, where: str) -> list[str]:
    """Quirks of files other tools write, fixed in place (each listed in metadata ``neurodeploy.import_fixes``):
    a batch dimension of 1 in Input/Output types (snnTorch without ``ignore_dims``, nirtorch tracing) and scalar
    neuron parameters (Norse, snnTorch with a scalar beta; NIR parameters define the population shape, nir#176)."""
    fixes: list[str] = []
    succ, pred = successors(graph), predecessors(graph)
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Input):
            shape = tuple(int(v) for v in np.asarray(next(iter(node.input_type.values()))).reshape(-1))
            wants = {_expected_ndim(graph.nodes[s]) for s in succ.get(name, [])}
            if len(shape) >= 2 and shape[0] == 1 and wants == {len(shape) - 1}:
                graph.nodes[name] = nir.Input(input_type={"input": np.asarray(shape[1:])}, metadata=node.metadata)
                fixes.append(f"{name}: batch dimension dropped from the input shape {list(shape)}")
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if kind not in _PARAMS:
            continue
        fields = [f for f in _PARAMS[kind] if getattr(node, f, None) is not None]
        if not fields or any(np.size(getattr(node, f)) != 1 for f in fields):
            continue
        shapes = {_shape_of(graph.nodes[p]) for p in pred.get(name, [])}
        if len(shapes) != 1 or None in shapes:
            raise UnsupportedError(f"{where}node {name!r}: {kind} with scalar parameters and no input of known shape")
        shape = shapes.pop()
        for f in fields:
            setattr(node, f, np.full(shape, np.asarray(getattr(node, f), dtype=np.float64).reshape(-1)[0],
                                     dtype=np.asarray(getattr(node, f)).dtype if np.asarray(getattr(node, f)).dtype.kind == "f" else np.float32))
        node.input_type = {"input": np.asarray(shape)}
        node.output_type = {"output": np.asarray(shape)}
        fixes.append(f"{name}: scalar {kind} parameters broadcast to {list(shape)}")
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Output):
            types = node.output_type or {}
            val = next(iter(types.values()), None)
            if val is None:
                continue
            shape = tuple(int(v) for v in np.asarray(val).reshape(-1))
            srcs = {_shape_of(graph.nodes[p]) for p in pred.get(name, [])}
            if len(shape) >= 2 and shape[0] == 1 and srcs == {shape[1:]}:
                graph.nodes[name] = nir.Output(output_type={"output": np.asarray(shape[1:])}, metadata=node.metadata)
                fixes.append(f"{name}: batch dimension dropped from the output shape {list(shape)}")
    return fixes


def import_graph(graph: nir.NIRGraph, arch: str = "nir-file", where: str = "", dt: float = DT_DEFAULT,
                 extra: dict | None = None) -> nir.NIRGraph:
    validate_graph(graph, where)  # edges, algebraic loops, NaN/complex, dt, time-step cap (issue 14)
    check_supported(graph, where)
    fixes = _fix_quirks(graph, where)
    try:
        graph.infer_types()  # what nir.read(type_check=True) runs: infers missing types, raises on a mismatch
    except Exception as exc:  # noqa: BLE001 - nir raises bare ValueError/KeyError/TypeError
        first = first_line(exc)
        raise BadInputError(f"{where}NIR type check failed: {first}") from None
    md = dict(graph.metadata or {})
    md.setdefault("neurodeploy.format_version", FORMAT_VERSION)
    md.setdefault("neurodeploy.arch", arch)
    md.setdefault("neurodeploy.dt", float(dt))
    md.setdefault("neurodeploy.time_steps", 0)
    md.setdefault("neurodeploy.input_encoding", "events")
    md.setdefault("neurodeploy.input_domain", "real")
    md.update(extra or {})
    if fixes:
        md["neurodeploy.import_fixes"] = "; ".join(fixes)
    graph.metadata = md
    return graph


def import_nir_file(path) -> nir.NIRGraph:
    path = Path(path)
    graph = read_graph(path, type_check=False)  # nir's type check runs after the quirks are fixed (import_graph)
    return import_graph(graph, arch="nir-file", where=f"{path}: ", extra={"neurodeploy.source_file": path.name})
