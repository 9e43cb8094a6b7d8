"""The NIR primitives neurodeploy knows, one table keyed by NIR class: what kind of node each is.

Every stage that walks a graph asks :func:`kind_of` (or :func:`require_kinds` once per graph) instead of
testing class names itself, so a node type no stage knows is an :class:`~neurodeploy.errors.UnsupportedError`
naming the node everywhere, never silently skipped.  Adding a primitive starts here (docs/design.md,
"Adding a NIR primitive").

Kinds:
  ``io`` Input / Output; ``spiking`` neurons that emit spikes (LIF, IF, CubaLIF, Threshold); ``integrator``
  non-spiking neurons (LI, I, CubaLI: readouts); ``synaptic`` weighted maps (Affine, Linear, Conv1d,
  Conv2d); ``pool`` fixed-weight maps (SumPool2d, AvgPool2d); ``elementwise`` (Scale); ``reshape``
  (Flatten); ``delay`` (Delay); ``subgraph`` (a nested NIRGraph, including the spiking-attention extension).
"""
from __future__ import annotations

import nir

from ..errors import UnsupportedError

KINDS: dict[type, str] = {
    nir.Input: "io",
    nir.Output: "io",
    nir.LIF: "spiking",
    nir.IF: "spiking",
    nir.CubaLIF: "spiking",
    nir.Threshold: "spiking",
    nir.LI: "integrator",
    nir.I: "integrator",
    nir.CubaLI: "integrator",
    nir.Affine: "synaptic",
    nir.Linear: "synaptic",
    nir.Conv1d: "synaptic",
    nir.Conv2d: "synaptic",
    nir.SumPool2d: "pool",
    nir.AvgPool2d: "pool",
    nir.Scale: "elementwise",
    nir.Flatten: "reshape",
    nir.Delay: "delay",
    nir.NIRGraph: "subgraph",
}
ALL_KINDS = frozenset(KINDS.values())


def kind_of(node, name: str = "?") -> str:
    """The kind of ``node`` (exact class lookup first, then subclasses); unknown -> UnsupportedError."""
    k = KINDS.get(type(node))
    if k is None:
        for cls, kind in KINDS.items():
            if isinstance(node, cls):
                return kind
        raise UnsupportedError(f"node '{name}': NIR type {type(node).__name__} is not a NIR primitive neurodeploy "
                               f"knows (known: {', '.join(sorted(c.__name__ for c in KINDS))})")
    return k


def require_kinds(graph: nir.NIRGraph, stage: str, allowed=ALL_KINDS) -> dict[str, str]:
    """``{node name: kind}`` of the top-level nodes; a node whose kind ``stage`` cannot handle is an
    UnsupportedError naming the node and the stage."""
    out = {}
    for name, node in graph.nodes.items():
        k = kind_of(node, name)
        if k not in allowed:
            raise UnsupportedError(f"node '{name}': {stage} cannot handle NIR type {type(node).__name__} ({k})")
        out[name] = k
    return out


def classes(kind: str) -> tuple[type, ...]:
    """The NIR classes of one kind, for ``isinstance`` tests (``classes("spiking")``)."""
    return tuple(c for c, k in KINDS.items() if k == kind)


#: spiking neurons with a membrane (the Threshold node is spiking but memoryless)
SPIKING_NEURONS = tuple(c for c in classes("spiking") if c is not nir.Threshold)


def is_graph(obj) -> bool:
    """Whether ``obj`` is a NIR graph (a whole model, or a ``subgraph`` node inside one): the one test for it,
    so stages outside ``graph/`` never name NIR classes."""
    return isinstance(obj, nir.NIRGraph)


def primitive_of(node, name: str = "?") -> str:
    """The primitive ``node`` is, by NIR's own type name (``"Conv2d"``, the name NIR files store), looked up in
    the table as :func:`kind_of` does (subclasses resolve to their primitive); unknown -> UnsupportedError.
    For the distinctions inside a kind (``Input`` / ``Output``, dense / conv weights, LIF / CubaLIF)."""
    cls = type(node)
    if cls not in KINDS:
        cls = next((c for c in KINDS if isinstance(node, c)), None)
        if cls is None:
            kind_of(node, name)         # raises, naming the node
    return cls.__name__


#: weighted maps by their shape of weight
DENSE = ("Affine", "Linear")
CONV = ("Conv1d", "Conv2d")
