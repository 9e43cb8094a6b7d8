"""Where the float vs fixed-point spike gap of a lowered network comes from (issue 13, cnn_sinabs).

:func:`dequantized_graph` is the quantization-aware float reference: the same NIR graph with every weight node
replaced by the weights the lowering actually represents, ``m * 2**e / (S * gain)`` (m the 8-bit mantissa
after Lava's rules, e the group's weight exponent, S the destination population's integer scale, gain the
neuron's r / k / (v_th - v_reset) folded into the weights).  Simulated by the float reference simulator it
differs from our fixed-point engine only by what is *not* weight rounding (decay / current truncation, the
24-bit bounds); :func:`layer_gap` measures, per spiking layer, the fraction of spikes that differ
(a) float reference vs engine and (b) quantization-aware reference vs engine.

``integer_units=True`` also multiplies every population's incoming weights and its threshold (and v_reset,
v_leak) by S: the same model (an IF/LIF's spikes do not change when its input, threshold and reset scale
together), but held in integers, which float64 adds exactly, so exact ties (v equal to the threshold,
frequent with integer weights) are not broken by float rounding of ``m / S``.

Supported: chains with one weight node (Conv1d/Conv2d/Affine/Linear) between neurons, other nodes SumPool2d
and Flatten (weight 1: a composed group's entries are the weight node's own, so rounding the group rounds
the node), neurons IF, LIF, CubaLIF; anything else is refused naming the node.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from neurodeploy.errors import UnsupportedError
from neurodeploy.graph import simulate as float_simulate
from neurodeploy.graph import steps_per_tau
from neurodeploy.graph.core import graph_dt, predecessors
from neurodeploy.lower.fixed_point import MIXED
from neurodeploy.lower.network import LoweredNetwork

_WEIGHT = ("Conv1d", "Conv2d", "Affine", "Linear")
_PASS = ("SumPool2d", "Flatten")
_NEURON = ("IF", "LIF", "CubaLIF")


def _gain(node, dt: float) -> np.ndarray:
    """Per-neuron factor the lowering folds into the incoming weights: r / k / (v_th - v_reset)."""
    t = type(node).__name__
    arr = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    theta = arr(node.v_threshold) - arr(node.v_reset)
    if t == "IF":
        g = arr(node.r)
    elif t == "LIF":
        g = arr(node.r) / steps_per_tau(node.tau, dt)
    else:
        g = arr(node.w_in) * arr(node.r) / (steps_per_tau(node.tau_syn, dt) * steps_per_tau(node.tau_mem, dt))
    return (g / theta).reshape(-1)


def _weight_node(g, pred, pop: str) -> str:
    """The one weight node on the chain into neuron node ``pop``."""
    found, cur = [], pop
    while True:
        ps = pred[cur]
        if len(ps) != 1:
            raise UnsupportedError(f"node '{cur}': {len(ps)} inputs (one chain per population supported)")
        cur = ps[0]
        t = type(g.nodes[cur]).__name__
        if t in _NEURON or t == "Input":
            break
        if t in _WEIGHT:
            found.append(cur)
        elif t not in _PASS:
            raise UnsupportedError(f"node '{cur}': {t} on a chain (only SumPool2d and Flatten besides one weight node)")
    if len(found) != 1:
        raise UnsupportedError(f"node '{pop}': {len(found)} weight nodes on its input chain (one supported)")
    return found[0]


def dequantized_graph(graph, net: LoweredNetwork, integer_units: bool = False, only=None):
    """``graph`` with each weight node replaced by its dequantized fixed-point weights (see module doc);
    ``only``: the neuron nodes whose input weights are replaced (default: all)."""
    g = copy.deepcopy(graph)
    pred = predecessors(g)
    dt = graph_dt(g)
    by_source = {p.source: p for p in net.populations if p.kind == "lif"}
    for name, node in g.nodes.items():
        if type(node).__name__ not in _NEURON or (only is not None and name not in only):
            continue
        p = by_source.get(name)
        if p is None:
            raise UnsupportedError(f"node '{name}': no lowered population")
        syns = [s for s in net.synapses if s.dst == p.name]
        S = float(p.scale)
        wn = g.nodes[_weight_node(g, pred, name)]
        w = np.asarray(wn.weight, dtype=np.float64)
        gain = np.broadcast_to(_gain(node, dt), (int(np.prod(np.shape(node.v_threshold))),))
        rows = gain.reshape(w.shape[0], -1)[:, 0] if w.shape[0] != gain.size else gain
        if not np.allclose(gain.reshape(w.shape[0], -1), rows[:, None]):
            raise UnsupportedError(f"node '{name}': gain not uniform per output channel")
        rg = rows.reshape((-1,) + (1,) * (w.ndim - 1))
        x = w * rg * S
        q = np.zeros_like(x)            # m 2^e per weight, from the group(s) holding it
        for syn in syns:                # one group, or an excitatory + inhibitory pair (split_signs)
            keep = x > 0 if syn.name.endswith(".exc") else x < 0 if syn.name.endswith(".inh") else np.ones(x.shape, bool)
            e = int(syn.weight_exp)
            y = np.where(keep, x, 0.0) / 2.0 ** e
            mixed = int(syn.sign_mode) == MIXED or ((y < 0).any() and (y > 0).any())
            m = np.clip(2 * np.round(y / 2) if mixed else np.round(y), -256 if mixed else -255, 254 if mixed else 255)
            q += m * 2.0 ** e
        if integer_units:
            wn.weight = (q / rg).astype(np.float64)
            node.v_threshold = np.asarray(node.v_threshold, dtype=np.float64) * S
            node.v_reset = np.asarray(node.v_reset, dtype=np.float64) * S
            if hasattr(node, "v_leak"):
                node.v_leak = np.asarray(node.v_leak, dtype=np.float64) * S
        else:
            wn.weight = (q / (S * rg)).astype(np.float64)
        if getattr(wn, "bias", None) is not None and np.any(np.asarray(wn.bias)):
            raise UnsupportedError(f"node '{_weight_node(g, pred, name)}': a bias (not measured here)")
    return g


def layer_gap(graph, net: LoweredNetwork, x: np.ndarray, T: int) -> dict:
    """Per spiking population: percent of (step, sample, neuron) spikes that differ between our engine
    (layer-synchronous, ``x`` binary [B, T, ...]) and (a) the float reference, (b) the quantization-aware
    reference (float64, weights m 2^e / S), (c) the same in integer units; with spike counts; and
    ``own_differ_pct``: float reference vs the float graph with only this layer's weights rounded (integer
    units), i.e. what the layer's own weight rounding flips when every upstream spike is the float one."""
    from neurodeploy.sim import simulate

    B = x.shape[0]
    xs = np.ascontiguousarray(np.asarray(x).swapaxes(0, 1)).astype(np.int64)
    inp = next(p.name for p in net.populations if p.kind == "input")
    eng = simulate(net, {inp: xs}, T, record="all", pipelined=False)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64))
    # float64 everywhere: with the model's float32 weights no sum lands within float64 rounding of a threshold,
    # so the figures do not depend on summation order (threads, BLAS)
    refs = {"float": float_simulate(graph, xt, record=True, dtype=torch.float64)[1],
            "dequantized": float_simulate(dequantized_graph(graph, net), xt, record=True, dtype=torch.float64)[1],
            "integer_units": float_simulate(dequantized_graph(graph, net, integer_units=True), xt, record=True,
                                            dtype=torch.float64)[1]}
    out = {}
    for p in net.populations:
        if p.kind != "lif" or p.source not in refs["float"]:
            continue
        e = eng[p.name]["s"]
        row = {"engine_spikes": int(e.sum())}
        for k, rec in refs.items():
            f = rec[p.source].reshape(T, B, -1).numpy()
            row[f"{k}_differ_pct"] = round(100.0 * float((f != e).mean()), 3)
        own = float_simulate(dequantized_graph(graph, net, integer_units=True, only={p.source}), xt, record=True,
                             dtype=torch.float64)[1][p.source].reshape(T, B, -1).numpy()
        f = refs["float"][p.source].reshape(T, B, -1).numpy()
        row["own_differ_pct"] = round(100.0 * float((own != f).mean()), 3)
        out[p.source] = row
    return out
