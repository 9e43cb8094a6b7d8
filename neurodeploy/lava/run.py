"""Build a Lava process graph from a :class:`LoweredNetwork` and run it with ``Loihi2SimCfg(fixed_pt)``.

One Lava process per population (``LIF`` / ``LIFReset``, or neurodeploy's ``LIFResetInit`` for a population
with a nonzero initial v (v_reset != 0) and a periodic reset; inputs are ``io.source.RingBuffer``), one per
synapse group (``Dense``, ``Sparse``, ``DelayDense``, ``DelaySparse``, ``Conv``; a conv that needs a
balance delay becomes a ``DelaySparse`` with the same connections) and one :class:`SpikingAttention` per
attention op.  Populations are flat (n,) in the C order of their (C, H, W) shape; conv synapses see them
(as their ``src_view``) through reshape/transpose ports in Lava's (W, H, C) layout, with the kernel
flipped and transposed to Lava's (C_out, W, H, C_in) as netx does.  Every conv group is a Lava ``Conv``
(fixed_pt), never a matrix: a conv that needs a balance delay d >= 1 gets it from an identity
``DelaySparse`` (one weight-1 synapse per source neuron, delay d - 1; a plain ``Sparse`` when d = 1) in
front of the ``Conv``: both add one step, so the conv's input arrives d + 1 steps after the source
spiked, as the engine computes it; the identity passes spikes (or 24-bit graded payloads) unchanged.
Sparse groups are built from their CSR matrices (memory = connections).  Lava's Conv holds ``groups`` in an
int8 Var, so a conv with 128 groups or more (a depthwise max-pool OR over 128+ channels) is built with its
groups merged to at most 127 and zero weights between the merged channels
(:func:`neurodeploy.lower.fixed_point.lava_conv_groups`): the same sums.

Recording: one recorder process per recorded population (:mod:`neurodeploy.lava.processes.record`: its output
port's payload and, for neurons, u and v read after each step like Lava's Monitor), saved to files by the
recorder itself; Monitor.get_data reads element by element and is far too slow for whole populations.

:func:`run_lava` runs one sample; :func:`run_lava_chained` runs many samples back to back in ONE process
graph (chained mode, :mod:`neurodeploy.lower.chain`: periodic LIFReset of every population, the encoder
output as graded RingBuffer input), bit-exact with :func:`neurodeploy.sim.chained.simulate_chained`.
"""
from __future__ import annotations

import os
import shutil

import numpy as np


from ..errors import BadInputError, UnsupportedError
from ..lava_compat import ensure_lava
from ..lower.network import GRADED_KINDS, LoweredNetwork, conv_out_shape
from ..lower.fixed_point import lava_conv_groups
from .attention_graded import einsum_process, graded_population
from ..lower.chain import chain_inputs, chain_network


class LavaNetwork:
    """The built process graph for one sample (Lava runs one sample at a time)."""

    def __init__(self, net: LoweredNetwork, inputs: dict, steps: int, record=None, delay_lines: bool = False):
        ensure_lava()
        from lava.proc.conv.process import Conv
        from lava.proc.dense.process import Dense, DelayDense
        from lava.proc.graded.process import GradedVec
        from lava.proc.io.source import RingBuffer
        from lava.proc.lif.process import LIF, LIFReset
        from lava.proc.sparse.process import Sparse, DelaySparse
        from lava.utils.weightutils import SignMode
        from scipy.sparse import csr_matrix

        from .processes.attention import SpikingAttention  # imports Lava (optional, slow): only when running

        net.validate()
        # delay_lines: a sparse group whose only delay is its balance delay d is built as an identity delay
        # line (as for convs, below) in front of a plain Sparse, instead of one DelaySparse: the same steps
        # (d - 1 + 1 in the line, + 1 in the Sparse), but Lava's DelaySparse model rebuilds one masked copy
        # of its weight matrix per delay value every step (slow for big groups); the line holds n weights
        self.delay_lines = bool(delay_lines)
        self.net = net
        self.steps = steps
        self.procs = {}
        self.record = set(p.name for p in net.populations) if record in ("all", True) \
            else set(record or net.outputs)
        pops = {p.name: p for p in net.populations}
        for p in net.populations:
            if p.kind == "input":
                if p.input_kind == "bias":
                    continue
                x = np.asarray(inputs[p.name])
                if x.ndim < 2 or x.shape[1] != 1:
                    raise BadInputError(f"input '{p.name}': Lava runs one sample at a time; give [T, 1, ...]")
                x = x.reshape(x.shape[0], -1).T.astype(np.int32)        # (n, T)
                self.procs[p.name] = RingBuffer(data=x)
                continue
            if p.kind == "relay":         # graded relay: s_out = a_in each step (vth 0: |v| > 0 or 0 anyway)
                self.procs[p.name] = GradedVec(shape=(p.size,), vth=0)   # (takes no name)
                continue
            if p.kind in GRADED_KINDS:       # ProdNeuron / GradedVec (lava/attention_graded.py)
                self.procs[p.name] = graded_population(p)
                continue
            if p.bias_input:
                bm = np.asarray(inputs[p.bias_input]).reshape(-1).astype(np.int32)
                if bm.size != p.size:
                    raise BadInputError(f"input '{p.bias_input}': Lava runs one sample at a time; give [1, ...]")
            else:
                bm = np.broadcast_to(np.asarray(p.bias_mant, dtype=np.int32), p.shape).reshape(-1).copy()
            kw = dict(shape=(p.size,), du=int(p.du), dv=int(p.dv), vth=int(p.vth), bias_mant=bm,
                      bias_exp=int(p.bias_exp), name=p.name)
            v0 = np.broadcast_to(np.asarray(p.v_init, dtype=np.int32), p.shape).reshape(-1).copy()
            if np.any(v0):                 # v_reset != 0: v starts (and restarts) at -v_reset
                kw["v"] = v0
            if p.reset_interval and np.any(v0):
                from .processes.lif_reset import LIFResetInit   # Lava (optional heavy dependency)
                self.procs[p.name] = LIFResetInit(reset_interval=int(p.reset_interval),
                                                  reset_offset=int(p.reset_offset), **kw)
            elif p.reset_interval:
                self.procs[p.name] = LIFReset(reset_interval=int(p.reset_interval),
                                              reset_offset=int(p.reset_offset), **kw)
            else:
                self.procs[p.name] = LIF(**kw)

        def out_port(name):
            proc = self.procs[name]
            return proc.s_out

        def delay_line(s, src, nmb, feed):
            """``feed`` delayed by the group's balance delay d minus one step (the group adds the last)."""
            if s.balance_delay <= 0:
                return feed
            # exact delay line: identity weights 1 (excitatory: Lava keeps them), delay d - 1
            n = src.size
            eye = csr_matrix((np.ones(n, dtype=np.int32), (np.arange(n), np.arange(n))), shape=(n, n))
            d = int(s.balance_delay) - 1
            ident = dict(num_message_bits=nmb, sign_mode=SignMode.EXCITATORY, name=f"{s.name}.delay")
            if d > 0:
                dm = csr_matrix((np.full(n, d, dtype=int), (np.arange(n), np.arange(n))), shape=(n, n))
                line = DelaySparse(weights=eye, delays=dm, max_delay=d, **ident)
            else:
                line = Sparse(weights=eye, **ident)
            feed.connect(line.s_in)
            self.procs[f"{s.name}.delay"] = line
            return line.a_out

        for s in net.synapses:
            src = pops[s.src]
            nmb = 24 if (s.graded or src.input_kind == "graded") else 0
            extra = {}
            if s.sign_mode:
                extra["sign_mode"] = SignMode(int(s.sign_mode))
            if s.kind == "identity":
                out_port(s.src).connect(self.procs[s.dst].a_in)
                continue
            if s.kind == "einsum":              # structured graded group (lava/attention_graded.py)
                self.procs[s.name] = einsum_process(s, nmb > 0, out_port(s.src), self.procs[s.dst])
                continue
            if s.kind == "conv":
                w, groups = lava_conv_groups(s.weights, s.groups)     # Lava's Conv: at most 127 groups
                w = np.asarray(w)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1).astype(np.int32)
                c, h, wd = tuple(s.src_view) if s.src_view else src.shape
                proc = Conv(weight=w, input_shape=(wd, h, c), padding=tuple(s.padding[::-1]),
                            stride=tuple(s.stride[::-1]), dilation=tuple(s.dilation[::-1]),
                            groups=groups, num_message_bits=nmb, name=s.name)
                feed = delay_line(s, src, nmb, out_port(s.src))
                feed.reshape((c, h, wd)).transpose([2, 1, 0]).connect(proc.s_in)
                co, ho, wo = conv_out_shape(src.shape, s)
                proc.a_out.transpose([2, 1, 0]).reshape((co * ho * wo,)).connect(self.procs[s.dst].a_in)
                self.procs[s.name] = proc
                continue
            w = s.weights
            kind = s.kind
            feed = out_port(s.src)
            has_delay = s.delays is not None or s.balance_delay > 0
            if self.delay_lines and kind == "sparse" and s.delays is None and s.balance_delay > 0:
                feed = delay_line(s, src, nmb, feed)     # the line holds the balance delay: a plain Sparse
                has_delay = False
            common = dict(num_message_bits=nmb, weight_exp=int(s.weight_exp),
                          num_weight_bits=int(s.num_weight_bits), name=s.name, **extra)
            if kind == "dense":
                w = np.asarray(w)
                delay = s.balance_delay + (np.zeros(w.shape, dtype=np.int64) if s.delays is None
                                           else np.broadcast_to(np.asarray(s.delays), w.shape))
                if has_delay:
                    proc = DelayDense(weights=w.astype(np.int32), delays=delay.astype(int),
                                      max_delay=int(delay.max()), **common)
                else:
                    proc = Dense(weights=w.astype(np.int32), **common)
            else:
                wm = csr_matrix(w, dtype=np.int32)
                wm.sort_indices()
                if has_delay:
                    # DelaySparse needs delays with the same sparsity as the weights
                    dm = wm.copy().astype(int)
                    if s.delays is None:
                        dm.data = np.zeros(dm.data.shape, dtype=int)
                    else:
                        dsp = csr_matrix(s.delays, dtype=int)
                        rows = np.repeat(np.arange(wm.shape[0]), np.diff(wm.indptr))
                        dm.data = np.asarray(dsp[rows, wm.indices]).reshape(-1).astype(int)
                    dm.data = dm.data + int(s.balance_delay)
                    proc = DelaySparse(weights=wm, delays=dm, max_delay=int(dm.data.max(initial=0)), **common)
                else:
                    proc = Sparse(weights=wm, **common)
            feed.connect(proc.s_in)
            # a prod destination has two in-ports (the tiled attention's banks and gates read sparse groups)
            proc.a_out.connect(getattr(self.procs[s.dst], {0: "a_in", 1: "a_in1", 2: "a_in2"}[int(s.port)]))
            self.procs[s.name] = proc
        for a in net.attention:
            proc = SpikingAttention(heads=a.heads, dim=a.dim, tokens=a.tokens, weight=a.weight,
                                    delays=a.balance_delays, name=a.name)
            out_port(a.q).connect(proc.q_in)
            out_port(a.k).connect(proc.k_in)
            out_port(a.v).connect(proc.v_in)
            proc.a_out.connect(self.procs[a.dst].a_in)
            self.procs[a.name] = proc
        # recorders (neurodeploy.lava.processes.record): like Lava's Monitor, but saved to files by their own OS
        # process (Monitor.get_data reads element by element, far too slow for whole populations)
        import tempfile

        from .processes.record import SpikeRecorder, StateRecorder  # imports Lava (optional, slow)
        self.tmpdir = tempfile.mkdtemp(prefix="neurodeploy-lava-")
        try:
            self._add_recorders(pops, steps, SpikeRecorder, StateRecorder)
        except BaseException:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            raise
        self.anchors = _component_anchors(list(self.procs.values()))
        self.anchor = self.anchors[0]

    def _add_recorders(self, pops, steps, SpikeRecorder, StateRecorder) -> None:
        self.recorders = []
        for i, name in enumerate(sorted(self.record)):
            p = pops[name]
            if p.kind == "input" and p.input_kind == "bias":
                continue
            proc = self.procs[name]
            path = os.path.join(self.tmpdir, f"rec{i}")
            state = p.kind not in ("input", "relay") + GRADED_KINDS
            rec = (StateRecorder if state else SpikeRecorder)(n=p.size, steps=steps, path=path)
            proc.s_out.connect(rec.s_in)
            if state:
                rec.u_ref.connect_var(proc.u)
                rec.v_ref.connect_var(proc.v)
            self.recorders.append((name, path, state))

    def run(self, chunk: int | None = None, progress=None) -> dict:
        """Run all steps (in pieces of ``chunk`` steps, calling ``progress(steps)`` after each) and stop
        the runtime.  ``self.timing``: seconds of the first piece (includes compiling and starting the
        OS processes), of the rest, and the steps of each."""
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg

        chunk = int(chunk or self.steps)
        cfg = Loihi2SimCfg(select_tag="fixed_pt")
        self.timing = {"first_s": 0.0, "first_steps": 0, "rest_s": 0.0, "rest_steps": 0}
        try:
            return self._run_and_read(chunk, cfg, progress, RunSteps)
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)  # the recordings, also after a failed run

    def _run_and_read(self, chunk, cfg, progress, RunSteps) -> dict:
        import time

        # Lava compiles and runs the processes connected to the one it is asked to run: a process graph of
        # several unconnected parts (e.g. a slice whose parts only meet through replayed inputs) runs part by
        # part, each all steps; ``progress`` follows the last part
        for i, anchor in enumerate(self.anchors):
            try:
                done = 0
                while done < self.steps:
                    n = min(chunk, self.steps - done)
                    t0 = time.perf_counter()
                    anchor.run(condition=RunSteps(num_steps=n), run_cfg=cfg)
                    dt = time.perf_counter() - t0
                    key = "first" if done == 0 else "rest"
                    self.timing[f"{key}_s"] += dt
                    self.timing[f"{key}_steps"] += n
                    done += n
                    if progress is not None and i == len(self.anchors) - 1:
                        progress(n)
            finally:
                try:
                    anchor.stop()
                except Exception:  # noqa: BLE001 - stopping a runtime that never started
                    pass
        from .processes.record import load_recording  # imports Lava (optional, slow)

        return {name: {k: a.reshape(self.steps, 1, -1).astype(np.int64)
                       for k, a in load_recording(path, state).items()}
                for name, path, state in self.recorders}


def _component_anchors(procs: list) -> list:
    """One process of every connected part of the process graph (Lava's own traversal:
    ``compiler_graphs.find_processes``, which follows every port, RefPorts included)."""
    from lava.magma.compiler.compiler_graphs import find_processes  # imports Lava (optional, slow)

    anchors, seen = [], set()
    for proc in procs:
        if id(proc) in seen:
            continue
        anchors.append(proc)
        seen.update(id(p) for p in find_processes(proc))
    return anchors


def run_lava(net: LoweredNetwork, inputs: dict, steps: int, record=None) -> dict:
    """Run one sample in Lava; ``{pop: {"s"|"u"|"v": array [steps, 1, n]}}`` like the fast engine.
    ``inputs`` as for :meth:`neurodeploy.sim.Engine.run` with batch 1."""
    return LavaNetwork(net, inputs, steps, record).run()


def run_lava_chained(net: LoweredNetwork, inputs: dict, period: int | None = None, record=None,
                     conv_as_sparse: bool = True, chunk: int | None = None, progress=None):
    """Run MANY samples in ONE Lava process graph (chained mode, :mod:`neurodeploy.lower.chain`).

    ``inputs``: batched engine-style inputs of ``net`` (B samples: ``[T', B, ...]`` sequences, ``[B, ...]``
    bias values); the samples run back to back, ``period`` (default T + latency) steps each, with every
    population reset at the start of its window and the per-sample encoder output fed as graded input.
    ``conv_as_sparse``: conv groups run as Sparse where exact (much faster in Lava's CPU simulation).
    ``progress(steps)`` is called after every ``chunk`` steps.
    Returns ``(chained network, {pop: {"s"|"u"|"v": array [B*period, 1, n]}}, timing)``;
    :func:`neurodeploy.sim.chained.simulate_chained` computes the same with our engine.
    """
    chained = chain_network(net, period, conv_as_sparse=conv_as_sparse)
    cin = chain_inputs(chained, inputs)
    steps = next(iter(cin.values())).shape[0]
    lnet = LavaNetwork(chained, cin, steps, record)
    res = lnet.run(chunk=chunk, progress=progress)
    return chained, res, lnet.timing
