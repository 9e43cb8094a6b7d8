"""Lower a NIR graph (docs/nir.md) into a quantized, delay-balanced :class:`LoweredNetwork`.

Rules (Loihi 2 fixed point as Lava computes it; see neurodeploy.sim.engine):

* Populations: every neuron node (``LIF``, ``IF``, ``Threshold``) becomes one CUBA LIF population; the
  readout (the ``Affine`` feeding the graph output with role ``readout``, or any linear node feeding
  the output) becomes a non-spiking integrator (du 4095, dv 0, vth 2**17 - 1) whose v after the run is
  the sum over steps of its float input times ``readout_scale``.
* Neuron maps (forward Euler, docs/nir.md): LIF ``v += ((0 - v) + r x) / k`` with k = tau/dt:
  du = 4095 (u holds only this step's input), dv = round(4096 / k) (tau_steps 2 -> 2048 exactly), the
  gain r/k folded into the weights; IF: dv = 0, gain r; Threshold: dv = 4096 (no memory).  Per-neuron
  thresholds are folded into the weights (rows divided by theta), so every population compares to 1.
  ``>=`` (Spikingformer, metadata ``neurodeploy.spike_rule``) is met with vth = S - 1: on the 64-grid
  ``v > 64 (S - 1)`` is ``v >= 64 S``; NIR's strict ``>`` uses vth = S.
* Scale: each population has one integer scale S (integer units of a_in per unit of threshold), the
  largest that keeps every incoming weight within 8-bit mantissas (254, mixed sign as even values).
  Dense/sparse groups take their own weight_exp (<= 0) to use the full mantissa; conv groups (Lava
  ignores weight_exp) use exponent 0.  Biases become bias_mant * 2**bias_exp in raw v units (x 64 S).
* Paths: the input of a population is the sum over NIR edges; each term is a chain of linear nodes
  (Conv2d, Conv1d, Affine, Linear, SumPool2d, AvgPool2d, Flatten) from one source population.  A chain
  of one Conv2d/SumPool2d/Conv1d stays a conv group (NIR [C, N] token maps are (C, 1, N) populations, so
  a Conv1d is a 1 x k conv), anything else is composed into one dense matrix.  MaxPool-on-spikes (SumPool2d + Threshold(0.5))
  is a sum-pool conv group into a threshold population.
* Input: ``input_domain`` binary -> spike input; counts -> graded input; real (direct encoding) -> the
  encoder layer runs on the host once per sample and its output becomes the bias of the first
  population (an :class:`Encoder` record; cost: one conv per sample on the host, none per step on chip).
* Attention: the ``spiking_attention`` extension node becomes an :class:`Attention` op from the q, k, v
  populations (found through the stack routing convs) with ``weight`` = m and the attention LIF's scale
  S = m / (scale * r / k), so the product needs no rounding.
* Delays: population latency is the longest path (one step per synapse group); every group into a
  population gets ``balance_delay`` so all its inputs arrive together; more than 62 -> error naming the
  node.  Populations with a bias are zeroed (LIFReset) at the step their first input arrives, so the
  pipelined network equals the layer-synchronous one shifted by the latency.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import nir
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BadInputError, UnsupportedError
from ..graph.simulate import int_tuple, padding_arg
from .network import (MAX_DELAY, MIXED, VTH_MAX, Attention, Encoder, LoweredNetwork, Population, Synapse)

_NEURONS = ("LIF", "IF", "Threshold")
_LINEAR = ("Conv2d", "Conv1d", "Affine", "Linear", "SumPool2d", "AvgPool2d", "Flatten", "Scale")


def _meta(obj, key, default=None):
    md = getattr(obj, "metadata", None) or {}
    return md.get(key, default)


def _arr(x):
    return np.asarray(x, dtype=np.float64)


def _shape(node, port):
    t = getattr(node, f"{port}_type", None) or {}
    for v in t.values():
        return tuple(int(a) for a in np.asarray(v).reshape(-1))
    return None


def _pop_shape(shape):
    """Population shape: NIR [C, N] token maps become (C, 1, N) so token-wise Conv1d runs as a 1 x k conv."""
    shape = tuple(int(a) for a in shape)
    return (shape[0], 1, shape[1]) if len(shape) == 2 else shape


def _pair(v, n=2):
    return int_tuple(v, n)[:n]


def conv_padding(node, name: str, n: int) -> tuple:
    """Integer padding of a NIR Conv1d/Conv2d; 'valid' and (stride 1, odd kernel) 'same' are converted,
    other string paddings are refused with the node named."""
    pad = padding_arg(node.padding, n)
    if not isinstance(pad, str):
        return pad[:n]
    if pad == "valid":
        return (0,) * n
    k = np.asarray(node.weight).shape[2:2 + n]
    dil, stride = _pair(node.dilation, n), _pair(node.stride, n)
    if pad == "same" and all(s == 1 for s in stride) and all(d * (kk - 1) % 2 == 0 for d, kk in zip(dil, k)):
        return tuple(d * (kk - 1) // 2 for d, kk in zip(dil, k))
    raise UnsupportedError(f"node '{name}': padding {pad!r} with stride {stride} and kernel {tuple(k)} "
                           "(supported: integers, 'valid', 'same' with stride 1 and an odd kernel)")


@dataclass
class _Term:
    src: str            # source population (or the graph input)
    ops: list           # node names, first applied first


@dataclass
class _Value:
    terms: list = field(default_factory=list)
    att: list = field(default_factory=list)     # attention node names
    bias_nodes: list = field(default_factory=list)   # (chain of node names producing a bias)


class _Lowerer:
    def __init__(self, graph: nir.NIRGraph, T, scale, rounding, input_range, dt, bias_exp_min=0):
        self.bias_exp_min = int(bias_exp_min)
        from ..graph import order_and_back_edges, predecessors
        self.g = graph
        self.pred = predecessors(graph)
        self.order, back = order_and_back_edges(graph)
        if back:  # recurrence is not lowered yet (issue 13): refuse before the lowering meets the cycle
            src, dst = sorted(back)[0]
            raise UnsupportedError(f"node '{dst}': recurrent edge from '{src}' cannot be lowered to Loihi 2 yet "
                                   "(recurrent connections are not supported by the lowering)")
        self.T = T
        self.fixed_scale = scale
        self.rounding = rounding
        self.input_range = input_range
        self.dt = dt
        self.report = {"layers": [], "clipped_weights": 0, "clipped_biases": 0}

    # ---------------------------------------------------------------- structure
    def kind(self, name):
        node = self.g.nodes[name]
        t = type(node).__name__
        if isinstance(node, nir.NIRGraph):
            from ..graph import attention_spec
            if attention_spec(node) is not None:
                return "attention"
            raise UnsupportedError(f"node '{name}': nested NIR subgraph (type NIRGraph) cannot be lowered to Loihi 2 "
                                   "(only the spiking_attention extension is; flatten the subgraph)")
        if t == "Input":
            return "input"
        if t == "Output":
            return "output"
        if t in _NEURONS:
            return "neuron"
        if t in _LINEAR:
            return "linear"
        raise UnsupportedError(f"node '{name}': NIR type {t} cannot be lowered to Loihi 2 "
                               f"(supported: {', '.join(_NEURONS + _LINEAR)}, spiking_attention)")

    def value(self, name, memo):
        """The sum of terms a node outputs (neurons and the input are sources)."""
        if name in memo:
            return memo[name]
        k = self.kind(name)
        if k in ("neuron", "input"):
            v = _Value([_Term(name, [])])
        elif k == "attention":
            v = _Value([], [name])
        elif k == "linear":
            v = _Value()
            for p in self.pred[name]:
                pv = self.value(p, memo)
                if pv.att:
                    raise UnsupportedError(f"node '{name}': a linear map after the attention output "
                                           "cannot be lowered (the attention must feed a LIF directly)")
                v.terms += [_Term(t.src, t.ops + [name]) for t in pv.terms]
                v.bias_nodes += [b + [name] for b in pv.bias_nodes]
            v.bias_nodes.append([name])
        else:
            raise UnsupportedError(f"node '{name}': cannot be used as an input")
        memo[name] = v
        return v

    # ---------------------------------------------------------------- linear algebra
    def op_apply(self, name, x):
        """Apply node ``name`` (without its bias) to x [B, *in_shape] (float64)."""
        node = self.g.nodes[name]
        t = type(node).__name__
        if t == "Flatten":
            out = _shape(node, "output")
            return x.reshape((x.shape[0],) + tuple(out)) if out else x.reshape(x.shape[0], -1)
        if t in ("Affine", "Linear"):
            w = torch.as_tensor(_arr(node.weight))
            return x.reshape(x.shape[0], -1) @ w.T
        if t == "Scale":
            return x * torch.as_tensor(_arr(node.scale))
        if t == "Conv2d":
            w = torch.as_tensor(_arr(node.weight))
            return F.conv2d(x, w, stride=_pair(node.stride), padding=conv_padding(node, name, 2),
                            dilation=_pair(node.dilation), groups=int(node.groups))
        if t == "Conv1d":
            w = torch.as_tensor(_arr(node.weight))
            return F.conv1d(x, w, stride=_pair(node.stride, 1), padding=conv_padding(node, name, 1),
                            dilation=_pair(node.dilation, 1), groups=int(node.groups))
        if t in ("SumPool2d", "AvgPool2d"):
            k, s, p = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
            y = F.avg_pool2d(x, k, s, p, count_include_pad=True)
            return y * (k[0] * k[1]) if t == "SumPool2d" else y
        raise UnsupportedError(f"node '{name}': {t}")

    def op_bias(self, name):
        node = self.g.nodes[name]
        b = getattr(node, "bias", None)
        out = _shape(node, "output")
        if b is None or type(node).__name__ in ("SumPool2d", "AvgPool2d", "Flatten", "Scale"):
            return None
        b = _arr(b)
        if type(node).__name__ in ("Conv2d", "Conv1d") and out is not None:
            b = np.broadcast_to(b.reshape((-1,) + (1,) * (len(out) - 1)), out)
        return b.reshape(-1)

    def chain_matrix(self, ops, in_shape):
        """Dense (n_out, n_in) float64 matrix of a chain of bias-free linear nodes."""
        n_in = int(np.prod(in_shape))
        eye = torch.eye(n_in, dtype=torch.float64).reshape((n_in,) + tuple(in_shape))
        y = eye
        for op in ops:
            y = self.op_apply(op, y)
        return y.reshape(n_in, -1).T.numpy()

    def bias_vector(self, chain):
        """Bias produced by chain[0]'s bias pushed through chain[1:]."""
        b = self.op_bias(chain[0])
        if b is None:
            return None
        x = torch.as_tensor(b).reshape((1,) + tuple(_shape(self.g.nodes[chain[0]], "output")))
        for op in chain[1:]:
            x = self.op_apply(op, x)
        return x.reshape(-1).numpy()

    # ---------------------------------------------------------------- quantization helpers
    def rnd(self, x):
        return np.round(x)

    def rnd_decay(self, x):
        return np.trunc(x) if self.rounding == "floor" else np.round(x)

    def quant_group(self, x, conv: bool, name: str):
        """Integer mantissas m and exponent e with m * 2**e ~ x (Lava Dense/Conv rules)."""
        mx = float(np.abs(x).max()) if x.size else 0.0
        mixed = bool((x < 0).any() and (x > 0).any())
        e = 0
        if not conv and mx > 0:
            e = -int(math.floor(math.log2(254.0 / mx))) if mx < 254 else 0
            e = max(e, -7)
        y = x * 2.0 ** (-e)
        m = 2 * self.rnd(y / 2) if mixed else self.rnd(y)
        hi = 254 if mixed else 255
        lo = -256 if mixed else (-255 if (x < 0).any() else 0)
        clipped = int(((m > hi) | (m < lo)).sum())
        m = np.clip(m, lo, hi).astype(np.int64)
        err = float(np.abs(m * 2.0 ** e - x).sum() / max(np.abs(x).sum(), 1e-30))
        self.report["clipped_weights"] += clipped
        return m, e, clipped, err, (MIXED if mixed else 0)

    # ---------------------------------------------------------------- main
    def lower(self) -> LoweredNetwork:
        from ..graph import attention_spec, steps_per_tau
        g = self.g
        memo = {}
        net = LoweredNetwork(metadata={"source": "nir", "arch": str(_meta(g, "neurodeploy.arch", "nir-file"))})
        inputs = [n for n in self.order if self.kind(n) == "input"]
        outputs = [n for n in self.order if self.kind(n) == "output"]
        if len(inputs) != 1 or len(outputs) != 1:
            raise UnsupportedError(f"graph must have one Input and one Output, found {inputs} and {outputs}")
        inp = inputs[0]
        domain = str(_meta(g, "neurodeploy.input_domain", "binary"))
        in_shape = _shape(g.nodes[inp], "output") or _shape(g.nodes[inp], "input")
        self.encoders = []
        if domain in ("binary", "counts"):
            net.populations.append(Population("input", _pop_shape(in_shape), kind="input",
                                              input_kind="spikes" if domain == "binary" else "graded",
                                              source=inp))
        elif domain != "real":
            raise BadInputError(f"graph metadata neurodeploy.input_domain '{domain}' is not binary/counts/real")
        popname = {inp: "input"}
        # readout: the linear chain feeding the output
        out_pred = self.pred[outputs[0]]
        readout_val = None
        if len(out_pred) == 1 and self.kind(out_pred[0]) == "linear":
            readout_val = self.value(out_pred[0], memo)
        neuron_nodes = [n for n in self.order if self.kind(n) == "neuron"]
        for n in neuron_nodes:
            popname[n] = n
        dst_list = [(n, "neuron") for n in neuron_nodes]
        if readout_val is not None:
            dst_list.append(("readout", "readout"))
        # ------------- build each destination population
        groups_by_dst = {}
        for dst, dkind in dst_list:
            if dkind == "neuron":
                node = g.nodes[dst]
                t = type(node).__name__
                shape = _shape(node, "output") or _shape(node, "input")
                n = int(np.prod(shape))
                val = _Value()
                for p in self.pred[dst]:
                    pv = self.value(p, memo)
                    val.terms += pv.terms
                    val.att += pv.att
                    val.bias_nodes += pv.bias_nodes
                if t == "LIF":
                    if np.any(_arr(node.v_leak) != 0) or np.any(_arr(node.v_reset) != 0):
                        field = "v_leak" if np.any(_arr(node.v_leak) != 0) else "v_reset"
                        raise UnsupportedError(f"node '{dst}': LIF with {field} != 0 cannot be lowered to Loihi 2 "
                                               "(the lowering maps only a leak to 0 and a reset to 0)")
                    k = steps_per_tau(_arr(node.tau), self.dt).reshape(-1)
                    if np.any(k != k[0]):
                        raise UnsupportedError(f"node '{dst}': per-neuron tau (Lava has one dv per population)")
                    k = float(k[0])
                    if k < 1:
                        raise UnsupportedError(f"node '{dst}': tau shorter than one step")
                    gain = np.broadcast_to(_arr(node.r), shape).reshape(-1) / k
                    dv = int(self.rnd_decay(4096.0 / k))
                    theta = np.broadcast_to(_arr(node.v_threshold), shape).reshape(-1)
                elif t == "IF":
                    if np.any(_arr(node.v_reset) != 0):
                        raise UnsupportedError(f"node '{dst}': IF with v_reset != 0 cannot be lowered to Loihi 2 "
                                               "(the lowering maps only a reset to 0)")
                    gain = np.broadcast_to(_arr(node.r), shape).reshape(-1)
                    dv, k = 0, 1.0
                    theta = np.broadcast_to(_arr(node.v_threshold), shape).reshape(-1)
                else:
                    gain = np.ones(n)
                    dv, k = 4096, 1.0
                    theta = np.broadcast_to(_arr(node.threshold), shape).reshape(-1)
                ge = _meta(node, "neurodeploy.spike_rule") == ">="
                if ge and _meta(node, "neurodeploy.v_threshold") is not None:
                    theta = np.full(n, float(_meta(node, "neurodeploy.v_threshold")))
                if np.any(theta <= 0):
                    raise UnsupportedError(f"node '{dst}': non-positive threshold")
                rowgain = gain / theta          # fold gain and per-neuron threshold into the weights
                pkind, name = "lif", dst
            else:
                val = readout_val
                shape = _shape(g.nodes[out_pred[0]], "output")
                n = int(np.prod(shape))
                rowgain = np.ones(n)
                dv, ge, k, pkind, name = 0, False, 1.0, "readout", "readout"
            groups_by_dst[name] = (val, rowgain, shape, dv, ge, k, pkind, dst)
        # ------------- quantize
        for name, (val, rowgain, shape, dv, ge, k, pkind, dst) in groups_by_dst.items():
            n = int(np.prod(shape))
            mats = []
            for t in val.terms:
                src_shape = in_shape if t.src == inp else (_shape(g.nodes[t.src], "output"))
                ops = [o for o in t.ops]
                mats.append((t, src_shape, ops))
            # float weights per term (as matrices or native conv kernels) times rowgain
            entries = []
            for t, src_shape, ops in mats:
                real_ops = [o for o in ops if type(g.nodes[o]).__name__ != "Flatten"]
                native = None
                if len(real_ops) == 1:
                    node = g.nodes[real_ops[0]]
                    tn = type(node).__name__
                    if tn == "Conv2d" and len(src_shape) == 3:
                        native = ("conv", _arr(node.weight), _pair(node.stride), conv_padding(node, real_ops[0], 2),
                                  _pair(node.dilation), int(node.groups))
                    elif tn == "Conv1d" and len(src_shape) == 2:
                        w1 = _arr(node.weight)
                        native = ("conv", w1.reshape(w1.shape[:2] + (1, w1.shape[2])),
                                  (1, _pair(node.stride, 1)[0]), (0, conv_padding(node, real_ops[0], 1)[0]),
                                  (1, _pair(node.dilation, 1)[0]), int(node.groups))
                    elif tn in ("SumPool2d",) and len(src_shape) == 3:
                        kk = _pair(node.kernel_size)
                        c = src_shape[0]
                        native = ("conv", np.ones((c, 1) + kk), _pair(node.stride), _pair(node.padding), (1, 1), c)
                if native is not None and np.all(rowgain.reshape(shape[0], -1) == rowgain.reshape(shape[0], -1)[:, :1]):
                    per_ch = rowgain.reshape(shape[0], -1)[:, 0]
                    w = native[1] * per_ch[:, None, None, None]
                    entries.append(("conv", t, w, native))
                else:
                    M = self.chain_matrix(ops, src_shape) * rowgain[:, None]
                    kind = "dense"
                    entries.append((kind, t, M, None))
            bias = np.zeros(n)
            for chain in val.bias_nodes:
                b = self.bias_vector(chain)
                if b is not None:
                    bias += b
            bias *= rowgain
            # attention
            att_spec = None
            if val.att:
                if len(val.att) != 1 or val.terms:
                    raise UnsupportedError(f"node '{dst}': the attention output must be its only input")
                att_spec = (val.att[0], attention_spec(g.nodes[val.att[0]]))
            # encoder terms (real input): host-side
            enc_terms = [e for e in entries if e[1].src == inp and domain == "real"]
            chip = [e for e in entries if e not in enc_terms]
            # ---- choose the population scale S
            if att_spec is not None:
                spec = att_spec[1]
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
                S = int(round(S))
            elif self.fixed_scale:
                S = self.fixed_scale
            else:
                mx = max([float(np.abs(e[2]).max()) for e in chip] + [1e-12])
                S = 254.0 / mx
                # keep |u| and |v| inside 24 bits: worst-case input x 64 S < 2**23
                row = np.abs(bias).copy()
                for e in chip:
                    if e[0] == "conv":
                        per = np.abs(e[2]).reshape(e[2].shape[0], -1).sum(1)
                        row += np.repeat(per, n // e[2].shape[0])
                    else:
                        row += np.abs(e[2]).sum(1)
                for e in enc_terms:
                    lo, hi = self.input_range
                    per = np.abs(e[2]).reshape(e[2].shape[0], -1).sum(1) * max(abs(lo), abs(hi))
                    row += np.repeat(per, n // e[2].shape[0]) if e[0] == "conv" else per
                rmax = float(row.max()) if row.size else 0.0
                if rmax > 0:
                    S = min(S, ((1 << 23) - 1) / (64.0 * rmax * (self.T if pkind == "readout" and self.T else 1)))
                if enc_terms or np.any(bias):
                    # the bias (and host-encoded input) must fit 13-bit mantissas with exponent <= 7
                    S = min(S, 4095.0 * 128 / (64.0 * max(rmax if enc_terms else float(np.abs(bias).max()), 1e-12)))
                if pkind != "readout":
                    S = min(max(1, int(math.floor(S))), VTH_MAX)
            if pkind == "readout":
                vth = VTH_MAX
                S = float(S)
            else:
                vth = int(S - 1) if ge else int(S)
            # ---- groups
            layer = {"population": name, "scale": S, "groups": []}
            syns = []
            for kind, t, w, native in chip:
                x = w * S
                m_, e_, clipped, err, sm = self.quant_group(x, conv=(kind == "conv"), name=name)
                src = popname.get(t.src, t.src)
                sname = f"{name}<-{t.src}" if len(chip) > 1 else f"{name}.syn"
                src_desc = "/".join(t.ops) or t.src
                if kind == "conv":
                    _, _, stride, pad, dil, groups = native
                    syns.append(Synapse(sname, src, name, "conv", m_, stride=stride, padding=pad, dilation=dil,
                                        groups=groups, sign_mode=sm, source=src_desc))
                else:
                    syns.append(Synapse(sname, src, name, kind, m_, weight_exp=e_, sign_mode=sm, source=src_desc))
                layer["groups"].append({"synapse": sname, "source": src_desc, "weight_exp": e_,
                                        "rel_error": err, "clipped": clipped})
            # ---- bias (constant part) and encoder
            bias_v = bias * S * 64.0
            bias_input = ""
            enc = None
            if enc_terms:
                if len(enc_terms) != 1:
                    raise UnsupportedError(f"node '{dst}': more than one encoder path")
                e = enc_terms[0]
                if e[0] == "conv" and len(in_shape) == 2:  # the host encoder runs conv2d only (issue 13)
                    raise UnsupportedError(f"node '{e[1].ops[0] if e[1].ops else dst}': a Conv1d reading a real-valued "
                                           "input cannot be lowered to Loihi 2 yet (declare the input binary or counts)")
                lo, hi = self.input_range
                xin = max(abs(lo), abs(hi))
                wabs = np.abs(e[2]).reshape(e[2].shape[0], -1).sum(1)
                if e[0] == "conv":
                    wabs = np.repeat(wabs, n // e[2].shape[0])
                bound = float(np.max(wabs * xin * S * 64.0 + np.abs(bias_v)))
                bias_input = f"{name}.encoded"
                enc = (e, bound)
                bound_all = bound
            else:
                bound_all = float(np.abs(bias_v).max()) if n else 0.0
            bexp = self.bias_exp_min
            while bound_all / (1 << bexp) > 4095 and bexp < 7:
                bexp += 1
            bm = self.rnd(bias_v / (1 << bexp))
            cb = int(((bm > 4095) | (bm < -4096)).sum())
            self.report["clipped_biases"] += cb
            bm = np.clip(bm, -4096, 4095).astype(np.int64).reshape(_pop_shape(shape))
            pshape = _pop_shape(shape)
            pop = Population(name, pshape, kind=pkind, du=4095, dv=int(dv), vth=int(vth),
                             bias_mant=bm if np.any(bm) else 0, bias_exp=bexp, source=dst, scale=float(S),
                             bias_input=bias_input)
            if enc is not None:
                e, bound = enc
                net.populations.append(Population(bias_input, _pop_shape(shape), kind="input", input_kind="bias",
                                                  source=inp))
                self.encoders.append(Encoder(
                    name=bias_input, node=e[1].ops[0] if e[1].ops else inp, kind=e[0],
                    weights=(e[3][1] * 1.0 if e[0] == "conv" else e[2]).astype(np.float64),
                    row_gain=(rowgain.reshape(shape[0], -1)[:, 0] if e[0] == "conv" else np.ones(1)),
                    bias=bias.reshape(-1), gain=S * 64.0 / (1 << bexp),
                    stride=e[3][2] if e[0] == "conv" else (1, 1), padding=e[3][3] if e[0] == "conv" else (0, 0),
                    dilation=e[3][4] if e[0] == "conv" else (1, 1), groups=e[3][5] if e[0] == "conv" else 1,
                    input_shape=tuple(in_shape)))
            net.populations.append(pop)
            net.synapses += syns
            if att_spec is not None:
                an, spec = att_spec
                qkv = self.attention_sources(an, spec)
                net.attention.append(Attention(f"{an}", qkv[0], qkv[1], qkv[2], name, heads=spec.heads,
                                               dim=spec.dim, tokens=spec.tokens, weight=int(m), source=an))
                layer["attention_weight"] = int(m)
            layer.update({"du": 4095, "dv": int(dv), "vth": int(vth), "bias_exp": bexp, "clipped_biases": cb})
            self.report["layers"].append(layer)
        # reorder populations: inputs first, then topological order of nodes
        net.outputs = ["readout"] if readout_val is not None else [self.pred[outputs[0]][0]]
        self.balance(net)
        net.metadata.update({"readout_scale": next((p.scale for p in net.populations if p.name == "readout"), 0.0),
                             "time_steps": int(self.T or 0)})
        net.encoders = self.encoders
        net.validate()
        return net

    def attention_sources(self, an, spec):
        D = spec.dim
        out = [None, None, None]
        for p in self.pred[an]:
            node = self.g.nodes[p]
            if type(node).__name__ != "Conv1d" or len(self.pred[p]) != 1:
                raise UnsupportedError(f"node '{an}': its inputs must be the stack routing convs (got '{p}')")
            w = _arr(node.weight)[:, :, 0]
            src = self.pred[p][0]
            if self.kind(src) != "neuron":
                raise UnsupportedError(f"node '{p}': the attention's Q/K/V must be spiking populations")
            for i in range(3):
                if np.array_equal(w[i * D:(i + 1) * D], np.eye(D)) and not np.any(np.delete(w, np.s_[i * D:(i + 1) * D], 0)):
                    out[i] = src
        if any(o is None for o in out):
            raise UnsupportedError(f"node '{an}': could not identify the Q, K, V stack routing")
        return out

    def balance(self, net: LoweredNetwork):
        balance_network(net, self.T)


def balance_network(net: LoweredNetwork, T=None) -> None:
    """Delay balancing (in place): each population's latency is its longest incoming path (one step per
    synapse group or attention op), every group into it gets ``balance_delay`` (attention ops
    ``balance_delays``) so that all its inputs arrive together; more than 62 -> error naming the node.
    Populations with a bias (and readouts) are reset (LIFReset, period ``T + latency``) at the step their
    first input arrives.  Sets ``metadata["latency"]`` and ``metadata["population_latency"]``."""
    lat = {}
    incoming = {p.name: [] for p in net.populations}
    for s in net.synapses:
        incoming[s.dst].append(s)
    for a in net.attention:
        incoming[a.dst].append(a)
    order = net.topological_order()
    for name in order:
        arr = []
        for c in incoming[name]:
            if isinstance(c, Synapse):
                arr.append(lat[c.src] + 1)
            else:
                arr += [lat[c.q] + 1, lat[c.k] + 1, lat[c.v] + 1]
        lat[name] = max(arr) if arr else 0
        for c in incoming[name]:
            if isinstance(c, Synapse):
                c.balance_delay = lat[name] - lat[c.src] - 1
                if c.balance_delay > MAX_DELAY:
                    raise UnsupportedError(
                        f"node '{net.pop(name).source}': path from '{c.src}' needs a delay of {c.balance_delay} "
                        f"steps, more than the Loihi 2 maximum {MAX_DELAY}")
            else:
                c.balance_delays = tuple(lat[name] - lat[s] - 1 for s in (c.q, c.k, c.v))
    Lmax = max(lat.values()) if lat else 0
    period = (int(T) + Lmax) if T else 0
    for p in net.populations:
        if p.kind == "input" or lat[p.name] == 0:
            continue
        if np.any(np.asarray(p.bias_mant) != 0) or p.kind == "readout":
            # zero u and v when the first input arrives (bias must not act while the pipeline fills)
            p.reset_interval = period if period else 1 << 20
            p.reset_offset = (lat[p.name] + 1) % p.reset_interval
    net.metadata["latency"] = int(Lmax)
    net.metadata["population_latency"] = {k: int(v) for k, v in lat.items()}


def lower_graph(graph: nir.NIRGraph, T: int | None = None, scale: int | None = None, rounding: str = "nearest",
                input_range=(0.0, 1.0), bias_exp_min: int = 0, attention: str = "process"):
    """Lower ``graph``; returns ``(LoweredNetwork, report)``.  ``T``: steps per sample (default from the
    graph metadata ``neurodeploy.time_steps``); ``scale``: force one integer scale for every population;
    ``rounding``: how decays dv are rounded: ``nearest`` or ``floor`` (truncation, as the NIR paper's
    Lava conversion);
    ``input_range``: bound of real-valued inputs (sizes the encoder's bias exponent);
    ``bias_exp_min``: smallest bias exponent (6 = biases in weight units, as netx files require);
    ``attention``: ``process`` (one integer op, our Lava process) or ``neurons`` (three-input AND
    coincidence LIF neurons and synapse groups only, small models: :mod:`neurodeploy.lower.attention_neurons`)."""
    if attention not in ("process", "neurons"):
        raise BadInputError(f"attention must be 'process' or 'neurons', not '{attention}'")
    from ..graph import graph_dt
    if rounding not in ("nearest", "floor"):
        raise BadInputError(f"rounding must be 'nearest' or 'floor', not '{rounding}'")
    if T is None:
        T = int(_meta(graph, "neurodeploy.time_steps", 0) or 0) or None
    low = _Lowerer(graph, T, scale, rounding, input_range, graph_dt(graph), bias_exp_min)
    net = low.lower()
    if attention == "neurons":
        from .attention_neurons import attention_to_neurons
        net = attention_to_neurons(net)
    return net, low.report
