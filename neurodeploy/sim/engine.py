"""Our Loihi 2 fixed-point engine: one engine for the lowered network, bit-exact with Lava ``fixed_pt``.

Semantics (lava-nc 0.10.0 ``PyLifModelBitAcc`` / ``PyLifResetModelBitAcc``, ``PyDenseModelBitAcc``,
``PySparseModelBitAcc``, ``PyDelayDenseModelBitAcc``, ``PyDelaySparseModelBitAcc``, ``PyConvModelFixed``):

* CUBA LIF, per step t (counted from 1): optional reset (``t % reset_interval == reset_offset``),
  ``u = trunc0(u * (4096 - (du + 1)) / 4096) + (a_in << 6)`` held in int32 then wrapped once into 24 bits
  (``> 2**23`` subtracts ``2**24``, ``<= -2**23`` adds it), ``v = trunc0(v * (4096 - dv) / 4096) + u +
  (bias_mant << bias_exp)`` saturated to +-(2**23 - 1), spike iff ``v > vth << 6``, then v := 0.
  ``trunc0`` rounds toward zero.
* Dense / Sparse / DelayDense / DelaySparse: weights clipped to 8 bits by sign mode, then
  ``8 - num_weight_bits + mixed`` LSBs dropped (arithmetic shift), sum over the active inputs (or the
  product with the graded payload), then ``<< weight_exp`` (or floor ``>> -weight_exp``), per delay value.
* Conv: PyTorch correlation with the PyTorch-layout kernel (= Lava's true convolution with the flipped
  Lava-layout kernel), no weight_exp, result wrapped to 24 bits.
* Every synapse group and attention op delivers one step later (``pipelined=True``, Lava) plus its
  delays; ``pipelined=False`` is the layer-synchronous model (same step, balance delays ignored).

Tensors are torch int64 (state) on ``device``; vectorised over neurons and over a batch of samples.
Products are computed in float32 where the sum is provably below 2**24 and in float64 otherwise, so they
are exact integers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BadInputError
from ..lower.network import Attention, LoweredNetwork, Synapse, MIXED, EXCITATORY, INHIBITORY

_M24 = 1 << 23
_V_LIM = (1 << 23) - 1


def lava_sign_mode(w: np.ndarray, sign_mode: int = 0) -> int:
    if sign_mode:
        return int(sign_mode)
    w = np.asarray(w)
    if w.size == 0 or w.min() >= 0:
        return EXCITATORY
    if w.max() <= 0:
        return INHIBITORY
    return MIXED


def lava_effective_weights(w: np.ndarray, sign_mode: int = 0, num_weight_bits: int = 8) -> np.ndarray:
    """The integer weights Lava's fixed-point Dense/Sparse actually use (clip to 8 bits, drop LSBs)."""
    mode = lava_sign_mode(w, sign_mode)
    w = np.asarray(w).astype(np.int64)
    mixed = int(mode == MIXED)
    if mode == INHIBITORY:
        w = -w
    w = np.clip(w, -(1 << 8) * mixed, (1 << 8) - 1)
    n = 8 - int(num_weight_bits) + mixed
    w = (w >> n) << n
    if mode == INHIBITORY:
        w = -w
    return w


def _shift(x: torch.Tensor, e: int) -> torch.Tensor:
    if e > 0:
        return x << e
    if e < 0:
        return x >> (-e)
    return x


def wrap24(x: torch.Tensor) -> torch.Tensor:
    return torch.remainder(x + _M24, 1 << 24) - _M24


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


@dataclass
class _Group:
    syn: Synapse
    parts: list          # [(offset_pipelined, offset_sync, weight tensor)] per delay value
    dtype: torch.dtype
    bounded: bool = False   # |result| provably < 2**23 (no 24-bit wrap needed, float32 exact)


class Engine:
    """Simulates a :class:`LoweredNetwork` for a batch of samples.

    ``run(inputs, steps)``: ``inputs`` maps each input population name to an array [T, B, *shape] (spikes
    or graded integers, looped like Lava's RingBuffer when steps > T) or, for ``bias`` inputs, [B, *shape]
    (values written to the bias mantissa of the populations naming it in ``bias_input``).
    Returns ``{pop: {"s"|"u"|"v": tensor [steps, B, n]}}`` for the recorded populations.
    """

    def __init__(self, net: LoweredNetwork, device: str | torch.device = "cpu", pipelined: bool = True):
        net.validate()
        self.net = net
        self.device = torch.device(device)
        # float32 products are exact integers on the CPU; on GPUs cuDNN/cuBLAS may use TF32 (10-bit
        # mantissa), so there every product is computed in float64
        self.exact32 = self.device.type == "cpu"
        self.pipelined = pipelined
        self.order = net.topological_order()
        self.pops = {p.name: p for p in net.populations}
        self.out_groups = {n: [] for n in self.pops}
        for s in net.synapses:
            self.out_groups[s.src].append(self._prepare(s))
        self.att_by_dst = {}
        self.atts = list(net.attention)
        self.ring_len = {n: 1 for n in self.pops}
        for n, groups in self.out_groups.items():
            for g in groups:
                for off_p, off_s, _ in g.parts:
                    off = off_p if pipelined else off_s
                    self.ring_len[g.syn.dst] = max(self.ring_len[g.syn.dst], off + 1)
        for a in self.atts:
            self.ring_len[a.dst] = max(self.ring_len[a.dst], 2)
        self.safe = self._safe_flags()

    def _safe_flags(self) -> dict:
        """Populations whose |u| provably stays within 24 bits (wrap-around work can be skipped)."""
        bound = {n: 0 for n in self.pops}
        for n, groups in self.out_groups.items():
            src = self.pops[n]
            if src.kind == "input" and src.input_kind != "spikes":
                for g in groups:
                    bound[g.syn.dst] = float("inf")
                continue
            for g in groups:
                s = g.syn
                if s.kind == "identity":
                    bound[s.dst] = float("inf")
                    continue
                if s.graded:
                    bound[s.dst] = float("inf")
                    continue
                w = np.abs(np.asarray(s.weights, dtype=np.float64))
                rows = w.reshape(w.shape[0], -1).sum(1).max(initial=0) if s.kind == "conv" else w.sum(1).max(initial=0)
                if s.kind != "conv":
                    rows = rows * 2.0 ** s.weight_exp + 1
                bound[s.dst] += rows * (1 + (s.delays is not None and np.asarray(s.delays).max() > 0) * 63)
        for a in self.atts:
            bound[a.dst] += abs(a.weight) * (a.dim // a.heads) * a.tokens * a.tokens
        safe = {}
        for n, p in self.pops.items():
            if p.kind == "input":
                continue
            memory = 1 if p.du + 1 == 4096 else float("inf")
            safe[n] = bound[n] * 64 * memory <= _M24 - 64
        return safe

    def _prepare(self, s: Synapse) -> _Group:
        dev = self.device
        if s.kind == "identity":
            return _Group(s, [(0, 0, None)], torch.int64)
        src = self.pops[s.src]
        graded = s.graded or (src.kind == "input" and src.input_kind == "graded")
        if s.kind == "conv":
            w = np.asarray(s.weights).astype(np.int64)
            bound = np.abs(w).reshape(w.shape[0], -1).sum(1).max(initial=0)
            dtype = torch.float32 if (not graded and bound < (1 << 24) and self.exact32) else torch.float64
            parts = [(1 + s.balance_delay, 0, torch.as_tensor(w, dtype=dtype, device=dev))]
            return _Group(s, parts, dtype, bounded=(not graded and bound < _M24))
        w = lava_effective_weights(s.weights, s.sign_mode, s.num_weight_bits)
        bound = np.abs(w).sum(1).max(initial=0)
        dtype = torch.float32 if (not graded and bound < (1 << 24) and self.exact32) else torch.float64
        parts = []
        if s.delays is None:
            parts.append((1 + s.balance_delay, 0, torch.as_tensor(w.T.copy(), dtype=dtype, device=dev)))
        else:
            d = np.broadcast_to(np.asarray(s.delays), w.shape)
            for k in np.unique(d):
                wk = np.where(d == k, w, 0)
                parts.append((1 + int(k) + s.balance_delay, int(k),
                              torch.as_tensor(wk.T.copy(), dtype=dtype, device=dev)))
        return _Group(s, parts, dtype)

    def _contrib(self, g: _Group, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = g.syn
        if s.kind == "identity":
            return x
        if s.kind == "conv":
            src_shape = self.pops[s.src].shape
            xin = x.to(g.dtype).reshape((x.shape[0],) + tuple(src_shape))
            y = F.conv2d(xin, w, stride=tuple(s.stride), padding=tuple(s.padding),
                         dilation=tuple(s.dilation), groups=s.groups).reshape(x.shape[0], -1)
            if g.bounded:          # exact integers below 2**23: no rounding, no wrap
                return y.to(torch.int64)
            return wrap24(y.round().to(torch.int64))
        y = (x.to(g.dtype) @ w).round().to(torch.int64)
        return _shift(y, int(s.weight_exp))

    def _attention(self, a: Attention, q, k, v) -> torch.Tensor:
        B = q.shape[0]
        dh = a.dim // a.heads
        shp = (B, a.heads, dh, a.tokens)
        dt = torch.float32 if (a.tokens * a.tokens * dh < (1 << 24) and self.exact32) else torch.float64
        qh, kh, vh = (t.to(dt).reshape(shp) for t in (q, k, v))
        ktv = kh @ vh.transpose(-1, -2)                      # [B, H, dh(k), dh(v)]
        y = qh.transpose(-1, -2) @ ktv                       # [B, H, N, dh]
        y = y.transpose(-1, -2).reshape(B, -1)               # [B, D*N] in [D, N] order
        return y.round().to(torch.int64) * int(a.weight)

    def run(self, inputs: dict, steps: int, record=None, progress=None) -> dict:
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
            if p.input_kind == "bias":
                x = x.reshape(x.shape[0], -1).to(torch.int64)
                b = x.shape[0]
            else:
                x = x.reshape(x.shape[0], x.shape[1], -1)
                b = x.shape[1]
                x = x.to(torch.int64)
            if x.shape[-1] != p.size:
                raise BadInputError(f"input '{p.name}': {x.shape[-1]} values per step, expected {p.size}")
            if B is not None and b != B:
                raise BadInputError(f"input '{p.name}': batch {b} differs from {B}")
            B = b
            data[p.name] = x
        if B is None:
            B = 1
        u, v, par, ring = {}, {}, {}, {}
        for name, p in self.pops.items():
            n = p.size
            if p.kind == "input":
                continue
            u[name] = torch.zeros(B, n, dtype=torch.int64, device=dev)
            v[name] = torch.zeros(B, n, dtype=torch.int64, device=dev)
            if p.bias_input:
                bm = data[p.bias_input]
            else:
                bm = torch.as_tensor(np.broadcast_to(np.asarray(p.bias_mant, dtype=np.int64), p.shape).reshape(1, -1).copy(), device=dev)
            bias = _shift(bm, int(p.bias_exp)) if p.bias_exp >= 0 else bm >> (-int(p.bias_exp))
            if not p.bias_input and not torch.any(bias):
                bias = 0
            par[name] = (int(p.du), int(p.dv), int(p.vth), bias)
            ring[name] = torch.zeros(self.ring_len[name], B, n, dtype=torch.int64, device=dev)
        hist = {}  # spike histories for attention inputs with balance delays
        att_hist_len = {}
        for a in self.atts:
            for src, d in zip((a.q, a.k, a.v), a.balance_delays):
                att_hist_len[src] = max(att_hist_len.get(src, 1), (d if self.pipelined else 0) + 1)
        # reset schedules are in pipelined (hardware) time; the layer-synchronous model sees them shifted
        shift = {n: 0 for n in self.pops}
        if not self.pipelined and any(p.reset_interval for p in self.net.populations):
            shift = self.net.latency()
        for name, L in att_hist_len.items():
            hist[name] = [torch.zeros(B, self.pops[name].size, dtype=torch.int64, device=dev)] * L
        rec = {n: {"s": [], "u": [], "v": []} for n in record}
        spikes = {}
        for t in range(steps):
            ts = t + 1
            for name in self.order:
                p = self.pops[name]
                if p.kind == "input":
                    if p.input_kind == "bias":
                        continue
                    x = data[name]
                    s = x[t % x.shape[0]]
                else:
                    L = ring[name].shape[0]
                    a_in = ring[name][t % L].clone()
                    ring[name][t % L].zero_()
                    if p.reset_interval and (ts + shift[name]) % p.reset_interval == p.reset_offset % p.reset_interval:
                        u[name].zero_()
                        v[name].zero_()
                    du, dv, vth, bias = par[name]
                    u[name], v[name], sb = lif_step(u[name], v[name], a_in, du, dv, vth, bias, self.safe[name])
                    s = sb.to(torch.int64)
                spikes[name] = s
                if name in hist:
                    hist[name] = hist[name][1:] + [s]
                if name in rec:
                    rec[name]["s"].append(s)
                    if p.kind != "input":
                        rec[name]["u"].append(u[name].clone())
                        rec[name]["v"].append(v[name].clone())
                for g in self.out_groups[name]:
                    for off_p, off_s, w in g.parts:
                        off = off_p if self.pipelined else off_s
                        rl = ring[g.syn.dst]
                        rl[(t + off) % rl.shape[0]] += self._contrib(g, s, w)
                for a in self.atts:
                    if self._att_ready(a, name):
                        if self.pipelined:
                            q, k, vv = (hist[src][-1 - d] for src, d in zip((a.q, a.k, a.v), a.balance_delays))
                        else:
                            q, k, vv = spikes[a.q], spikes[a.k], spikes[a.v]
                        off = 1 if self.pipelined else 0
                        rl = ring[a.dst]
                        rl[(t + off) % rl.shape[0]] += self._attention(a, q, k, vv)
            if progress is not None:
                progress(1)
        out = {}
        for n, r in rec.items():
            out[n] = {k: torch.stack(vals) for k, vals in r.items() if vals}
        return out

    def _att_ready(self, a: Attention, name: str) -> bool:
        """The attention op fires once per step, after the last of its inputs in topological order."""
        srcs = {a.q, a.k, a.v}
        if name not in srcs:
            return False
        last = max(srcs, key=self.order.index)
        return name == last


def simulate(net: LoweredNetwork, inputs: dict, steps: int, record=None, device="cpu", pipelined=True) -> dict:
    """Convenience wrapper: numpy results ``{pop: {"s"|"u"|"v": array [steps, B, n]}}``."""
    res = Engine(net, device=device, pipelined=pipelined).run(inputs, steps, record=record)
    return {n: {k: t.cpu().numpy() for k, t in r.items()} for n, r in res.items()}
