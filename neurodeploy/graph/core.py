"""Structure helpers for ``nir.NIRGraph``: predecessors in edge order, a topological order that
tolerates cycles (back edges), metadata access.

Never rely on ``graph.nodes`` order: ``nir.read`` returns nodes sorted by name.  Edge order is kept by
``nir.write``/``nir.read``, and fan-in sums are taken in edge order, so results are deterministic.
"""
from __future__ import annotations


import nir
import numpy as np

from ..errors import BadInputError

DT_DEFAULT = 1e-4
FORMAT_VERSION = 1


def predecessors(graph: nir.NIRGraph) -> dict[str, list[str]]:
    """Node name -> the sources of its incoming edges, in edge order (fan-in sums in this order)."""
    pred: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        pred.setdefault(dst, []).append(src)
    return pred


def successors(graph: nir.NIRGraph) -> dict[str, list[str]]:
    succ: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        succ.setdefault(src, []).append(dst)
    return succ


def _check_edges(graph: nir.NIRGraph) -> None:
    for src, dst in graph.edges:
        for end in (src, dst):
            if end not in graph.nodes:
                raise BadInputError(f"edge ({src!r}, {dst!r}) names a node {end!r} that the graph does not have")


def order_and_back_edges(graph: nir.NIRGraph) -> tuple[list[str], set[tuple[str, str]]]:
    """A topological order of the nodes and the set of back edges that close cycles.

    Kahn's algorithm, stable (ties broken by first appearance in the edge list, inputs first).  When
    every remaining node waits on a predecessor (a cycle), the first node that waits only on neurons (else
    the first waiting node that already has a scheduled predecessor) is taken and its unscheduled incoming
    edges become back edges: they carry the previous time step's value in the simulator, so a recurrent
    loop neuron -> Affine -> neuron applies the Affine (bias included) to the previous step's spikes."""
    _check_edges(graph)
    rank: dict[str, int] = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Input):
            rank.setdefault(name, len(rank))
    for src, dst in graph.edges:
        rank.setdefault(src, len(rank))
        rank.setdefault(dst, len(rank))
    for name in graph.nodes:
        rank.setdefault(name, len(rank))
    pred = predecessors(graph)
    waiting = {n: set(pred[n]) for n in graph.nodes}
    succ = successors(graph)
    done: set[str] = set()
    order: list[str] = []
    back: set[tuple[str, str]] = set()
    ready = sorted((n for n in graph.nodes if not waiting[n]), key=rank.__getitem__)
    while len(order) < len(graph.nodes):
        if not ready:
            remaining = [n for n in graph.nodes if n not in done]
            # break the cycle at a neuron's output: a node that waits only on stateful nodes goes first, so
            # the loop's linear nodes apply this step to the neuron's previous-step output (a recurrent bias
            # then acts from t = 0, as in snnTorch's RLeaky/RSynaptic and on Loihi, where bias is per step)
            candidates = [n for n in remaining if waiting[n] and all(_stateful(graph.nodes[p]) for p in waiting[n])]
            candidates = candidates or [n for n in remaining if waiting[n] & done or set(pred[n]) & done] or remaining
            pick = min(candidates, key=rank.__getitem__)
            for p in waiting[pick]:
                back.add((p, pick))
            waiting[pick] = set()
            ready = [pick]
        node = ready.pop(0)
        if node in done:
            continue
        done.add(node)
        order.append(node)
        new = []
        for s in succ[node]:
            waiting[s].discard(node)
            if not waiting[s] and s not in done and s not in ready:
                new.append(s)
        ready = sorted(ready + new, key=rank.__getitem__)
    return order, back


_STATEFUL = ("LIF", "IF", "LI", "I", "CubaLIF", "CubaLI", "Delay", "NIRGraph")


def _stateful(node) -> bool:
    """A node whose output at step t does not depend on its input at step t only (a neuron, a delay)."""
    return type(node).__name__ in _STATEFUL


def topological_order(graph: nir.NIRGraph) -> list[str]:
    """Node names so that every node comes after its predecessors (back edges of cycles excepted)."""
    return order_and_back_edges(graph)[0]


def input_names(graph: nir.NIRGraph) -> list[str]:
    return [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]


def output_names(graph: nir.NIRGraph) -> list[str]:
    return [n for n, node in graph.nodes.items() if isinstance(node, nir.Output)]


def node_shape(node: nir.NIRNode, port: str = "output") -> tuple[int, ...] | None:
    types = node.output_type if port == "output" else node.input_type
    if not types:
        return None
    value = next(iter(types.values()))
    if value is None:
        return None
    return tuple(int(v) for v in np.asarray(value).reshape(-1))


def meta(obj, key: str, default=None):
    """A metadata value as a plain Python object (``nir.read`` returns numpy scalars and bytes)."""
    value = (getattr(obj, "metadata", None) or {}).get(key, default)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def graph_dt(graph: nir.NIRGraph) -> float:
    return float(meta(graph, "neurodeploy.dt", DT_DEFAULT))
