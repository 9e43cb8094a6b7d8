"""Spiking self-attention from Lava's own processes: product neurons and graded spikes (the default lowering).

An :class:`~neurodeploy.lower.network.Attention` op sends, per head h, ``weight * Q_h (K_h^T V_h)`` on the
binary [dh, N] head slices of Q, K, V.  No synapse multiplies two activations, but Lava's process library
has a neuron that does: ``ProdNeuron`` (``v = (a_in1 * a_in2) >> exp``, graded output), plus ``GradedVec``
(a graded relay) and Sparse / DelaySparse groups carrying graded spikes (``num_message_bits`` 24).  The op
becomes two stages of product neurons (Q, K, V of head h: channels j, c; tokens n, m):

order ``ktv`` (``Q (K^T V)``, 2*H*N*dh^2 product neurons)::

    stage 1  P1[h,j,c,m] = K[h,j,m] * V[h,c,m]        ProdNeuron, inputs: 1-weight Sparse from k and v
             C[h,j,c]    = sum_m P1[h,j,c,m]           graded Sparse (weight 1) into a GradedVec (counts)
    stage 2  P2[h,j,c,n] = Q[h,j,n] * C[h,j,c]        ProdNeuron, Q through a DelaySparse (delay +2)
             a[h,c,n]   += weight * sum_j P2[h,j,c,n]  graded Sparse (weight mantissa, weight_exp) -> LIF

order ``qkt`` (``(Q K^T) V``, 2*H*N^2*dh product neurons): stage 1 ``P1[h,n,m,j] = Q[h,j,n] K[h,j,m]``
summed over j into ``S[h,n,m]``; stage 2 ``P2[h,c,n,m] = V[h,c,m] S[h,n,m]`` summed over m (V delayed).

Both orders are exact integer identities of the same sum; per op the cheaper one is chosen (``ktv`` iff
``dh <= N``) and recorded in ``metadata["attention_graded"]``.  Every synapse group is one step (Lava
pipelining), so the attention LIF receives the value the process op delivers ``STAGE_LATENCY`` = 3 steps
later; the operand that skips stage 1 waits those 2 extra steps in its DelaySparse, and the rest of the
network is re-balanced (:func:`neurodeploy.lower.balance.balance_network`: residual paths get the
same extra delay).  The added latency is ``metadata["attention_latency_added"]``.

The connectivity is stored as ``einsum`` synapse records (one axis string and one weight each: linear in
nothing but the record count), never as matrices over the product neurons.  Values: products of 0/1
spikes with counts <= max(N, dh), sums <= |weight| * N * dh: the pass refuses an op whose sum could leave
Lava's 24-bit payloads, so integer arithmetic is exact throughout.
"""
from __future__ import annotations

import copy

import numpy as np

from ..errors import UnsupportedError
from .balance import balance_network
from .network import EXCITATORY, INHIBITORY, Attention, LoweredNetwork, Population, Synapse

#: synapse hops of the graded form minus the one of the process op (input -> P1 -> counts -> P2 -> LIF)
STAGE_LATENCY = 3
_PAYLOAD_MAX = (1 << 23) - 1


def product_neuron_count(a: Attention, order: str) -> int:
    H, N, dh = a.heads, a.tokens, a.dim // a.heads
    return 2 * H * N * dh * dh if order == "ktv" else 2 * H * N * N * dh


def choose_order(a: Attention) -> str:
    """The cheaper exact order: ``ktv`` (2 H N dh^2 product neurons) when dh <= N, else ``qkt`` (2 H N^2 dh)."""
    return "ktv" if a.dim // a.heads <= a.tokens else "qkt"


def weight_mantissa(a: Attention):
    """``weight = mant * 2**exp`` with an 8-bit mantissa (Lava's graded Sparse shifts by weight_exp)."""
    w, e = int(a.weight), 0
    while abs(w) > 255 and w % 2 == 0:
        w //= 2
        e += 1
    if abs(w) > 255 or w == 0:
        raise UnsupportedError(f"attention '{a.source or a.name}': weight {a.weight} is not a nonzero 8-bit "
                               "mantissa times a power of two")
    return w, e


def graded_parts(a: Attention, order: str):
    """``(populations, synapse groups)`` replacing op ``a`` (balance delays not set: the caller re-balances;
    the skipping operand's group carries ``STAGE_LATENCY - 1`` as a fixed model delay via ``balance_delay``
    being recomputed, so nothing is set here)."""
    H, N, D, dh = a.heads, a.tokens, a.dim, a.dim // a.heads
    src = a.source or a.name
    mant, exp = weight_mantissa(a)
    if abs(int(a.weight)) * N * dh > _PAYLOAD_MAX:
        raise UnsupportedError(f"attention '{src}': weight {a.weight} x tokens {N} x head dim {dh} can exceed "
                               "the 24-bit graded payload")
    if order == "ktv":
        axes = {"h": H, "j": dh, "c": dh, "m": N, "n": N}
        p1, cnt, p2 = ("hjcm", "hjc", "hjcn")
        ops1 = ((a.k, "hjm"), (a.v, "hcm"))     # stage-1 operands (ports 1, 2)
        skip, skip_axes = a.q, "hjn"            # the operand that waits for the counts
        out_axes = "hcn"
    elif order == "qkt":
        axes = {"h": H, "j": dh, "c": dh, "m": N, "n": N}
        p1, cnt, p2 = ("hnmj", "hnm", "hcnm")
        ops1 = ((a.q, "hjn"), (a.k, "hjm"))
        skip, skip_axes = a.v, "hcm"
        out_axes = "hcn"
    else:
        raise UnsupportedError(f"attention '{src}': unknown order '{order}' (ktv or qkt)")
    ax = {k: int(v) for k, v in axes.items()}

    def shape(letters):
        return tuple(ax[x] for x in letters)

    one = np.ones((1,), dtype=np.int64)
    n1, nc, n2 = f"{a.name}.p1", f"{a.name}.counts", f"{a.name}.p2"
    pops = [Population(n1, shape(p1), kind="prod", vth=0, source=src),
            Population(nc, shape(cnt), kind="graded_vec", vth=0, source=src),
            Population(n2, shape(p2), kind="prod", vth=0, source=src)]

    def syn(name, s, d, spec, port=0, w=one, wexp=0, graded=False, mode=EXCITATORY):
        used = {k: ax[k] for k in spec if k.isalpha()}
        return Synapse(name, s, d, "einsum", w, weight_exp=wexp, sign_mode=mode, graded=graded, port=port,
                       einsum=spec, axes=used, source=src)

    syns = [syn(f"{n1}<-in1", ops1[0][0], n1, f"{ops1[0][1]}->{p1}", port=1),
            syn(f"{n1}<-in2", ops1[1][0], n1, f"{ops1[1][1]}->{p1}", port=2),
            syn(f"{nc}<-{n1}", n1, nc, f"{p1}->{cnt}", graded=True),
            syn(f"{n2}<-in1", skip, n2, f"{skip_axes}->{p2}", port=1),
            syn(f"{n2}<-{nc}", nc, n2, f"{cnt}->{p2}", port=2, graded=True),
            syn(f"{a.dst}<-{n2}", n2, a.dst, f"{p2}->{out_axes}", w=np.array([mant], dtype=np.int64), wexp=exp,
                graded=True, mode=EXCITATORY if mant > 0 else INHIBITORY)]
    return pops, syns


def attention_to_graded(net: LoweredNetwork, order: str = "auto") -> LoweredNetwork:
    """A copy of ``net`` with every attention op replaced by product neurons, graded counts and graded
    synapse groups (see the module docstring), re-balanced.  ``order``: ``auto`` (cheaper per op), ``ktv``
    or ``qkt``, or a dict {op name: order} (missing ops: auto).  Records per op the order, the product-neuron count and the added latency in
    ``metadata["attention_graded"]`` and the network's added latency in ``metadata["attention_latency_added"]``."""
    out = copy.deepcopy(net)
    before = int(max(net.latency().values(), default=0)) if net.attention else 0
    ops = []
    for a in list(out.attention):
        o = order.get(a.name, "auto") if isinstance(order, dict) else order
        o = choose_order(a) if o == "auto" else o
        pops, syns = graded_parts(a, o)
        # every population after its sources (topological order is recomputed by the network anyway)
        out.populations += pops
        out.synapses += syns
        out.attention.remove(a)
        H, N, dh = a.heads, a.tokens, a.dim // a.heads
        ops.append({"name": a.name, "source": a.source or a.name, "order": o, "heads": H, "tokens": N,
                    "head_dim": dh, "product_neurons": product_neuron_count(a, o),
                    "product_neurons_other_order": product_neuron_count(a, "qkt" if o == "ktv" else "ktv"),
                    "graded_vec_neurons": H * dh * dh if o == "ktv" else H * N * N,
                    "stage_latency_steps": STAGE_LATENCY})
    if not ops:
        return out
    T = int(out.metadata.get("time_steps", 0) or 0) or None
    balance_network(out, T)
    out.validate()
    after = int(max(out.latency().values(), default=0))
    out.metadata = dict(out.metadata)
    out.metadata["attention_lowering"] = "graded"
    out.metadata["attention_graded"] = ops
    out.metadata["attention_latency_added"] = after - before
    out.metadata.setdefault("passes", [])
    out.metadata["passes"] = list(out.metadata["passes"]) + ["graded_attention"]
    return out
