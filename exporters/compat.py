"""NIR that other tools can read: ``to_nir(..., compat=...)`` / ``export --nir-compat``.

* ``strict``: only NIR 1.0 primitives, batch-free shapes (ours always are): the attention extension node is
  refused (write it with ``--expand-attention``).
* ``snntorch``: what snnTorch 1.0.0's ``import_from_nir`` reads, measured against its source
  (snntorch/import_nir.py): Affine (Linear gets a zero bias), Conv2d, Flatten, AvgPool2d, LIF, CubaLIF and
  its RNN subgraphs.  It fixes dt = 1e-4 and builds ``Leaky(beta = 1 - dt / tau)`` whose input gain is 1,
  so an LIF's gain r * dt / tau is folded into the Affine/Conv2d feeding it (exact: the LIF is linear in
  its input) and r set to tau / dt; tau is rescaled to the same number of steps at dt = 1e-4.  It passes
  NIR's Flatten dims to ``torch.nn.Flatten``, which counts the batch: written shifted by one.  Refused,
  naming the node: Threshold, SumPool2d, Scale, Delay, Conv1d, LI, I, CubaLI, IF (snnTorch 1.0.0 reads IF as
  a Leaky with beta 0.9), LIF with v_leak != 0 or per-neuron thresholds, an LIF not fed by one Affine/Conv2d.
* ``norse``: what Norse 1.1.0's ``from_nir`` reads (see :func:`_norse`).
* ``nirtorch``: ``strict``, plus: nirtorch 2.6's ``nir_to_torch`` does not load an Affine's bias (its
  torch.nn.Linear keeps the random initial bias: measured, different spikes on every run), so an Affine with
  a zero bias is written as a Linear and one with a nonzero bias is refused.  nirtorch has no neuron modules
  of its own: the caller passes a node map for LIF, IF, ...
"""
from __future__ import annotations

import copy

import nir
import numpy as np

from neurodeploy.errors import UnsupportedError
from neurodeploy.graph.attention import attention_spec
from neurodeploy.graph.core import graph_dt, predecessors, successors
from neurodeploy.graph.simulate import steps_per_tau

COMPAT = ("strict", "nirtorch", "snntorch", "norse")
SNNTORCH_DT = 1e-4
_SNNTORCH_TYPES = ("Input", "Output", "Affine", "Linear", "Conv2d", "Flatten", "AvgPool2d", "LIF", "CubaLIF")
_NORSE_TYPES = ("Input", "Output", "Affine", "Linear", "Conv2d", "Flatten", "SumPool2d", "LIF", "IF")


def _strict(graph: nir.NIRGraph, compat: str) -> None:
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph) and attention_spec(node) is not None:
            raise UnsupportedError(f"node {name!r}: the spiking attention extension cannot be read by {compat} "
                                   "(NIR has no product of two activations); export with --expand-attention")


def _fold_gain(name, node, nodes, pred, succ, factor, consumer) -> None:
    """Multiply the Affine/Conv2d feeding LIF ``name`` by ``factor`` (exact: the LIF is linear in its input)."""
    if np.allclose(factor, 1.0):
        return
    srcs = pred[name]
    src = srcs[0] if len(srcs) == 1 else None
    up = nodes.get(src)
    if not isinstance(up, (nir.Affine, nir.Conv2d)) or succ[src] != [name] or np.unique(factor).size != 1:
        raise UnsupportedError(f"node {name!r}: LIF field r gives an input gain {consumer} cannot read, and the LIF "
                               "is not fed by one Affine/Conv2d to fold the gain into")
    g = float(np.unique(factor)[0])
    kw = {k_: v for k_, v in vars(up).items() if k_ not in ("input_type", "output_type", "metadata")}
    kw["weight"] = (np.asarray(up.weight, np.float64) * g).astype(np.asarray(up.weight).dtype)
    if getattr(up, "bias", None) is not None:
        kw["bias"] = (np.asarray(up.bias, np.float64) * g).astype(np.asarray(up.bias).dtype)
    nodes[src] = type(up)(**kw, metadata=up.metadata)


def _torch_style(graph: nir.NIRGraph, consumer: str, types: tuple, why: dict) -> tuple[dict, dict, dict]:
    """Common part of the snnTorch and Norse profiles: node types, Linear -> Affine, Flatten dims + 1."""
    pred, succ = predecessors(graph), successors(graph)
    nodes = dict(graph.nodes)
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if isinstance(node, nir.NIRGraph):
            raise UnsupportedError(f"node {name!r}: nested NIRGraph cannot be read by {consumer}")
        if kind not in types:
            raise UnsupportedError(f"node {name!r}: NIR type {kind} cannot be read by {consumer}{why.get(kind, '')}; "
                                   f"it reads {', '.join(types)}")
        if kind == "Linear":
            nodes[name] = nir.Affine(weight=node.weight, bias=np.zeros(node.weight.shape[0], node.weight.dtype),
                                     metadata=node.metadata)
        if kind == "Flatten":  # both pass NIR's (batch-free) dims to torch.nn.Flatten, which counts the batch
            end = int(node.end_dim)
            nodes[name] = nir.Flatten(input_type=node.input_type, start_dim=int(node.start_dim) + 1,
                                      end_dim=end + 1 if end >= 0 else end, metadata=node.metadata)
    return nodes, pred, succ


def _snntorch(graph: nir.NIRGraph) -> nir.NIRGraph:
    dt = graph_dt(graph)
    consumer = "snnTorch 1.0.0's import_from_nir"
    nodes, pred, succ = _torch_style(graph, consumer, _SNNTORCH_TYPES,
                                     {"IF": " (snnTorch 1.0.0 reads IF as a Leaky with beta 0.9)"})
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.LIF):
            continue
        if np.any(np.asarray(node.v_leak) != 0):
            raise UnsupportedError(f"node {name!r}: LIF field v_leak != 0 cannot be read by snnTorch 1.0.0 (v_leak not supported)")
        if np.unique(node.v_threshold).size != 1:
            raise UnsupportedError(f"node {name!r}: LIF field v_threshold differs per neuron; snnTorch 1.0.0 needs one value")
        k = steps_per_tau(node.tau, dt)
        _fold_gain(name, node, nodes, pred, succ, np.asarray(node.r, np.float64) / k, consumer)  # snnTorch: r = k
        dtype = np.asarray(node.tau).dtype
        nodes[name] = nir.LIF(tau=(k * SNNTORCH_DT).astype(dtype), r=k.astype(dtype), v_leak=node.v_leak,
                              v_threshold=node.v_threshold, v_reset=node.v_reset, metadata=node.metadata)
    md = dict(graph.metadata or {})
    md["neurodeploy.dt"] = SNNTORCH_DT
    md["neurodeploy.nir_compat"] = "snntorch"
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), metadata=md, type_check=False)


def _norse(graph: nir.NIRGraph) -> nir.NIRGraph:
    """Norse 1.1.0's ``from_nir(graph, dt=...)`` (norse/torch/utils/import_nir.py): LIF -> LIFBoxCell with
    tau_mem_inv = 1 / tau and r ignored (so r is folded into the Affine/Conv2d feeding it and set to 1),
    v_reset ignored (must be 0), IF -> IAFCell (r ignored, must be 1).  The file keeps the graph's dt
    (metadata ``neurodeploy.dt``): pass it as ``from_nir(graph, dt=dt)`` (Norse's default is 1e-3)."""
    consumer = "Norse 1.1.0's from_nir"
    nodes, pred, succ = _torch_style(graph, consumer, _NORSE_TYPES,
                                     {"CubaLIF": " (its CubaLIF is not verified equal to NIR's)",
                                      "LI": " (from_nir has no LI)", "AvgPool2d": " (from_nir has no AvgPool2d)"})
    for name, node in graph.nodes.items():
        if isinstance(node, (nir.LIF, nir.IF)):
            if np.any(np.asarray(node.v_reset) != 0):
                raise UnsupportedError(f"node {name!r}: {type(node).__name__} field v_reset != 0 is ignored by {consumer}")
        if isinstance(node, nir.IF) and not np.allclose(node.r, 1.0):
            _fold_gain(name, node, nodes, pred, succ, np.asarray(node.r, np.float64), consumer)
            nodes[name] = nir.IF(r=np.ones_like(node.r), v_threshold=node.v_threshold, v_reset=node.v_reset,
                                 metadata=node.metadata)
        if isinstance(node, nir.LIF) and not np.allclose(node.r, 1.0):
            _fold_gain(name, node, nodes, pred, succ, np.asarray(node.r, np.float64), consumer)
            nodes[name] = nir.LIF(tau=node.tau, r=np.ones_like(node.r), v_leak=node.v_leak,
                                  v_threshold=node.v_threshold, v_reset=node.v_reset, metadata=node.metadata)
    md = dict(graph.metadata or {})
    md["neurodeploy.nir_compat"] = "norse"
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), metadata=md, type_check=False)


def _nirtorch(graph: nir.NIRGraph) -> nir.NIRGraph:
    nodes = dict(graph.nodes)
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Affine):
            if np.any(np.asarray(node.bias) != 0):
                raise UnsupportedError(f"node {name!r}: Affine field bias != 0 is not loaded by nirtorch 2.6's nir_to_torch "
                                       "(its Linear keeps a random initial bias)")
            nodes[name] = nir.Linear(weight=node.weight, metadata=node.metadata)
    md = {**(graph.metadata or {}), "neurodeploy.nir_compat": "nirtorch"}
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), metadata=md, type_check=False)


def make_compatible(graph: nir.NIRGraph, compat: str) -> nir.NIRGraph:
    """A copy of ``graph`` that ``compat`` reads (same spikes under NIR semantics); refusals name the node."""
    if compat not in COMPAT:
        raise UnsupportedError(f"--nir-compat {compat!r}: supported profiles are {', '.join(COMPAT)}")
    graph = copy.copy(graph)
    _strict(graph, compat)
    if compat == "snntorch":
        graph = _snntorch(graph)
    elif compat == "norse":
        graph = _norse(graph)
    elif compat == "nirtorch":
        graph = _nirtorch(graph)
    else:
        graph.metadata = {**(graph.metadata or {}), "neurodeploy.nir_compat": compat}
    return graph
