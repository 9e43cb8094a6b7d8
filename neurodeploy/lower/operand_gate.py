"""Holding a LIF population silent outside its sample's T model steps by inhibition from the sample clock (the
token tiles' Q, K and V; docs/lowering.md, "Token tiles").

A token-tiled attention op (:func:`neurodeploy.lower.attention_graded.tiled_parts`) needs Q, K and V silent
outside the sample's T steps.  Instead of one memoryless AND per neuron (X AND the clock's window: D N more
LIFs per operand), one LIF neuron ``off`` per op (NOT window: bias 64, window weight -1, vth 0) inhibits the
operands through one Sparse group each (one axon, weight -I, I = m 2^e):

* ``off`` is placed as late as its readers allow (``metadata["late_populations"]``: the balancing pass puts it
  one step before them), so its group has no delay: it reaches the operands from the second step of a run on,
  while the pipeline fills too (its own input, the window, comes through delay lines that start empty: off
  spikes until the first window arrives);
* in the window ``off`` is silent: the operands' integers are unchanged;
* outside it, u = 64 (x - I) and u + bias <= 64 x_max + bias - 64 I <= 0 when I >= x_max + bias / 64, so v never
  rises above a v that was already at most the threshold: no spike (v may sink; it saturates at -2^23 + 1, and
  the population's periodic reset zeroes it at its next window);
* Lava wraps u at 24 bits: 64 (|x_min| + I) < 2^23 is required; at the first step (no input yet) the bias alone
  must not reach the threshold.

x_max (x_min) is the largest (most negative) a_in the population's groups can bring in one step: every group
must read 0/1 spikes (a sum of the positive (negative) weights of a row bounds it; a conv's per output channel,
padding ignored).  ``du`` must be 4095 (u keeps nothing: Lava's decay constant is du + 1 = 4096) and the initial
v 0.  Otherwise :func:`plan` returns None and the caller keeps the AND gates.  Why by hand: no library gates a
Lava LIF by a clock; the argument above is ours (tested bit-exact against Lava)."""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from .fixed_point import INHIBITORY, lava_effective_weights
from .network import LoweredNetwork, Population, Synapse

#: Lava's u register: values at or beyond -2^23 wrap
U_MAX = 1 << 23
WEIGHT_EXP_MAX = 7
#: the off neuron's bias (v units): one a_in of the window (64) cancels it
OFF_BIAS = 64


def _spike_source(net: LoweredNetwork, name: str) -> bool:
    p = net.pop(name)
    return p.kind == "lif" or (p.kind == "input" and p.input_kind == "spikes")


def drive_bounds(net: LoweredNetwork, name: str) -> tuple | None:
    """``(x_max, x_min)``: the largest and the most negative a_in each neuron of ``name`` can get in one step
    (flat, C order), or None when a group reads graded payloads or is of a kind this bound does not cover."""
    p = net.pop(name)
    pos = np.zeros(p.size, dtype=np.float64)
    neg = np.zeros(p.size, dtype=np.float64)
    for s in net.synapses:
        if s.dst != name:
            continue
        if s.graded or s.port or s.src == name or not _spike_source(net, s.src):
            return None
        if s.kind == "conv":
            if s.weight_exp:
                return None
            w = np.asarray(s.weights, dtype=np.int64).reshape(np.shape(s.weights)[0], -1)
            rep = p.size // w.shape[0]
            pos += np.repeat(np.clip(w, 0, None).sum(1), rep)
            neg += np.repeat(np.clip(w, None, 0).sum(1), rep)
        elif s.kind in ("dense", "sparse"):
            w = lava_effective_weights(s.weights, s.sign_mode, s.num_weight_bits)
            f = 2.0 ** int(s.weight_exp)
            if sp.issparse(w):
                w = sp.csr_matrix(w)
                rp = np.asarray(w.maximum(0).sum(axis=1), dtype=np.float64).reshape(-1)
                rn = np.asarray(w.minimum(0).sum(axis=1), dtype=np.float64).reshape(-1)
            else:
                w = np.asarray(w, dtype=np.int64).reshape(p.size, -1)
                rp, rn = np.clip(w, 0, None).sum(1).astype(float), np.clip(w, None, 0).sum(1).astype(float)
            pos += np.ceil(rp * f)
            neg += np.floor(rn * f)
        else:
            return None
    return pos, neg


def plan(net: LoweredNetwork, name: str) -> dict | None:
    """The inhibition that holds LIF population ``name`` silent outside its window (module docstring):
    ``{"m", "e"}`` (weight -m 2^e; m = 0: it can never spike, no group needed), or None where the argument
    does not hold."""
    p = net.pop(name)
    if p.kind != "lif" or p.du != 4095 or p.bias_input or np.any(np.asarray(p.v_init) != 0) or p.vth < 0:
        return None
    b = drive_bounds(net, name)
    if b is None:
        return None
    pos, neg = b
    mant = np.broadcast_to(np.asarray(p.bias_mant, dtype=np.int64), p.shape).reshape(-1)
    e0 = int(p.bias_exp)
    bias = (mant << e0) if e0 >= 0 else (mant >> -e0)
    if p.size == 0 or bias.max() > 64 * int(p.vth):
        return None
    need = int(math.ceil(float((pos + bias / 64.0).max())))
    if need <= 0:
        return {"m": 0, "e": 0}
    for e in range(WEIGHT_EXP_MAX + 1):
        m = -(-need // (1 << e))
        if m <= 255:
            return {"m": m, "e": e} if 64 * (float(-neg.min()) + (m << e)) < U_MAX else None
    return None


def off_population(name: str, source: str) -> Population:
    """``name``: NOT window, a memoryless LIF (du = dv = 4095) with bias 64 and vth 0: v = 64 - 64 window."""
    return Population(name, (1,), kind="lif", du=4095, dv=4095, vth=0, bias_mant=OFF_BIAS, source=source)


def apply(net: LoweredNetwork, off: str, window: str, plans: dict, source: str) -> None:
    """Add the ``off`` neuron (reading ``window``, placed late) and its inhibitory group into every population
    of ``plans`` (name -> :func:`plan`) whose m is not 0."""
    net.populations.append(off_population(off, source))
    net.synapses.append(Synapse(f"{off}<-window", window, off, "sparse", sp.csr_matrix(-np.ones((1, 1), np.int64)),
                                sign_mode=INHIBITORY, source=source))
    for name, pl in plans.items():
        if not pl["m"]:
            continue
        n = net.pop(name).size
        w = sp.csr_matrix((np.full(n, -int(pl["m"]), dtype=np.int64), (np.arange(n), np.zeros(n, dtype=np.int64))),
                          shape=(n, 1))
        net.synapses.append(Synapse(f"{name}<-{off}", off, name, "sparse", w, weight_exp=int(pl["e"]),
                                    sign_mode=INHIBITORY, source=source))
    net.metadata = dict(net.metadata)
    net.metadata["late_populations"] = list(net.metadata.get("late_populations", [])) + [off]
    gated = dict(net.metadata.get("operand_gates", {}))
    gated.update({name: {"off": off, "inhibition": int(pl["m"]) << int(pl["e"])} for name, pl in plans.items()})
    net.metadata["operand_gates"] = gated
