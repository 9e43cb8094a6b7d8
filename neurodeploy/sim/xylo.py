"""Neurodeploy's own integer engine for the Xylo SNN core (Audio 2, IMU, Audio 3), vectorized over neurons and
samples, bit-exact with SynSense's XyloSim (``XyloSim.from_specification``: spikes, Vmem, Isyn and the output
layer equal at every step; ``tests/test_xylo_target.py``).  Hand-written: no library simulates this integer
core apart from XyloSim itself, which is an optional C++ package that runs one sample at a time.

The network is a Xylo *specification* (the dict rockpool's mapper produces, field names as there):
``weights_in`` [Nin, Nien(, S)], ``weights_rec`` [Nhid, Nhid(, S)], ``weights_out`` [Noen, Nout] (rows = the
last Noen hidden neurons), ``dash_mem`` / ``dash_syn`` / ``dash_syn_2`` [Nhid], ``dash_mem_out`` /
``dash_syn_out`` [Nout], ``threshold`` [Nhid], ``threshold_out`` [Nout], ``bias`` / ``bias_out``,
``weight_shift_in`` / ``_rec`` / ``_out``.

One step t (the core's order):

1. deliver input counts (clipped to 15 per channel) through ``weights_in`` and the hidden spikes of step t-1
   (<= 31 each) through ``weights_rec`` into the synaptic states, each weight ``(w << shift)`` added with
   16-bit saturation, inputs in channel order then hidden neurons in order; the same t-1 hidden spikes go
   through ``weights_out`` to the output neurons;
2. every neuron: ``isyn -= decay(isyn, dash_syn)``; ``dv = sat(sat(wrap16(-decay(v, dash_mem)) + sum isyn) + bias)``;
   ``v = sat(v + dv)`` where ``decay(x, d) = x >> d`` (arithmetic), or sign(x) when that is 0;
3. spikes: while ``v >= threshold`` and fewer than 31 (hidden) / 1 (output) spikes: one more spike and
   ``v -= threshold`` (reset by subtraction).

Saturation makes the sum order matter only when a partial sum leaves 16 bits: the engine adds the positive and
the negative contributions as two exact sums (float32 / float64 matrix products, exact below 2^24 / 2^53) and replays in the
core's order only the (sample, neuron, synapse) states whose partial sums could saturate.
"""
from __future__ import annotations

import numpy as np

from ..errors import BadInputError, UnsupportedError

BITS_STATE = 16
MAX_INPUT_SPIKES = 15       # per input channel and step
MAX_HIDDEN_SPIKES = 31      # per hidden neuron and step
MAX_OUTPUT_SPIKES = 1       # per output neuron and step
REPLAY_CHUNK = 4096         # saturating states replayed at once (memory: chunk x pre-neurons)
LO, HI = -(2 ** (BITS_STATE - 1)), 2 ** (BITS_STATE - 1) - 1


def _wrap16(x):
    return ((x - LO) % (1 << BITS_STATE)) + LO


def _sat(x):
    return np.clip(x, LO, HI)


def _decay(x, dash):
    d = x >> dash
    return np.where((d == 0) & (x != 0), np.sign(x), d)


def _as3(w, n_pre, n_post):
    w = np.asarray(w, dtype=np.int64)
    if w.ndim == 2:
        w = w[:, :, None]
    if w.ndim != 3 or w.shape[0] != n_pre or w.shape[1] > n_post:
        raise BadInputError(f"xylo spec: weights of shape {w.shape} do not match {n_pre} sources and "
                            f"{n_post} hidden neurons")
    return w


class XyloNetwork:
    """A Xylo specification as integer arrays, ready to run (see the module docstring for the fields)."""

    def __init__(self, spec: dict):
        g = lambda k, n, d=0: np.asarray(spec.get(k) if spec.get(k) is not None else np.full(n, d),  # noqa: E731
                                         dtype=np.int64).reshape(-1)
        w_rec = np.asarray(spec["weights_rec"], dtype=np.int64)
        self.n_hidden = int(w_rec.shape[0])
        w_in = np.asarray(spec["weights_in"], dtype=np.int64)
        self.n_in = int(w_in.shape[0])
        self.w_in = _as3(w_in, self.n_in, self.n_hidden)
        self.w_rec = _as3(w_rec, self.n_hidden, self.n_hidden)
        self.w_out = np.asarray(spec["weights_out"], dtype=np.int64)
        if self.w_out.ndim != 2 or self.w_out.shape[0] > self.n_hidden:
            raise BadInputError(f"xylo spec: weights_out of shape {self.w_out.shape} for {self.n_hidden} hidden neurons")
        self.n_out = int(self.w_out.shape[1])
        self.n_syn = max(self.w_in.shape[2], self.w_rec.shape[2])
        H, O = self.n_hidden, self.n_out
        self.dash_mem = g("dash_mem", H)
        dsyn = [g("dash_syn", H), g("dash_syn_2", H)]
        self.dash_syn = np.stack(dsyn[:self.n_syn], axis=1)            # [H, S]
        self.threshold, self.bias = g("threshold", H), g("bias", H)
        self.dash_mem_out, self.dash_syn_out = g("dash_mem_out", O), g("dash_syn_out", O)
        self.threshold_out, self.bias_out = g("threshold_out", O), g("bias_out", O)
        if any(spec.get("aliases") or []):
            raise BadInputError("xylo spec: aliases are not supported by neurodeploy's engine")
        sh = [int(spec.get(k, 0) or 0) for k in ("weight_shift_in", "weight_shift_rec", "weight_shift_out")]
        # (w << shift) as the core's 16-bit synapse value; padded to full [pre, H, S] / [H, O]
        wi = np.zeros((self.n_in, H, self.n_syn), np.int64)
        wi[:, :self.w_in.shape[1], :self.w_in.shape[2]] = _wrap16(self.w_in << sh[0])
        wr = np.zeros((H, H, self.n_syn), np.int64)
        wr[:, :, :self.w_rec.shape[2]] = _wrap16(self.w_rec << sh[1])
        wo = np.zeros((H, O), np.int64)
        wo[H - self.w_out.shape[0]:] = _wrap16(self.w_out << sh[2])
        self.wi, self.wr, self.wo = wi, wr, wo
        # positive / negative parts as float matrices: float32 when every partial sum of a step stays below 2^24
        # (exact in any summation order), else float64 (exact below 2^53)
        bound = max(float(MAX_INPUT_SPIKES * np.abs(wi).sum(axis=0).max(initial=0)
                          + MAX_HIDDEN_SPIKES * np.abs(wr).sum(axis=0).max(initial=0)),
                    float(MAX_HIDDEN_SPIKES * np.abs(wo).sum(axis=0).max(initial=0)))
        self.dtype = np.float32 if bound < 2 ** 24 else np.float64
        f = lambda a: a.reshape(a.shape[0], -1).astype(self.dtype)  # noqa: E731
        self._wi_pos, self._wi_neg = f(np.maximum(wi, 0)), f(np.minimum(wi, 0))
        self._wr_pos, self._wr_neg = f(np.maximum(wr, 0)), f(np.minimum(wr, 0))
        self._wo_pos, self._wo_neg = f(np.maximum(wo, 0)), f(np.minimum(wo, 0))

    # ------------------------------------------------------------------ one step pieces
    @staticmethod
    def _deliver(state, parts, pre_counts, w_full):
        """state [B, N*S] += every (count x weight) with per-add saturation, in the core's order."""
        pos = neg = 0
        for c, (wp, wn) in zip(pre_counts, parts):
            act = np.nonzero(c.any(axis=0))[0]          # event-driven: only the rows of sources that spiked
            if len(act) < c.shape[1] // 2:
                c, wp, wn = c[:, act], wp[act], wn[act]
            pos, neg = pos + c @ wp, neg + c @ wn
        pos, neg = np.asarray(pos).astype(np.int64), np.asarray(neg).astype(np.int64)
        safe = (state + pos <= HI) & (state + neg >= LO)
        new = state + pos + neg
        if not safe.all():          # replay the saturating adds in order (rare: states near the 16-bit rails)
            bs, ks = np.nonzero(~safe)
            for lo in range(0, len(bs), REPLAY_CHUNK):      # vectorized over the flagged states, chunked
                b, k = bs[lo:lo + REPLAY_CHUNK], ks[lo:lo + REPLAY_CHUNK]
                v = state[b, k].copy()
                for c, w in zip(pre_counts, w_full):
                    contrib = c[b].astype(np.int64) * w.reshape(w.shape[0], -1)[:, k].T     # [flagged, pre]
                    for j in np.nonzero(contrib.any(axis=0))[0]:                         # pre in the core's order
                        v = np.clip(v + contrib[:, j], LO, HI)
                new[b, k] = v
        return new

    @staticmethod
    def _neurons(isyn, v, dash_syn, dash_mem, bias, th, max_spikes):
        """isyn [B, N, S], v [B, N] -> (isyn, v, spikes) after decay, integration and spiking."""
        isyn = isyn - _decay(isyn, dash_syn[None])
        dv = _sat(_wrap16(-_decay(v, dash_mem[None])) + isyn.sum(-1))     # -(-32768) wraps in int16
        dv = _sat(dv + bias[None])
        v = _sat(v + dv)
        n = np.zeros_like(v)
        pos = th > 0
        if pos.all():
            n = np.where(v >= th, np.minimum(max_spikes, (v - th) // np.where(pos, th, 1) + 1), 0)
            v = v - n * th
        else:               # threshold <= 0: the core's loop, with its 16-bit wrap on v -= threshold
            for _ in range(max_spikes):
                m = (v >= th) & (n < max_spikes)
                n = n + m
                v = np.where(m, _wrap16(v - th), v)
        return isyn, v, n

    # ------------------------------------------------------------------ run
    def run(self, x, record: bool = True) -> dict:
        """Integer input counts ``x`` [B, T, Nin] (or [T, Nin]) -> dict of int arrays: ``out`` [B, T, Nout]
        output spikes, and with ``record`` ``spikes`` / ``vmem`` / ``isyn`` [B, T, Nhid], ``vmem_out`` /
        ``isyn_out`` [B, T, Nout]."""
        x = np.asarray(x)
        single = x.ndim == 2
        if single:
            x = x[None]
        if x.ndim != 3 or x.shape[2] != self.n_in:
            raise BadInputError(f"xylo input of shape {x.shape}: expected [B, T, {self.n_in}] spike counts")
        if not np.issubdtype(x.dtype, np.integer):
            if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
                raise BadInputError("xylo input: spike counts must be finite integers")
        x = np.asarray(x, dtype=np.int64)
        if x.min(initial=0) < 0:
            raise BadInputError("xylo input: spike counts must be >= 0")
        B, T, _ = x.shape
        H, O, S = self.n_hidden, self.n_out, self.n_syn
        isyn = np.zeros((B, H * S), np.int64)
        v = np.zeros((B, H), np.int64)
        isyn_o = np.zeros((B, O), np.int64)
        v_o = np.zeros((B, O), np.int64)
        spikes = np.zeros((B, H), np.int64)
        out = np.zeros((B, T, O), np.int64)
        rec = {k: np.zeros((B, T, n), np.int64) for k, n in
               (("spikes", H), ("vmem", H), ("isyn", H), ("vmem_out", O), ("isyn_out", O))} if record else {}
        parts_h = [(self._wi_pos, self._wi_neg), (self._wr_pos, self._wr_neg)]
        parts_o = [(self._wo_pos, self._wo_neg)]
        for t in range(T):
            cin = np.minimum(x[:, t], MAX_INPUT_SPIKES).astype(self.dtype)
            crec = spikes.astype(self.dtype)
            isyn = self._deliver(isyn, parts_h, [cin, crec], [self.wi, self.wr])
            isyn_o = self._deliver(isyn_o, parts_o, [crec], [self.wo])
            i3, v, spikes = self._neurons(isyn.reshape(B, H, S), v, self.dash_syn, self.dash_mem, self.bias,
                                          self.threshold, MAX_HIDDEN_SPIKES)
            isyn = i3.reshape(B, H * S)
            io, v_o, so = self._neurons(isyn_o[:, :, None], v_o, self.dash_syn_out[:, None], self.dash_mem_out,
                                        self.bias_out, self.threshold_out, MAX_OUTPUT_SPIKES)
            isyn_o = io[:, :, 0]
            out[:, t] = so
            if record:
                rec["spikes"][:, t], rec["vmem"][:, t], rec["isyn"][:, t] = spikes, v, i3[:, :, 0]
                rec["vmem_out"][:, t], rec["isyn_out"][:, t] = v_o, isyn_o
        res = {"out": out, **rec}
        return {k: a[0] for k, a in res.items()} if single else res


def input_counts(x, n_in: int, steps: int | None = None) -> np.ndarray:
    """Samples as Xylo input: integer spike counts [B, T, Nin] (>= 0; the core takes at most 15 per step)."""
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[1] == n_in and steps:
        raise UnsupportedError(f"xylo: static samples [N, {n_in}] have no spike encoding on Xylo: give event data "
                               f"[N, T, {n_in}] (spike counts per step)")
    if x.ndim != 3 or x.shape[2] != n_in:
        raise BadInputError(f"xylo: samples of shape {x.shape}: expected [N, T, {n_in}] spike counts")
    if not np.all(np.isfinite(x)) or np.any(x < 0) or np.any(x != np.round(x)):
        raise BadInputError("xylo: samples must be spike counts (integers >= 0)")
    return x.astype(np.int64)
