"""Spiking self-attention lowered into plain neurons and synapse groups (runs on neurocores), small models.

The attention op (:class:`~neurodeploy.lower.network.Attention`) sends, per head h, the integer
``weight * y`` with ``y[c, n] = sum_j Q[j, n] * C[j, c]`` and ``C[j, c] = sum_m K[j, m] V[c, m]``
(Q, K, V binary [dh, N] head slices, channels j and c, tokens n and m).  ``C`` is a count, not a spike,
so the product is written as a count of three-way coincidences::

    y[c, n] = sum_{j, m} AND(Q[j, n], K[j, m], V[c, m])

One **three-input AND coincidence neuron** per term (h, n, j, m, c): a Lava fixed-point LIF with
du = 4095 and dv = 4096 (u and v hold only this step's input: no memory), bias 0 and vth = 2, fed by three
excitatory all-ones sparse groups (from q, k and v; weight 1 adds 64 to v, so two inputs give 128, which
is not > 2 * 64, and three give 192, which is: it spikes iff all three inputs spike in the same step;
EXCITATORY sign mode, so Lava keeps the weight 1 that a MIXED group would truncate to 0).  Its spikes go
through one sparse group with weight ``weight`` (8-bit mantissa, exponent when needed) into the attention
LIF, which thereby receives exactly ``weight * y`` in the step the process op would deliver it, one step
later: the AND stage is one more synapse hop.  The three inputs must meet in the same step: the network
is delay-balanced again (:func:`neurodeploy.lower.balance.balance_network`), which gives the q/k/v groups
their balance delays and shifts everything downstream of the attention by that one step (``latency``
grows by one per attention op on the longest path).

Cost per attention op: ``H * N * dh * N * dh`` AND neurons (``N^2 * D * dh``), ``3`` such synapses into
them and one out of each.  That is only for small models: above ``max_neurons`` (default
:data:`MAX_AND_NEURONS`) :func:`attention_to_neurons` refuses, naming the attention node.
"""
from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp

from ..errors import UnsupportedError
from .balance import balance_network
from .network import EXCITATORY, INHIBITORY, Attention, LoweredNetwork, Population, Synapse

#: AND neurons per attention op above which the neuron lowering is refused (Loihi 2 neurocores hold up to
#: 8192 neurons each; this is 4 cores' worth of coincidence neurons and a few dense int matrices of
#: ``neurons x (D * N)`` in memory)
MAX_AND_NEURONS = 1 << 15


def and_neuron_count(a: Attention) -> int:
    dh = a.dim // a.heads
    return a.heads * a.tokens * dh * a.tokens * dh


def _weight_mantissa(a: Attention):
    w = int(a.weight)
    e = 0
    while abs(w) > 255 and w % 2 == 0:
        w //= 2
        e += 1
    if abs(w) > 255:
        raise UnsupportedError(f"attention '{a.source or a.name}': weight {a.weight} is not an 8-bit mantissa "
                               "times a power of two; the neuron lowering cannot carry it exactly")
    return w, e


def attention_neurons(a: Attention, max_neurons: int = MAX_AND_NEURONS):
    """``(AND population, [q, k, v, out] synapse groups)`` replacing attention op ``a`` (balance delays
    not set: the caller re-balances the network)."""
    M = and_neuron_count(a)
    if M > max_neurons:
        raise UnsupportedError(
            f"attention '{a.source or a.name}': the neuron lowering needs {M} AND coincidence neurons "
            f"(heads {a.heads} x tokens {a.tokens}^2 x head dim {a.dim // a.heads}^2), more than the limit of "
            f"{max_neurons}; use attention='process'")
    H, N, dh = a.heads, a.tokens, a.dim // a.heads
    h, n, j, m, c = (x.reshape(-1) for x in np.meshgrid(np.arange(H), np.arange(N), np.arange(dh),
                                                          np.arange(N), np.arange(dh), indexing="ij"))
    rows = np.arange(M)                      # C order of (h, n, j, m, c)
    cols = {"q": (h * dh + j) * N + n, "k": (h * dh + j) * N + m, "v": (h * dh + c) * N + m}
    size = a.dim * N
    name = f"{a.name}.and"
    pop = Population(name, (M,), kind="lif", du=4095, dv=4096, vth=2, bias_mant=0, bias_exp=0,
                     source=a.source or a.name)
    syns = []
    for key, src in (("q", a.q), ("k", a.k), ("v", a.v)):
        w = sp.csr_matrix((np.ones(M, dtype=np.int64), (rows, cols[key])), shape=(M, size))   # 0/1, one per row
        syns.append(Synapse(f"{name}<-{key}", src, name, "sparse", w, sign_mode=EXCITATORY,
                            source=a.source or a.name))
    mant, exp = _weight_mantissa(a)
    wout = sp.csr_matrix((np.full(M, mant, dtype=np.int64), ((h * dh + c) * N + n, rows)), shape=(size, M))
    syns.append(Synapse(f"{a.dst}<-{name}", name, a.dst, "sparse", wout, weight_exp=exp,
                        sign_mode=EXCITATORY if mant > 0 else INHIBITORY, source=a.source or a.name))
    return pop, syns


def attention_to_neurons(net: LoweredNetwork, max_neurons: int = MAX_AND_NEURONS) -> LoweredNetwork:
    """A copy of ``net`` with every attention op replaced by AND coincidence neurons, re-balanced."""
    out = copy.deepcopy(net)
    for a in list(out.attention):
        pop, syns = attention_neurons(a, max_neurons)
        out.populations.append(pop)
        out.synapses += syns
        out.attention.remove(a)
    T = int(out.metadata.get("time_steps", 0) or 0) or None
    balance_network(out, T)
    out.metadata["attention_lowering"] = "neurons"
    out.validate()
    return out
