"""Our engine's step models: one small class per population kind, owning that population's state and its
step (Lava's Process / ProcessModel split: the lowered :class:`~neurodeploy.lower.network.Population` is the
process, a model here is how our engine runs it).  :data:`MODELS` maps each kind to its model;
:func:`build` prepares one for a run.

* :class:`InputModel` (``input``, spikes / graded): the sample's data at step ``t`` (looped like Lava's
  RingBuffer).  ``bias`` inputs have no model: LIF populations read them as their bias.
* :class:`RelayModel` (``relay``): a graded relay sends its input unchanged (``s = a_in``).
* :class:`GradedModel` (``prod`` / ``graded_vec`` / ``graded_relu``): :func:`neurodeploy.sim.graded.graded_step`.
* :class:`LIFModel` (``lif`` / ``readout``): Lava ``PyLifModelBitAcc`` / ``PyLifResetModelBitAcc`` on int64
  state (:func:`lif_step`), and :class:`LIFFloatModel`, the same integers on float state where the engine's
  bounds prove it exact (optionally one torch.compile'd kernel).  Both take the registers' meaning from
  :class:`neurodeploy.lif.LIFFixed` (the one fixed-point LIF rule).

``step(t, ts, recnow)`` returns ``(s, idle)``: the output payload (float32 0/1 spikes, or graded integers
in a float dtype) and whether the population did nothing this step (``s`` is zeros; its groups are
skipped).  ``idle(t)`` is the step of a population outside its sample windows (pipelined samples).
"""
from __future__ import annotations

import ctypes

import numpy as np
import torch

from ..lif import DECAY_ONE, LIFFixed
from . import native
from .graded import graded_step
from .groups import F32_EXACT, M24, shift

V_LIM = (1 << 23) - 1

#: compile the LIF update (``Engine(compile=True)``) for populations with at least this many values
COMPILE_MIN = 1 << 15

#: on the CPU, float-state LIF populations with at most this many values (batch x neurons) step in numpy on
#: views of the same tensors: numpy's per-call overhead is about 1 us against torch's 3-4 us, measured 1.6x
#: faster from 10 to 65,536 values on one thread; above that torch's intra-op threads may win
NUMPY_MAX = 1 << 16


def _wrap32(x: torch.Tensor) -> torch.Tensor:
    return torch.remainder(x + (1 << 31), 1 << 32) - (1 << 31)


def _trunc_decay(x: torch.Tensor, factor: int) -> torch.Tensor:
    """x * factor / 4096 rounded toward zero (Lava: sign(p) * (|p| >> 12)); for p < 0 that is
    (p + 4095) >> 12."""
    p = x * factor
    return torch.where(p < 0, p + 4095, p) >> 12


def lif_step(u, v, a_in, du, dv, vth, bias, safe=False):
    """One fixed-point CUBA LIF step on int64 tensors (Lava PyLifModelBitAcc); returns u, v, spikes.
    ``du``, ``dv``, ``vth``: the registers (see :class:`neurodeploy.lif.LIFFixed`).  ``safe``: the caller
    guarantees |u_decayed + (a_in << 6)| <= 2**23, so the int32 and 24-bit wrap-arounds cannot trigger (the
    result is the same; only the work is skipped)."""
    p = LIFFixed(int(du), int(dv), int(vth))
    act = a_in << 6
    if p.u_keep == 0:
        u = act if safe else _wrap32(act)
    elif p.u_keep == DECAY_ONE:
        u = u + act if safe else _wrap32(u + _wrap32(act))
    else:
        u = _trunc_decay(u, p.u_keep) + act if safe else \
            _wrap32(_wrap32(_trunc_decay(u, p.u_keep)) + _wrap32(act))
    if not safe:
        u = torch.where(u > M24, u - 2 * M24, torch.where(u <= -M24, u + 2 * M24, u))
    if p.v_keep == DECAY_ONE:
        v = v + u
    elif p.v_keep == 0:
        v = u.clone()
    else:
        v = _trunc_decay(v, p.v_keep) + u
    if not (isinstance(bias, int) and bias == 0):
        v = v + bias
    v = v.clamp_(-V_LIM, V_LIM)
    s = v > p.threshold
    v = v.masked_fill_(s, 0)
    return u, v, s


def _odd(f: int) -> int:
    """The odd part of a decay factor (its significant bits: v * f is exact when v * odd(f) is)."""
    f = abs(int(f))
    while f and not f & 1:
        f >>= 1
    return f


def _k_v(v, slot, bias, fv, th):
    """Fused fast LIF step, du = 4095 (u = a_in << 6): the integers of :meth:`LIFFloatModel.update` (every
    intermediate is an exactly representable integer, so any evaluation order gives the same result;
    clamping where the bound proves it unnecessary changes nothing; dv = 4096 is fv = 0)."""
    x = torch.trunc(v * fv) + slot * 64 + bias
    x = x.clamp(-V_LIM, V_LIM)
    spike = x > th
    v.copy_(torch.where(spike, torch.zeros_like(x), x))
    return spike.to(torch.float32)


def _k_uv(u, v, slot, bias, fu, fv, th):
    """Fused fast LIF step with current decay."""
    un = torch.trunc(u * fu) + slot * 64
    x = torch.trunc(v * fv) + un + bias
    x = x.clamp(-V_LIM, V_LIM)
    spike = x > th
    u.copy_(un)
    v.copy_(torch.where(spike, torch.zeros_like(x), x))
    return spike.to(torch.float32)


_KERNELS = {}


def kernel(no_current_memory: bool):
    if no_current_memory not in _KERNELS:
        _KERNELS[no_current_memory] = torch.compile(_k_v if no_current_memory else _k_uv, dynamic=True)
    return _KERNELS[no_current_memory]


class Run:
    """What every model of one run shares: batch, device, recordings, the layout converter, the stream."""

    def __init__(self, eng, B: int, data: dict, record: set, stream, shift: dict, steps: int = 0):
        self.eng = eng
        self.B = B
        self.steps = int(steps)
        self.dev = eng.device
        self.data = data
        self.record = record
        self.stream = stream          # (T, K, latency per population) for pipelined samples, else None
        self.shift = shift
        self.windows = {}             # population -> (first, end) step it records (Engine.run(windows=...))
        self.skip_silent = eng.device.type == "cpu" and eng.skip_silent
        self.safe = eng.safe          # LIFs whose u cannot wrap (the engine may prove more from the data)


class StepModel:
    """The parts every population's model has: its ring buffer of pending input (``pend``, and ``pend2``
    for a product neuron's second port), its outgoing groups, its recording and its sample windows."""
    is_input = False
    gdtype = torch.float32

    def __init__(self, eng, p, run: Run):
        self.name = p.name
        self.n = p.size
        self.B = run.B
        self.dev = run.dev
        self.rec = p.name in run.record
        self.ri = 0         # steps recorded so far (rows of the record buffers)
        self.to_net = (lambda x, _n=p.name: eng._to_network(_n, x)) if eng.hwc.get(p.name) else None
        self.L = eng.ring_len[p.name]
        self.pend = [None] * self.L
        self.pend2 = None
        self.ring_dtype = eng.ring_dtype[p.name]
        self.zero = None
        self.lo, self.hi = 0, 1 << 62
        self.idle_skip = False
        if run.stream is not None:
            # the population's sample windows: steps lat+1 .. lat+K*T (0-based t in [lo, hi))
            T_s, K_s, lat = run.stream
            self.lo, self.hi = lat[p.name], lat[p.name] + K_s * T_s
            self.idle_skip = eng.skip_idle
        elif p.name in run.windows and p.kind != "input":     # records only these steps; runs every step
            self.lo, self.hi = (int(v) for v in run.windows[p.name])
        # filled by the engine: [(group, weight, offset, destination model, port 2?, ring dtype)], the
        # attention ops this population completes, its spike history (attention balance delays)
        self.groups = []
        self.atts = []
        self.hist = None
        self.checks = 0     # silence checks done / found silent (checking stops when it rarely pays)
        self.silent = 0
        # native LIF models: the number of spikes of this step's payload and, when ``idx`` (an int32 numpy
        # array [B*n]) is set, per row the shorter of its lists of spikes / silent neurons (``cnt``: spikes
        # per row, then the total listed; see native.c)
        self.nev = None
        self.idx = None

    keys = ("s",)           # what the model records: its payload (LIF models: s, u, v)

    def alloc_record(self, steps: int):
        """int64 record buffers [steps it can record, B, n] (written in place: no per-step allocation)."""
        rows = max(0, min(steps, self.hi) - max(0, self.lo))
        self.buf = {k: torch.empty((rows, self.B, self.n), dtype=torch.int64, device=self.dev) for k in self.keys}
        self.bufn = {k: b.numpy() for k, b in self.buf.items()} if self.dev.type == "cpu" else None

    def recorded(self) -> dict:
        """``{"s"|"u"|"v": tensor [recorded steps, B, n]}`` in the network's neuron order ({} if none)."""
        if not self.ri:
            return {}
        return {k: self.net_order(b[:self.ri]) for k, b in self.buf.items()}

    def net_order(self, x):
        return x if self.to_net is None else self.to_net(x)

    def zeros(self):
        if self.zero is None:
            self.zero = torch.zeros(self.B, self.n, dtype=self.gdtype, device=self.dev)
        return self.zero

    def take(self, t):
        k = t % self.L
        slot = self.pend[k]
        self.pend[k] = None
        return slot

    def idle(self, t):
        """Outside its sample windows: what arrives is dropped (no window sees it), nothing is sent."""
        k = t % self.L
        self.pend[k] = None
        if self.pend2 is not None:
            self.pend2[k] = None
        return self.zeros()


class InputModel(StepModel):
    is_input = True

    def __init__(self, eng, p, run: Run):
        super().__init__(eng, p, run)
        x = run.data[p.name]
        # spikes (0/1) are exact in float32; graded payloads in float64
        xi = eng._to_internal(p.name, x)
        self.x = xi.to(torch.float32) if p.input_kind == "spikes" else xi.to(torch.float64)
        self.xint = x
        self.T = x.shape[0]
        self.to_net = None      # recorded from the data, in the network's order

    def idle(self, t):
        return self.zeros()

    def step(self, t, ts, recnow):
        i = t % self.T
        if recnow:
            self.buf["s"][self.ri].copy_(self.xint[i])
            self.ri += 1
        return self.x[i], False


class RelayModel(StepModel):
    """A graded relay: s = a_in, no state."""

    def __init__(self, eng, p, run: Run):
        super().__init__(eng, p, run)
        self.relay = torch.zeros(run.B, self.n, dtype=self.ring_dtype, device=run.dev)

    def step(self, t, ts, recnow):
        slot = self.take(t)
        s = self.relay if slot is None else slot
        if recnow:
            self.buf["s"][self.ri].copy_(s)
            self.ri += 1
        return s, False


class GradedModel(StepModel):
    """A product neuron (``prod``: two input ports) or a graded vector (``graded_vec``), without memory."""

    def __init__(self, eng, p, run: Run):
        super().__init__(eng, p, run)
        self.kind, self.vth, self.exp = p.kind, int(p.vth), int(p.exp)
        self.gdtype = torch.float32 if (eng.gbound[p.name] < F32_EXACT and eng.exact32) else torch.float64
        self.skip_silent = run.skip_silent
        if p.kind == "prod":
            self.pend2 = [None] * self.L

    def step(self, t, ts, recnow):
        slot = self.take(t)
        slot2 = None
        if self.pend2 is not None:
            slot2 = self.pend2[t % self.L]
            self.pend2[t % self.L] = None
        if slot is None or (self.kind == "prod" and slot2 is None):     # no input: the payload is 0
            s = self.zeros()
            idle = self.skip_silent
        else:
            s = graded_step(self.kind, slot, slot2, self.vth, self.exp, (self.B, self.n), self.gdtype, self.dev)
            idle = False
        if recnow:
            self.buf["s"][self.ri].copy_(s)
            self.ri += 1
        return s, idle


class LIFModel(StepModel):
    """A CUBA LIF population (``lif`` / ``readout``) on int64 state: :func:`lif_step` (the reference)."""
    keys = ("s", "u", "v")

    def __init__(self, eng, p, run: Run):
        super().__init__(eng, p, run)
        dev, B, n = run.dev, run.B, self.n
        self.lif = LIFFixed(int(p.du), int(p.dv), int(p.vth))
        if p.bias_input:
            bm = run.data[p.bias_input]
        else:
            bm = torch.as_tensor(np.broadcast_to(np.asarray(p.bias_mant, dtype=np.int64), p.shape)
                                 .reshape(1, -1).copy(), device=dev)
        bias = shift(bm, int(p.bias_exp)) if p.bias_exp >= 0 else bm >> (-int(p.bias_exp))
        self.bias_full = eng._to_internal(p.name, bias)
        self.bmax = float(self.bias_full.abs().max()) if self.bias_full.numel() else 0.0
        # bias [K, B, n] when streaming: one per sample window
        self.per_sample = run.stream is not None and bool(p.bias_input)
        self.biases = None
        v0 = np.broadcast_to(np.asarray(p.v_init, dtype=np.int64), p.shape).reshape(1, -1)
        self.v0 = eng._to_internal(p.name, torch.as_tensor(v0.copy(), device=dev)) if np.any(v0) else None
        self.v0max = float(np.abs(v0).max()) if v0.size else 0.0
        self.reset_interval = int(p.reset_interval)
        self.reset_mod, self.shift = 0, 0
        if self.reset_interval:
            self.reset_mod = p.reset_offset % p.reset_interval
            self.shift = run.shift[p.name]
        self.T_s = self.K_s = 0
        if run.stream is not None:      # chained mode with period T: reset at the start of every window
            self.T_s, self.K_s, lat = run.stream
            self.reset_interval, self.reset_mod, self.shift = self.T_s, (lat[p.name] + 1) % self.T_s, 0
        # no bias, no initial v, vth >= 0: with u = v = 0 and no input a step is a no-op (skip_silent)
        self.rest_ok = self.rest = bool(eng.skip_silent and self.bmax == 0 and not p.bias_input
                                        and self.v0 is None and self.lif.vth >= 0)
        self.init_state(eng, p, run)

    def init_state(self, eng, p, run):
        B, n, dev = run.B, self.n, run.dev
        self.u = torch.zeros(B, n, dtype=torch.int64, device=dev)
        self.v = torch.zeros(B, n, dtype=torch.int64, device=dev)
        if self.v0 is not None:
            self.v.copy_(self.v0.expand(B, n))
        self.bias = self.bias_full if self.bmax or p.bias_input else 0
        if self.per_sample:
            self.biases, self.bias = self.bias_full, self.bias_full[0]
        self.zero_in = torch.zeros(B, n, dtype=torch.int64, device=dev)

    def reset(self, t):
        if self.u is not None:
            self.u.zero_()
        if self.v0 is None:
            self.v.zero_()
        else:
            self.v.copy_(self.v0.expand_as(self.v))
        self.rest = self.rest_ok
        if self.biases is not None:       # streamed samples: this window's bias
            k = (t - self.lo) // self.T_s
            if 0 <= k < self.K_s:
                self.bias = self.biases[k]

    def update(self, slot):
        a_in = self.zero_in if slot is None else slot.to(torch.int64)
        p = self.lif
        self.u, self.v, sb = lif_step(self.u, self.v, a_in, p.du, p.dv, p.vth, self.bias, False)
        return sb.to(torch.float32)

    def at_rest(self) -> bool:
        return not bool(self.v.any()) and (self.u is None or not bool(self.u.any()))

    def step(self, t, ts, recnow):
        slot = self.take(t)
        if self.reset_interval and (ts + self.shift) % self.reset_interval == self.reset_mod:
            self.reset(t)
        if slot is None and self.rest:
            # at rest (u = v = 0), no input, no bias, vth >= 0: the step changes nothing and sends nothing
            s, idle = self.zeros(), True
        else:
            s, idle = self.update(slot), False
            if self.rest_ok:
                # back at rest once no input came and u, v have decayed to 0
                self.rest = slot is None and self.at_rest()
        if recnow:
            self.record(slot, s)
        return s, idle

    def record(self, slot, s):
        i, b = self.ri, self.buf
        b["s"][i].copy_(s)
        b["v"][i].copy_(self.v)
        self.put_u(b["u"][i], slot)
        self.ri = i + 1

    def put_u(self, row, slot):
        row.copy_(self.u)


class LIFFloatModel(LIFModel):
    """Lava's fixed-point LIF in float state for a population whose u cannot wrap (the engine's
    ``safe`` bound): the same integers as :func:`lif_step`.  The products are exact integers in the float
    dtype, so ``trunc`` is Lava's rounding toward zero.

    |u| <= |a_in|max 64 * 4096 / (du + 1) (< 2**23: safe); |v_t| <= |v_{t-1}| (4096 - dv) / 4096 + |u|max +
    |bias|max, so |v| stays below the fixed point of that bound (and V_LIM): that decides whether the clamp
    is needed and whether float32 is exact (every product ``v * odd part of the decay factor`` and every
    sum below 2**24) or float64 is needed (always exact: < 2**36).  The spike is ``clamp(v - vth*64, 0,
    1)`` (integers: v > th <=> v - th >= 1); reset is ``v - v * s``."""

    def init_state(self, eng, p, run):
        B, n, dev = run.B, self.n, run.dev
        lif = self.lif
        umax = eng.in_bound[p.name] * 64 * (4096.0 / (lif.du + 1))
        vmax = (umax + self.bmax) * 4096.0 / lif.dv if lif.dv > 0 else float("inf")
        # an initial v only decays towards the bound (or stays: dv 0, where vmax is infinite)
        self.clamp = not (max(vmax, self.v0max) <= V_LIM)
        vstate = max(min(vmax, V_LIM), self.v0max)
        fu, fv = lif.u_keep, lif.v_keep
        f32 = (umax * _odd(fu) < F32_EXACT and vstate * _odd(fv) < F32_EXACT
               and vstate * fv / 4096.0 + umax + self.bmax < F32_EXACT)
        sdt = torch.float32 if f32 else torch.float64
        self.u = torch.zeros(B, n, dtype=sdt, device=dev) if fu else None
        self.v = torch.zeros(B, n, dtype=sdt, device=dev)
        if self.v0 is not None:
            self.v0 = self.v0.to(sdt)
            self.v.copy_(self.v0.expand(B, n))
        # the spike tensor is reused every step unless an attention op keeps a history of it
        self.sbuf = None if p.name in eng.att_hist_srcs else torch.empty(B, n, dtype=sdt, device=dev)
        self.bias = self.bias_full.to(sdt) if self.bmax else None
        if self.per_sample and self.bias is not None:
            self.biases, self.bias = self.bias, self.bias[0]
        self.fu = fu / 4096.0
        self.fv = fv / 4096.0
        self.th = float(lif.threshold)
        self.kernel = None
        if eng.compile and B * n >= COMPILE_MIN:
            self.kernel = kernel(fu == 0)
            self.kt = tuple(torch.tensor(x, dtype=sdt, device=dev) for x in (self.fu, self.fv, self.th))
            self.kzero = torch.zeros(1, n, dtype=sdt, device=dev)
        self.eng = eng
        # the fused C step (neurodeploy.sim.native) where the state and the input are float32 on the CPU
        self.nat = None
        if self.kernel is None and dev.type == "cpu" and sdt == torch.float32 and eng.native \
                and self.ring_dtype == torch.float32:
            self.nat = native.lib()
        if self.nat is not None:
            if self.bias is not None:
                self.bias = self.bias.contiguous()
                if self.biases is not None:
                    self.biases = self.biases.contiguous()
                    self.bias = self.biases[0]
            self.uin = torch.empty(B, n, dtype=torch.float32) if (self.rec and self.u is None) else None
            self.nev = 0
            self.iptr = (0, 0)
            self.nargs = None
            self.pool = None
        self.np = self.nat is None and self.kernel is None and dev.type == "cpu" and B * n <= NUMPY_MAX
        if self.np:         # numpy views of the same memory (torch's in-place resets stay visible)
            self.vn = self.v.numpy()
            self.un = None if self.u is None else self.u.numpy()
            self.biasn = None if self.bias is None else self.bias.numpy()
            self.tmp = np.empty((B, n), dtype=self.vn.dtype)
            self.sb = np.empty((B, n), dtype=bool)
            self.sf = None if self.sbuf is None else torch.empty(B, n, dtype=torch.float32)
            self.sfn = None if self.sf is None else self.sf.numpy()

    def reset(self, t):
        super().reset(t)
        if self.np and self.biases is not None:
            self.biasn = self.bias.numpy()

    def at_rest(self) -> bool:
        if self.np:
            return not self.vn.any() and (self.un is None or not self.un.any())
        return super().at_rest()

    def _update_np(self, slot):
        """:meth:`update` in numpy on the same memory (the same exact integers: every intermediate is an
        exactly representable integer or a product of one with a power of two)."""
        v, tmp = self.vn, self.tmp
        if slot is not None:
            np.multiply(slot.numpy(), 64, out=tmp)
        if self.un is None:             # no current memory: u = a_in << 6
            if self.fv == 0:
                v.fill(0)
            elif self.fv != 1:
                np.multiply(v, self.fv, out=v)
                np.trunc(v, out=v)
            if slot is not None:
                v += tmp
        else:
            u = self.un
            np.multiply(u, self.fu, out=u)
            np.trunc(u, out=u)
            if slot is not None:
                u += tmp
            if self.fv == 0:
                np.copyto(v, u)
            else:
                if self.fv != 1:
                    np.multiply(v, self.fv, out=v)
                    np.trunc(v, out=v)
                v += u
        if self.biasn is not None:
            v += self.biasn
        if self.clamp:
            np.clip(v, -V_LIM, V_LIM, out=v)
        sb = self.sb
        np.greater(v, self.th, out=sb)
        np.putmask(v, sb, 0)
        if self.sf is None:             # an attention op keeps a history of the spikes: a new tensor
            return torch.from_numpy(sb.astype(np.float32))
        np.copyto(self.sfn, sb)
        return self.sf

    def put_u(self, row, slot):
        if self.u is not None:
            row.copy_(self.u)
        elif slot is not None:          # no current memory: u = a_in << 6
            row.copy_(slot).mul_(64)
        else:
            row.zero_()

    def record(self, slot, s):
        if self.nat is not None:
            i, b = self.ri, self.buf
            b["s"][i].copy_(s)
            b["v"][i].copy_(self.v)
            if self.u is not None:
                b["u"][i].copy_(self.u)
            elif slot is not None and s is not self.zero:   # u = a_in << 6 of this step (the C step's uin)
                b["u"][i].copy_(self.uin)
            else:
                b["u"][i].zero_()
            self.ri = i + 1
            return
        if not self.np:
            return super().record(slot, s)
        i, b = self.ri, self.bufn
        if s is self.zero:              # a step at rest: no update ran (sb is an older step's)
            b["s"][i].fill(0)
        else:
            np.copyto(b["s"][i], self.sb)
        np.copyto(b["v"][i], self.vn, casting="unsafe")
        if self.un is not None:
            np.copyto(b["u"][i], self.un, casting="unsafe")
        elif slot is not None:          # u = a_in << 6, computed this step in tmp
            np.copyto(b["u"][i], self.tmp, casting="unsafe")
        else:
            b["u"][i].fill(0)
        self.ri = i + 1

    def want_events(self):
        """Have the native step list its spikes (an outgoing group sums over them)."""
        if self.nat is not None and self.idx is None:
            self.idx = np.empty(self.B * self.n, dtype=np.int32)
            self.cnt = np.zeros(self.B + 1, dtype=np.int32)
            self.iptr = (self.idx.ctypes.data, self.cnt.ctypes.data)
            self.nargs = None

    def slot_pool(self):
        """One preallocated input tensor per ring slot for native event sums (:class:`NativeSum`), or None
        where this model does not run the native step."""
        if self.nat is None:
            return None
        if self.pool is None:
            self.pool = [torch.empty(self.B, self.n, dtype=torch.float32) for _ in range(self.L)]
        return self.pool

    def _native_args(self):
        """nd_lif_f32's arguments as ctypes objects, converted once; the input, bias and spike pointers
        are set per call."""
        c = ctypes
        self.slot_p, self.bias_p, self.s_p = c.c_void_p(0), c.c_void_p(0), c.c_void_p(0)
        if self.sbuf is not None:
            self.s_p.value = self.sbuf.data_ptr()
        rows = 1 if self.bias is None else self.bias.shape[0]
        self.nfn = native.raw("nd_lif_f32", c.c_int64)
        self.nargs = (c.c_void_p(self.v.data_ptr()), c.c_void_p(0 if self.u is None else self.u.data_ptr()),
                      self.slot_p, self.bias_p, c.c_int64(rows), c.c_int64(self.B), c.c_int64(self.n),
                      c.c_float(self.fu), c.c_float(self.fv), c.c_float(self.th), c.c_int(int(self.clamp)),
                      c.c_float(float(V_LIM)), self.s_p, c.c_void_p(0 if self.uin is None else self.uin.data_ptr()),
                      c.c_void_p(self.iptr[0]), c.c_void_p(self.iptr[1]))

    def _update_nat(self, slot):
        """:meth:`update` as one pass of C (``nd_lif_f32``): the same integers; also counts (and, when
        ``idx`` is set, lists) the spikes."""
        if self.nargs is None:
            self._native_args()
        if self.sbuf is not None:
            s = self.sbuf
        else:               # an attention op keeps a history of the spikes: a new tensor each step
            s = torch.empty(self.B, self.n, dtype=torch.float32)
            self.s_p.value = s.data_ptr()
        if slot is None:
            self.slot_p.value = None
        else:
            if not slot.is_contiguous():
                slot = slot.contiguous()
            self.slot_p.value = slot.data_ptr()
        bias = self.bias
        self.bias_p.value = None if bias is None else bias.data_ptr()
        self.nev = self.nfn(*self.nargs)
        return s

    def update(self, slot):
        if self.nat is not None:
            return self._update_nat(slot)
        if self.np:
            return self._update_np(slot)
        if self.kernel is not None:
            return self._fused(slot)
        v = self.v
        if self.u is None:             # no current memory: u = a_in << 6
            if self.fv == 0:
                v.zero_()
            elif self.fv != 1:
                v.mul_(self.fv).trunc_()
            if slot is not None:
                v.add_(slot, alpha=64)
        else:
            u = self.u
            u.mul_(self.fu).trunc_()
            if slot is not None:
                u.add_(slot, alpha=64)
            if self.fv == 0:
                v.copy_(u)
            else:
                if self.fv != 1:
                    v.mul_(self.fv).trunc_()
                v.add_(u)
        if self.bias is not None:
            v.add_(self.bias)
        if self.clamp:
            v.clamp_(-V_LIM, V_LIM)
        s = (torch.sub(v, self.th) if self.sbuf is None else torch.sub(v, self.th, out=self.sbuf)).clamp_(0.0, 1.0)
        v.addcmul_(v, s, value=-1.0)
        return s if s.dtype == torch.float32 else s.to(torch.float32)

    def _fused(self, slot):
        """The update as one compiled (torch.compile) kernel; falls back to the eager ops for good when
        compiling is not possible here (no C++ compiler / Triton)."""
        fu, fv, th = self.kt
        sl = self.kzero if slot is None else slot
        bias = self.kzero if self.bias is None else self.bias
        try:
            if self.u is None:
                return self.kernel(self.v, sl, bias, fv, th)
            return self.kernel(self.u, self.v, sl, bias, fu, fv, th)
        except Exception as e:  # noqa: BLE001 - any compile failure: same integers from the eager path
            import warnings
            warnings.warn(f"neurodeploy.sim: torch.compile unavailable ({type(e).__name__}); using eager ops")
            self.eng.compile = False
            self.kernel = None
            return self.update(slot)


#: the step model of each population kind (``lif`` / ``readout`` pick the float form where it is exact)
MODELS = {"input": InputModel, "relay": RelayModel, "prod": GradedModel, "graded_vec": GradedModel,
          "graded_relu": GradedModel,
          "lif": LIFModel, "readout": LIFModel}


def build(eng, p, run: Run) -> StepModel | None:
    """The step model of population ``p`` for one run (None for a ``bias`` input: no step of its own)."""
    if p.kind == "input" and p.input_kind == "bias":
        return None
    cls = MODELS[p.kind]
    if cls is LIFModel and run.safe[p.name]:
        cls = LIFFloatModel
    m = cls(eng, p, run)
    if m.rec:
        m.alloc_record(run.steps)
    return m
