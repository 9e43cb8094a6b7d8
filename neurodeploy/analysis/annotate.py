"""The annotated graph: what every stage needs to know about each node, computed once per graph.

:func:`annotate` flattens nested subgraphs (the ``spiking_attention`` extension stays one node; names are
``outer.inner``, as the domain analysis names them) and records, per node, in one :class:`NodeInfo`:

* ``kind``: the primitive kind (graph/primitives.py; an unknown NIR class is an UnsupportedError here,
  naming the node, for every stage at once);
* ``role``: ``encoder`` / ``readout`` / ``routing`` as declared in ``neurodeploy.role``, or inferred for a
  graph that declares none (graph/roles.py);
* ``lowering``: how a neuron/synapse lowering treats the node (``neuron``, ``linear``, ``attention``,
  ``maxpool`` (the ``max_pool2d`` extension), ``input``, ``output``; ``None`` with ``lowering_note`` saying why for a node no lowering can place);
* ``spiking_source``: the nearest spiking node feeding it through Flatten / routing nodes (``None``: real
  input), whose firing rate is its input rate;
* ``attention``: for an attention node, its operands ``{"q", "k", "v"}`` and their stack routing nodes,
  found once by the routing weights (graph/attention.py); ``operand_of`` on the operand nodes;
* ``ops``: the op count of a synaptic node or an attention (dense ops per application, weights, output
  neurons, parameters), as the Spikingformer paper counts them; ``neurons`` for a spiking node;
* value domains and purity classes: :attr:`AnnotatedGraph.purity` (the domain analysis and the classes of
  analysis/purity.py), computed on first use and kept.

Readers: spike purity (the deployment's verdict), the op count and energy (``energy.ops_from_graph``), the
chip fit of a graph (``mapping.from_graph``) and the Loihi 2 lowering (``lower.loihi2``).  A deployment
builds it once (``Deployment.annotated``) and hands it to each of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import nir
import numpy as np

from ..errors import BadInputError
from ..graph.attention import attention_roles, attention_spec
from ..graph.core import meta, node_shape, order_and_back_edges, predecessors, successors
from ..graph.flatten import flatten_subgraphs
from ..graph.maxpool import maxpool_spec
from ..graph.primitives import CONV, DENSE, is_graph, kind_of, primitive_of
from ..graph.roles import declared_role, infer_roles
from .purity import check_purity

#: how a lowering to populations and synapse groups treats each primitive kind
LOWERING = {"io": None, "spiking": "neuron", "integrator": "neuron", "synaptic": "linear", "pool": "linear",
            "elementwise": "linear", "reshape": "linear", "delay": "linear"}


@dataclass(frozen=True)
class NodeOps:
    """Op count of one synaptic node (or attention) as the Spikingformer paper counts it (energy.py)."""

    kind: str                 # conv | linear | attention
    dense_ops: int            # ops per application (per time step), bias adds included
    per_inference: bool       # True: applied once per inference (a head after the mean over T), else every step
    weights: int = 0
    zero_weights: int = 0
    out_neurons: int = 0
    parameters: int = 0
    heads: int = 0
    tokens: int = 0
    dim: int = 0


@dataclass
class NodeInfo:
    name: str
    node: object
    kind: str
    role: str | None = None
    role_inferred: bool = False
    lowering: str | None = None
    lowering_note: str = ""
    spiking_source: str | None = None
    attention: dict | None = None          # attention node: {"q", "k", "v", "q_route", ..., "out"}
    attention_error: str = ""              # attention node whose routing is not the extension's
    operand_of: tuple | None = None        # (attention node, "q" | "k" | "v" | "q_route" | ...)
    ops: NodeOps | None = None
    neurons: int = 0


@dataclass
class AnnotatedGraph:
    graph: nir.NIRGraph                    # as given (nested subgraphs kept: purity reports on it)
    flat: nir.NIRGraph                     # nested subgraphs inlined: what the stages walk
    order: list[str]
    back_edges: set
    preds: dict[str, list[str]]
    succ: dict[str, list[str]]
    nodes: dict[str, NodeInfo]
    time_steps: int
    input_domain: str | None = None
    allow: tuple = ()
    _purity: object = field(default=None, repr=False)

    def __getitem__(self, name: str) -> NodeInfo:
        return self.nodes[name]

    @property
    def purity(self):
        """Value domains and synaptic classes (analysis/purity.py), computed once on first use."""
        if self._purity is None:
            self._purity = check_purity(self.graph, input_domain=self.input_domain, allow=list(self.allow) or None)
        return self._purity

    def attention_nodes(self) -> list[str]:
        return [n for n in self.order if self.nodes[n].kind == "attention"]


def annotate(graph, input_domain: str | None = None, allow=None) -> AnnotatedGraph:
    """The annotated graph of ``graph`` (an :class:`AnnotatedGraph` is returned as it is)."""
    if isinstance(graph, AnnotatedGraph):
        return graph
    if not is_graph(graph):
        raise BadInputError(f"expected a nir.NIRGraph, got {type(graph).__name__}")
    flat = flatten_subgraphs(graph)
    order, back = order_and_back_edges(flat)
    preds, succ = predecessors(flat), successors(flat)
    nodes: dict[str, NodeInfo] = {}
    for name in order:
        node = flat.nodes[name]
        k = kind_of(node, name)
        info = NodeInfo(name, node, k, role=declared_role(node))
        if k == "subgraph":
            if attention_spec(node) is not None:
                info.kind = info.lowering = "attention"
            elif maxpool_spec(node) is not None:      # max of real values (graph/maxpool.py)
                info.kind = info.lowering = "maxpool"
            else:
                info.lowering_note = "nested NIR subgraph with more than one Input / Output"
        elif k == "io":
            info.lowering = "input" if primitive_of(node, name) == "Input" else "output"
        else:
            info.lowering = LOWERING[k]
        nodes[name] = info
    synaptic = [n for n in order if nodes[n].kind in ("synaptic", "elementwise", "attention")]
    for n, r in infer_roles(order, preds, {n: flat.nodes[n] for n in order}, synaptic).items():
        nodes[n].role, nodes[n].role_inferred = r, True
    ann = AnnotatedGraph(graph, flat, order, back, preds, succ, nodes,
                         int(meta(graph, "neurodeploy.time_steps", 0) or 0), input_domain,
                         tuple(allow or ()))
    _attention(ann)
    _sources(ann)
    _ops(ann)
    return ann


def _attention(ann: AnnotatedGraph) -> None:
    for n in ann.order:
        info = ann.nodes[n]
        if info.kind != "attention":
            continue
        try:
            roles = attention_roles(ann.flat, n)      # by the routing weights, never by node names
        except BadInputError as exc:
            info.attention_error = str(exc)
            continue
        info.attention = roles
        for tag in ("q", "k", "v"):
            for key in (tag, f"{tag}_route"):
                ann.nodes[roles[key]].operand_of = (n, key)


def _sources(ann: AnnotatedGraph) -> None:
    """Nearest spiking predecessor through Flatten / routing nodes, for every node (None: real input)."""
    def find(name, seen):
        for p in ann.preds.get(name, []):
            if p in seen:
                continue
            seen.add(p)
            if ann.nodes[p].kind == "spiking":
                return p
            if ann.nodes[p].kind == "reshape" or ann.nodes[p].role == "routing":
                s = find(p, seen)
                if s:
                    return s
        return None

    for n in ann.order:
        ann.nodes[n].spiking_source = find(n, set())


def _ops(ann: AnnotatedGraph) -> None:
    """Op counts (docs/energy: kH*kW*C_in*C_out*positions (+ C_out*positions with a bias) per conv; the
    readout head once per inference after the mean over tokens; attention 2*heads*N*d^2)."""
    tokens_hint = 0
    for name in ann.order:
        info = ann.nodes[name]
        node = info.node
        if info.kind == "attention":
            spec = attention_spec(node)
            tokens_hint = spec.tokens
            d = spec.dim // spec.heads
            info.ops = NodeOps("attention", 2 * spec.heads * spec.tokens * d * d, False, heads=spec.heads,
                               tokens=spec.tokens, dim=spec.dim, out_neurons=spec.dim * spec.tokens)
            continue
        if info.kind == "spiking":
            shp = node_shape(node)
            info.neurons = int(np.prod(shp)) if shp else int(
                np.asarray(getattr(node, "threshold", getattr(node, "v_threshold", 0))).size)
            continue
        if info.role == "routing":
            continue
        prim = primitive_of(node, name)
        if prim in CONV:
            w = np.asarray(node.weight)
            out = node_shape(node)
            positions = int(np.prod(out[1:])) if out else 0
            b = np.asarray(node.bias) if node.bias is not None else None
            has_bias = b is not None and b.size and bool(np.any(b != 0))
            dense = int(np.prod(w.shape[1:])) * w.shape[0] * positions + (w.shape[0] * positions if has_bias else 0)
            info.ops = NodeOps("conv", dense, False, weights=int(w.size), zero_weights=int((w == 0).sum()),
                               out_neurons=w.shape[0] * positions,
                               parameters=int(w.size) + (int(b.size) if b is not None else 0))
        elif prim in DENSE:
            w = np.asarray(node.weight)
            b = np.asarray(getattr(node, "bias", None)) if getattr(node, "bias", None) is not None else None
            if info.role == "readout" and not info.role_inferred:
                # the torch head averages over tokens and T first: D*classes (+ classes) once per inference
                n = tokens_hint or 1
                eff_in = w.shape[1] // n if w.shape[1] % n == 0 else w.shape[1]
                info.ops = NodeOps("linear", eff_in * w.shape[0] + (w.shape[0] if b is not None else 0), True,
                                   weights=eff_in * w.shape[0], out_neurons=w.shape[0],
                                   parameters=eff_in * w.shape[0] + (w.shape[0] if b is not None else 0))
            else:
                info.ops = NodeOps("linear", int(w.size) + (w.shape[0] if b is not None else 0), False,
                                   weights=int(w.size), zero_weights=int((w == 0).sum()), out_neurons=w.shape[0],
                                   parameters=int(w.size) + (int(b.size) if b is not None else 0))
