"""Our engine's synapse groups and attention ops (used by :class:`neurodeploy.sim.engine.Engine`): prepared
once per engine (weights in the exact dtype, bounds, layout), then one contribution per step and part.

Lava 0.10.0 semantics (``PyDenseModelBitAcc``, ``PySparseModelBitAcc``, ``PyDelayDenseModelBitAcc``,
``PyDelaySparseModelBitAcc``, ``PyConvModelFixed``): weights clipped to 8 bits by sign mode, then ``8 -
num_weight_bits + mixed`` LSBs dropped, sum over the active inputs (or the product with the graded payload),
then ``<< weight_exp`` (or floor ``>> -weight_exp``), one part per delay value.  Conv: PyTorch correlation
with the PyTorch-layout kernel, no weight_exp, result wrapped to 24 bits.

Every product is an integer summed in a dtype where the sum is provably exact (:func:`sum_dtype`), so the
order of the additions never changes a result: that is what lets a group sum only its active inputs
(:meth:`Group.event_driven`) and give the same integers as the full product.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from ..errors import BadInputError
from ..lower.fixed_point import lava_effective_weights
from ..lower.network import Attention, Synapse, einsum_fan_in
from . import native
from .graded import EinsumGroup, group_bound

M24 = 1 << 23
F32_EXACT = float(1 << 24)      # integers of magnitude <= 2**24 are exact in float32
F64_EXACT = float(1 << 53)

#: sparse groups with at most this many n_out x n_in elements run as dense matrix products (faster for
#: small groups); larger ones as torch sparse CSR products (memory = connections)
SPARSE_DENSE_MAX = 1 << 22

#: event-driven accumulation (the rule, per dense group fed by 0/1 spikes, per step): a group with at least
#: EVENT_MIN_OUT outputs and EVENT_MIN_SIZE weights sums only the weight rows of its active inputs when at
#: most 1/EVENT_RATIO of them are active in the batch.  Measured on one CPU thread: a row gather and sum
#: costs about 3 dense multiply-adds per weight plus ~15 us per call, and a dense product of 2^18 weights
#: takes ~30 us, so below that size the dense product wins at any rate
EVENT_MIN_OUT = 16
EVENT_MIN_SIZE = 1 << 18
EVENT_RATIO = 8


def scalar_weight(s: Synapse) -> int:
    """The effective weight of a one-weight (einsum) synapse group."""
    return int(lava_effective_weights(np.asarray(s.weights).reshape(1, 1), s.sign_mode, s.num_weight_bits)[0, 0])


def shift(x: torch.Tensor, e: int) -> torch.Tensor:
    if e > 0:
        return x << e
    if e < 0:
        return x >> (-e)
    return x


def weight_bound(w) -> float:
    """Largest sum of |weights| feeding one output neuron (the most a spike vector can add)."""
    if sp.issparse(w):
        return float(np.asarray(abs(w).sum(1)).max(initial=0)) if w.shape[0] else 0.0
    w = np.abs(np.asarray(w, dtype=np.float64))
    w = w.reshape(w.shape[0], -1)
    return float(w.sum(1).max(initial=0))


def att_bound(a: Attention) -> float:
    """|weight * Q_h (K_h^T V_h)| on 0/1 spike maps: K^T V entries <= tokens, each output sums dh of them."""
    return float(abs(a.weight)) * (a.dim // a.heads) * a.tokens


@dataclass
class Group:
    syn: Synapse
    parts: list          # [(offset_pipelined, offset_sync, weight tensor)] per delay value
    dtype: torch.dtype   # dtype the products are summed in (exact: see prepare)
    bounded: bool = False   # conv: |result| provably < 2**23 (no 24-bit wrap needed)
    bound: float = float("inf")   # |contribution| per part after shift / wrap (a_in units)
    shape: tuple = ()    # conv: source shape (C, H, W)
    mm1x1: bool = False  # conv 1x1, stride 1, no padding, groups 1: computed as a batched matmul
    dw1x1: bool = False  # depthwise conv 1x1 (groups = channels, one weight each; the stream's reads): x * w[c]
    sparse: bool = False  # weights are a torch sparse CSR tensor (n_out, n_in): y = (W @ x^T)^T
    src_hwc: bool = False   # neuron order of the source / destination inside the engine (Engine._layouts)
    dst_hwc: bool = False
    event_driven: bool = False   # dense [n_in, n_out] weights large enough for the event rule (EVENT_*)
    nat: list = None     # per part, the native event-sum form (NativePart) or None (see native_form)


def sum_dtype(s: Synapse, w, graded: bool, exact32: bool):
    """(the dtype a group's products are summed in exactly, or None beyond float64; the bound on one
    output's contribution after the weight exponent)."""
    raw = float("inf") if graded else weight_bound(w)
    scaled = raw * 2.0 ** s.weight_exp + (1 if s.weight_exp < 0 else 0)
    top = max(raw, scaled)
    if top < F32_EXACT and exact32:
        return torch.float32, scaled
    if top < F64_EXACT or graded:
        return torch.float64, scaled
    return None, scaled


def prepare(eng, s: Synapse) -> Group:
    """One synapse group of ``eng`` (an Engine: its device, exact32, pops, hwc, gbound, _perm)."""
    dev = eng.device
    if s.kind == "identity":
        return Group(s, [(0, 0, None)], torch.int64)
    if s.kind == "einsum":
        b = eng.gbound[s.src]
        bound = group_bound(s, scalar_weight(s), b)
        top = max(bound, b * einsum_fan_in(s), b)
        dtype = torch.float32 if (top < F32_EXACT and eng.exact32) else torch.float64
        op = EinsumGroup(s, eng.pops[s.src].size, scalar_weight(s), dtype)
        return Group(s, [(1 + s.balance_delay, 0, op)], dtype, bound=bound)
    src = eng.pops[s.src]
    graded = s.graded or (src.kind == "input" and src.input_kind == "graded")
    if s.kind == "conv":
        w = np.asarray(s.weights).astype(np.int64)
        bound = weight_bound(w)
        dtype = torch.float32 if (not graded and bound < F32_EXACT and eng.exact32) else torch.float64
        bounded = not graded and bound < M24
        mm1x1 = (tuple(w.shape[2:]) == (1, 1) and tuple(s.stride) == (1, 1) and tuple(s.padding) == (0, 0)
                 and s.groups == 1)
        view = tuple(s.src_view) if s.src_view else tuple(src.shape)
        src_hwc, dst_hwc = eng.hwc[s.src], eng.hwc[s.dst]
        wt = torch.as_tensor(w, dtype=dtype, device=dev)
        dw1x1 = (tuple(w.shape[1:]) == (1, 1, 1) and s.groups == w.shape[0] > 1 and tuple(s.stride) == (1, 1)
                 and tuple(s.padding) == (0, 0))
        if dw1x1:
            wt = wt.reshape(w.shape[0]).contiguous()
        elif mm1x1:
            wt = wt.reshape(w.shape[0], w.shape[1]).contiguous()
        elif src_hwc:
            wt = wt.contiguous(memory_format=torch.channels_last)
        parts = [(1 + s.balance_delay, 0, wt)]
        return Group(s, parts, dtype, bounded=bounded, bound=bound if bounded else float(M24),
                     shape=view, mm1x1=mm1x1, dw1x1=dw1x1, src_hwc=src_hwc, dst_hwc=dst_hwc)
    w = lava_effective_weights(s.weights, s.sign_mode, s.num_weight_bits)
    if sp.issparse(w):
        if w.shape[0] * w.shape[1] > SPARSE_DENSE_MAX:
            return _prepare_sparse(eng, s, w, graded)
        w = w.toarray()
    d_all = None if s.delays is None else (
        s.delays.toarray() if sp.issparse(s.delays) else np.broadcast_to(np.asarray(s.delays), w.shape))
    w, d_all = _permuted(eng, s, w, d_all)
    dtype, scaled = sum_dtype(s, w, graded, eng.exact32)
    dtype = dtype or torch.int64
    parts = []
    if s.delays is None:
        parts.append((1 + s.balance_delay, 0, torch.as_tensor(w.T.copy(), dtype=dtype, device=dev)))
    else:
        for k in np.unique(d_all):
            wk = np.where(d_all == k, w, 0)
            parts.append((1 + int(k) + s.balance_delay, int(k),
                          torch.as_tensor(wk.T.copy(), dtype=dtype, device=dev)))
    n_out, n_in = w.shape
    # 0/1 spike sources only: their sums are proven exact in ``dtype`` (a graded payload's float64 sum is not)
    binary = not graded and (src.kind in ("lif", "readout") or (src.kind == "input" and src.input_kind == "spikes"))
    event = binary and n_out >= EVENT_MIN_OUT and n_out * n_in >= EVENT_MIN_SIZE
    return Group(s, parts, dtype, bound=scaled, event_driven=event)


#: native event sums (neurodeploy.sim.native, CPU): a scattered float32 add costs about this many dense
#: multiply-adds of torch's convolution / matrix product (measured on one thread, Co = 24..100 outputs per
#: input); a group sums over the listed inputs (the spikes, or the silent inputs subtracted from the sum
#: over all inputs when most spiked) when that list times its work per input, times this, is below the
#: dense work.  The rule picks per step by the count the LIF step returns, so no host sync is needed.
NATIVE_EVENT_COST = 4.0


@dataclass
class NativePart:
    w: torch.Tensor         # weight rows laid out by row_layout (contiguous float32): conv [C_in KH KW, ld(C_out)];
                            # dense [n_in, ld(n_out)]
    ones: torch.Tensor      # the sum over all inputs at 1 ([n_dst]: what the silent inputs are taken from)
    tables: tuple           # conv: (pos, tstart, tout, tw) int32 arrays (see native.c); dense: ()
    n_in: int
    n_out: int
    max_events: float       # per sample: the most listed inputs for which the event sum pays (the rule above)
    conv: tuple = ()        # conv: (C_in, floats of weights per input channel, C_out)


def row_ld(n: int) -> int:
    """Floats per weight row of ``n`` outputs in native.c's layout (:func:`row_layout`)."""
    return n if n < 16 or n % 16 == 0 else 16 * (n // 16 + 1)


def row_layout(w: np.ndarray) -> torch.Tensor:
    """Weight rows [rows, n] in native.c's layout [rows, row_ld(n)] (float32): for n < 16 or a multiple of
    16 as they are; else the first 16 * (n // 16) weights, then those of the last 16 outputs with the lanes
    already covered set to 0, so the kernel adds whole 16-float vectors only (the last one overlapping the
    one before it adds 0 there)."""
    w = np.asarray(w, dtype=np.float64)
    rows, n = w.shape
    if row_ld(n) == n:
        return torch.as_tensor(np.ascontiguousarray(w), dtype=torch.float32)
    f = 16 * (n // 16)
    tail = np.zeros((rows, 16))
    tail[:, 16 - (n - f):] = w[:, f:]
    return torch.as_tensor(np.concatenate([w[:, :f], tail], 1), dtype=torch.float32).contiguous()


def _conv_tables(c, h, wd, co, kh, kw, ho, wo, stride, padding, dilation):
    """Per input (h, w, c) in channels-last order: its position; per position, the kernel taps that reach
    an output (output offset, weight offset in rows of row_ld(co) floats), as native.c's conv expects."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ld = row_ld(co)
    pos = (np.arange(h * wd * c) // c).astype(np.int32)
    tstart, tout, tw = [0], [], []
    for y in range(h):
        for x in range(wd):
            for i in range(kh):
                oy, ry = divmod(y + ph - i * dh, sh)
                if ry or not 0 <= oy < ho:
                    continue
                for j in range(kw):
                    ox, rx = divmod(x + pw - j * dw, sw)
                    if rx or not 0 <= ox < wo:
                        continue
                    tout.append((oy * wo + ox) * co)
                    tw.append((i * kw + j) * ld)
            tstart.append(len(tout))
    return tuple(np.asarray(a, dtype=np.int32) for a in (pos, tstart, tout, tw))


def conv_rows(w: np.ndarray) -> torch.Tensor:
    """A conv kernel [C_out, C_in, KH, KW] as native.c's weight rows: [C_in KH KW, row_ld(C_out)]."""
    co, c, kh, kw = w.shape
    return row_layout(np.asarray(w).transpose(1, 2, 3, 0).reshape(c * kh * kw, co))


def native_form(eng, g: Group) -> list | None:
    """The native event-sum form of each part of ``g``, or None: for float32 sums of 0/1 spikes from a
    LIF population into a float32 ring, conv (groups 1, channels-last on both sides, no 24-bit wrap
    possible) and dense groups.  Exact: every partial sum is a sum over a subset of one output's products,
    bounded by the group's proven bound (< 2**24), so any order of additions gives the same integers."""
    s = g.syn
    src = eng.pops[s.src]
    if eng.device.type != "cpu" or not eng.native or g.dtype != torch.float32 or s.graded \
            or src.kind not in ("lif", "readout") or not eng.safe.get(s.src) \
            or eng.ring_dtype.get(s.dst) != torch.float32:
        return None
    if s.kind == "conv":
        if not (g.bounded and s.groups == 1 and g.src_hwc and g.dst_hwc and tuple(g.shape) == tuple(src.shape)):
            return None
        w = np.asarray(s.weights).astype(np.float64)            # [Co, C, KH, KW]
        c, h, wd = g.shape
        co, _, kh, kw = w.shape
        ones = F.conv2d(torch.ones(1, c, h, wd, dtype=torch.float64), torch.as_tensor(w), stride=tuple(s.stride),
                        padding=tuple(s.padding), dilation=tuple(s.dilation))
        ho, wo = ones.shape[2:]
        tables = _conv_tables(c, h, wd, co, kh, kw, ho, wo, tuple(s.stride), tuple(s.padding), tuple(s.dilation))
        # work per listed input: its taps x Co adds; dense work per sample: Ho Wo Co x C KH KW
        per_event = max(len(tables[2]) / (h * wd), 1e-9) * co
        dense = ho * wo * co * c * kh * kw
        return [NativePart(conv_rows(w), ones[0].permute(1, 2, 0).reshape(-1).to(torch.float32).contiguous(),
                           tables, c * h * wd, ho * wo * co, _most(dense / per_event),
                           (c, kh * kw * row_ld(co), co))]
    if s.kind != "dense" or g.sparse:
        return None
    parts = []
    for _, _, w in g.parts:
        n_in, n_out = w.shape
        parts.append(NativePart(row_layout(w.numpy()), w.to(torch.float64).sum(0).to(torch.float32), (), n_in,
                                n_out, _most(n_in)))
    return parts


def _most(work_ratio: float) -> float:
    return work_ratio / NATIVE_EVENT_COST if NATIVE_EVENT_COST > 0 else float("inf")


class NativeSum:
    """One part's native event sum bound to one run: the lists of its source model ``m`` (``idx`` /
    ``cnt``; per row its spikes, or its silent inputs taken from the sum over all inputs) into the
    destination's ring.  Every argument but the output is converted to ctypes once (:func:`native.raw`).
    ``pool`` (or None): the destination's preallocated [B, n_dst] tensor per ring slot, taken when the
    slot is empty (free again once the destination has read it: a native LIF step keeps no reference to
    its input)."""

    def __init__(self, g: Group, part: NativePart, m, ring: list, pool, e: int = 0):
        c = ctypes
        B = m.B
        self.g, self.part, self.src, self.ring, self.pool, self.B = g, part, m, ring, pool, B
        self.cnt = m.cnt
        self.limit = part.max_events * B
        self.y = c.c_void_p(0)
        self.head = [self.y, c.c_void_p(part.w.data_ptr()), c.c_void_p(part.ones.data_ptr()),
                     c.c_void_p(m.iptr[0]), c.c_void_p(m.iptr[1]), c.c_int64(B), c.c_int64(part.n_in),
                     c.c_int64(part.n_out)]
        if part.tables:
            self.fn = native.raw("nd_conv_events_f32")
            self.keep = part.tables
            cin, kco, co = part.conv
            self.tail = [c.c_int64(cin), c.c_int64(kco)] + [c.c_void_p(a.ctypes.data) for a in part.tables] + \
                [c.c_int64(co)]
        else:
            self.fn = native.raw("nd_rows_events_f32")
            self.tmp = torch.empty(part.n_out, dtype=torch.float32) if e else None
            self.tail = [c.c_float(2.0 ** e), c.c_void_p(0 if self.tmp is None else self.tmp.data_ptr())]
        self.args = {init: tuple(self.head + ([c.c_int(init)] + self.tail if not part.tables
                                              else self.tail + [c.c_int(init)])) for init in (0, 1)}

    def __call__(self, k: int) -> bool:
        """Adds the sum into ``ring[k]`` (created when None); False (nothing done) when the rule
        (:data:`NATIVE_EVENT_COST`) says the dense product pays."""
        if self.cnt[self.B] > self.limit:
            return False
        ring = self.ring
        y = ring[k]
        init = y is None
        if init:
            y = self.pool[k] if self.pool is not None else torch.empty(self.B, self.part.n_out, dtype=torch.float32)
            ring[k] = y
        elif not y.is_contiguous():
            y = ring[k] = y.contiguous()
        self.y.value = y.data_ptr()
        self.fn(*self.args[init])
        return True


def _permuted(eng, s: Synapse, w, d):
    """Weights (and their delays, or None) in the engine's neuron order of the source and destination
    populations (numpy arrays and scipy CSR index alike)."""
    pin, pout = eng._perm(s.src), eng._perm(s.dst)
    if pin is not None:
        w, d = w[:, pin], (None if d is None else d[:, pin])
    if pout is not None:
        w, d = w[pout], (None if d is None else d[pout])
    return w, d


def _prepare_sparse(eng, s: Synapse, w, graded: bool) -> Group:
    """A large sparse group as torch CSR tensors (one per delay value): memory = connections."""
    dev = eng.device
    w = sp.csr_matrix(w)
    d = None
    if s.delays is not None:
        # the delay of every stored weight (a delay missing from the sparse delays is 0)
        d = sp.csr_matrix((w != 0).astype(np.int64).multiply(sp.csr_matrix(s.delays)))
    w, d = _permuted(eng, s, w, d)
    dtype, scaled = sum_dtype(s, w, graded, eng.exact32)
    if dtype is None:
        raise BadInputError(f"synapse '{s.name}': sums beyond 2**53 in a large sparse group")

    def csr(m):
        m = sp.csr_matrix(m)
        m.sort_indices()
        import warnings
        with warnings.catch_warnings():     # "sparse CSR support is in beta": the products are exact
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(torch.as_tensor(m.indptr.astype(np.int64)),
                                           torch.as_tensor(m.indices.astype(np.int64)),
                                           torch.as_tensor(m.data, dtype=dtype), size=m.shape, device=dev,
                                           check_invariants=False)
    parts = []
    if d is None or d.nnz == 0:
        parts.append((1 + s.balance_delay, 0, csr(w)))
    else:
        rest = w.copy()
        for k in np.unique(d.data):
            mask = d.copy()
            mask.data = (mask.data == k).astype(np.int64)
            wk = w.multiply(mask)
            rest = rest - wk
            parts.append((1 + int(k) + s.balance_delay, int(k), csr(wk)))
        rest.eliminate_zeros()
        if rest.nnz:
            parts.insert(0, (1 + s.balance_delay, 0, csr(rest)))
    return Group(s, parts, dtype, bound=scaled, sparse=True)


def active_inputs(x: torch.Tensor):
    """Indices of the inputs active in any sample of the batch, when few enough for the event rule
    (at most 1 / EVENT_RATIO of them), else None."""
    act = x[0] if x.shape[0] == 1 else x.any(0)
    cols = act.nonzero().squeeze(1)
    return cols if cols.numel() * EVENT_RATIO <= x.shape[1] else None


def contrib(g: Group, x: torch.Tensor, w, cols=None) -> torch.Tensor:
    """One part's contribution to the destination's a_in (a new tensor; integers in a float dtype, or
    int64).  ``cols``: the active inputs (:func:`active_inputs`) of an event-driven group: only their
    weight rows are summed (exact integers in any order: the same result)."""
    s = g.syn
    kind = s.kind
    if kind == "identity":
        return x.clone()
    if kind == "einsum":
        return w(x)
    B = x.shape[0]
    if kind == "conv":
        xin = x.to(g.dtype)
        c, h, wd = g.shape
        if g.dw1x1:                  # one weight per channel: a broadcast product, the conv's exact integers
            if g.src_hwc:
                y = xin.reshape(B, h * wd, c) * w
                y = (y if g.dst_hwc else y.transpose(1, 2)).reshape(B, -1)
            else:
                y = xin.reshape(B, c, h * wd) * w[:, None]
                y = (y.transpose(1, 2) if g.dst_hwc else y).reshape(B, -1)
        elif g.mm1x1:
            xm = xin.reshape(B, h * wd, c).transpose(1, 2) if g.src_hwc else xin.reshape(B, c, h * wd)
            if g.dst_hwc:            # [B, HW, C_out]
                y = torch.matmul(xm.transpose(1, 2), w.T).reshape(B, -1)
            else:                    # [B, C_out, HW]
                y = torch.matmul(w, xm).reshape(B, -1)
        else:
            xin = xin.reshape(B, h, wd, c).permute(0, 3, 1, 2) if g.src_hwc else xin.reshape(B, c, h, wd)
            y = F.conv2d(xin, w, stride=tuple(s.stride), padding=tuple(s.padding),
                         dilation=tuple(s.dilation), groups=s.groups)
            y = y.permute(0, 2, 3, 1).reshape(B, -1) if g.dst_hwc else y.reshape(B, -1)
        if g.bounded:          # exact integers below 2**23: no rounding, no wrap
            return y
        y = y.round_()
        return y.sub_(torch.floor((y + M24) * (1.0 / (1 << 24))).mul_(float(1 << 24)))
    e = int(s.weight_exp)
    if cols is not None:
        if B == 1:          # 0/1 spikes of one sample: the sum of the active inputs' weight rows
            return shift(w.index_select(0, cols).sum(0, keepdim=True), e) if g.dtype == torch.int64 else \
                _exp(w.index_select(0, cols).sum(0, keepdim=True), e)
        x, w = x[:, cols], w[cols]
    if g.dtype == torch.int64:
        return shift(x.to(torch.int64) @ w, e)
    y = torch.sparse.mm(w, x.to(g.dtype).T).T.contiguous() if g.sparse else x.to(g.dtype) @ w
    return _exp(y, e)


def _exp(y: torch.Tensor, e: int) -> torch.Tensor:
    """``<< e`` or floor ``>> -e`` of exact integers held in a float dtype (in place)."""
    if e < 0:
        return y.mul_(2.0 ** e).floor_()
    if e > 0:
        return y.mul_(float(1 << e))
    return y


def attention(a: Attention, q, k, v, dtype, exact32: bool) -> torch.Tensor:
    """weight * Q_h (K_h^T V_h) per head on spike maps [B, D*N] (linear attention without softmax)."""
    B = q.shape[0]
    dh = a.dim // a.heads
    shp = (B, a.heads, dh, a.tokens)
    dt = torch.float32 if (a.tokens * a.tokens * dh < (1 << 24) and exact32) else torch.float64
    qh, kh, vh = (t.to(dt).reshape(shp) for t in (q, k, v))
    ktv = kh @ vh.transpose(-1, -2)                      # [B, H, dh(k), dh(v)]
    y = qh.transpose(-1, -2) @ ktv                       # [B, H, N, dh]
    y = y.transpose(-1, -2).reshape(B, -1)               # [B, D*N] in [D, N] order
    if dtype == torch.int64:
        return y.round().to(torch.int64) * int(a.weight)
    return y.to(dtype).mul_(float(a.weight))
