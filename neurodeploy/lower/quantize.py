"""Loihi 2 fixed point for the float synapse groups of one population (the Loihi 2 lowering, :mod:`.loihi2`;
docs/lowering.md).

* Scale: each population has one integer scale S (integer units of a_in per unit of threshold), the largest
  that keeps every incoming weight within 8-bit mantissas (254, mixed sign as even values; 255 for one-sign
  groups after a sign split) and u, v, bias and initial v inside their registers (:func:`population_scale`);
  an attention LIF gets ``S = m / (scale * r / k)`` so the product needs no rounding (:func:`attention_scale`).
* Weights: dense/sparse groups take their own weight_exp (<= 0) to use the full mantissa; conv groups (Lava
  ignores weight_exp) use exponent 0 (:func:`quant_group`, rounding to nearest).
* Biases become ``bias_mant * 2**bias_exp`` in raw v units (x 64 S) (:func:`bias_registers`); a real-valued
  input's first layer runs on the host (:func:`host_encoder`).
* Delays: leading Delay nodes of a chain become per-synapse delays (:func:`split_delays`, :func:`with_delays`).
* Signs: with ``split_signs`` every mixed-sign spike group becomes an excitatory and an inhibitory group
  (:func:`split_signs`).
"""
from __future__ import annotations

import math
import dataclasses
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import UnsupportedError
from ..graph.primitives import primitive_of
from .chains import ConvOp, Group, PooledRelay, as_float, pop_shape
from .fixed_point import EXCITATORY, MIXED, conv_to_sparse
from .network import VTH_MAX, Encoder, Synapse, as_sparse, identity_csr

#: register bounds (Lava CUBA LIF): u and v hold 24 bits, a bias mantissa 13 bits with exponent <= 7
UV_LIMIT = (1 << 23) - 1
BIAS_MANT = 4095
BIAS_EXP_MAX = 7


def mixed(w) -> bool:
    v = w.data if sp.issparse(w) else np.asarray(w)
    return bool((v < 0).any() and (v > 0).any())


def absmax(w) -> float:
    if sp.issparse(w):
        return float(np.abs(w.data).max()) if w.nnz else 0.0
    return float(np.abs(w).max()) if np.size(w) else 0.0


def row_abs_sum(kind, w, n) -> np.ndarray:
    """Sum of |weights| into each of the n destination neurons (conv: per output channel, an upper bound)."""
    if kind == "conv":
        per = np.abs(w).reshape(w.shape[0], -1).sum(1)
        return np.repeat(per, n // w.shape[0])
    if sp.issparse(w):
        return np.asarray(abs(w).sum(1)).reshape(-1)
    return np.abs(w).sum(1)


def split_signs(groups: list) -> list:
    """Each mixed-sign spike group (no model delays, not graded) as two groups from the same source: its
    positive and its negative weights (Lava sign modes excitatory / inhibitory; name suffixes ``.exc`` /
    ``.inh``).  Lava's Dense/Sparse keep all 8 bits of a one-sign weight (0..255) but drop the LSB of a mixed
    one (even values): one more bit of weight resolution, the same synapses (each weight is in one of the two),
    one more group per split one (a conv: two Conv processes)."""
    out = []
    for g in groups:
        if g.kind not in ("conv", "dense", "sparse") or g.delays is not None or not mixed(g.weights) or \
                isinstance(g.native, PooledRelay) or g.payload_scale:
            out.append(g)
            continue
        w = g.weights
        for suffix, keep in ((".exc", lambda a: a > 0), (".inh", lambda a: a < 0)):
            if sp.issparse(w):
                part = sp.csr_matrix(w.multiply(keep(w)))      # sparse comparisons: no dense copy
                part.eliminate_zeros()
            else:
                part = np.where(keep(w), w, 0.0)
            out.append(dataclasses.replace(g, weights=part, suffix=suffix))
    return out


@dataclass(eq=False)
class QuantGroup:
    """Integer mantissas ``mant`` and exponent ``exp`` with ``mant * 2**exp ~ x``; ``clipped`` mantissas,
    ``rel_error`` (sum |error| / sum |x|) and Lava's ``sign_mode``."""
    mant: np.ndarray
    exp: int
    clipped: int
    rel_error: float
    sign_mode: int


def quant_group(x, conv: bool) -> QuantGroup:
    """Integer mantissas and exponent of float weights ``x`` (Lava Dense/Conv rules).  Works through x in row
    blocks (no full-size temporaries); dense and conv mantissas come back as int16 (9-bit values)."""
    mx = float(np.abs(x).max()) if x.size else 0.0
    is_mixed = bool((x < 0).any() and (x > 0).any())
    neg = bool((x < 0).any())
    e = 0
    if not conv and mx > 0:
        e = -int(math.floor(math.log2(254.0 / mx))) if mx < 254 else 0
        e = max(e, -7)
    hi = 254 if is_mixed else 255
    lo = -256 if is_mixed else (-255 if neg else 0)
    m = np.empty(x.shape, dtype=np.int16 if x.ndim >= 2 else np.int64)
    clipped, num, den = 0, 0.0, 0.0
    rows = max(1, (1 << 22) // max(1, int(np.prod(x.shape[1:]))))
    for i in range(0, max(1, x.shape[0]), rows):
        xb = x[i:i + rows]
        y = xb * 2.0 ** (-e)
        mb = 2 * np.round(y / 2) if is_mixed else np.round(y)
        clipped += int(((mb > hi) | (mb < lo)).sum())
        np.clip(mb, lo, hi, out=mb)
        m[i:i + rows] = mb
        num += float(np.abs(mb * 2.0 ** e - xb).sum())
        den += float(np.abs(xb).sum())
    return QuantGroup(m, e, clipped, num / max(den, 1e-30), MIXED if is_mixed else 0)


# ---------------------------------------------------------------- delays
def split_delays(g, ops, src_shape, dt):
    """Leading Delay nodes of a chain (right after the source population: one delay per source neuron) of
    graph ``g`` as integer steps per source neuron, and the remaining ops.  A Delay elsewhere in a chain is
    refused."""
    d = None
    n_in = int(np.prod(src_shape))
    i = 0
    while i < len(ops) and primitive_of(g.nodes[ops[i]], ops[i]) == "Delay":
        name = ops[i]
        steps = np.asarray(as_float(g.nodes[name].delay), dtype=np.float64) / dt
        k = np.rint(steps)
        if np.any(np.abs(steps - k) > 1e-3) or np.any(k < 0):
            raise UnsupportedError(f"node '{name}': Delay field delay must be a non-negative multiple of dt "
                                   f"({dt:g} s) to be lowered to Loihi 2")
        k = np.broadcast_to(k, src_shape).reshape(-1).astype(np.int64) if k.size in (1, n_in) else None
        if k is None:
            raise UnsupportedError(f"node '{name}': Delay field delay has {np.size(steps)} values for "
                                   f"{n_in} inputs")
        d = k if d is None else d + k
        i += 1
    for name in ops[i:]:
        if primitive_of(g.nodes[name], name) == "Delay":
            raise UnsupportedError(f"node '{name}': a Delay after a linear node cannot be lowered to Loihi 2 "
                                   "(Loihi 2 delays are per synapse: put the Delay right after a neuron)")
    if d is not None and not np.any(d):
        d = None
    return d, ops[i:]


def with_delays(grp: Group, d, dst) -> Group:
    """``grp`` with per-source-neuron delays ``d``: dense weights get a dense delay matrix, conv groups become
    sparse (Lava's Conv has no delays), sparse groups get CSR delays of the same structure."""
    kind, w, native = grp.kind, grp.weights, grp.native
    if kind == "relay":
        raise UnsupportedError(f"node '{dst}': a Delay before a pooled readout cannot be lowered to Loihi 2")
    if kind == "conv":
        w = conv_to_sparse(w, native.view, native.stride, native.padding, native.dilation, native.groups,
                           dtype=np.float64)
        kind, native = "sparse", None
    if kind == "sparse":
        w = sp.csr_matrix(w)
        w.sort_indices()
        dm = sp.csr_matrix((d[w.indices].astype(np.int64), w.indices.copy(), w.indptr.copy()), shape=w.shape)
        return dataclasses.replace(grp, kind=kind, weights=w, native=native, delays=as_sparse(dm))
    return dataclasses.replace(grp, kind=kind, weights=w, native=native,
                               delays=np.broadcast_to(d[None, :], w.shape).copy())


# ---------------------------------------------------------------- scales
def attention_scale(spec, rowgain, dst) -> tuple[int, int]:
    """``(S, m)`` of the LIF an attention op feeds: the attention weight m (a power of two, the largest that
    keeps the product payload and the threshold in range) and ``S = m / (scale * r / k)``, an integer so that
    the product needs no rounding."""
    dh = spec.dim // spec.heads
    ymax = dh * spec.tokens
    m = 1
    while m < 64 and 2 * m * ymax * 64 < (1 << 22) and 2 * m / (spec.scale * rowgain.max()) <= VTH_MAX:
        m *= 2
    if not np.allclose(rowgain, rowgain[0]):
        raise UnsupportedError(f"node '{dst}': per-neuron gain after attention")
    S = m / (spec.scale * rowgain[0])
    if abs(S - round(S)) > 1e-9:
        raise UnsupportedError(f"node '{dst}': attention scale {spec.scale} gives a non-integer scale")
    return int(round(S)), m


def population_scale(chip, enc, bias, n, *, du, dv, readout, T, input_range, v0=None):
    """The largest scale S of a population with float groups ``chip`` (on chip) and ``enc`` (host-encoded),
    bias ``bias`` (threshold units): mantissas within 8 bits, worst-case |u| and |v| within 24 bits (u sums an
    input over 4096 / (du + 1) steps; a readout's v over T steps, dv 0, or 4096 / dv steps), the bias (and the
    host-encoded input) within 13-bit mantissas with exponent <= 7, the initial v ``v0`` within 24 bits.  An
    integer in 1..VTH_MAX for spiking populations, a float for readouts."""
    # a group out of a graded source (payload = value x payload_scale) is quantized at S / payload_scale
    mx = max([absmax(g.weights) / (g.payload_scale or 1.0) for g in chip] + [1e-12])
    # mixed-sign mantissas are even, at most 254; one-sign groups (split_signs) reach 255
    S = (255.0 if any(g.suffix for g in chip) and not any(mixed(g.weights) for g in chip) else 254.0) / mx
    row = np.abs(bias).copy()
    for g in chip:
        row += row_abs_sum(g.kind, g.weights, n) * (g.native.positions if isinstance(g.native, PooledRelay) else 1) \
            * g.in_bound
    for g in enc:
        lo, hi = input_range
        row += row_abs_sum(g.kind, g.weights, n) * max(abs(lo), abs(hi))
    rmax = float(row.max()) if row.size else 0.0
    if rmax > 0:
        mem = 4096.0 / (du + 1)
        if readout:
            mem *= (4096.0 / dv) if dv else (T or 1)
        S = min(S, UV_LIMIT / (64.0 * rmax * mem))
    if enc or np.any(bias):
        S = min(S, BIAS_MANT * 128 / (64.0 * max(rmax if enc else float(np.abs(bias).max()), 1e-12)))
    if v0 is not None:
        S = min(S, UV_LIMIT / (64.0 * float(np.abs(v0).max())))
    if not readout:
        S = min(max(1, int(math.floor(S))), VTH_MAX)
    return S


# ---------------------------------------------------------------- integers
def stream_conv_weight(m: int, e: int, shape) -> int:
    """The one weight of a stream group read as a depthwise 1x1 conv (graded), or 0 where it stays a Sparse.

    A one-to-one group costs one input axon and one SynMem unit per neuron of a core; a depthwise 1x1 conv costs one
    synapse list per channel and its input arrives on a few population axons (the compiler's conv path,
    hardware_profiles/loihi2.toml [synapse_accounting]), so every population with positions (C, H, W), H W > 1, reads
    its stream value as a conv.  Lava's Conv ignores weight_exp: only a left shift that keeps the weight within 8 bits
    folds into the weight (m 2^e <= 255); a right shift (it floors) stays a Sparse."""
    if shape is None or e < 0:
        return 0
    s3 = tuple(pop_shape(shape))
    w = int(m) << int(e)
    return w if len(s3) == 3 and s3[1] * s3[2] > 1 and w <= 255 else 0


def make_synapses(name, chip, S, n, source_of, view_of, shape=None):
    """The integer synapse groups into population ``name`` at scale ``S`` and their report entries:
    ``(synapses, report groups, clipped weights)``.  ``source_of(term)``: the population a term reads;
    ``view_of(term)``: its population shape (a conv group keeps ``src_view`` only when it reads another view)."""
    syns, report, clipped_all = [], [], 0
    for g in chip:
        t = g.term
        if g.kind == "stream":
            # a stream value read one-to-one (graded; the scales are chosen so that the payload is this
            # population's input exactly (weight 1), or, relay from relay, times m 2^weight_exp (g.weights =
            # (m, relative error of m 2^e against S / S_parent)): a left shift is exact, a right shift floors once)
            m, err = g.weights or (1, 0.0)
            sname = f"{name}<-{t.src}"
            w1 = stream_conv_weight(m, g.weight_exp, shape)
            if w1:
                C = pop_shape(shape)[0]
                syns.append(Synapse(sname, t.src, name, "conv", np.full((C, 1, 1, 1), w1, dtype=np.int64),
                                    groups=C, sign_mode=EXCITATORY, graded=True,
                                    source=f"residual stream value {t.src}"))
                report.append({"synapse": sname, "source": t.src, "weight_exp": g.weight_exp,
                               "rel_error": float(err), "clipped": 0})
                continue
            syns.append(Synapse(sname, t.src, name, "sparse", identity_csr(n) * int(m), weight_exp=g.weight_exp,
                                sign_mode=EXCITATORY, graded=True, source=f"residual stream value {t.src}"))
            report.append({"synapse": sname, "source": t.src, "weight_exp": g.weight_exp, "rel_error": float(err),
                           "clipped": 0})
            continue
        w = g.weights
        if g.payload_scale:             # graded source: its payload is the value x payload_scale
            S_g = S / g.payload_scale
            if g.kind == "sparse":
                q = quant_group(w.data * S_g, conv=False)
                q.mant = sp.csr_matrix((q.mant, w.indices, w.indptr), shape=w.shape)
            else:
                q = quant_group(np.asarray(w) * S_g, conv=False)
        elif g.kind == "sparse":
            q = quant_group(w.data * S, conv=False)
            q.mant = sp.csr_matrix((q.mant, w.indices, w.indptr), shape=w.shape)
        elif g.kind == "dense" and w.size > 1 << 22:
            w *= S              # in place: large dense groups are not needed in float afterwards
            q = quant_group(w, conv=False)
        else:
            q = quant_group(w * S, conv=(g.kind == "conv"))
        clipped_all += q.clipped
        src = source_of(t)
        sname = (f"{name}<-{t.src}" if len(chip) > 1 else f"{name}.syn") + g.suffix
        src_desc = "/".join(t.ops) or t.src
        if g.kind == "conv":
            c = g.native
            pshape = tuple(view_of(t))
            syns.append(Synapse(sname, src, name, "conv", q.mant, stride=c.stride, padding=c.padding,
                                dilation=c.dilation, groups=c.groups, sign_mode=q.sign_mode, source=src_desc,
                                src_view=() if tuple(c.view) == pshape else tuple(c.view)))
        else:
            syns.append(Synapse(sname, src, name, g.kind, q.mant, weight_exp=q.exp, sign_mode=q.sign_mode,
                                source=src_desc, graded=isinstance(g.native, PooledRelay) or bool(g.payload_scale),
                                delays=g.delays))
        report.append({"synapse": sname, "source": src_desc, "weight_exp": q.exp, "rel_error": q.rel_error,
                       "clipped": q.clipped})
    return syns, report, clipped_all


def bias_registers(bias_v, bound, bias_exp_min, shape):
    """Bias mantissas (13 bits, clipped) and one exponent (>= ``bias_exp_min``, <= 7) for the bias ``bias_v`` in
    raw v units whose largest magnitude, host-encoded input included, is ``bound``: ``(mant, exp, clipped)``."""
    bexp = int(bias_exp_min)
    while bound / (1 << bexp) > BIAS_MANT and bexp < BIAS_EXP_MAX:
        bexp += 1
    bm = np.round(bias_v / (1 << bexp))
    cb = int(((bm > BIAS_MANT) | (bm < -BIAS_MANT - 1)).sum())
    bm = np.clip(bm, -BIAS_MANT - 1, BIAS_MANT).astype(np.int64).reshape(pop_shape(shape))
    return bm, bexp, cb


def host_encoder(grp: Group, dst, in_shape, input_range, S, n, bias_v) -> tuple[Group, float]:
    """The one host-encoded term of a population reading a real-valued input (a conv, or a dense matrix of at
    most 2**26 entries) and the bound of its bias-plus-encoded input in raw v units."""
    if grp.kind == "conv" and len(in_shape) == 2:  # the host encoder runs conv2d only (issue 13)
        raise UnsupportedError(f"node '{grp.term.ops[0] if grp.term.ops else dst}': a Conv1d reading a real-valued "
                               "input cannot be lowered to Loihi 2 yet (declare the input binary or counts)")
    lo, hi = input_range
    xin = max(abs(lo), abs(hi))
    if grp.kind == "sparse":
        if grp.weights.shape[0] * grp.weights.shape[1] > 1 << 26:
            raise UnsupportedError(f"node '{dst}': the input chain {grp.term.ops} is neither one conv nor "
                                   "small enough for a dense host-side encoder")
        grp = Group("dense", grp.weights.toarray(), None, grp.term)
    wabs = row_abs_sum(grp.kind, grp.weights, n)
    return grp, float(np.max(wabs * xin * S * 64.0 + np.abs(bias_v)))


def encoder_record(grp: Group, name, inp, in_shape, rowgain, bias, gain) -> Encoder:
    """The :class:`~neurodeploy.lower.network.Encoder` that runs ``grp`` on the host once per sample."""
    conv = grp.kind == "conv"
    c: ConvOp | None = grp.native if conv else None
    return Encoder(name=name, node=grp.term.ops[0] if grp.term.ops else inp, kind=grp.kind,
                   weights=(c.weight * 1.0 if conv else grp.weights).astype(np.float64),
                   row_gain=(rowgain.reshape(c.weight.shape[0], -1)[:, 0] if conv else np.ones(1)),
                   bias=bias.reshape(-1), gain=gain,
                   stride=c.stride if conv else (1, 1), padding=c.padding if conv else (0, 0),
                   dilation=c.dilation if conv else (1, 1), groups=c.groups if conv else 1,
                   input_shape=tuple(c.view) if conv else tuple(in_shape),
                   pool=pool_fields(grp.host_pool) if grp.host_pool is not None else ())


def pool_fields(spec) -> tuple:
    """The :class:`Encoder` ``pool`` of a max-pool spec: (kernel h, w, stride h, w, padding h, w)."""
    return tuple(int(v) for v in tuple(spec.kernel) + tuple(spec.stride) + tuple(spec.padding))

