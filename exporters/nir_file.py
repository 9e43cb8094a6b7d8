"""Import a NIR graph written by any tool (.nir file or in-memory ``nir.NIRGraph``) into neurodeploy's
conventions: every node must be one the reference simulator runs (else an error naming the node and
listing what is supported; nothing is dropped), and graph metadata records where it came from.
Reading and type checking are nir's own (``nir.read``); only the checks are ours."""
from __future__ import annotations

from pathlib import Path

import nir

from neurodeploy.errors import UnsupportedError
from neurodeploy.graph.attention import attention_spec
from neurodeploy.graph.core import DT_DEFAULT, FORMAT_VERSION, input_names, output_names, validate_graph
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


def import_graph(graph: nir.NIRGraph, arch: str = "nir-file", where: str = "", dt: float = DT_DEFAULT,
                 extra: dict | None = None) -> nir.NIRGraph:
    validate_graph(graph, where)  # edges, algebraic loops, NaN/complex, dt, time-step cap (issue 14)
    check_supported(graph, where)
    md = dict(graph.metadata or {})
    md.setdefault("neurodeploy.format_version", FORMAT_VERSION)
    md.setdefault("neurodeploy.arch", arch)
    md.setdefault("neurodeploy.dt", float(dt))
    md.setdefault("neurodeploy.time_steps", 0)
    md.setdefault("neurodeploy.input_encoding", "events")
    md.setdefault("neurodeploy.input_domain", "real")
    md.update(extra or {})
    graph.metadata = md
    return graph


def import_nir_file(path) -> nir.NIRGraph:
    path = Path(path)
    graph = read_graph(path)
    return import_graph(graph, arch="nir-file", where=f"{path}: ", extra={"neurodeploy.source_file": path.name})
