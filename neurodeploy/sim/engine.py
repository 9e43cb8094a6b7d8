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

import numpy as np
import torch

from ..errors import BadInputError, UnsupportedError
from ..lower.fixed_point import lava_effective_weights, lava_sign_mode  # noqa: F401 - re-exported
from ..lower.network import GRADED_KINDS, LoweredNetwork
from .graded import value_bounds
from .groups import F32_EXACT, M24, NativeSum, active_inputs, att_bound, attention, contrib, native_form, \
    prepare, scalar_weight, weight_bound
from .models import Run, build, lif_step  # noqa: F401 - lif_step re-exported (the int64 reference step)

_SKIP_CHECK_MAX = 1 << 18       # sources up to this many values (batch x neurons) are checked for silence


class Engine:
    """Simulates a :class:`LoweredNetwork` for a batch of samples.

    ``run(inputs, steps)``: ``inputs`` maps each input population name to an array [T, B, *shape] (spikes
    or graded integers, looped like Lava's RingBuffer when steps > T) or, for ``bias`` inputs, [B, *shape]
    (values written to the bias mantissa of the populations naming it in ``bias_input``).
    Returns ``{pop: {"s"|"u"|"v": tensor [steps, B, n]}}`` for the recorded populations.

    Each population runs as the step model of its kind (:mod:`neurodeploy.sim.models`, Lava's
    Process / ProcessModel split); the synapse groups and attention ops are :mod:`neurodeploy.sim.groups`.
    The step loop visits the models in topological order, delivers each one's payload through its groups
    into the destinations' ring buffers (one slot per pending step), and records in place.

    Speed (never at the cost of an integer):

    * Everything that does not depend on the time step is prepared once: weights in the exact float
      dtype, bounds, per-population constants; each run preallocates state and record buffers.
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
    * On the CPU a silent source (no spike in the whole batch) skips its synapse work (it adds exactly 0),
      and a dense group sums only the weight rows of its active inputs where the rule of
      :mod:`neurodeploy.sim.groups` says it pays (``event_driven``, default: with ``skip_silent``).
    * On the CPU small float-state LIF populations step in numpy on views of the same tensors
      (:data:`neurodeploy.sim.models.NUMPY_MAX`: less per-call overhead than torch's).
    * ``native`` (default, CPU): float32-state LIF populations step in one pass of C
      (:mod:`neurodeploy.sim.native`, built once with the system compiler) that also counts their spikes
      (a silent source needs no check) and lists, per sample, the shorter of its spikes / silent neurons;
      their conv and dense groups into float32 rings then sum only the listed inputs' weights (silent ones
      subtracted from the precomputed all-ones sum) when :data:`neurodeploy.sim.groups.NATIVE_EVENT_COST`
      says that beats the dense product, straight into the destination's ring.  Exact integers in any
      order (every partial sum is bounded like the full one); without a compiler the torch/numpy ops run.
    * ``compile=True``: the LIF update of large populations runs as one fused torch.compile kernel
      (falls back to the eager ops if compiling is impossible); the first run pays the compile time.
    * ``threads``: torch intra-op threads during ``run`` (None: leave torch's setting alone); one thread
      is fastest for small batches and on a busy machine.
    """

    _products_f64 = False   # tests: sum every product in float64 as on a GPU

    def __init__(self, net: LoweredNetwork, device: str | torch.device = "cpu", pipelined: bool = True,
                 threads: int | None = None, compile: bool = False, skip_idle: bool = True,
                 skip_silent: bool = True, event_driven: bool | None = None, native: bool = True):
        net.validate()
        self.net = net
        self.skip_idle = bool(skip_idle)
        self.skip_silent = bool(skip_silent)
        # sum only the rows of the active inputs where the rule in neurodeploy.sim.groups says it pays
        # (default: with skip_silent; CPU only, as the silence checks)
        self.event_driven = bool(skip_silent if event_driven is None else event_driven) and \
            torch.device(device).type == "cpu"
        self.device = torch.device(device)
        self.threads = threads
        # the fused C LIF step and event sums (neurodeploy.sim.native; CPU, float32, where it builds)
        self.native = bool(native) and self.device.type == "cpu"
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
        self.gbound = value_bounds(net, scalar_weight) if (any(s.kind == "einsum" for s in net.synapses) or any(
            p.kind in GRADED_KINDS for p in net.populations)) else {}
        for s in net.synapses:
            self.out_groups[s.src].append(prepare(self, s))
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
            self.in_bound[a.dst] += att_bound(a)
        self.ring_dtype = {}
        for n, b in self.in_bound.items():
            if b < F32_EXACT and self.exact32:
                self.ring_dtype[n] = torch.float32
            else:
                self.ring_dtype[n] = torch.float64
        for groups in self.out_groups.values():
            for g in groups:
                g.nat = native_form(self, g)
        self.att_last = {}
        for a in self.atts:
            srcs = {a.q, a.k, a.v}
            self.att_last.setdefault(max(srcs, key=self.order.index), []).append(a)
        self.att_hist_srcs = {n for a in self.atts for n in (a.q, a.k, a.v)}

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

    def _safe_flags(self, input_max: dict | None = None) -> dict:
        """Populations whose |u| provably stays within 24 bits (wrap-around work can be skipped).
        ``input_max``: the largest |value| of graded inputs in one run's data (without it a graded input has
        no bound)."""
        input_max = input_max or {}
        bound = {n: 0 for n in self.pops}
        declared = self.net.metadata.get("graded_bounds", {}) or {}     # payload bounds the lowering proved
        for n in self.order:        # a relay's bound (its payload's) is complete before its groups count
            groups = self.out_groups[n]
            src = self.pops[n]
            if n in declared:
                bound[n] = min(bound[n], float(declared[n]))
            if src.kind == "input" and src.input_kind != "spikes":
                m = input_max.get(n) if src.input_kind == "graded" else None
                for g in groups:
                    s = g.syn
                    if m is None or s.kind in ("einsum", "identity"):
                        bound[s.dst] = float("inf")
                        continue
                    # this run's payloads are at most m: every output sums at most m x its |weights|
                    rows = weight_bound(s.weights) * float(m)
                    if s.kind != "conv":
                        rows = rows * 2.0 ** s.weight_exp + 1
                    bound[s.dst] += rows * (1 + (s.delays is not None and
                                                 LoweredNetwork.max_delay(s) - s.balance_delay > 0) * 63)
                continue
            for g in groups:
                s = g.syn
                if s.kind == "einsum":
                    bound[s.dst] += g.bound
                    continue
                if s.kind == "identity":
                    bound[s.dst] = float("inf")
                    continue
                if s.graded and not (src.kind in ("relay", "graded_relu") and s.kind in ("dense", "sparse", "conv")
                                     and s.delays is None):
                    bound[s.dst] = float("inf")
                    continue
                rows = weight_bound(s.weights)
                if s.graded:            # a relay's payload is bounded by its own input (a residual stream; a
                    # conv's row: its kernel slice per output channel, the stream's depthwise reads one weight)
                    rows = rows * bound[n]
                if s.kind != "conv":
                    rows = rows * 2.0 ** s.weight_exp + 1
                bound[s.dst] += rows * (1 + (s.delays is not None and LoweredNetwork.max_delay(s) - s.balance_delay > 0) * 63)
        for a in self.atts:
            bound[a.dst] += att_bound(a)
        safe = {}
        for n, p in self.pops.items():
            if p.kind in ("input", "relay"):
                continue
            # |u_t| <= |u_{t-1}| (4095 - du) / 4096 + |a_in| 64 (decay rounds toward zero), so
            # |u| <= |a_in|max 64 * 4096 / (du + 1)
            memory = 4096.0 / (p.du + 1) if 0 <= p.du <= 4095 else float("inf")
            safe[n] = bound[n] * 64 * memory <= M24 - 64
        return safe


    def run(self, inputs: dict, steps: int, record=None, progress=None, windows: dict | None = None) -> dict:
        """``windows``: {population: (first, end)}: record only those steps of it (each population's own
        sample window in a pipelined run), not every step."""
        return self._threaded(self._run, inputs, steps, record, progress, None, windows)

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
        clock = self.net.metadata.get("sample_clock")
        if clock:
            return (f"its sample clock (token-tiled attention) needs samples {clock.get('period')} steps apart, "
                    "not T")
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


    def _inputs(self, inputs: dict, stream) -> tuple:
        """The input data on the device as int64 [T, B, n] (bias: [B, n], or [K, B, n] when streaming) and
        the batch size; refuses missing inputs, wrong sizes, non-binary spikes and unequal batches."""
        dev = self.device
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
        return data, (1 if B is None else B)

    def _models(self, run: Run) -> list:
        """One step model per population (topological order), wired: each model's outgoing parts
        ``(group, weight, offset, destination ring, ring dtype)``, the attention ops it completes and the
        spike histories those read."""
        models = {}
        for name in self.order:
            m = build(self, self.pops[name], run)
            if m is not None:
                models[name] = m
        self.hist = {}  # spike histories for attention inputs with balance delays
        for a in self.atts:
            for src, d in zip((a.q, a.k, a.v), a.balance_delays):
                L = max(len(self.hist.get(src, [None])), (d if self.pipelined else 0) + 1)
                self.hist[src] = [torch.zeros(run.B, self.pops[src].size, dtype=torch.float32,
                                              device=self.device)] * L
        for name, m in models.items():
            m.hist = self.hist.get(name)
            m.atts = [(a, models[a.dst]) for a in self.att_last.get(name, [])]
            for g in self.out_groups[name]:
                dst = models[g.syn.dst]
                nat = g.nat if getattr(m, "nat", None) is not None else None
                if nat:
                    m.want_events()
                for i, (off_p, off_s, w) in enumerate(g.parts):
                    off = off_p if self.pipelined else off_s + int(g.syn.src == g.syn.dst)
                    ring = dst.pend2 if g.syn.port == 2 else dst.pend
                    # a native sum bound to this run: the source's lists, the destination's ring (and, when
                    # the destination runs the native step, its preallocated slots)
                    bound = None
                    if nat:
                        pool = dst.slot_pool() if ring is dst.pend and hasattr(dst, "slot_pool") else None
                        bound = NativeSum(g, nat[i], m, ring, pool,
                                          int(g.syn.weight_exp) if g.syn.kind == "dense" else 0)
                    m.groups.append((g, w, off, ring, self.ring_dtype[g.syn.dst], bound))
            m.event = self.event_driven and any(g[0].event_driven for g in m.groups)
        return list(models.values())

    def _run(self, inputs: dict, steps: int, record=None, progress=None, stream=None, windows=None) -> dict:
        if not self.pipelined and self.net.metadata.get("sample_clock"):
            raise UnsupportedError("the layer-synchronous model (pipelined=False) cannot run a token-tiled attention "
                                   "schedule: its tiles are spaced by synapse delays, which that model ignores")
        record = set(self.pops) if record in ("all", True) else set(record or self.net.outputs)
        record = {n for n in record if self.pops[n].input_kind != "bias"}
        data, B = self._inputs(inputs, stream)
        # reset schedules are in pipelined (hardware) time; the layer-synchronous model sees them shifted
        shift = {n: 0 for n in self.pops}
        if not self.pipelined and any(p.reset_interval for p in self.net.populations):
            shift = self.net.latency()
        run = Run(self, B, data, record, stream, shift, steps)
        run.windows = dict(windows or {})
        # graded inputs have no static bound; this run's data give one, which may prove more LIFs safe
        # (their u cannot wrap: the float step instead of the int64 reference step)
        observed = {p.name: float(data[p.name].abs().max()) if data[p.name].numel() else 0.0
                    for p in self.net.inputs if p.input_kind == "graded" and p.name in data}
        run.safe = self._safe_flags(observed) if observed else self.safe
        models = self._models(run)
        hist, spikes = self.hist, {}
        pipelined, exact32 = self.pipelined, self.exact32
        skip_silent = run.skip_silent
        for t in range(steps):
            ts = t + 1
            for m in models:
                inside = m.lo <= t < m.hi
                if not inside and (m.idle_skip or m.is_input):
                    # outside its sample windows a population computes nothing any window sees: with
                    # skip_idle it does no work and sends nothing (inputs send nothing past their data)
                    s, idle = m.idle(t), True
                else:
                    s, idle = m.step(t, ts, m.rec and inside)
                spikes[m.name] = s
                if m.hist is not None:
                    m.hist = m.hist[1:] + [s]
                    hist[m.name] = m.hist
                # a silent source adds exactly 0 (every group and the attention op are linear in each
                # input): skip the work; the check needs a host sync, so only on the CPU, small tensors
                silent = idle
                if not idle and m.nev is not None:      # a native step counted its spikes
                    silent = m.nev == 0
                elif not idle and skip_silent and m.groups and s.numel() <= _SKIP_CHECK_MAX and \
                        (m.checks < 32 or m.silent * 8 >= m.checks):
                    silent = not bool(s.any())
                    m.checks += 1
                    m.silent += silent
                if not silent:
                    cols = False
                    for g, w, off, ring, dt, nat in m.groups:
                        k = (t + off) % len(ring)
                        if nat is not None and nat(k):
                            continue
                        if cols is False:
                            cols = active_inputs(s) if m.event else None
                        y = contrib(g, s, w, cols if g.event_driven else None)
                        if y.dtype != dt:
                            y = y.to(dt)
                        if ring[k] is None:
                            ring[k] = y
                        else:
                            ring[k].add_(y)
                for a, dst in m.atts:
                    if pipelined:
                        q, k_, vv = (hist[src][-1 - d] for src, d in zip((a.q, a.k, a.v), a.balance_delays))
                    else:
                        q, k_, vv = spikes[a.q], spikes[a.k], spikes[a.v]
                    if skip_silent and q.numel() <= _SKIP_CHECK_MAX and not all(bool(z.any()) for z in (q, k_, vv)):
                        continue
                    y = attention(a, q, k_, vv, dst.ring_dtype, exact32)
                    ring = dst.pend
                    k = (t + (1 if pipelined else 0)) % len(ring)
                    if ring[k] is None:
                        ring[k] = y
                    else:
                        ring[k].add_(y)
            if progress is not None:
                progress(1)
        return {m.name: m.recorded() for m in models if m.rec}


def simulate(net: LoweredNetwork, inputs: dict, steps: int, record=None, device="cpu", pipelined=True) -> dict:
    """Convenience wrapper: numpy results ``{pop: {"s"|"u"|"v": array [steps, B, n]}}``."""
    res = Engine(net, device=device, pipelined=pipelined).run(inputs, steps, record=record)
    return {n: {k: t.cpu().numpy() for k, t in r.items()} for n, r in res.items()}
