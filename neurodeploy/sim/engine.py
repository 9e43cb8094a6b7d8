"""Our Loihi 2 fixed-point engine: one engine for the lowered network, bit-exact with Lava ``fixed_pt``.

Semantics (lava-nc 0.10.0 ``PyLifModelBitAcc`` / ``PyLifResetModelBitAcc``, ``PyDenseModelBitAcc``,
``PySparseModelBitAcc``, ``PyDelayDenseModelBitAcc``, ``PyDelaySparseModelBitAcc``, ``PyConvModelFixed``):

* CUBA LIF, per step t (counted from 1): optional reset (``t % reset_interval == reset_offset``),
  ``u = trunc0(u * (4096 - (du + 1)) / 4096) + (a_in << 6)`` held in int32 then wrapped once into 24 bits
  (``> 2**23`` subtracts ``2**24``, ``<= -2**23`` adds it), ``v = trunc0(v * (4096 - dv) / 4096) + u +
  (bias_mant << bias_exp)`` saturated to +-(2**23 - 1), spike iff ``v > vth << 6``, then v := 0.
  ``trunc0`` rounds toward zero.  v starts at the population's ``v_init`` (0 unless v_reset != 0) and the
  periodic reset sets u := 0, v := v_init (Lava: ``LIF(v=...)``, ``neurodeploy.lava.processes.lif_reset``).
* Dense / Sparse / DelayDense / DelaySparse: weights clipped to 8 bits by sign mode, then
  ``8 - num_weight_bits + mixed`` LSBs dropped (arithmetic shift), sum over the active inputs (or the
  product with the graded payload), then ``<< weight_exp`` (or floor ``>> -weight_exp``), per delay value.
* Conv: PyTorch correlation with the PyTorch-layout kernel (= Lava's true convolution with the flipped
  Lava-layout kernel), no weight_exp, result wrapped to 24 bits.
* Every synapse group and attention op delivers one step later (``pipelined=True``, Lava) plus its
  delays; ``pipelined=False`` is the layer-synchronous model (same step, balance delays ignored).

Tensors live on ``device``; vectorised over neurons and over a batch of samples.  Every number is an
integer held exactly: products are summed in float32 where the sum is provably below 2**24 (CPU only;
GPUs may use TF32), else float64 (exact below 2**53); LIF state is float32 or float64 where bounds prove
it exact (see ``Engine``), else int64 with the reference update :func:`lif_step`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BadInputError, UnsupportedError
from ..lower.fixed_point import lava_effective_weights, lava_sign_mode  # noqa: F401 - re-exported
from ..lower.network import Attention, LoweredNetwork, Synapse, MIXED, EXCITATORY, INHIBITORY
import scipy.sparse as sp
from ..lower.network import GRADED_KINDS, einsum_fan_in
from .graded import EinsumGroup, graded_step, group_bound, value_bounds

_M24 = 1 << 23
_V_LIM = (1 << 23) - 1


def _scalar_weight(s: Synapse) -> int:
    """The effective weight of a one-weight (einsum) synapse group."""
    return int(lava_effective_weights(np.asarray(s.weights).reshape(1, 1), s.sign_mode, s.num_weight_bits)[0, 0])


def _shift(x: torch.Tensor, e: int) -> torch.Tensor:
    if e > 0:
        return x << e
    if e < 0:
        return x >> (-e)
    return x


def _wrap32(x: torch.Tensor) -> torch.Tensor:
    return torch.remainder(x + (1 << 31), 1 << 32) - (1 << 31)


def _trunc_decay(x: torch.Tensor, factor: int) -> torch.Tensor:
    """x * factor / 4096 rounded toward zero (Lava: sign(p) * (|p| >> 12)); for p < 0 that is
    (p + 4095) >> 12."""
    p = x * factor
    return torch.where(p < 0, p + 4095, p) >> 12


def lif_step(u, v, a_in, du, dv, vth, bias, safe=False):
    """One fixed-point CUBA LIF step on int64 tensors (Lava PyLifModelBitAcc); returns u, v, spikes.
    ``safe``: the caller guarantees |u_decayed + (a_in << 6)| <= 2**23, so the int32 and 24-bit
    wrap-arounds cannot trigger (the result is the same; only the work is skipped)."""
    act = a_in << 6
    if du + 1 == 4096:
        u = act if safe else _wrap32(act)
    elif du + 1 == 0:
        u = u + act if safe else _wrap32(u + _wrap32(act))
    else:
        u = _trunc_decay(u, 4096 - (du + 1)) + act if safe else \
            _wrap32(_wrap32(_trunc_decay(u, 4096 - (du + 1))) + _wrap32(act))
    if not safe:
        u = torch.where(u > _M24, u - 2 * _M24, torch.where(u <= -_M24, u + 2 * _M24, u))
    if dv == 0:
        v = v + u
    elif dv == 4096:
        v = u.clone()
    else:
        v = _trunc_decay(v, 4096 - dv) + u
    if not (isinstance(bias, int) and bias == 0):
        v = v + bias
    v = v.clamp_(-_V_LIM, _V_LIM)
    s = v > (vth << 6)
    v = v.masked_fill_(s, 0)
    return u, v, s


_SKIP_CHECK_MAX = 1 << 18       # sources up to this many values (batch x neurons) are checked for silence
_F32_EXACT = float(1 << 24)     # integers of magnitude <= 2**24 are exact in float32
_F64_EXACT = float(1 << 53)


def _odd(f: int) -> int:
    """The odd part of a decay factor (its significant bits: v * f is exact when v * odd(f) is)."""
    f = abs(int(f))
    while f and not f & 1:
        f >>= 1
    return f


def _weight_bound(w) -> float:
    """Largest sum of |weights| feeding one output neuron (the most a spike vector can add)."""
    if sp.issparse(w):
        return float(np.asarray(abs(w).sum(1)).max(initial=0)) if w.shape[0] else 0.0
    w = np.abs(np.asarray(w, dtype=np.float64))
    w = w.reshape(w.shape[0], -1)
    return float(w.sum(1).max(initial=0))


#: sparse groups with at most this many n_out x n_in elements run as dense matrix products (faster for
#: small groups); larger ones as torch sparse CSR products (memory = connections)
_SPARSE_DENSE_MAX = 1 << 22


_COMPILE_MIN = 1 << 15          # compile the LIF update for populations with at least this many values


def _k_v(v, slot, bias, fv, th):
    """Fused fast LIF step, du = 4095 (u = a_in << 6): the integers of :meth:`Engine._lif_fast` (every
    intermediate is an exactly representable integer, so any evaluation order gives the same result;
    clamping where the bound proves it unnecessary changes nothing; dv = 4096 is fv = 0)."""
    x = torch.trunc(v * fv) + slot * 64 + bias
    x = x.clamp(-_V_LIM, _V_LIM)
    spike = x > th
    v.copy_(torch.where(spike, torch.zeros_like(x), x))
    return spike.to(torch.float32)


def _k_uv(u, v, slot, bias, fu, fv, th):
    """Fused fast LIF step with current decay."""
    un = torch.trunc(u * fu) + slot * 64
    x = torch.trunc(v * fv) + un + bias
    x = x.clamp(-_V_LIM, _V_LIM)
    spike = x > th
    u.copy_(un)
    v.copy_(torch.where(spike, torch.zeros_like(x), x))
    return spike.to(torch.float32)


_KERNELS = {}


def _kernel(no_current_memory: bool):
    if no_current_memory not in _KERNELS:
        _KERNELS[no_current_memory] = torch.compile(_k_v if no_current_memory else _k_uv, dynamic=True)
    return _KERNELS[no_current_memory]


@dataclass
class _Group:
    syn: Synapse
    parts: list          # [(offset_pipelined, offset_sync, weight tensor)] per delay value
    dtype: torch.dtype   # dtype the products are summed in (exact: see _prepare)
    bounded: bool = False   # conv: |result| provably < 2**23 (no 24-bit wrap needed)
    bound: float = float("inf")   # |contribution| per part after shift / wrap (a_in units)
    shape: tuple = ()    # conv: source shape (C, H, W)
    mm1x1: bool = False  # conv 1x1, stride 1, no padding, groups 1: computed as a batched matmul
    sparse: bool = False  # weights are a torch sparse CSR tensor (n_out, n_in): y = (W @ x^T)^T
    src_hwc: bool = False   # neuron order of the source / destination inside the engine (see _layouts)
    dst_hwc: bool = False


class Engine:
    """Simulates a :class:`LoweredNetwork` for a batch of samples.

    ``run(inputs, steps)``: ``inputs`` maps each input population name to an array [T, B, *shape] (spikes
    or graded integers, looped like Lava's RingBuffer when steps > T) or, for ``bias`` inputs, [B, *shape]
    (values written to the bias mantissa of the populations naming it in ``bias_input``).
    Returns ``{pop: {"s"|"u"|"v": tensor [steps, B, n]}}`` for the recorded populations.

    Speed (never at the cost of an integer):

    * Everything that does not depend on the time step is prepared once: weights in the exact float
      dtype, bounds, per-population constants, preallocated buffers; the step loop reads a flat plan.
    * Populations whose ``u`` provably stays inside 24 bits (no wrap-around possible; see
      :meth:`_safe_flags`) run the LIF update on float state in a few in-place ops; the bound on ``|v|``
      (fixed point of ``|v| (4096 - dv) / 4096 + |u|max + |bias|max``) decides whether saturation can
      happen and whether float32 is exact (every product ``v * odd part of the decay factor`` and every
      sum below 2**24) or float64 is needed (always exact: < 2**36).  Decay rounds toward zero as
      ``copysign(floor(|x|), x)``; the spike is ``clamp(v - vth*64, 0, 1)`` (integers); reset is
      ``v - v * s``.  The others run the int64 reference update :func:`lif_step`.
    * Synaptic input is summed in float32 when the sum of all incoming groups is provably below 2**24,
      else float64.  3-D populations that only meet conv/dense groups are held channels-last (H, W, C)
      inside the engine (faster CPU convolutions); results are returned in (C, H, W) order.
    * On the CPU a silent source (no spike in the whole batch) skips its synapse work (it adds exactly 0).
    * ``compile=True``: the LIF update of large populations runs as one fused torch.compile kernel
      (falls back to the eager ops if compiling is impossible); the first run pays the compile time.
    * ``threads``: torch intra-op threads during ``run`` (None: leave torch's setting alone); one thread
      is fastest for small batches and on a busy machine.
    """

    _products_f64 = False   # tests: sum every product in float64 as on a GPU

    def __init__(self, net: LoweredNetwork, device: str | torch.device = "cpu", pipelined: bool = True,
                 threads: int | None = None, compile: bool = False, skip_idle: bool = True,
                 skip_silent: bool = True):
        net.validate()
        self.net = net
        self.skip_idle = bool(skip_idle)
        self.skip_silent = bool(skip_silent)
        self.device = torch.device(device)
        self.threads = threads
        self.compile = bool(compile)
        # float32 products are exact integers on the CPU; on GPUs cuDNN/cuBLAS may use TF32 (10-bit
        # mantissa), so there every product is computed in float64
        self.exact32 = self.device.type == "cpu" and not self._products_f64
        self.pipelined = pipelined
        self.order = net.topological_order()
        self.pops = {p.name: p for p in net.populations}
        self.hwc = self._layouts()
        self.out_groups = {n: [] for n in self.pops}
        # graded-spike parts (prod / graded_vec populations, einsum groups): neurodeploy.sim.graded
        self.gbound = value_bounds(net, _scalar_weight) if any(s.kind == "einsum" for s in net.synapses) else {}
        for s in net.synapses:
            self.out_groups[s.src].append(self._prepare(s))
        self.atts = list(net.attention)
        self.ring_len = {n: 1 for n in self.pops}
        for n, groups in self.out_groups.items():
            for g in groups:
                for off_p, off_s, _ in g.parts:
                    # layer-synchronous: a population feeding itself reads the previous step (NIR back edge)
                    off = off_p if pipelined else off_s + int(g.syn.src == g.syn.dst)
                    self.ring_len[g.syn.dst] = max(self.ring_len[g.syn.dst], off + 1)
        for a in self.atts:
            self.ring_len[a.dst] = max(self.ring_len[a.dst], 2)
        self.safe = self._safe_flags()
        # bound of the summed synaptic input a_in per population (every group, every delay part) and
        # the dtype it is accumulated in
        self.in_bound = {n: 0.0 for n in self.pops}
        for groups in self.out_groups.values():
            for g in groups:
                self.in_bound[g.syn.dst] += g.bound * len(g.parts)
        for a in self.atts:
            self.in_bound[a.dst] += self._att_bound(a)
        self.ring_dtype = {}
        for n, b in self.in_bound.items():
            if b < _F32_EXACT and self.exact32:
                self.ring_dtype[n] = torch.float32
            else:
                self.ring_dtype[n] = torch.float64
        self.att_last = {}
        for a in self.atts:
            srcs = {a.q, a.k, a.v}
            self.att_last.setdefault(max(srcs, key=self.order.index), []).append(a)

    def _layouts(self) -> dict:
        """Internal neuron order per population: (H, W, C) ("channels last") for 3-D populations that
        only meet conv/dense synapse groups (and at least one conv): torch's CPU convolutions are faster
        in that layout.  Weights, biases and inputs are permuted once; recordings are given back in the
        network's (C, H, W) order."""
        net = self.net
        hwc = {p.name: len(p.shape) == 3 for p in net.populations}
        conv = set()
        for s in net.synapses:
            if s.kind == "conv":
                conv.update((s.src, s.dst))
            elif s.kind not in ("dense", "sparse"):
                hwc[s.src] = hwc[s.dst] = False
        for a in net.attention:
            for n in (a.q, a.k, a.v, a.dst):
                hwc[n] = False
        return {n: bool(h and n in conv) for n, h in hwc.items()}

    def _perm(self, name: str):
        """Internal position -> network neuron index (None: same order)."""
        if not self.hwc.get(name):
            return None
        c, h, w = self.pops[name].shape
        return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)

    def _to_internal(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """[..., n] in network order -> internal order (a copy when they differ)."""
        if not self.hwc.get(name):
            return x
        c, h, w = self.pops[name].shape
        return x.reshape(x.shape[:-1] + (c, h, w)).movedim(-3, -1).reshape(x.shape[:-1] + (-1,))

    def _to_network(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if not self.hwc.get(name):
            return x
        c, h, w = self.pops[name].shape
        return x.reshape(x.shape[:-1] + (h, w, c)).movedim(-1, -3).reshape(x.shape[:-1] + (-1,))

    @staticmethod
    def _att_bound(a: Attention) -> float:
        """|weight * Q_h (K_h^T V_h)| on 0/1 spike maps: K^T V entries <= tokens, each output sums dh of
        them."""
        return float(abs(a.weight)) * (a.dim // a.heads) * a.tokens

    def _safe_flags(self) -> dict:
        """Populations whose |u| provably stays within 24 bits (wrap-around work can be skipped)."""
        bound = {n: 0 for n in self.pops}
        for n in self.order:        # a relay's bound (its payload's) is complete before its groups count
            groups = self.out_groups[n]
            src = self.pops[n]
            if src.kind == "input" and src.input_kind != "spikes":
                for g in groups:
                    bound[g.syn.dst] = float("inf")
                continue
            for g in groups:
                s = g.syn
                if s.kind == "einsum":
                    bound[s.dst] += g.bound
                    continue
                if s.kind == "identity":
                    bound[s.dst] = float("inf")
                    continue
                if s.graded and not (src.kind == "relay" and s.kind in ("dense", "sparse") and s.delays is None):
                    bound[s.dst] = float("inf")
                    continue
                rows = _weight_bound(s.weights)
                if s.graded:            # a relay's payload is bounded by its own input (a residual stream)
                    rows = rows * bound[n]
                if s.kind != "conv":
                    rows = rows * 2.0 ** s.weight_exp + 1
                bound[s.dst] += rows * (1 + (s.delays is not None and LoweredNetwork.max_delay(s) - s.balance_delay > 0) * 63)
        for a in self.atts:
            bound[a.dst] += self._att_bound(a)
        safe = {}
        for n, p in self.pops.items():
            if p.kind in ("input", "relay"):
                continue
            # |u_t| <= |u_{t-1}| (4095 - du) / 4096 + |a_in| 64 (decay rounds toward zero), so
            # |u| <= |a_in|max 64 * 4096 / (du + 1)
            memory = 4096.0 / (p.du + 1) if 0 <= p.du <= 4095 else float("inf")
            safe[n] = bound[n] * 64 * memory <= _M24 - 64
        return safe

    def _prepare(self, s: Synapse) -> _Group:
        dev = self.device
        if s.kind == "identity":
            return _Group(s, [(0, 0, None)], torch.int64)
        if s.kind == "einsum":
            return self._prepare_einsum(s)
        src = self.pops[s.src]
        graded = s.graded or (src.kind == "input" and src.input_kind == "graded")
        if s.kind == "conv":
            w = np.asarray(s.weights).astype(np.int64)
            bound = _weight_bound(w)
            dtype = torch.float32 if (not graded and bound < _F32_EXACT and self.exact32) else torch.float64
            bounded = not graded and bound < _M24
            mm1x1 = (tuple(w.shape[2:]) == (1, 1) and tuple(s.stride) == (1, 1) and tuple(s.padding) == (0, 0)
                     and s.groups == 1)
            view = tuple(s.src_view) if s.src_view else tuple(src.shape)
            src_hwc, dst_hwc = self.hwc[s.src], self.hwc[s.dst]
            wt = torch.as_tensor(w, dtype=dtype, device=dev)
            if mm1x1:
                wt = wt.reshape(w.shape[0], w.shape[1]).contiguous()
            elif src_hwc:
                wt = wt.contiguous(memory_format=torch.channels_last)
            parts = [(1 + s.balance_delay, 0, wt)]
            return _Group(s, parts, dtype, bounded=bounded, bound=bound if bounded else float(_M24),
                          shape=view, mm1x1=mm1x1, src_hwc=src_hwc, dst_hwc=dst_hwc)
        w = lava_effective_weights(s.weights, s.sign_mode, s.num_weight_bits)
        if sp.issparse(w):
            if w.shape[0] * w.shape[1] > _SPARSE_DENSE_MAX:
                return self._prepare_sparse(s, w, graded)
            w = w.toarray()
        d_all = None if s.delays is None else (
            s.delays.toarray() if sp.issparse(s.delays) else np.broadcast_to(np.asarray(s.delays), w.shape))
        pin, pout = self._perm(s.src), self._perm(s.dst)
        if pin is not None:
            w = w[:, pin]
            d_all = None if d_all is None else d_all[:, pin]
        if pout is not None:
            w = w[pout]
            d_all = None if d_all is None else d_all[pout]
        dtype, scaled = self._sum_dtype(s, w, graded)
        dtype = dtype or torch.int64
        parts = []
        if s.delays is None:
            parts.append((1 + s.balance_delay, 0, torch.as_tensor(w.T.copy(), dtype=dtype, device=dev)))
        else:
            d = d_all
            for k in np.unique(d):
                wk = np.where(d == k, w, 0)
                parts.append((1 + int(k) + s.balance_delay, int(k),
                              torch.as_tensor(wk.T.copy(), dtype=dtype, device=dev)))
        return _Group(s, parts, dtype, bound=scaled)

    def _sum_dtype(self, s: Synapse, w, graded: bool):
        """(the dtype a group's products are summed in exactly, or None beyond float64; the bound on one
        output's contribution after the weight exponent)."""
        raw = float("inf") if graded else _weight_bound(w)
        scaled = raw * 2.0 ** s.weight_exp + (1 if s.weight_exp < 0 else 0)
        top = max(raw, scaled)
        if top < _F32_EXACT and self.exact32:
            return torch.float32, scaled
        if top < _F64_EXACT or graded:
            return torch.float64, scaled
        return None, scaled

    def _prepare_sparse(self, s: Synapse, w, graded: bool) -> _Group:
        """A large sparse group as torch CSR tensors (one per delay value): memory = connections."""
        dev = self.device
        pin, pout = self._perm(s.src), self._perm(s.dst)
        w = sp.csr_matrix(w)
        d = None
        if s.delays is not None:
            # the delay of every stored weight (a delay missing from the sparse delays is 0)
            d = sp.csr_matrix((w != 0).astype(np.int64).multiply(sp.csr_matrix(s.delays)))
        if pin is not None:
            w = w[:, pin]
            d = None if d is None else d[:, pin]
        if pout is not None:
            w = w[pout]
            d = None if d is None else d[pout]
        dtype, scaled = self._sum_dtype(s, w, graded)
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
        return _Group(s, parts, dtype, bound=scaled, sparse=True)

    def _contrib(self, g: _Group, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """One part's contribution to the destination's a_in (a new tensor; integers in a float dtype,
        or int64)."""
        s = g.syn
        if s.kind == "identity":
            return x.clone()
        if s.kind == "einsum":
            return w(x)
        B = x.shape[0]
        if s.kind == "conv":
            xin = x.to(g.dtype)
            c, h, wd = g.shape
            if g.mm1x1:
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
            return y.sub_(torch.floor((y + _M24) * (1.0 / (1 << 24))).mul_(float(1 << 24)))
        e = int(s.weight_exp)
        if g.dtype == torch.int64:
            return _shift(x.to(torch.int64) @ w, e)
        y = torch.sparse.mm(w, x.to(g.dtype).T).T.contiguous() if g.sparse else x.to(g.dtype) @ w
        if e < 0:
            return y.mul_(2.0 ** e).floor_()
        if e > 0:
            return y.mul_(float(1 << e))
        return y

    def _prepare_einsum(self, s: Synapse) -> _Group:
        """An einsum group (block-structured integer product, :mod:`neurodeploy.sim.graded`)."""
        b = self.gbound[s.src]
        bound = group_bound(s, _scalar_weight(s), b)
        top = max(bound, b * einsum_fan_in(s), b)
        dtype = torch.float32 if (top < _F32_EXACT and self.exact32) else torch.float64
        op = EinsumGroup(s, self.pops[s.src].size, _scalar_weight(s), dtype)
        return _Group(s, [(1 + s.balance_delay, 0, op)], dtype, bound=bound)

    def _graded(self, pl, slot, t, rec):
        """One step of a prod / graded_vec population (no memory, no reset): its graded payload."""
        slot2 = None
        if pl.pend2 is not None:
            slot2 = pl.pend2[t % pl.L]
            pl.pend2[t % pl.L] = None
        if slot is None or (pl.gkind == "prod" and slot2 is None):     # no input: the payload is 0
            if pl.zero is None:
                pl.zero = torch.zeros((pl.B, pl.n), dtype=pl.gdtype, device=self.device)
            s = pl.zero
        else:
            s = graded_step(pl.gkind, slot, slot2, pl.vth, pl.gexp, (pl.B, pl.n), pl.gdtype, self.device)
        if pl.rec and rec is not None:
            rec[pl.name]["s"].append(s.to(torch.int64))
        return s

    def _attention(self, a: Attention, q, k, v, dtype) -> torch.Tensor:
        B = q.shape[0]
        dh = a.dim // a.heads
        shp = (B, a.heads, dh, a.tokens)
        dt = torch.float32 if (a.tokens * a.tokens * dh < (1 << 24) and self.exact32) else torch.float64
        qh, kh, vh = (t.to(dt).reshape(shp) for t in (q, k, v))
        ktv = kh @ vh.transpose(-1, -2)                      # [B, H, dh(k), dh(v)]
        y = qh.transpose(-1, -2) @ ktv                       # [B, H, N, dh]
        y = y.transpose(-1, -2).reshape(B, -1)               # [B, D*N] in [D, N] order
        if dtype == torch.int64:
            return y.round().to(torch.int64) * int(a.weight)
        return y.to(dtype).mul_(float(a.weight))

    def run(self, inputs: dict, steps: int, record=None, progress=None) -> dict:
        return self._threaded(self._run, inputs, steps, record, progress)

    def _threaded(self, fn, *args):
        if self.threads is None:
            return fn(*args)
        old = torch.get_num_threads()
        torch.set_num_threads(int(self.threads))
        try:
            return fn(*args)
        finally:
            torch.set_num_threads(old)

    def stream_refusal(self) -> str:
        """Why this network cannot stream samples (:meth:`run_stream`), or '' when it can: a recurrent
        group or a model's own synaptic delays would carry one sample's tail into the next window, and the
        layer-synchronous model has no pipeline."""
        if not self.pipelined:
            return "the layer-synchronous model (pipelined=False) has no pipeline to stream through"
        for s in self.net.synapses:
            if s.src == s.dst or (s.delays is not None and LoweredNetwork.max_delay(s) - s.balance_delay > 0):
                return f"synapse '{s.name}' is recurrent or has its own synaptic delays"
        return ""

    def run_stream(self, batches: list, T: int, record=None, progress=None) -> dict:
        """Pipelined samples: ``batches`` (a list of engine inputs, each for B samples, as for :meth:`run`)
        enter the network T steps apart, batch after batch, so ``K`` batches take ``K*T + latency`` steps
        instead of ``K*(T + latency)``.  Every stateful population is reset (u := 0, v := v_init) at the
        first step of each of its sample windows (steps ``lat+1+k*T .. lat+(k+1)*T``, ``lat`` its pipeline
        depth: chained mode of :mod:`neurodeploy.lower.chain` with period T) and there takes that sample's
        bias input; a spike/graded input gives the first T steps of its data (looped when shorter).
        Delay balancing makes everything that arrives inside a window come from the same sample's windows
        upstream, so every window equals the same steps of a fresh one-sample run of the chained network
        (``chain_network(net, T + latency, one_window=True, bias_as_graded=False)``).  A smaller last batch
        is padded with zero rows (dropped from the result).
        Returns ``{pop: {"s"|"u"|"v": tensor [T, samples, n]}}``: each recorded population's own window
        of every sample (sample ``k*B + b`` = row b of batch k).  Networks for which
        :meth:`stream_refusal` is not empty are refused (``UnsupportedError``)."""
        why = self.stream_refusal()
        if why:
            raise UnsupportedError(f"cannot stream samples: {why}")
        if not batches:
            raise BadInputError("no samples to stream")
        T = int(T)
        if T < 1:
            raise BadInputError(f"stream period T must be >= 1, got {T}")
        sizes = []
        cols = {}
        for p in self.net.inputs:
            parts = []
            for bi in batches:
                if p.name not in bi:
                    raise BadInputError(f"input population '{p.name}': no data given")
                x = bi[p.name]
                x = torch.as_tensor(np.asarray(x)) if not torch.is_tensor(x) else x
                if p.input_kind == "bias":
                    x = x.reshape(x.shape[0], -1)[None]                          # [1, b, n]
                else:
                    x = x.reshape(x.shape[0], x.shape[1], -1)
                    x = x[torch.arange(T) % x.shape[0]]                          # [T, b, n], looped
                parts.append(x.to(torch.int64))
            cols[p.name] = parts
            sizes = [int(x.shape[1]) for x in parts] if not sizes else sizes
        B = max(sizes) if sizes else 1
        data = {}
        for name, parts in cols.items():
            padded = [x if x.shape[1] == B else torch.cat([x, x.new_zeros((x.shape[0], B - x.shape[1]) + tuple(x.shape[2:]))], 1)
                      for x in parts]
            data[name] = torch.cat(padded, 0)      # spikes/graded [K*T, B, n]; bias [K, B, n]
        K = len(batches)
        lat = self.net.latency()
        steps = K * T + max(lat.values(), default=0)
        res = self._threaded(self._run, data, steps, record, progress, (T, K, lat))
        n = sum(sizes) if sizes else K
        keep = None if all(b == B for b in sizes) else torch.cat(
            [torch.arange(k * B, k * B + b) for k, b in enumerate(sizes)])
        out = {}
        for name, r in res.items():
            out[name] = {}
            for key, val in r.items():
                # [K*T, B, n] (the population's windows back to back) -> [T, K*B, n]
                v = val.reshape((K, T) + tuple(val.shape[1:])).transpose(0, 1).reshape((T, K * B) + tuple(val.shape[2:]))
                out[name][key] = v if keep is None else v[:, keep.to(v.device)]
            assert next(iter(out[name].values())).shape[1] == n
        return out

    def _run(self, inputs: dict, steps: int, record=None, progress=None, stream=None) -> dict:
        dev = self.device
        record = set(self.pops) if record in ("all", True) else set(record or self.net.outputs)
        record = {n for n in record if self.pops[n].input_kind != "bias"}
        B = None
        data = {}
        for p in self.net.inputs:
            if p.name not in inputs:
                raise BadInputError(f"input population '{p.name}': no data given")
            x = torch.as_tensor(np.asarray(inputs[p.name]) if not torch.is_tensor(inputs[p.name])
                                else inputs[p.name], device=dev)
            if p.input_kind == "bias" and stream is not None:      # [K, B, n]: one bias per sample window
                x = x.reshape(x.shape[0], x.shape[1], -1).to(torch.int64)
                b = x.shape[1]
            elif p.input_kind == "bias":
                x = x.reshape(x.shape[0], -1).to(torch.int64)
                b = x.shape[0]
            else:
                x = x.reshape(x.shape[0], x.shape[1], -1)
                b = x.shape[1]
                x = x.to(torch.int64)
                # the bounds that make the fast paths exact assume 0/1 spikes
                if p.input_kind == "spikes" and x.numel() and not bool(((x == 0) | (x == 1)).all()):
                    raise BadInputError(f"input '{p.name}': spike input must be 0 or 1 (use a graded input "
                                        f"for integer payloads)")
            if x.shape[-1] != p.size:
                raise BadInputError(f"input '{p.name}': {x.shape[-1]} values per step, expected {p.size}")
            if B is not None and b != B:
                raise BadInputError(f"input '{p.name}': batch {b} differs from {B}")
            B = b
            data[p.name] = x
        if B is None:
            B = 1
        # reset schedules are in pipelined (hardware) time; the layer-synchronous model sees them shifted
        shift = {n: 0 for n in self.pops}
        if not self.pipelined and any(p.reset_interval for p in self.net.populations):
            shift = self.net.latency()
        hist = {}  # spike histories for attention inputs with balance delays
        att_hist_len = {}
        for a in self.atts:
            for src, d in zip((a.q, a.k, a.v), a.balance_delays):
                att_hist_len[src] = max(att_hist_len.get(src, 1), (d if self.pipelined else 0) + 1)
        for name, L in att_hist_len.items():
            hist[name] = [torch.zeros(B, self.pops[name].size, dtype=torch.float32, device=dev)] * L
        # one plan per population, in topological order: everything the step loop needs, no lookups
        plan = []
        pend = {}
        if stream is not None:
            T_s, K_s, lat = stream
        for name in self.order:
            p = self.pops[name]
            pl = _Plan(name, p.kind == "input")
            pl.rec = name in record
            if stream is not None:
                # the population's sample windows: steps lat+1 .. lat+K*T (0-based t in [lo, hi))
                pl.lo, pl.hi = lat[name], lat[name] + K_s * T_s
                pl.idle_skip = self.skip_idle
            pl.hist = hist.get(name)
            pl.atts = self.att_last.get(name, [])
            pl.groups = []
            for g in self.out_groups[name]:
                for off_p, off_s, w in g.parts:
                    pl.groups.append((g, w, off_p if self.pipelined else off_s + int(g.syn.src == g.syn.dst),
                                      (g.syn.dst, 2) if g.syn.port == 2 else g.syn.dst))
            if pl.is_input:
                pl.bias_only = p.input_kind == "bias"
                if not pl.bias_only:
                    x = data[name]
                    # spikes (0/1) are exact in float32; graded payloads in float64
                    xi = self._to_internal(name, x)
                    pl.x = xi.to(torch.float32) if p.input_kind == "spikes" else xi.to(torch.float64)
                    pl.xint = x
                plan.append(pl)
                continue
            n = p.size
            pl.L = self.ring_len[name]
            pend[name] = pl.pend = [None] * pl.L
            if p.kind == "relay":        # graded relay: s = a_in (no state)
                pl.relay = torch.zeros(B, n, dtype=self.ring_dtype[name], device=dev)
                plan.append(pl)
                continue
            if p.kind in GRADED_KINDS:
                pl.gkind, pl.vth, pl.gexp, pl.B, pl.n = p.kind, int(p.vth), int(p.exp), B, n
                pl.gdtype = torch.float32 if (self.gbound[name] < _F32_EXACT and self.exact32) else torch.float64
                if p.kind == "prod":
                    pend[(name, 2)] = pl.pend2 = [None] * pl.L
                plan.append(pl)
                continue
            if p.bias_input:
                bm = data[p.bias_input]
            else:
                bm = torch.as_tensor(np.broadcast_to(np.asarray(p.bias_mant, dtype=np.int64), p.shape).reshape(1, -1).copy(), device=dev)
            bias = _shift(bm, int(p.bias_exp)) if p.bias_exp >= 0 else bm >> (-int(p.bias_exp))
            bias = self._to_internal(name, bias)
            bmax = float(bias.abs().max()) if bias.numel() else 0.0
            per_sample = stream is not None and bool(p.bias_input)     # bias [K, B, n]: one per window
            pl.du, pl.dv, pl.vth = int(p.du), int(p.dv), int(p.vth)
            v0 = np.broadcast_to(np.asarray(p.v_init, dtype=np.int64), p.shape).reshape(1, -1)
            pl.v0 = self._to_internal(name, torch.as_tensor(v0.copy(), device=dev)) if np.any(v0) else None
            v0max = float(np.abs(v0).max()) if v0.size else 0.0
            pl.reset_interval = int(p.reset_interval)
            if pl.reset_interval:
                pl.reset_mod = p.reset_offset % p.reset_interval
                pl.shift = shift[name]
            if stream is not None:      # chained mode with period T: reset at the start of every window
                pl.reset_interval, pl.reset_mod, pl.shift = T_s, (lat[name] + 1) % T_s, 0
            pl.fast = bool(self.safe[name])
            # no bias, no initial v, vth >= 0: with u = v = 0 and no input a step is a no-op (skip_silent)
            pl.rest_ok = pl.rest = bool(self.skip_silent and bmax == 0 and not p.bias_input and pl.v0 is None
                                        and pl.vth >= 0)
            if pl.fast:
                # |u| <= |a_in|max 64 * 4096 / (du + 1) (< 2**23: safe); |v_t| <= |v_{t-1}| (4096 - dv) / 4096
                # + |u|max + |bias|max, so |v| stays below the fixed point of that bound (and V_LIM)
                umax = self.in_bound[name] * 64 * (4096.0 / (pl.du + 1))
                vmax = (umax + bmax) * 4096.0 / pl.dv if pl.dv > 0 else float("inf")
                # an initial v only decays towards the bound (or stays: dv 0, where vmax is infinite)
                pl.clamp = not (max(vmax, v0max) <= _V_LIM)
                vstate = max(min(vmax, _V_LIM), v0max)
                fu, fv = 4096 - (pl.du + 1), 4096 - pl.dv
                # float32 state is exact when every product (v * odd part of the decay factor) and every
                # sum stays below 2**24; float64 always is (< 2**36)
                f32 = (umax * _odd(fu) < _F32_EXACT and vstate * _odd(fv) < _F32_EXACT
                       and vstate * fv / 4096.0 + umax + bmax < _F32_EXACT)
                sdt = torch.float32 if f32 else torch.float64
                pl.u = torch.zeros(B, n, dtype=sdt, device=dev) if pl.du != 4095 else None
                pl.v = torch.zeros(B, n, dtype=sdt, device=dev)
                if pl.v0 is not None:
                    pl.v0 = pl.v0.to(sdt)
                    pl.v.copy_(pl.v0.expand(B, n))
                pl.tmp = torch.empty(B, n, dtype=sdt, device=dev)
                # the spike tensor is reused every step unless an attention op keeps a history of it
                pl.sbuf = None if pl.hist is not None else torch.empty(B, n, dtype=sdt, device=dev)
                pl.bias = bias.to(sdt) if bmax else None
                if per_sample and pl.bias is not None:
                    pl.biases, pl.bias = pl.bias, pl.bias[0]
                pl.fu = fu / 4096.0
                pl.fv = fv / 4096.0
                pl.th = float(pl.vth << 6)
                pl.kernel = None
                if self.compile and B * n >= _COMPILE_MIN:
                    pl.kernel = _kernel(pl.du == 4095)
                    pl.kt = tuple(torch.tensor(x, dtype=sdt, device=dev) for x in (pl.fu, pl.fv, pl.th))
                    pl.kzero = torch.zeros(1, n, dtype=sdt, device=dev)
            else:
                pl.u = torch.zeros(B, n, dtype=torch.int64, device=dev)
                pl.v = torch.zeros(B, n, dtype=torch.int64, device=dev)
                if pl.v0 is not None:
                    pl.v.copy_(pl.v0.expand(B, n))
                pl.bias = bias if bmax or p.bias_input else 0
                if per_sample:
                    pl.biases, pl.bias = bias, bias[0]
                pl.zero_in = torch.zeros(B, n, dtype=torch.int64, device=dev)
            plan.append(pl)
        rdt = dict(self.ring_dtype)
        rdt.update({(n, 2): rdt[n] for n in self.pops if self.pops[n].kind == "prod"})
        rec = {n: {"s": [], "u": [], "v": []} for n in record}
        spikes = {}
        pipelined = self.pipelined
        skip_silent = dev.type == "cpu" and self.skip_silent
        streaming = stream is not None
        for t in range(steps):
            ts = t + 1
            for pl in plan:
                name = pl.name
                idle = False
                recnow = pl.rec
                if streaming:
                    inside = pl.lo <= t < pl.hi
                    recnow = recnow and inside
                    # outside its sample windows a population computes nothing any window sees: with
                    # skip_idle it does no work and sends nothing (inputs send nothing past their data)
                    idle = not inside and (pl.idle_skip or pl.is_input)
                if idle:
                    if pl.is_input and pl.bias_only:
                        continue
                    if not pl.is_input:
                        pl.pend[t % pl.L] = None
                        if pl.pend2 is not None:
                            pl.pend2[t % pl.L] = None
                    if pl.zero is None:
                        pl.zero = torch.zeros(B, self.pops[name].size, dtype=torch.float32, device=dev)
                    s = pl.zero
                elif pl.is_input:
                    if pl.bias_only:
                        continue
                    i = t % pl.x.shape[0]
                    s = pl.x[i]
                    if recnow:
                        rec[name]["s"].append(pl.xint[i])
                elif pl.relay is not None:
                    slot = pl.pend[t % pl.L]
                    pl.pend[t % pl.L] = None
                    s = pl.relay if slot is None else slot
                    if recnow:
                        rec[name]["s"].append(self._to_network(name, s.to(torch.int64)))
                else:
                    slot = pl.pend[t % pl.L]
                    pl.pend[t % pl.L] = None
                    if pl.reset_interval and (ts + pl.shift) % pl.reset_interval == pl.reset_mod:
                        if pl.u is not None:
                            pl.u.zero_()
                        if pl.v0 is None:
                            pl.v.zero_()
                        else:
                            pl.v.copy_(pl.v0.expand_as(pl.v))
                        pl.rest = pl.rest_ok
                        if pl.biases is not None:       # streamed samples: this window's bias
                            k = (t - pl.lo) // T_s
                            if 0 <= k < K_s:
                                pl.bias = pl.biases[k]
                    if pl.gkind:
                        s = self._graded(pl, slot, t, rec if recnow else None)
                        idle = skip_silent and s is pl.zero
                    elif slot is None and pl.rest:
                        # at rest (u = v = 0), no input, no bias, vth >= 0: the step changes nothing and
                        # sends nothing
                        if pl.zero is None:
                            pl.zero = torch.zeros(B, self.pops[name].size, dtype=torch.float32, device=dev)
                        s = pl.zero
                        idle = True
                    elif pl.fast and pl.kernel is not None:
                        s = self._lif_fused(pl, slot)
                    elif pl.fast:
                        s = self._lif_fast(pl, slot)
                    else:
                        a_in = pl.zero_in if slot is None else slot.to(torch.int64)
                        pl.u, pl.v, sb = lif_step(pl.u, pl.v, a_in, pl.du, pl.dv, pl.vth, pl.bias, False)
                        s = sb.to(torch.float32)
                    if pl.rest_ok and not idle:
                        # back at rest once no input came and u, v have decayed to 0
                        pl.rest = slot is None and not bool(pl.v.any()) and (pl.u is None or not bool(pl.u.any()))
                    if recnow and not pl.gkind:
                        r = rec[name]
                        if pl.fast and pl.u is None:
                            uu = (slot.to(torch.int64) << 6 if slot is not None
                                  else torch.zeros(pl.v.shape, dtype=torch.int64, device=dev))
                        else:
                            uu = pl.u.to(torch.int64, copy=True)
                        for key, val in (("s", s.to(torch.int64)), ("u", uu), ("v", pl.v.to(torch.int64, copy=True))):
                            r[key].append(self._to_network(name, val))
                spikes[name] = s
                if pl.hist is not None:
                    pl.hist = pl.hist[1:] + [s]
                    hist[name] = pl.hist
                # a silent source adds exactly 0 (every group and the attention op are linear in each
                # input): skip the work; the check needs a host sync, so only on the CPU, small tensors
                silent = idle
                if not idle and skip_silent and pl.groups and s.numel() <= _SKIP_CHECK_MAX and \
                        (pl.checks < 32 or pl.silent * 8 >= pl.checks):
                    silent = not bool(s.any())
                    pl.checks += 1
                    pl.silent += silent
                for g, w, off, dst in (() if silent else pl.groups):
                    y = self._contrib(g, s, w)
                    dt = rdt[dst]
                    if y.dtype != dt:
                        y = y.to(dt)
                    ring = pend[dst]
                    k = (t + off) % len(ring)
                    if ring[k] is None:
                        ring[k] = y
                    else:
                        ring[k].add_(y)
                for a in pl.atts:
                    if pipelined:
                        q, k_, vv = (hist[src][-1 - d] for src, d in zip((a.q, a.k, a.v), a.balance_delays))
                    else:
                        q, k_, vv = spikes[a.q], spikes[a.k], spikes[a.v]
                    if skip_silent and q.numel() <= _SKIP_CHECK_MAX and not all(bool(z.any()) for z in (q, k_, vv)):
                        continue
                    off = 1 if pipelined else 0
                    y = self._attention(a, q, k_, vv, rdt[a.dst])
                    ring = pend[a.dst]
                    k = (t + off) % len(ring)
                    if ring[k] is None:
                        ring[k] = y
                    else:
                        ring[k].add_(y)
            if progress is not None:
                progress(1)
        out = {}
        for n, r in rec.items():
            out[n] = {k: torch.stack(vals) for k, vals in r.items() if vals}
        return out

    def _lif_fused(self, pl, slot):
        """The fast LIF update as one compiled (torch.compile) kernel; falls back to :meth:`_lif_fast`
        for good when compiling is not possible here (no C++ compiler / Triton)."""
        fu, fv, th = pl.kt
        sl = pl.kzero if slot is None else slot
        bias = pl.kzero if pl.bias is None else pl.bias
        try:
            if pl.u is None:
                return pl.kernel(pl.v, sl, bias, fv, th)
            return pl.kernel(pl.u, pl.v, sl, bias, fu, fv, th)
        except Exception as e:  # noqa: BLE001 - any compile failure: same integers from the eager path
            import warnings
            warnings.warn(f"neurodeploy.sim: torch.compile unavailable ({type(e).__name__}); using eager ops")
            self.compile = False
            pl.kernel = None
            return self._lif_fast(pl, slot)

    @staticmethod
    def _lif_fast(pl, slot):
        """Lava's fixed-point LIF in float state for a population whose u cannot wrap: the same integers
        as :func:`lif_step` (exact: see ``_run``).  The products are exact integers in the float dtype, so
        ``trunc`` is Lava's rounding toward zero."""
        v = pl.v
        if pl.du == 4095:             # no current memory: u = a_in << 6
            if pl.dv == 4096:
                v.zero_()
            elif pl.dv:
                v.mul_(pl.fv).trunc_()
            if slot is not None:
                v.add_(slot, alpha=64)
        else:
            u = pl.u
            u.mul_(pl.fu).trunc_()
            if slot is not None:
                u.add_(slot, alpha=64)
            if pl.dv == 4096:
                v.copy_(u)
            else:
                if pl.dv:
                    v.mul_(pl.fv).trunc_()
                v.add_(u)
        if pl.bias is not None:
            v.add_(pl.bias)
        if pl.clamp:
            v.clamp_(-_V_LIM, _V_LIM)
        # integers: v > th  <=>  v - th >= 1, so clamp(v - th, 0, 1) is the 0/1 spike; reset v := v - v s
        s = (torch.sub(v, pl.th) if pl.sbuf is None else torch.sub(v, pl.th, out=pl.sbuf)).clamp_(0.0, 1.0)
        v.addcmul_(v, s, value=-1.0)
        return s if s.dtype == torch.float32 else s.to(torch.float32)


class _Plan:
    """Per-population constants and state of one run (attribute access only in the step loop)."""
    __slots__ = ("name", "is_input", "rec", "hist", "atts", "groups", "bias_only", "x", "xint", "L", "pend",
                 "du", "dv", "vth", "reset_interval", "reset_mod", "shift", "fast", "u", "v", "bias", "fu",
                 "fv", "th", "clamp", "zero_in", "tmp", "sbuf", "checks", "silent", "kernel", "kt", "kzero", "relay",
                 "gkind", "pend2", "gexp", "gdtype", "B", "n", "v0", "lo", "hi", "idle_skip", "zero", "biases",
                 "rest", "rest_ok")

    def __init__(self, name, is_input):
        self.name = name
        self.is_input = is_input
        self.reset_interval = 0
        self.reset_mod = 0
        self.shift = 0
        self.checks = 0     # silence checks done / found silent (checking stops when it rarely pays)
        self.silent = 0
        self.sbuf = None
        self.kernel = None
        self.relay = None
        self.gkind = ""
        self.pend2 = None
        self.v0 = None
        self.zero = None
        self.biases = None
        self.idle_skip = False
        self.rest = self.rest_ok = False


def simulate(net: LoweredNetwork, inputs: dict, steps: int, record=None, device="cpu", pipelined=True) -> dict:
    """Convenience wrapper: numpy results ``{pop: {"s"|"u"|"v": array [steps, B, n]}}``."""
    res = Engine(net, device=device, pipelined=pipelined).run(inputs, steps, record=record)
    return {n: {k: t.cpu().numpy() for k, t in r.items()} for n, r in res.items()}
