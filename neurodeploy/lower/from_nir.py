"""Lower a NIR graph (docs/nir.md) into a quantized, delay-balanced :class:`LoweredNetwork`.

Rules (Loihi 2 fixed point as Lava computes it; see neurodeploy.sim.engine):

* Populations: every neuron node (``LIF``, ``IF``, ``Threshold``, ``CubaLIF``; non-spiking ``LI``, ``I``,
  ``CubaLI`` as readouts) becomes one CUBA LIF population (:meth:`_Lowerer.neuron_map`; CubaLIF: du from
  tau_syn, w_in r / (k_syn k_mem) folded into the weights, v_leak / k as the bias; an Affine bias into a
  current-based neuron enters u through the always-spiking population ``const1``); nested subgraphs are
  inlined first; a population feeding itself keeps a zero balance delay (NIR's one-step back edge), longer
  loops and ``v_reset != 0`` are refused; leading Delay nodes become per-synapse delays; the
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
from fractions import Fraction

import nir
import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from ..analysis.annotate import LOWERING, AnnotatedGraph, annotate
from ..errors import BadInputError, UnsupportedError
from ..graph.attention import attention_spec
from ..graph.core import graph_dt
from ..graph.simulate import steps_per_tau, int_tuple, padding_arg
from ..graph.primitives import KINDS
from .fixed_point import conv_out_hw, conv_to_sparse
from .attention_graded import ATTENTION_SCHEDULES, attention_to_graded
from .fan_in import split_fan_in
from .validate import check_lowering_inputs
from .balance import balance_network  # noqa: F401 - re-exported (historic home)
from .network import (EXCITATORY, MAX_DELAY, MIXED, VTH_MAX, Attention, Encoder, LoweredNetwork, Population,
                      Synapse, as_sparse, identity_csr)

#: a chain with an Affine whose composed matrix would exceed this many elements is lowered through a relay
#: population when the Affine pools positions (:meth:`_Lowerer._pooled_readout`); smaller ones stay one
#: dense group
RELAY_MIN_ELEMENTS = 1 << 24
#: ... and also when one neuron of it would read more than this many source neurons: a Loihi 2 core has 16,000
#: input axons (lava_loihi.md), so a readout of a CIFAR Spikingformer (64 tokens x 384 channels per source,
#: ~19 sources) could not be placed at all; through the relay it reads 384 counts per source
RELAY_MIN_FAN_IN = 8192
#: the population that spikes every step (constant input 1; Affine biases into current-based neurons)
CONST_POP = "const1"



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


def _mixed(w) -> bool:
    v = w.data if sp.issparse(w) else np.asarray(w)
    return bool((v < 0).any() and (v > 0).any())


def _split_signs(chip):
    """Each mixed-sign spike group (no model delays, not graded) as two groups from the same source: its
    positive and its negative weights (Lava sign modes excitatory / inhibitory).  Lava's Dense/Sparse keep
    all 8 bits of a one-sign weight (0..255) but drop the LSB of a mixed one (even values): one more bit of
    weight resolution, the same synapses (each weight is in one of the two), one more group per split one
    (a conv: two Conv processes).  Returns the new list and ``{id(weights): name suffix}``."""
    out, tag = [], {}
    for kind, t, w, native, delays in chip:
        if kind not in ("conv", "dense", "sparse") or delays is not None or not _mixed(w) or \
                (native and native[0] == "relay"):
            out.append((kind, t, w, native, delays))
            continue
        for suffix, keep in ((".exc", lambda a: a > 0), (".inh", lambda a: a < 0)):
            if sp.issparse(w):
                part = sp.csr_matrix(w.multiply(keep(w)))      # sparse comparisons: no dense copy
                part.eliminate_zeros()
            else:
                part = np.where(keep(w), w, 0.0)
            tag[id(part)] = suffix
            out.append((kind, t, part, native, delays))
    return out, tag


def _absmax(w) -> float:
    if sp.issparse(w):
        return float(np.abs(w.data).max()) if w.nnz else 0.0
    return float(np.abs(w).max()) if np.size(w) else 0.0


def _row_abs_sum(kind, w, n) -> np.ndarray:
    """Sum of |weights| into each of the n destination neurons (conv: per output channel, an upper bound)."""
    if kind == "conv":
        per = np.abs(w).reshape(w.shape[0], -1).sum(1)
        return np.repeat(per, n // w.shape[0])
    if sp.issparse(w):
        return np.asarray(abs(w).sum(1)).reshape(-1)
    return np.abs(w).sum(1)


class _Lowerer:
    split_signs = False     # lower_graph(split_signs=True): mixed-sign groups as excitatory + inhibitory pairs
    residual_stream = "relay"   # lower_graph(residual_stream=...): "relay" (each value built once) or "expanded"

    def __init__(self, ann: AnnotatedGraph | nir.NIRGraph, T, scale, rounding, input_range, dt, bias_exp_min=0):
        self.bias_exp_min = int(bias_exp_min)
        self.ann = ann = annotate(ann)          # a plain graph is annotated here
        self.g = ann.flat
        self.pred = ann.preds
        self.order, self.back = ann.order, ann.back_edges
        self.T = T
        self.fixed_scale = scale
        self.rounding = rounding
        self.input_range = input_range
        self.dt = dt
        self.report = {"layers": [], "clipped_weights": 0, "clipped_biases": 0}
        self.relays = {}
        self._dense_w = {}          # Affine/Linear weights as float64, converted once per node (a head feeds
        self._pools = {}            # ~20 chains); id(weights) -> the per-channel head, or None (_pooled_readout)

    # ---------------------------------------------------------------- structure
    def kind(self, name):
        """How this lowering treats node ``name`` (the annotation's ``lowering``, from the primitive kind)."""
        info = self.ann.nodes[name]
        if info.kind == "subgraph":
            raise UnsupportedError(f"node '{name}': nested NIR subgraph (type NIRGraph) cannot be lowered to Loihi 2 "
                                   f"(only the spiking_attention extension is; {info.lowering_note or 'flatten it'})")
        if info.lowering is None:
            known = sorted(c.__name__ for c, kk in KINDS.items() if LOWERING.get(kk))
            raise UnsupportedError(f"node '{name}': NIR type {type(info.node).__name__} cannot be lowered to Loihi 2 "
                                   f"(supported: {', '.join(known)}, spiking_attention)")
        return info.lowering

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

    # ---------------------------------------------------------------- structured chains
    def chain_ops(self, ops, src_shape):
        """The linear nodes of a chain as structured ops on flat C-order neuron vectors:
        ``("conv", W, stride, padding, dilation, groups, view)`` (a PyTorch conv2d on the (C, H, W)
        ``view``; Conv1d is a 1 x k conv on (C, 1, N); sum/avg pooling a grouped conv with a constant
        kernel), ``("dense", A)`` (Affine/Linear) and ``("scale", vector)``; Flatten only renames the shape
        (a C-order reshape keeps the neuron order).  Returns ``(ops, output size)``."""
        shape = tuple(int(a) for a in src_shape)
        struct = shape                  # the last shape before Flattens (channels x positions)
        out = []
        for name in ops:
            node = self.g.nodes[name]
            t = type(node).__name__
            n = int(np.prod(shape))
            if t == "Flatten":
                osh = _shape(node, "output")
                if osh is not None and int(np.prod(osh)) != n:
                    raise UnsupportedError(f"node '{name}': Flatten output {osh} does not hold {n} values")
                shape = tuple(osh) if osh is not None else (n,)
                continue
            if t in ("Affine", "Linear"):
                if name not in self._dense_w:
                    self._dense_w[name] = _arr(node.weight)
                A = self._dense_w[name]
                if A.ndim != 2 or A.shape[1] != n:
                    raise UnsupportedError(f"node '{name}': weight {A.shape} does not take {n} inputs")
                out.append(("dense", A, struct))
                shape = struct = (A.shape[0],)
                continue
            if t == "Scale":
                vec = np.broadcast_to(_arr(node.scale), shape).reshape(-1).copy()
                out.append(("scale", vec))
                continue
            if t == "Conv2d":
                if len(shape) != 3:
                    raise UnsupportedError(f"node '{name}': Conv2d on a {len(shape)}-d input {shape}")
                W = _arr(node.weight)
                geo = (_pair(node.stride), conv_padding(node, name, 2), _pair(node.dilation), int(node.groups))
                view, one_d = shape, False
            elif t == "Conv1d":
                if len(shape) != 2:
                    raise UnsupportedError(f"node '{name}': Conv1d on a {len(shape)}-d input {shape}")
                w1 = _arr(node.weight)
                W = w1.reshape(w1.shape[:2] + (1, w1.shape[2]))
                geo = ((1, _pair(node.stride, 1)[0]), (0, conv_padding(node, name, 1)[0]),
                       (1, _pair(node.dilation, 1)[0]), int(node.groups))
                view, one_d = (shape[0], 1, shape[1]), True
            elif t in ("SumPool2d", "AvgPool2d"):
                if len(shape) != 3:
                    raise UnsupportedError(f"node '{name}': {t} on a {len(shape)}-d input {shape}")
                kk = _pair(node.kernel_size)
                c = shape[0]
                W = np.full((c, 1) + kk, 1.0 if t == "SumPool2d" else 1.0 / (kk[0] * kk[1]))
                geo = (_pair(node.stride), _pair(node.padding), (1, 1), c)
                view, one_d = shape, False
            else:
                raise UnsupportedError(f"node '{name}': {t}")
            if W.shape[1] * geo[3] != view[0]:
                raise UnsupportedError(f"node '{name}': kernel {W.shape} with groups {geo[3]} does not fit "
                                       f"{view[0]} input channels")
            ho, wo = conv_out_hw(view[1:], W.shape[2:], *geo[:3])
            out.append(("conv", W) + geo + (tuple(view),))
            shape = struct = (W.shape[0], wo) if one_d else (W.shape[0], ho, wo)
        return out, int(np.prod(shape))

    @staticmethod
    def _conv_out(op) -> tuple:
        W, st, pad, dil, g, view = op[1:]
        return (int(W.shape[0]),) + conv_out_hw(view[1:], W.shape[2:], st, pad, dil)

    @staticmethod
    def _full_kernel(W, groups):
        """A grouped kernel (O, I/g, kh, kw) as the equivalent ungrouped (O, I, kh, kw)."""
        if groups == 1:
            return W
        O, ig = W.shape[:2]
        F_ = np.zeros((O, ig * groups) + W.shape[2:])
        og = O // groups
        for gi in range(groups):
            F_[gi * og:(gi + 1) * og, gi * ig:(gi + 1) * ig] = W[gi * og:(gi + 1) * og]
        return F_

    @staticmethod
    def _find_groups(F_):
        """The largest group count whose block-diagonal structure the full kernel F_ (O, I, kh, kw) has,
        and the grouped kernel."""
        O, I = F_.shape[:2]
        nz = np.abs(F_).sum((2, 3)) != 0
        for g in sorted((d for d in range(1, math.gcd(O, I) + 1) if O % d == 0 and I % d == 0), reverse=True):
            og, ig = O // g, I // g
            blocks = np.zeros_like(nz)
            for gi in range(g):
                blocks[gi * og:(gi + 1) * og, gi * ig:(gi + 1) * ig] = True
            if not np.any(nz & ~blocks):
                return g, np.stack([F_[gi * og:(gi + 1) * og, gi * ig:(gi + 1) * ig] for gi in range(g)]).reshape(
                    (O, ig) + F_.shape[2:])
        return 1, F_

    def _compose_convs(self, c1, c2):
        """c2 after c1 as ONE conv (stride s1 s2, padding p1 + p2 s1, the kernels convolved), or None when
        that is not exact.  c2's zero padding of c1's output is exact only where c1 at those padded
        positions would read nothing but the input's zero padding (e.g. a sum-pool with kernel = stride
        before a padded conv); the output sizes must agree."""
        W1, s1, p1, d1, g1, v1 = c1[1:]
        W2, s2, p2, d2, g2, v2 = c2[1:]
        if tuple(v2) != self._conv_out(c1):
            return None
        k1, k2 = W1.shape[2:], W2.shape[2:]
        h_in, h1 = v1[1:], v2[1:]
        for i in range(2):
            if not p2[i]:
                continue
            if -s1[i] - p1[i] + d1[i] * (k1[i] - 1) >= 0:          # c1 at index -1 reads real input
                return None
            h2 = conv_out_hw(h1, k2, s2, p2, d2)[i]
            if (h2 - 1) * s2[i] - p2[i] + d2[i] * (k2[i] - 1) >= h1[i] and h1[i] * s1[i] - p1[i] < h_in[i]:
                return None                                          # c1 at index h1 reads real input
        K = tuple(d2[i] * s1[i] * (k2[i] - 1) + d1[i] * (k1[i] - 1) + 1 for i in range(2))
        if K[0] * K[1] > 1 << 12:
            return None
        F1, F2 = self._full_kernel(W1, g1), self._full_kernel(W2, g2)
        W = np.zeros((F2.shape[0], F1.shape[1]) + K)
        for a in range(k2[0]):
            for b in range(k2[1]):
                for y in range(k1[0]):
                    for x in range(k1[1]):
                        W[:, :, a * d2[0] * s1[0] + y * d1[0], b * d2[1] * s1[1] + x * d1[1]] += F2[:, :, a, b] @ F1[:, :, y, x]
        st = (s1[0] * s2[0], s1[1] * s2[1])
        pad = (p1[0] + p2[0] * s1[0], p1[1] + p2[1] * s1[1])
        op = ("conv", W, st, pad, (1, 1), 1, tuple(v1))
        if self._conv_out(op) != self._conv_out(c2):
            return None
        g, Wg = self._find_groups(W)
        return ("conv", Wg, st, pad, (1, 1), g, tuple(v1))

    def _op_sparse(self, op, n_in):
        """Float (n_out, n_in) CSR matrix of one structured op (for irregular compositions)."""
        if op[0] == "conv":
            W, st, pad, dil, g, view = op[1:]
            return conv_to_sparse(W, view, st, pad, dil, g, dtype=np.float64)
        if op[0] == "scale":
            return sp.diags(op[1]).tocsr()
        return sp.csr_matrix(op[1])

    @staticmethod
    def _conv_t(op, M):
        """M (rows, n_out of conv op) -> M @ conv (rows, n_in): each row pushed back through the conv
        (the transposed conv; exact float sums), memory rows x n_in."""
        W, st, pad, dil, g, view = op[1:]
        co, ho, wo = _Lowerer._conv_out(op)
        hw_full = tuple((o - 1) * s - 2 * p + d * (k - 1) + 1 for o, s, p, d, k in zip((ho, wo), st, pad, dil, W.shape[2:]))
        opad = tuple(v - f for v, f in zip(view[1:], hw_full))
        M3 = M.reshape(M.shape[0], co, ho * wo)
        if g == 1 and np.all(M3 == M3[:, :, :1]):
            # rows that weigh every output position of a channel alike (a head after a mean over positions):
            # row r of M @ conv at input (ci, q) is sum_co E[r, co] sum_{k: q reaches an output through
            # kernel tap k} W[co, ci, k]; the taps' reach V[k, q] is one transposed conv of an all-ones map,
            # so the cost is a (rows x co) x (co x n_in) product instead of a transposed conv per row
            kh, kw = W.shape[2:]
            taps = torch.zeros((1, kh * kw, kh, kw), dtype=torch.float64)
            taps.view(kh * kw, kh * kw)[range(kh * kw), range(kh * kw)] = 1.0
            V = F.conv_transpose2d(torch.ones((1, 1, ho, wo), dtype=torch.float64), taps,
                                   stride=st, padding=pad, output_padding=opad, dilation=dil)
            S = np.einsum("oik,kq->oiq", W.reshape(co, W.shape[1], kh * kw), V.reshape(kh * kw, -1).numpy())
            return np.ascontiguousarray(M3[:, :, 0]) @ S.reshape(co, -1)   # contiguous: a BLAS product
        out = np.empty((M.shape[0], int(np.prod(view))))
        wt = torch.as_tensor(W)
        for i in range(0, M.shape[0], 64):
            y = torch.as_tensor(np.ascontiguousarray(M[i:i + 64])).reshape(-1, co, ho, wo)
            x = F.conv_transpose2d(y, wt, stride=st, padding=pad, output_padding=opad, groups=g, dilation=dil)
            out[i:i + 64] = x.reshape(y.shape[0], -1).numpy()
        return out

    @staticmethod
    def _conv_cols(op, M):
        """conv @ M (each column of M pushed through the conv), memory n_out x columns."""
        W, st, pad, dil, g, view = op[1:]
        out = []
        wt = torch.as_tensor(W)
        for i in range(0, M.shape[1], 256):
            x = torch.as_tensor(np.ascontiguousarray(M[:, i:i + 256].T)).reshape((-1,) + tuple(view))
            y = F.conv2d(x, wt, stride=st, padding=pad, dilation=dil, groups=g)
            out.append(y.reshape(x.shape[0], -1).numpy().T)
        return np.concatenate(out, 1)

    def _pooled_readout(self, sops, src_shape):
        """``(C, P, E)`` when the chain is pointwise ops (1x1 stride-1 convs, per-channel scales) on a
        source of C channels x P positions, then an Affine that weighs every position of a channel alike
        (Spikingformer's head: mean over tokens, then Linear): the chain is then E (n_out x C) applied to
        the source's spike counts summed over positions (1x1 convs commute with that sum).  Else None."""
        *pre, last = sops
        if last[0] != "dense" or any(o[0] == "dense" for o in pre):
            return None
        src3 = tuple(_pop_shape(src_shape))
        if len(src3) != 3:
            return None
        Cs, P = src3[0], src3[1] * src3[2]
        Wc = np.eye(Cs)
        for o in pre:
            if o[0] == "scale":
                per = o[1].reshape(Wc.shape[0], -1)
                if not np.all(per == per[:, :1]):
                    return None
                Wc = per[:, 0][:, None] * Wc
                continue
            W, st, pad, dil, g, view = o[1:]
            if W.shape[2:] != (1, 1) or tuple(st) != (1, 1) or any(pad) or int(np.prod(view[1:])) != P:
                return None
            Wc = self._full_kernel(W, g)[:, :, 0, 0] @ Wc
        A, struct = last[1], last[2]
        if len(struct) < 2 or struct[0] != Wc.shape[0] or int(np.prod(struct[1:])) != P:
            return None
        E = self._per_channel(A, struct[0], P)
        if E is None:
            return None
        return Cs, P, E @ Wc

    def _per_channel(self, A, C, P):
        """``A`` (rows, C x P) as (rows, C) when every position of a channel has the same weight (a head
        that averages over positions), else None; decided once per weight matrix."""
        key = (id(A), C, P)
        if key not in self._pools:
            A3 = A.reshape(A.shape[0], C, P)
            self._pools[key] = np.ascontiguousarray(A3[:, :, 0]) if np.all(A3 == A3[:, :, :1]) else None
        return self._pools[key]

    def relay_for(self, net, src_pop: str, src_shape) -> str:
        """The relay population carrying the spike counts of ``src_pop`` summed over its positions (one
        per channel; built once per source): a ``relay`` population (C,) fed by a sum-pool conv group
        (weights 1, kernel = the whole map, groups C).  Its output is the exact integer count (at most
        the number of positions) as a graded payload."""
        name = f"{src_pop}.sum"
        if name in self.relays:
            return name
        C, h, w = tuple(_pop_shape(src_shape))
        net.populations.append(Population(name, (C,), kind="relay", source=src_pop))
        net.synapses.append(Synapse(f"{name}.syn", src_pop, name, "conv", np.ones((C, 1, h, w), dtype=np.int64),
                                    groups=C, sign_mode=EXCITATORY, source=f"sum of {src_pop} over positions"))
        self.relays[name] = src_pop
        return name

    def chain_structure(self, ops, src_shape, rowgain, name):
        """The synapse group of one chain, structured: ``("conv", w, geometry)`` (one conv kernel, the
        chain's convs/pools composed where exact, ``rowgain`` folded per output channel), ``("dense", M)``
        (only when the chain has an Affine/Linear: the product of the chain, computed from the Affine's
        side, memory n_out x n_in of the result only) or ``("sparse", csr)`` (an irregular composition:
        the product of the ops' sparse matrices, memory = connections).  Never a matrix pushed through
        the chain from an identity."""
        sops, n_out = self.chain_ops(ops, src_shape)
        n_in = int(np.prod(src_shape))
        if n_out != rowgain.size:
            raise UnsupportedError(f"node '{name}': the chain {ops} gives {n_out} values for {rowgain.size} neurons")
        if not sops:                              # a bare reshape: the identity
            sops = [("scale", np.ones(n_in))]
        dense_at = [i for i, o in enumerate(sops) if o[0] == "dense"]
        if dense_at and (n_out * n_in > RELAY_MIN_ELEMENTS or n_in > RELAY_MIN_FAN_IN):
            relay = self._pooled_readout(sops, src_shape)
            if relay is not None:
                C, P, E = relay
                return ("relay", E * rowgain[:, None], ("relay", P, C))
        if dense_at:
            i = dense_at[0]
            M = sops[i][1].copy()
            for o in sops[i + 1:]:
                if o[0] == "dense":
                    M = o[1] @ M
                elif o[0] == "scale":
                    M = o[1][:, None] * M
                else:
                    M = self._conv_cols(o, M)
            for o in reversed(sops[:i]):
                if o[0] == "scale":
                    M = M * o[1][None, :]
                else:
                    M = self._conv_t(o, M)
            M *= rowgain[:, None]
            return ("dense", M, None)
        # conv / pool / scale only: scales become depthwise 1x1 convs (per channel, else per neuron)
        convs = []
        shape3 = None
        for o in sops:
            if o[0] == "scale":
                cshape = self._conv_out(convs[-1]) if convs else tuple(_pop_shape(src_shape))
                if len(cshape) != 3:
                    cshape = (int(np.prod(cshape)), 1, 1)
                per = o[1].reshape(cshape[0], -1)
                if np.all(per == per[:, :1]):
                    W = per[:, 0].reshape(-1, 1, 1, 1)
                    convs.append(("conv", W, (1, 1), (0, 0), (1, 1), cshape[0], cshape))
                else:
                    n = o[1].size
                    convs.append(("conv", o[1].reshape(-1, 1, 1, 1), (1, 1), (0, 0), (1, 1), n, (n, 1, 1)))
            else:
                convs.append(o)
        cur = convs[0]
        for nxt in convs[1:]:
            cur = self._compose_convs(cur, nxt) if cur is not None else None
        if cur is not None:
            W, st, pad, dil, g, view = cur[1:]
            co = W.shape[0]
            per = rowgain.reshape(co, -1)
            if np.all(per == per[:, :1]):
                # 1x1 stride-1 convs work on any (C, H, W) view with the same channels: use the source's own
                if W.shape[2:] == (1, 1) and st == (1, 1) and not any(pad) and len(_pop_shape(src_shape)) == 3 \
                        and _pop_shape(src_shape)[0] == view[0]:
                    view = tuple(_pop_shape(src_shape))
                return ("conv", W * per[:, 0][:, None, None, None], ("conv", W, tuple(st), tuple(pad), tuple(dil),
                                                                   int(g), tuple(view)))
        # irregular: the product of the ops' sparse matrices (connections only)
        m = None
        n = n_in
        for o in convs:
            s_ = self._op_sparse(o, n)
            m = s_ if m is None else (s_ @ m).tocsr()
            n = s_.shape[0]
        m = sp.diags(rowgain) @ m
        m = sp.csr_matrix(m)
        m.eliminate_zeros()
        return ("sparse", m, None)

    # ---------------------------------------------------------------- the residual stream
    def stream_plan(self, groups_by_dst, inp, in_shape, domain, v0_by_dst):
        """Build each value of a residual stream once (docs/lowering.md, "Residual stream").

        Spikingformer's LIFs that read the stream get ``x_l = x_0 + sum of branch outputs`` as one term per
        earlier branch (NIR sums edges at a node), so expanded every reader holds every earlier conv: synapse
        memory grows with depth squared.  Here the LIF populations whose input terms (source, chain of NIR
        nodes) nest, K_0 < K_1 < ..., get one ``relay`` population (Lava GradedVec, vth 0) per distinct set
        K: ``relay(K) = relay(parent) + the new terms`` (the parent read one-to-one, weight 1, graded), and
        every reader of K reads ``relay(K)`` once, one-to-one with weight 1.  Exact in integers: a stream
        (a tree of nested sets) has one integer scale S (integer units per model unit; its terms are
        quantized once at S), and a reader with gain r (folded weight per model unit, r = 1/m with m an
        integer; p / q in general, S then a multiple of p) gets the population scale S m (S q / p), so its a_in
        equals the payload with no second rounding.
        Readers keep their own bias (the stream's BatchNorm biases, pushed through as before).  S is the
        largest integer that keeps every stream weight within 8-bit mantissas and every reader's u, v,
        bias and threshold within their registers (the same bounds as an expanded reader's scale).
        Populations or terms this does not fit (attention LIFs, per-neuron gains, delays, host-encoded
        terms, initial v) keep their expanded terms.  Returns the new ``groups_by_dst`` (relays inserted
        before their first reader)."""
        order = list(groups_by_dst)
        keys = {}
        for name, (val, rowgain, shape, dv, ge, k, pkind, dst, du, leak) in groups_by_dst.items():
            if pkind != "lif" or val.att or len(val.terms) < 1 or name in v0_by_dst:
                continue
            r = float(rowgain[0]) if rowgain.size else 0.0
            if r <= 0 or not np.allclose(rowgain, r, rtol=0, atol=1e-12 * r):
                continue
            fr = Fraction(r).limit_denominator(1 << 12)         # gain p / q (tau 2: 1/2; tau 1.5: 2/3)
            if abs(float(fr) - r) > 1e-12 * r:
                continue
            ks = []
            for t in val.terms:
                if t.src == name or (t.src == inp and domain == "real") or \
                        any(type(self.g.nodes[o]).__name__ == "Delay" for o in t.ops):
                    break
                ks.append((t.src, tuple(t.ops)))
            else:
                if len(set(ks)) == len(ks):
                    keys[name] = frozenset(ks)
        sets = sorted(set(keys.values()), key=len)
        parent = {}
        for i, K in enumerate(sets):
            subs = [P for P in sets[:i] if P < K]
            if subs:
                parent[K] = max(subs, key=len)
        used = set(parent) | set(parent.values())
        if not used:
            return groups_by_dst
        readers = {K: [n for n in order if keys.get(n) == K] for K in used}
        size = {K: int(np.prod(groups_by_dst[readers[K][0]][2])) for K in used}
        if any(int(np.prod(groups_by_dst[n][2])) != size[K] for K in used for n in readers[K]) or \
                any(size[K] != size[P] for K, P in parent.items()):
            return groups_by_dst
        rname = {K: f"{readers[K][0]}.stream" for K in used}
        # float structures of every stream term (gain 1: model units), once
        terms = {}
        for K in used:
            t_by_key = {(t.src, tuple(t.ops)): t for t in groups_by_dst[readers[K][0]][0].terms}
            for key in K - (parent.get(K) or frozenset()):
                t = t_by_key[key]
                src_shape = in_shape if t.src == inp else _shape(self.g.nodes[t.src], "output")
                kind, w, native = self.chain_structure(list(t.ops), src_shape, np.ones(size[K]), readers[K][0])
                if kind not in ("conv", "dense", "sparse"):
                    return groups_by_dst          # (a pooled readout: not a stream term)
                terms[key] = (t, kind, w, native)

        def root(K):
            while K in parent:
                K = parent[K]
            return K
        rowabs = {}
        for K in sorted(used, key=len):
            ra = rowabs[parent[K]].copy() if K in parent else np.zeros(size[K])
            for key in K - (parent.get(K) or frozenset()):
                _, kind, w, _ = terms[key]
                ra += _row_abs_sum(kind, w, size[K])
            rowabs[K] = ra
        bound = {}
        for K in used:
            top = 254.0 / max([_absmax(terms[key][2]) for key in K] + [1e-12])
            for n in readers[K]:
                val, rowgain, shape, dv, ge, k, pkind, dst, du, leak = groups_by_dst[n]
                r = float(rowgain[0])
                bias = np.zeros(size[K])
                for chain in val.bias_nodes:
                    b = self.bias_vector(chain)
                    if b is not None:
                        bias += b
                bias *= rowgain
                if du != 4095 and np.any(bias):
                    return groups_by_dst           # (a constant into u: const1 groups, not a stream reader)
                if leak is not None:
                    bias = bias + leak
                rmax = float((np.abs(bias) + r * rowabs[K]).max())
                lim = VTH_MAX
                if rmax > 0:
                    lim = min(lim, ((1 << 23) - 1) / (64.0 * rmax * 4096.0 / (du + 1)))
                if np.any(bias):
                    lim = min(lim, 4095.0 * 128 / (64.0 * float(np.abs(bias).max())))
                top = min(top, lim * r)            # the reader's scale is S / r
            bound[root(K)] = min(bound.get(root(K), math.inf), top)
        # a reader of gain p / q gets the scale S q / p: an integer when p divides S (S a multiple of the lcm)
        frac = {n: Fraction(float(groups_by_dst[n][1][0])).limit_denominator(1 << 12) for K in used for n in readers[K]}
        step = {}
        for K in used:
            for n in readers[K]:
                step[root(K)] = math.lcm(step.get(root(K), 1), frac[n].numerator)
        if any(bound[r_] < step[r_] for r_ in bound):
            return groups_by_dst            # (no integer scale within the registers)
        for K in used:
            S = int(math.floor(bound[root(K)] / step[root(K)])) * step[root(K)]
            self.stream_scale[rname[K]] = S
            for n in readers[K]:
                self.stream_scale[n] = S * frac[n].denominator // frac[n].numerator
        # the new destinations: relays before their first reader; readers read their relay only
        out = {}
        for n in order:
            K = keys.get(n) if keys.get(n) in used else None
            if K is not None and readers[K][0] == n:
                val0, rowgain, shape = groups_by_dst[n][:3]
                new = []
                if K in parent:
                    new.append(_Term(rname[parent[K]], []))
                fresh = K - (parent.get(K) or frozenset())
                for t0 in val0.terms:                   # the model's order
                    key = (t0.src, tuple(t0.ops))
                    if key in fresh:
                        t, kind, w, native = terms[key]
                        new.append(t)
                        self.stream_struct[key] = (kind, w, native)
                out[rname[K]] = (_Value(new), np.ones(size[K]), shape, 0, False, 1.0, "relay", n, 4095, None)
                self.stream_relays[rname[K]] = sorted(readers[K])
            if K is not None:
                val = groups_by_dst[n][0]
                out[n] = (_Value([_Term(rname[K], [])], [], list(val.bias_nodes)),) + tuple(groups_by_dst[n][1:])
            else:
                out[n] = groups_by_dst[n]
        return out

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
        """Integer mantissas m and exponent e with m * 2**e ~ x (Lava Dense/Conv rules).  Works through
        x in row blocks (no full-size temporaries); dense and conv mantissas come back as int16 (9-bit values)."""
        mx = float(np.abs(x).max()) if x.size else 0.0
        mixed = bool((x < 0).any() and (x > 0).any())
        neg = bool((x < 0).any())
        e = 0
        if not conv and mx > 0:
            e = -int(math.floor(math.log2(254.0 / mx))) if mx < 254 else 0
            e = max(e, -7)
        hi = 254 if mixed else 255
        lo = -256 if mixed else (-255 if neg else 0)
        m = np.empty(x.shape, dtype=np.int16 if x.ndim >= 2 else np.int64)
        clipped, num, den = 0, 0.0, 0.0
        rows = max(1, (1 << 22) // max(1, int(np.prod(x.shape[1:]))))
        for i in range(0, max(1, x.shape[0]), rows):
            xb = x[i:i + rows]
            y = xb * 2.0 ** (-e)
            mb = 2 * self.rnd(y / 2) if mixed else self.rnd(y)
            clipped += int(((mb > hi) | (mb < lo)).sum())
            np.clip(mb, lo, hi, out=mb)
            m[i:i + rows] = mb
            num += float(np.abs(mb * 2.0 ** e - xb).sum())
            den += float(np.abs(xb).sum())
        err = num / max(den, 1e-30)
        self.report["clipped_weights"] += clipped
        return m, e, clipped, err, (MIXED if mixed else 0)

    # ---------------------------------------------------------------- delays and loops
    def split_delays(self, ops, src_shape, dst):
        """Leading Delay nodes of a chain (right after the source population: one delay per source neuron)
        as integer steps per source neuron, and the remaining ops.  A Delay elsewhere in a chain is refused."""
        d = None
        n_in = int(np.prod(src_shape))
        i = 0
        while i < len(ops) and type(self.g.nodes[ops[i]]).__name__ == "Delay":
            name = ops[i]
            steps = np.asarray(_arr(self.g.nodes[name].delay), dtype=np.float64) / self.dt
            k = np.rint(steps)
            if np.any(np.abs(steps - k) > 1e-3) or np.any(k < 0):
                raise UnsupportedError(f"node '{name}': Delay field delay must be a non-negative multiple of dt "
                                       f"({self.dt:g} s) to be lowered to Loihi 2")
            k = np.broadcast_to(k, src_shape).reshape(-1).astype(np.int64) if k.size in (1, n_in) else None
            if k is None:
                raise UnsupportedError(f"node '{name}': Delay field delay has {np.size(steps)} values for "
                                       f"{n_in} inputs")
            d = k if d is None else d + k
            i += 1
        for name in ops[i:]:
            if type(self.g.nodes[name]).__name__ == "Delay":
                raise UnsupportedError(f"node '{name}': a Delay after a linear node cannot be lowered to Loihi 2 "
                                       "(Loihi 2 delays are per synapse: put the Delay right after a neuron)")
        if d is not None and not np.any(d):
            d = None
        return d, ops[i:]

    def with_delays(self, kind, w, native, d, dst):
        """A group with per-source-neuron delays ``d``: dense weights get a dense delay matrix, conv groups
        become sparse (Lava's Conv has no delays), sparse groups get CSR delays of the same structure."""
        if kind == "relay":
            raise UnsupportedError(f"node '{dst}': a Delay before a pooled readout cannot be lowered to Loihi 2")
        if kind == "conv":
            W, st, pad, dil, g_, view = native[1:]
            w = conv_to_sparse(w, view, st, pad, dil, g_, dtype=np.float64)
            kind, native = "sparse", None
        if kind == "sparse":
            w = sp.csr_matrix(w)
            w.sort_indices()
            dm = sp.csr_matrix((d[w.indices].astype(np.int64), w.indices.copy(), w.indptr.copy()), shape=w.shape)
            return kind, w, native, as_sparse(dm)
        return kind, w, native, np.broadcast_to(d[None, :], w.shape).copy()

    def check_loops(self, net: LoweredNetwork) -> None:
        """Recurrence: a population feeding itself (directly or through linear nodes) gets a synapse group
        with no balance delay, which delivers the spikes of step t at step t + 1 exactly as NIR's back edge.
        A loop through two or more populations cannot: every synapse group adds one step on Loihi 2, so
        the loop would take k steps where NIR's takes one; it is refused naming the node."""
        deps = {p.name: set() for p in net.populations}
        for s_ in net.synapses:
            if s_.src != s_.dst:
                deps[s_.dst].add(s_.src)
        done, left = set(), dict(deps)
        while True:
            ready = [n for n, d in left.items() if d <= done]
            if not ready:
                break
            for n in ready:
                done.add(n)
                del left[n]
        if left:
            loop = sorted(left)
            raise UnsupportedError(
                f"node '{net.pop(loop[0]).source or loop[0]}': recurrent loop through populations {loop} cannot be "
                f"lowered to Loihi 2 (each synapse group adds one step there, so the loop takes {len(loop)} steps "
                "where NIR's back edge takes one; only a population feeding itself, directly or through linear "
                "nodes, is lowered)")

    # ---------------------------------------------------------------- neuron models
    def _one_tau(self, name, node, field):
        """tau / dt of ``field`` (one value per population: Lava has one decay register per process)."""
        k = steps_per_tau(_arr(getattr(node, field)), self.dt).reshape(-1)
        if np.any(k != k[0]):
            raise UnsupportedError(f"node '{name}': per-neuron {field} (Lava has one decay per population)")
        k = float(k[0])
        if not k >= 1:
            raise UnsupportedError(f"node '{name}': {field} shorter than one step ({field}/dt = {k:g} with dt "
                                   f"{self.dt:g} s); Loihi 2 decays need tau >= dt (the graph's step: --dt)")
        return k

    def neuron_map(self, name, node, shape) -> dict:
        """The Loihi 2 CUBA LIF registers of one NIR neuron node (docs/lowering.md, "Neuron models"):
        ``gain`` (per neuron, folded into the incoming weights before the threshold), ``du``/``dv`` (12-bit
        decays), ``theta`` (per-neuron threshold, folded into the weights), ``leak`` (v_leak / k_mem: a
        constant per-step input to v, becomes the bias), ``kind`` (``lif`` or a non-spiking ``readout``) and
        ``memory`` (the steps over which an input is summed: bounds u and v)."""
        t = type(node).__name__
        n = int(np.prod(shape))
        full = lambda a: np.broadcast_to(_arr(a), shape).reshape(-1).astype(np.float64)  # noqa: E731
        # v_reset != 0: v is held shifted, v' = v - v_reset (Lava resets to 0): threshold v_th - v_reset,
        # leak towards v_leak - v_reset (the bias), initial v' = -v_reset ("v_reset" below; lower() applies it)
        vr = full(node.v_reset) if t in ("LIF", "IF", "CubaLIF") and getattr(node, "v_reset", None) is not None \
            else np.zeros(n)
        if t == "Threshold":
            return dict(gain=np.ones(n), du=4095, dv=4096, theta=full(node.threshold), leak=None, kind="lif",
                        memory=1.0)
        kind = "readout" if t in ("LI", "I", "CubaLI") else "lif"
        theta = full(node.v_threshold) if kind == "lif" else np.ones(n)
        if t in ("LIF", "LI"):
            k = self._one_tau(name, node, "tau")
            return dict(gain=full(node.r) / k, du=4095, dv=int(self.rnd_decay(4096.0 / k)), theta=theta,
                        leak=(full(node.v_leak) - vr) / k, kind=kind, memory=k, v_reset=vr)
        if t in ("IF", "I"):
            return dict(gain=full(node.r), du=4095, dv=0, theta=theta, leak=None, kind=kind, memory=math.inf,
                        v_reset=vr)
        if t in ("CubaLIF", "CubaLI"):
            ks = self._one_tau(name, node, "tau_syn")
            km = self._one_tau(name, node, "tau_mem")
            du = int(self.rnd_decay(4096.0 / ks)) - 1
            return dict(gain=full(node.w_in) * full(node.r) / (ks * km), du=max(du, 0),
                        dv=int(self.rnd_decay(4096.0 / km)), theta=theta, leak=(full(node.v_leak) - vr) / km,
                        kind=kind, memory=ks * km, v_reset=vr)
        raise UnsupportedError(f"node '{name}': NIR type {t} cannot be lowered to Loihi 2")

    # ---------------------------------------------------------------- main
    def lower(self) -> LoweredNetwork:
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
        self.const = CONST_POP
        while self.const in g.nodes or self.const == "readout":    # a node of that name: pick another
            self.const += "_"
        popname = {inp: "input", self.const: self.const}
        self.need_const = False
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
        v0_by_dst = {}                  # initial v (threshold units) of populations with v_reset != 0
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
                nm = self.neuron_map(dst, node, shape)
                gain, dv, du, theta, leak, pkind = (nm[k_] for k_ in ("gain", "dv", "du", "theta", "leak", "kind"))
                k = nm["memory"]
                ge = _meta(node, "neurodeploy.spike_rule") == ">="
                if ge and _meta(node, "neurodeploy.v_threshold") is not None:
                    theta = np.full(n, float(_meta(node, "neurodeploy.v_threshold")))
                vr = nm.get("v_reset")
                if vr is not None and np.any(vr != 0):
                    theta = theta - vr          # the shifted threshold v_th - v_reset (docs/lowering.md)
                    if np.any(theta <= 0):
                        raise UnsupportedError(f"node '{dst}': {t} field v_reset >= v_threshold cannot be lowered "
                                               "to Loihi 2 (v_threshold - v_reset must be positive)")
                    v0_by_dst[dst] = -vr / theta    # initial v' = -v_reset, in threshold units
                if np.any(theta <= 0):
                    raise UnsupportedError(f"node '{dst}': non-positive threshold")
                rowgain = gain / theta          # fold gain and per-neuron threshold into the weights
                name = dst
            else:
                val = readout_val
                shape = _shape(g.nodes[out_pred[0]], "output")
                n = int(np.prod(shape))
                rowgain = np.ones(n)
                dv, du, ge, k, pkind, name, leak, theta = 0, 4095, False, 1.0, "readout", "readout", None, None
            groups_by_dst[name] = (val, rowgain, shape, dv, ge, k, pkind, dst, du,
                                   None if leak is None else leak / theta)
        # ------------- the residual stream: each stream value built once (a relay that every reader reads)
        self.stream_scale, self.stream_struct, self.stream_relays = {}, {}, {}
        if self.residual_stream == "relay" and not self.fixed_scale:
            groups_by_dst = self.stream_plan(groups_by_dst, inp, in_shape, domain, v0_by_dst)
        # ------------- quantize
        for name, (val, rowgain, shape, dv, ge, k, pkind, dst, du, leak) in groups_by_dst.items():
            n = int(np.prod(shape))
            mats = []
            for t in val.terms:
                if t.src in self.stream_relays:
                    mats.append((t, None, []))
                    continue
                src_shape = in_shape if t.src == inp else (_shape(g.nodes[t.src], "output"))
                ops = [o for o in t.ops]
                mats.append((t, src_shape, ops))
            # float weights per term (structured: conv kernels, sparse, or dense for Affine chains) x rowgain
            entries = []
            for t, src_shape, ops in mats:
                if t.src in self.stream_relays:
                    # a stream value read one-to-one (graded, weight 1: the scales are chosen so that the
                    # payload is this population's input exactly)
                    entries.append(("stream", t, None, None, None))
                    continue
                delays, ops = self.split_delays(ops, src_shape, dst)
                key = (t.src, tuple(t.ops))
                if pkind == "relay" and key in self.stream_struct:
                    kind, w, native = self.stream_struct.pop(key)       # computed once by stream_plan
                else:
                    kind, w, native = self.chain_structure(ops, src_shape, rowgain, dst)
                if delays is not None:
                    kind, w, native, delays = self.with_delays(kind, w, native, delays, dst)
                if kind == "relay":
                    if t.src == inp:
                        kind, w, native = "dense", None, None
                    else:
                        # graded counts from a relay population into a dense group (see _pooled_readout)
                        t = _Term(self.relay_for(net, popname.get(t.src, t.src), src_shape), t.ops)
                        kind = "dense"
                if w is None:
                    raise UnsupportedError(f"node '{dst}': the input chain {ops} is too large for a dense group")
                entries.append((kind, t, w, native, delays))
            bias = np.zeros(n)
            for chain in val.bias_nodes:
                b = self.bias_vector(chain)
                if b is not None:
                    bias += b
            bias *= rowgain
            if du != 4095 and np.any(bias):
                # a constant input (Affine bias) of a current-based neuron flows through u (it decays with
                # du); Lava's bias adds to v, so the constant comes from a neuron that spikes every step
                entries.append(("dense", _Term(self.const, [f"bias of {dst}"]), bias.reshape(-1, 1).copy(), None, None))
                bias = np.zeros(n)
                self.need_const = True
            if leak is not None:
                bias = bias + leak          # v_leak / k_mem per step, in threshold units: Lava's bias
            # attention
            att_spec = None
            if val.att:
                if len(val.att) != 1 or val.terms:
                    raise UnsupportedError(f"node '{dst}': the attention output must be its only input")
                att_spec = (val.att[0], attention_spec(g.nodes[val.att[0]]))
            # encoder terms (real input): host-side
            enc_terms = [e for e in entries if e[1].src == inp and domain == "real"]
            if any(e[4] is not None for e in enc_terms):
                raise UnsupportedError(f"node '{dst}': a Delay on a real-valued input cannot be lowered to Loihi 2 "
                                       "(the host encoder has no delays; declare the input binary or counts)")
            chip = [e for e in entries if e not in enc_terms]
            sign_tag = {}
            if self.split_signs:
                chip, sign_tag = _split_signs(chip)
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
            elif name in self.stream_scale:
                S = self.stream_scale[name]         # the stream's one scale (relays) or a reader's, S_stream / gain
            elif self.fixed_scale:
                S = self.fixed_scale
            else:
                mx = max([_absmax(e[2]) for e in chip] + [1e-12])
                # mixed-sign mantissas are even, at most 254; one-sign groups (split_signs) reach 255
                S = (255.0 if sign_tag and not any(_mixed(e[2]) for e in chip) else 254.0) / mx
                # keep |u| and |v| inside 24 bits: worst-case input x 64 S < 2**23
                row = np.abs(bias).copy()
                for e in chip:
                    row += _row_abs_sum(e[0], e[2], n) * (e[3][1] if e[3] and e[3][0] == "relay" else 1)
                for e in enc_terms:
                    lo, hi = self.input_range
                    row += _row_abs_sum(e[0], e[2], n) * max(abs(lo), abs(hi))
                rmax = float(row.max()) if row.size else 0.0
                if rmax > 0:
                    # u sums an input over 4096 / (du + 1) steps; a readout's v over T steps (dv 0) or
                    # 4096 / dv steps
                    mem = 4096.0 / (du + 1)
                    if pkind == "readout":
                        mem *= (4096.0 / dv) if dv else (self.T or 1)
                    S = min(S, ((1 << 23) - 1) / (64.0 * rmax * mem))
                if enc_terms or np.any(bias):
                    # the bias (and host-encoded input) must fit 13-bit mantissas with exponent <= 7
                    S = min(S, 4095.0 * 128 / (64.0 * max(rmax if enc_terms else float(np.abs(bias).max()), 1e-12)))
                if name in v0_by_dst:
                    # the initial v' = -v_reset must fit v's 24 bits
                    S = min(S, ((1 << 23) - 1) / (64.0 * float(np.abs(v0_by_dst[name]).max())))
                if pkind != "readout":
                    S = min(max(1, int(math.floor(S))), VTH_MAX)
            if pkind == "readout":
                vth = VTH_MAX
                S = float(S)
            elif pkind == "relay":
                vth, dv = 0, 0
            else:
                vth = int(S - 1) if ge else int(S)
            # ---- groups
            layer = {"population": name, "scale": S, "groups": []}
            syns = []
            for kind, t, w, native, delays in chip:
                if kind == "stream":
                    sname = f"{name}<-{t.src}"
                    syns.append(Synapse(sname, t.src, name, "sparse", identity_csr(n), sign_mode=EXCITATORY,
                                        graded=True, source=f"residual stream value {t.src}"))
                    layer["groups"].append({"synapse": sname, "source": t.src, "weight_exp": 0, "rel_error": 0.0,
                                            "clipped": 0})
                    continue
                if kind == "sparse":
                    m_, e_, clipped, err, sm = self.quant_group(w.data * S, conv=False, name=name)
                    m_ = sp.csr_matrix((m_, w.indices, w.indptr), shape=w.shape)
                elif kind == "dense" and w.size > 1 << 22:
                    w *= S              # in place: large dense groups are not needed in float afterwards
                    m_, e_, clipped, err, sm = self.quant_group(w, conv=False, name=name)
                else:
                    m_, e_, clipped, err, sm = self.quant_group(w * S, conv=(kind == "conv"), name=name)
                src = popname.get(t.src, t.src)
                sname = (f"{name}<-{t.src}" if len(chip) > 1 else f"{name}.syn") + sign_tag.get(id(w), "")
                src_desc = "/".join(t.ops) or t.src
                if kind == "conv":
                    _, _, stride, pad, dil, groups, view = native
                    pshape = tuple(_pop_shape(in_shape if t.src == inp else _shape(g.nodes[t.src], "output")))
                    syns.append(Synapse(sname, src, name, "conv", m_, stride=stride, padding=pad, dilation=dil,
                                        groups=groups, sign_mode=sm, source=src_desc,
                                        src_view=() if tuple(view) == pshape else tuple(view)))
                else:
                    relay = bool(native) and native[0] == "relay"
                    syns.append(Synapse(sname, src, name, kind, m_, weight_exp=e_, sign_mode=sm, source=src_desc,
                                        graded=relay, delays=delays))
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
                if e[0] == "sparse":
                    if e[2].shape[0] * e[2].shape[1] > 1 << 26:
                        raise UnsupportedError(f"node '{dst}': the input chain {e[1].ops} is neither one conv nor "
                                               "small enough for a dense host-side encoder")
                    e = ("dense", e[1], e[2].toarray(), None)
                wabs = _row_abs_sum(e[0], e[2], n)
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
            v0 = 0
            if name in v0_by_dst:
                # v_reset on the threshold's grid: vth << 6 = 64 S is v_th - v_reset, so -v_reset is
                # 64 S (-v_reset) / (v_th - v_reset) (exact when that is an integer)
                v0 = np.rint(v0_by_dst[name] * 64.0 * S).astype(np.int64).reshape(pshape)
                v0 = int(v0.reshape(-1)[0]) if np.all(v0 == v0.reshape(-1)[0]) else v0
            pop = Population(name, pshape, kind=pkind, du=int(du), dv=int(dv), vth=int(vth),
                             bias_mant=bm if np.any(bm) else 0, bias_exp=bexp, source=dst, scale=float(S),
                             bias_input=bias_input, v_init=v0)
            if enc is not None:
                e, bound = enc
                net.populations.append(Population(bias_input, _pop_shape(shape), kind="input", input_kind="bias",
                                                  source=inp))
                self.encoders.append(Encoder(
                    name=bias_input, node=e[1].ops[0] if e[1].ops else inp, kind=e[0],
                    weights=(e[3][1] * 1.0 if e[0] == "conv" else e[2]).astype(np.float64),
                    row_gain=(rowgain.reshape(e[3][1].shape[0], -1)[:, 0] if e[0] == "conv" else np.ones(1)),
                    bias=bias.reshape(-1), gain=S * 64.0 / (1 << bexp),
                    stride=e[3][2] if e[0] == "conv" else (1, 1), padding=e[3][3] if e[0] == "conv" else (0, 0),
                    dilation=e[3][4] if e[0] == "conv" else (1, 1), groups=e[3][5] if e[0] == "conv" else 1,
                    input_shape=tuple(e[3][6]) if e[0] == "conv" else tuple(in_shape)))
            net.populations.append(pop)
            net.synapses += syns
            if att_spec is not None:
                an, spec = att_spec
                qkv = self.attention_sources(an, spec)
                net.attention.append(Attention(f"{an}", qkv[0], qkv[1], qkv[2], name, heads=spec.heads,
                                               dim=spec.dim, tokens=spec.tokens, weight=int(m), source=an))
                layer["attention_weight"] = int(m)
            layer.update({"du": int(du), "dv": int(dv), "vth": int(vth), "bias_exp": bexp, "clipped_biases": cb})
            self.report["layers"].append(layer)
        if self.need_const:
            # one neuron that spikes every step (v = bias 1 > vth 0, then reset): the constant input 1
            net.populations.insert(1, Population(self.const, (1,), kind="lif", du=4095, dv=4096, vth=0, bias_mant=1,
                                                 source="constant input 1 (Affine biases into current-based neurons)"))
        # reorder populations: inputs first, then topological order of nodes
        net.outputs = ["readout"] if readout_val is not None else [self.pred[outputs[0]][0]]
        self.check_loops(net)
        self.balance(net)
        out_pop = net.pop(net.outputs[0])
        net.metadata.update({"readout_scale": out_pop.scale if out_pop.kind == "readout" else 0.0,
                             "time_steps": int(self.T or 0)})
        net.encoders = self.encoders
        net.validate()
        return net

    def attention_sources(self, an, spec):
        """The q, k, v populations of attention node ``an``: the annotation's operands (found once, by the
        stack routing weights), each of which must be a spiking population."""
        info = self.ann.nodes[an]
        if info.attention is None:
            raise UnsupportedError(f"node '{an}': could not identify the Q, K, V stack routing ({info.attention_error})")
        out = [info.attention[t] for t in "qkv"]
        for t, src in zip("qkv", out):
            if self.kind(src) != "neuron":
                raise UnsupportedError(f"node '{info.attention[t + '_route']}': the attention's Q/K/V must be "
                                       f"spiking populations ('{src}' is not)")
        return out

    def balance(self, net: LoweredNetwork):
        balance_network(net, self.T)


def lower_graph(graph, T: int | None = None, scale: int | None = None, rounding: str = "nearest",
                input_range=(0.0, 1.0), bias_exp_min: int = 0, attention: str = "graded", split_signs: bool = False,
                attention_schedule: str = "parallel", residual_stream: str = "relay"):
    """Lower ``graph``; returns ``(LoweredNetwork, report)``.  ``T``: steps per sample (default from the
    graph metadata ``neurodeploy.time_steps``); ``scale``: force one integer scale for every population;
    ``rounding``: how decays dv are rounded: ``nearest`` or ``floor`` (truncation, as the NIR paper's
    Lava conversion);
    ``input_range``: bound of real-valued inputs (sizes the encoder's bias exponent);
    ``bias_exp_min``: smallest bias exponent (6 = biases in weight units, as netx files require);
    ``attention``: ``graded`` (default: Lava's ProdNeuron / GradedVec / graded Sparse only, the Loihi 2
    form, :mod:`neurodeploy.lower.attention_graded`) or ``process`` (one integer op run by neurodeploy's
    custom Lava process: faster in simulation, no chip equivalent);
    ``split_signs``: every mixed-sign spike group becomes an excitatory and an inhibitory group (one more
    bit of weight resolution, one more group each; docs/lowering.md, "cnn_sinabs: float vs fixed point");
    ``attention_schedule``: how the graded attention is built, one of
    :data:`~neurodeploy.lower.attention_graded.ATTENTION_SCHEDULES` (``parallel``: default; ``packed``: channels
    packed into 24-bit graded words, half the product neurons or fewer, 4 steps more; all exact; docs/lowering.md,
    "Attention schedules");
    ``residual_stream``: ``relay`` (default: each value of a residual stream is one graded relay population
    that its readers read once, :meth:`_Lowerer.stream_plan`) or ``expanded`` (every reader holds every
    earlier branch as its own synapse group: synapse memory grows with depth squared);
    ``graph``: a NIR graph or its :class:`~neurodeploy.analysis.annotate.AnnotatedGraph` (a deployment hands
    over the one it built)."""
    check_lowering_inputs(graph, T, scale, rounding, input_range, bias_exp_min, attention)  # lower/validate.py
    if attention not in ("graded", "process"):
        raise BadInputError(f"attention must be 'graded' or 'process', not '{attention}'")
    if attention_schedule not in ATTENTION_SCHEDULES:
        raise BadInputError(f"attention_schedule must be one of {', '.join(ATTENTION_SCHEDULES)}, "
                            f"not '{attention_schedule}'")
    if attention == "process" and attention_schedule != "parallel":
        raise BadInputError(f"attention_schedule '{attention_schedule}' needs attention='graded'")
    if residual_stream not in ("relay", "expanded"):
        raise BadInputError(f"residual_stream must be 'relay' or 'expanded', not '{residual_stream}'")
    if rounding not in ("nearest", "floor"):
        raise BadInputError(f"rounding must be 'nearest' or 'floor', not '{rounding}'")
    ann = annotate(graph)
    if T is None:
        T = int(ann.time_steps or 0) or None
    low = _Lowerer(ann, T, scale, rounding, input_range, graph_dt(ann.flat), bias_exp_min)
    low.split_signs = bool(split_signs)
    low.residual_stream = residual_stream
    net = low.lower()               # includes the first balancing: the passes below start from a balanced net
    net.metadata["passes"] = ["lower_nir", "balance_delays"]
    if attention == "graded" and net.attention:
        net = attention_to_graded(net, schedule=attention_schedule)   # records "graded_attention" in passes
    if split_fan_in(net, T=T).metadata.get("fan_in_splits"):
        net.metadata["passes"] = list(net.metadata["passes"]) + ["split_fan_in"]
    return net, low.report
