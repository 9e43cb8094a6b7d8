"""The residual stream plan of the Loihi 2 lowering (:mod:`.loihi2`; docs/lowering.md, "Residual stream"): each value
of a residual stream is built once, as a graded relay population that every reader reads once.

Spikingformer's LIFs that read the stream get ``x_l = x_0 + sum of branch outputs`` as one term per earlier branch
(NIR sums edges at a node), so expanded every reader holds every earlier conv: synapse memory grows with depth
squared. Here the LIF populations whose input terms (source, chain of NIR nodes) nest, K_0 < K_1 < ..., get one
``relay`` population (Lava GradedVec, vth 0) per distinct set K: ``relay(K) = relay(parent) + the new terms`` (the
parent read one-to-one, weight 1, graded), and every reader of K reads ``relay(K)`` once, one-to-one with weight 1.
Exact in integers: each relay K has an integer scale S_K (integer units per model unit; its own terms are quantized
once at S_K), S_K = B 2^j_K where B is the largest scale every relay of the stream allows and j_K >= 0 the largest
power of two K's own terms and readers allow, lowered to the smallest j of K's descendants (mode ``level``: no relay
is finer than a later one; with ``one`` every relay has B); a relay reads its parent shifted left by j_K - j_parent
(exact), and every group that reads a stream value one-to-one on a map with positions is a graded depthwise 1x1 conv
of weight 2^(j_K - j_parent) (:func:`neurodeploy.lower.quantize.stream_conv_weight`: one synapse list per channel
on a core instead of one input axon and SynMem unit per neuron; cifar10-4-384 tiled-4 1,386 -> 1,306 cores).  Mode ``ratio``:
S_K is the largest its own terms and readers allow (a multiple of its readers' p) and the relay reads its parent at
the 8-bit weight m 2^e nearest S_K / S_parent (exact when the ratio is such a weight; else its relative error, at
most 2^-8, is reported as the group's). A reader with gain r (folded weight per model unit, r = 1/m with m an
integer; p / q in general, B then a multiple of p) gets the population scale S_K m (S_K q / p), so its a_in equals
the payload with no second rounding. Readers keep their own bias (the stream's BatchNorm biases, pushed through as
before). S_K keeps K's own weights within 8-bit mantissas and every reader's u, v, bias and threshold within their
registers (the same bounds as an expanded reader's scale). Populations or terms this does not fit (attention LIFs,
per-neuron gains, delays, host-encoded terms, initial v) keep their expanded terms.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np

from ..graph.primitives import primitive_of
from .chains import Chains, PopulationPlan, Term, Value, graded_group, node_shape
from .network import VTH_MAX
from .quantize import BIAS_MANT, UV_LIMIT, absmax, row_abs_sum


def ratio_weight(S: int, S_parent: int, mmax: int = 255) -> tuple:
    """The positive weight m 2^e (1 <= m <= mmax, e in -8..7) nearest S / S_parent, exact when it can be: the
    weight at which a relay of scale S reads its parent of scale S_parent."""
    best = None
    for e in range(7, -9, -1):          # the smallest mantissa first among equals
        m = min(mmax, max(1, round(S / S_parent * 2.0 ** -e)))
        err = abs(m * 2.0 ** e * S_parent - S)
        if best is None or err < best[0] - 1e-9:
            best = (err, m, e)
    return best[1], best[2]


@dataclass
class StreamPlan:
    """The populations with the stream relays inserted before their first reader (``plans``), the integer
    ``scale`` of every relay and reader, the float group of every stream term (``groups``, by (source, ops);
    computed once here), the readers of each relay (``relays``) and the weight (mantissa, exponent) at which a
    relay reads its parent relay (``parent_weight``)."""
    plans: dict
    scale: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)
    relays: dict = field(default_factory=dict)
    parent_weight: dict = field(default_factory=dict)     # relay -> (mantissa, weight_exp, relative error)


def plan_stream(plans: dict, inp: str, in_shape, domain: str, chains: Chains, graded: dict | None = None,
                mode: str = "level") -> StreamPlan:
    """Build each value of a residual stream once (see the module docstring).  ``plans``: name ->
    :class:`PopulationPlan` in the lowering's order; ``graded``: graded sources (max-pools) -> (payload scale,
    value bound): their terms are graded groups (:func:`neurodeploy.lower.chains.graded_group`); ``mode``:
    ``level`` (S_K = B 2^j_K), ``one`` (S_K = B) or ``ratio`` (S_K the largest multiple of its readers' p within
    its own bound, the parent read at an 8-bit weight m 2^e that equals S_K / S_parent, or is its nearest 8-bit
    value)."""
    graded = graded or {}
    g = chains.g
    none = StreamPlan(plans)
    order = list(plans)
    keys = {}
    for name, pl in plans.items():
        val, rowgain = pl.value, pl.rowgain
        if pl.kind != "lif" or val.att or len(val.terms) < 1 or pl.v0 is not None:
            continue
        r = float(rowgain[0]) if rowgain.size else 0.0
        if r <= 0 or not np.allclose(rowgain, r, rtol=0, atol=1e-12 * r):
            continue
        fr = Fraction(r).limit_denominator(1 << 12)         # gain p / q (tau 2: 1/2; tau 1.5: 2/3)
        if abs(float(fr) - r) > 1e-12 * r:
            continue
        ks = []
        for t in val.terms:
            if t.src == name or (t.src == inp and domain == "real") or \
                    any(primitive_of(g.nodes[o], o) == "Delay" for o in t.ops):
                break
            ks.append((t.src, tuple(t.ops)))
        else:
            if len(set(ks)) == len(ks):
                keys[name] = frozenset(ks)
    sets = sorted(set(keys.values()), key=len)
    parent = {}
    for i, K in enumerate(sets):
        subs = [P for P in sets[:i] if P < K]
        if subs:
            parent[K] = max(subs, key=len)
    used = set(parent) | set(parent.values())
    if not used:
        return none
    readers = {K: [n for n in order if keys.get(n) == K] for K in used}
    size = {K: int(np.prod(plans[readers[K][0]].shape)) for K in used}
    if any(int(np.prod(plans[n].shape)) != size[K] for K in used for n in readers[K]) or \
            any(size[K] != size[P] for K, P in parent.items()):
        return none
    rname = {K: f"{readers[K][0]}.stream" for K in used}
    # float structures of every stream term (gain 1: model units), once
    terms = {}
    for K in used:
        t_by_key = {(t.src, tuple(t.ops)): t for t in plans[readers[K][0]].value.terms}
        for key in K - (parent.get(K) or frozenset()):
            t = t_by_key[key]
            src_shape = in_shape if t.src == inp else node_shape(g.nodes[t.src], "output")
            grp = chains.chain_structure(list(t.ops), src_shape, np.ones(size[K]), readers[K][0])
            if t.src in graded and grp.kind in ("conv", "dense", "sparse"):
                grp = graded_group(grp, *graded[t.src], readers[K][0])
            if grp.kind not in ("conv", "dense", "sparse"):
                return none          # (a pooled readout: not a stream term)
            grp.term = t
            terms[key] = grp

    def root(K):
        while K in parent:
            K = parent[K]
        return K
    rowabs = {}
    for K in sorted(used, key=len):
        ra = rowabs[parent[K]].copy() if K in parent else np.zeros(size[K])
        for key in K - (parent.get(K) or frozenset()):
            ra += row_abs_sum(terms[key].kind, terms[key].weights, size[K]) * terms[key].in_bound
        rowabs[K] = ra
    # the largest scale each relay K allows: its own (fresh) terms' mantissas and its readers' registers
    own = {}
    for K in used:
        fresh = K - (parent.get(K) or frozenset())
        top = 254.0 / max([absmax(terms[key].weights) / (terms[key].payload_scale or 1.0) for key in fresh]
                          + [1e-12])
        for n in readers[K]:
            pl = plans[n]
            r = float(pl.rowgain[0])
            bias = np.zeros(size[K])
            for chain in pl.value.bias_nodes:
                b = chains.bias_vector(chain)
                if b is not None:
                    bias += b
            bias *= pl.rowgain
            if pl.du != 4095 and np.any(bias):
                return none           # (a constant into u: const1 groups, not a stream reader)
            if pl.leak is not None:
                bias = bias + pl.leak
            rmax = float((np.abs(bias) + r * rowabs[K]).max())
            lim = VTH_MAX
            if rmax > 0:
                lim = min(lim, UV_LIMIT / (64.0 * rmax * 4096.0 / (pl.du + 1)))
            if np.any(bias):
                lim = min(lim, BIAS_MANT * 128.0 / (64.0 * float(np.abs(bias).max())))
            top = min(top, lim * r)            # the reader's scale is S / r
        own[K] = top
    # a reader of gain p / q gets the scale S q / p: an integer when p divides S (S a multiple of the lcm)
    frac = {n: Fraction(float(plans[n].rowgain[0])).limit_denominator(1 << 12) for K in used for n in readers[K]}
    step = {}
    for K in used:
        for n in readers[K]:
            step[root(K)] = math.lcm(step.get(root(K), 1), frac[n].numerator)
    base = {}
    for K in used:
        base[root(K)] = min(base.get(root(K), math.inf), own[K])
    if any(base[r_] < step[r_] for r_ in base):
        return none            # (no integer scale within the registers)
    out = StreamPlan({})
    if mode == "ratio":
        for K in sorted(used, key=len):         # parents first
            st = math.lcm(*[frac[n].numerator for n in readers[K]])
            S = int(math.floor(own[K] / st)) * st
            if S < st:
                return none
            out.scale[rname[K]] = S
            if K in parent:
                P = parent[K]
                # the parent's payload |x_P| S_P times m must stay within the 24-bit accumulator
                mmax = max(1, min(255, int((1 << 23) / max(1.0, float(rowabs[P].max()) * out.scale[rname[P]] * 1.01))))
                m, e = ratio_weight(S, out.scale[rname[P]], mmax)
                out.parent_weight[rname[K]] = (m, e, abs(m * 2.0 ** e * out.scale[rname[P]] / S - 1.0))
        for K in used:
            for n in readers[K]:
                out.scale[n] = out.scale[rname[K]] * frac[n].denominator // frac[n].numerator
    jk, Bk = {}, {}
    for K in used if mode != "ratio" else ():
        # per level: S_K = B 2^j_K with B the tree's common base (a multiple of every reader's p) and j_K >= 0
        # the largest power of two the relay allows; a relay reads its parent shifted by 2^(j_K - j_parent)
        Bk[K] = int(math.floor(base[root(K)] / step[root(K)])) * step[root(K)]
        j = 0
        while mode == "level" and (Bk[K] << (j + 1)) <= own[K]:
            j += 1
        jk[K] = j
    # no relay finer than a child: j_parent <= j_K, so every relay reads its parent shifted left (a depthwise
    # 1x1 conv of weight 2^(j_K - j_parent), lower/quantize.py stream_conv_weight), never floored by a right
    # shift (which only a one-to-one Sparse can do, at one input axon per neuron)
    for K in sorted(jk, key=len, reverse=True):
        if K in parent:
            jk[parent[K]] = min(jk[parent[K]], jk[K])
    for K in jk:
        out.scale[rname[K]] = Bk[K] << jk[K]
    for K in used if mode != "ratio" else ():
        S = out.scale[rname[K]]
        if K in parent:
            out.parent_weight[rname[K]] = (1, int(round(math.log2(S / out.scale[rname[parent[K]]]))), 0.0)
        for n in readers[K]:
            out.scale[n] = S * frac[n].denominator // frac[n].numerator
    # the new destinations: relays before their first reader; readers read their relay only
    for n in order:
        K = keys.get(n) if keys.get(n) in used else None
        if K is not None and readers[K][0] == n:
            pl = plans[n]
            new = []
            if K in parent:
                new.append(Term(rname[parent[K]], []))
            fresh = K - (parent.get(K) or frozenset())
            for t0 in pl.value.terms:                   # the model's order
                key = (t0.src, tuple(t0.ops))
                if key in fresh:
                    new.append(terms[key].term)
                    out.groups[key] = terms[key]
            out.plans[rname[K]] = PopulationPlan(Value(new), np.ones(size[K]), pl.shape, 0, False, 1.0, "relay",
                                                 n, 4095, None)
            out.relays[rname[K]] = sorted(readers[K])
        if K is not None:
            out.plans[n] = replace(plans[n], value=Value([Term(rname[K], [])], [], list(plans[n].value.bias_nodes)))
        else:
            out.plans[n] = plans[n]
    return out
