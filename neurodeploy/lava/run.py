"""Build a Lava process graph from a :class:`LoweredNetwork` and run it with ``Loihi2SimCfg(fixed_pt)``.

One Lava process per population (``LIF`` / ``LIFReset``; inputs are ``io.source.RingBuffer``), one per
synapse group (``Dense``, ``Sparse``, ``DelayDense``, ``DelaySparse``, ``Conv``; a conv that needs a
balance delay becomes a ``DelaySparse`` with the same connections) and one :class:`SpikingAttention` per
attention op.  Populations are flat (n,) in the C order of their (C, H, W) shape; conv synapses see them
through reshape/transpose ports in Lava's (W, H, C) layout, with the kernel flipped and transposed to
Lava's (C_out, W, H, C_in) as netx does.
"""
from __future__ import annotations

import numpy as np


from ..errors import BadInputError, UnsupportedError
from ..lower.network import LoweredNetwork, Synapse, conv_out_shape

VTH_NEVER = (1 << 17) - 1


def conv_to_matrix(s: Synapse, src_shape, dst_shape) -> np.ndarray:
    """The (n_out, n_in) integer matrix of a PyTorch-layout conv (correlation) on flat C-order maps."""
    w = np.asarray(s.weights, dtype=np.int64)
    cin, h, wd = src_shape
    cout, ho, wo = dst_shape
    kh, kw = w.shape[2], w.shape[3]
    g = s.groups
    cin_g, cout_g = cin // g, cout // g
    m = np.zeros((cout * ho * wo, cin * h * wd), dtype=np.int64)
    oc, oy, ox = np.meshgrid(np.arange(cout), np.arange(ho), np.arange(wo), indexing="ij")
    oc, oy, ox = oc.ravel(), oy.ravel(), ox.ravel()
    rows = (oc * ho + oy) * wo + ox
    for ci in range(cin_g):
        for ky in range(kh):
            for kx in range(kw):
                iy = oy * s.stride[0] - s.padding[0] + ky * s.dilation[0]
                ix = ox * s.stride[1] - s.padding[1] + kx * s.dilation[1]
                ic = (oc // cout_g) * cin_g + ci
                ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < wd)
                cols = (ic * h + iy) * wd + ix
                m[rows[ok], cols[ok]] += w[oc[ok], ci, ky, kx]
    return m


class LavaNetwork:
    """The built process graph for one sample (Lava runs one sample at a time)."""

    def __init__(self, net: LoweredNetwork, inputs: dict, steps: int, record=None):
        from ..lava_compat import ensure_lava
        ensure_lava()
        from lava.proc.conv.process import Conv
        from lava.proc.dense.process import Dense, DelayDense
        from lava.proc.io.source import RingBuffer
        from lava.proc.lif.process import LIF, LIFReset
        from lava.proc.monitor.process import Monitor
        from lava.proc.sparse.process import Sparse, DelaySparse
        from lava.utils.weightutils import SignMode
        from scipy.sparse import csr_matrix

        from .attention import SpikingAttention

        net.validate()
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
            if p.bias_input:
                bm = np.asarray(inputs[p.bias_input]).reshape(-1).astype(np.int32)
                if bm.size != p.size:
                    raise BadInputError(f"input '{p.bias_input}': Lava runs one sample at a time; give [1, ...]")
            else:
                bm = np.broadcast_to(np.asarray(p.bias_mant, dtype=np.int32), p.shape).reshape(-1).copy()
            kw = dict(shape=(p.size,), du=int(p.du), dv=int(p.dv), vth=int(p.vth), bias_mant=bm,
                      bias_exp=int(p.bias_exp), name=p.name)
            if p.reset_interval:
                self.procs[p.name] = LIFReset(reset_interval=int(p.reset_interval),
                                              reset_offset=int(p.reset_offset), **kw)
            else:
                self.procs[p.name] = LIF(**kw)

        def out_port(name):
            proc = self.procs[name]
            return proc.s_out

        for s in net.synapses:
            src, dst = pops[s.src], pops[s.dst]
            nmb = 24 if (s.graded or src.input_kind == "graded") else 0
            extra = {}
            if s.sign_mode:
                extra["sign_mode"] = SignMode(int(s.sign_mode))
            if s.kind == "identity":
                out_port(s.src).connect(self.procs[s.dst].a_in)
                continue
            if s.kind == "conv" and s.balance_delay == 0:
                w = np.asarray(s.weights)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1).astype(np.int32)
                c, h, wd = src.shape
                proc = Conv(weight=w, input_shape=(wd, h, c), padding=tuple(s.padding[::-1]),
                            stride=tuple(s.stride[::-1]), dilation=tuple(s.dilation[::-1]),
                            groups=int(s.groups), num_message_bits=nmb, name=s.name)
                out_port(s.src).reshape((c, h, wd)).transpose([2, 1, 0]).connect(proc.s_in)
                co, ho, wo = conv_out_shape(src.shape, s)
                proc.a_out.transpose([2, 1, 0]).reshape((co * ho * wo,)).connect(self.procs[s.dst].a_in)
                self.procs[s.name] = proc
                continue
            if s.kind == "conv":
                w = conv_to_matrix(s, src.shape, conv_out_shape(src.shape, s))
                kind = "sparse"
                if w.min() < 0 < w.max() and np.any(w % 2):
                    raise UnsupportedError(f"synapse '{s.name}': odd mixed-sign conv weights cannot become a "
                                           "delayed sparse group exactly")
            else:
                w = np.asarray(s.weights)
                kind = s.kind
            delay = s.balance_delay + (np.zeros(w.shape, dtype=np.int64) if s.delays is None
                                       else np.broadcast_to(np.asarray(s.delays), w.shape))
            has_delay = s.delays is not None or s.balance_delay > 0
            common = dict(num_message_bits=nmb, weight_exp=int(s.weight_exp),
                          num_weight_bits=int(s.num_weight_bits), name=s.name, **extra)
            if kind == "dense":
                if has_delay:
                    proc = DelayDense(weights=w.astype(np.int32), delays=delay.astype(int),
                                      max_delay=int(delay.max()), **common)
                else:
                    proc = Dense(weights=w.astype(np.int32), **common)
            else:
                wm = csr_matrix(w.astype(np.int32))
                if has_delay:
                    # DelaySparse needs delays with the same sparsity as the weights
                    dm = csr_matrix(np.where(w != 0, delay, 0).astype(int))
                    proc = DelaySparse(weights=wm, delays=dm, max_delay=int(delay.max()), **common)
                else:
                    proc = Sparse(weights=wm, **common)
            out_port(s.src).connect(proc.s_in)
            proc.a_out.connect(self.procs[s.dst].a_in)
            self.procs[s.name] = proc
        for a in net.attention:
            proc = SpikingAttention(heads=a.heads, dim=a.dim, tokens=a.tokens, weight=a.weight,
                                    delays=a.balance_delays, name=a.name)
            out_port(a.q).connect(proc.q_in)
            out_port(a.k).connect(proc.k_in)
            out_port(a.v).connect(proc.v_in)
            proc.a_out.connect(self.procs[a.dst].a_in)
            self.procs[a.name] = proc
        # Lava's Monitor model serves one probe: one Monitor per recorded variable
        self.monitors = []
        self.probes = []
        for name in sorted(self.record):
            p = pops[name]
            if p.kind == "input" and p.input_kind == "bias":
                continue
            proc = self.procs[name]
            targets = [("s", proc.s_out, "s_out")]
            if p.kind != "input":
                targets += [("u", proc.u, "u"), ("v", proc.v, "v")]
            for key, target, var in targets:
                mon = Monitor()
                mon.probe(target, steps)
                self.monitors.append(mon)
                self.probes.append((mon, name, key, var))
        self.anchor = next(iter(self.procs.values()))

    def run(self) -> dict:
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg

        try:
            self.anchor.run(condition=RunSteps(num_steps=self.steps),
                            run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            data = [(m, m.get_data()) for m in self.monitors]
        finally:
            try:
                self.anchor.stop()
            except Exception:  # noqa: BLE001 - stopping a runtime that never started
                pass
        out = {}
        got = {id(m): d for m, d in data}
        for mon, name, key, var in self.probes:
            arr = np.asarray(got[id(mon)][self.procs[name].name][var])
            out.setdefault(name, {})[key] = arr.reshape(self.steps, 1, -1).astype(np.int64)
        return out


def run_lava(net: LoweredNetwork, inputs: dict, steps: int, record=None) -> dict:
    """Run one sample in Lava; ``{pop: {"s"|"u"|"v": array [steps, 1, n]}}`` like the fast engine.
    ``inputs`` as for :meth:`neurodeploy.sim.Engine.run` with batch 1."""
    return LavaNetwork(net, inputs, steps, record).run()
