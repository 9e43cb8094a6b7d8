"""Flatten nested NIR subgraphs (a pre-pass of the Loihi 2 lowering and the op count): every ``NIRGraph`` node that is not a neurodeploy
extension (the ``spiking_attention`` node stays opaque) is replaced by its nodes, named
``<subgraph>.<node>``, its Input and Output removed and the edges through them joined.  A subgraph's
Input / Output are identities in NIR, so the flattened graph computes the same: the reference simulator
(:mod:`neurodeploy.graph.simulate`) runs a subgraph as one stateful node, and a cycle inside it breaks at
a neuron's output either way (docs/nir.md).  Hand-written: nir 1.0.8 has no flattening function."""
from __future__ import annotations

import nir

from ..errors import UnsupportedError


def _opaque(node) -> bool:
    md = getattr(node, "metadata", None) or {}
    return md.get("neurodeploy.extension") is not None


def _endpoint(name: str, nodes: dict, port: str) -> str:
    """An outer edge end ``sub`` or ``sub.input`` that names a nested graph: the graph's name."""
    if name in nodes:
        return name
    head, _, tail = name.partition(".")
    if head in nodes and isinstance(nodes[head], nir.NIRGraph):
        return head
    return name


def flatten_subgraphs(graph: nir.NIRGraph, _depth: int = 0) -> nir.NIRGraph:
    """``graph`` with every nested (non-extension) NIRGraph node inlined, recursively.  Returns ``graph``
    itself when it has none."""
    if not any(isinstance(n, nir.NIRGraph) and not _opaque(n) for n in graph.nodes.values()):
        return graph
    if _depth > 32:
        raise UnsupportedError("NIR subgraphs nested more than 32 deep")
    nodes, edges = {}, []
    sub_in, sub_out = {}, {}          # subgraph name -> inner nodes fed by its Input / feeding its Output
    for name, node in graph.nodes.items():
        if not (isinstance(node, nir.NIRGraph) and not _opaque(node)):
            nodes[name] = node
            continue
        inner = flatten_subgraphs(node, _depth + 1)
        ins = [n for n, x in inner.nodes.items() if isinstance(x, nir.Input)]
        outs = [n for n, x in inner.nodes.items() if isinstance(x, nir.Output)]
        if len(ins) != 1 or len(outs) != 1:
            raise UnsupportedError(f"node '{name}': a nested NIR subgraph needs one Input and one Output "
                                   f"(found {len(ins)} and {len(outs)})")
        for n, x in inner.nodes.items():
            if n not in (ins[0], outs[0]):
                nodes[f"{name}.{n}"] = x
        srcs = [f"{name}.{b}" for a, b in inner.edges if a == ins[0]]
        dsts = [f"{name}.{a}" for a, b in inner.edges if b == outs[0]]
        if any(s == f"{name}.{outs[0]}" for s in srcs):
            raise UnsupportedError(f"node '{name}': a nested subgraph whose Input feeds its Output directly")
        sub_in[name], sub_out[name] = srcs, dsts
        for a, b in inner.edges:
            if a in (ins[0], outs[0]) or b in (ins[0], outs[0]):
                continue
            edges.append((f"{name}.{a}", f"{name}.{b}"))
    for a, b in graph.edges:
        a, b = _endpoint(a, graph.nodes, "output"), _endpoint(b, graph.nodes, "input")
        for x in sub_out.get(a, [a]):
            for y in sub_in.get(b, [b]):
                edges.append((x, y))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(getattr(graph, "metadata", None) or {}),
                        type_check=False)
