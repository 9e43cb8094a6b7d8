"""Chains of linear NIR nodes as Loihi 2 synapse groups (the Loihi 2 lowering, :mod:`.loihi2`).

The input of a population is the sum over NIR edges; each term (:class:`Term`) is a chain of linear nodes
(Conv2d, Conv1d, Affine, Linear, SumPool2d, AvgPool2d, Scale, Flatten) from one source population.
:meth:`Chains.chain_ops` reads a chain as structured ops (:class:`ConvOp`, :class:`DenseOp`,
:class:`ScaleOp`) on flat C-order neuron vectors; :meth:`Chains.chain_structure` turns them into one float
synapse group (:class:`Group`): a conv group (the chain's convs and pools composed where exact), a dense
matrix (a chain with an Affine/Linear, computed from the Affine's side), a sparse product (an irregular
composition), or a pooled readout through a relay population (:func:`pooled_relay`).  Node types are read from
the one table of primitives (:func:`neurodeploy.graph.primitives.primitive_of`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from ..errors import UnsupportedError
from ..graph.primitives import CONV, DENSE, primitive_of
from ..graph.maxpool import maxpool_forward, maxpool_spec
from ..graph.simulate import int_tuple, padding_arg
from .fixed_point import EXCITATORY, conv_out_hw, conv_to_sparse
from .network import LoweredNetwork, Population, Synapse

#: a chain with an Affine whose composed matrix would exceed this many elements is lowered through a relay
#: population when the Affine pools positions (:meth:`Chains.pooled_readout`); smaller ones stay one
#: dense group
RELAY_MIN_ELEMENTS = 1 << 24
#: ... and also when one neuron of it would read more than this many source neurons: a Loihi 2 core has 16,000
#: input axons (lava_loihi.md), so a readout of a CIFAR Spikingformer (64 tokens x 384 channels per source,
#: ~19 sources) could not be placed at all; through the relay it reads 384 counts per source
RELAY_MIN_FAN_IN = 8192


def as_float(x):
    return np.asarray(x, dtype=np.float64)


def node_shape(node, port):
    """The shape of a node's ``input`` or ``output`` port (its first type entry), or None."""
    t = getattr(node, f"{port}_type", None) or {}
    for v in t.values():
        return tuple(int(a) for a in np.asarray(v).reshape(-1))
    return None


def pop_shape(shape):
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


# ---------------------------------------------------------------- records
@dataclass
class Term:
    """One input term of a population: the chain of linear nodes ``ops`` (first applied first) from ``src``
    (a source population, the graph input, or a stream relay)."""
    src: str
    ops: list


@dataclass
class Value:
    """What a node outputs, as the lowering sees it: a sum of terms, attention nodes, and bias chains."""
    terms: list = field(default_factory=list)
    att: list = field(default_factory=list)          # attention node names
    bias_nodes: list = field(default_factory=list)   # chains of node names producing a bias


@dataclass(eq=False)
class PopulationPlan:
    """One destination population before quantization: its input ``value``, ``rowgain`` (gain / threshold per
    neuron, folded into every incoming weight), ``shape``, decays ``du``/``dv``, ``inclusive`` (spike on
    ``>=``), ``memory`` (steps an input is summed over), ``kind`` (``lif``, ``readout`` or a stream ``relay``),
    the NIR ``node`` it lowers (a stream relay: its first reader), ``leak`` (threshold units per step, or None)
    and ``v0`` (initial v in threshold units, or None)."""
    value: Value
    rowgain: np.ndarray
    shape: tuple
    dv: int
    inclusive: bool
    memory: float
    kind: str
    node: str
    du: int
    leak: np.ndarray | None = None
    v0: np.ndarray | None = None


@dataclass(eq=False)
class ConvOp:
    """A PyTorch conv2d on the (C, H, W) ``view`` of the flat neuron vector (Conv1d: a 1 x k conv on
    (C, 1, N); sum/avg pooling: a grouped conv with a constant kernel)."""
    weight: np.ndarray
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    view: tuple
    kind = "conv"

    def out_shape(self) -> tuple:
        return (int(self.weight.shape[0]),) + conv_out_hw(self.view[1:], self.weight.shape[2:], self.stride,
                                                          self.padding, self.dilation)


@dataclass(eq=False)
class DenseOp:
    """An Affine/Linear: ``matrix`` (n_out, n_in) on the flat vector of shape ``struct`` (the last shape
    before Flattens: channels x positions)."""
    matrix: np.ndarray
    struct: tuple
    kind = "dense"


@dataclass(eq=False)
class ScaleOp:
    vector: np.ndarray
    kind = "scale"


@dataclass(frozen=True)
class PooledRelay:
    """A pooled readout's geometry: the source's ``channels`` summed over its ``positions`` by a relay; with
    ``taps`` (kh, kw) != (1, 1), the relay holds one sum per channel and kernel tap of a stride-1 conv that the
    chain applies before its mean (``window`` the conv's output size, ``padding`` its padding): the sum of the
    source over the window that tap reads, at most ``positions`` = the conv's output positions."""
    positions: int
    channels: int
    taps: tuple = (1, 1)
    window: tuple | None = None
    padding: tuple = (0, 0)
    kind = "relay"


@dataclass(eq=False)
class Group:
    """One float synapse group into a population (weights in threshold units of the destination):
    ``kind`` conv / dense / sparse / relay (a pooled readout) / stream (a stream relay read one-to-one);
    ``native`` the conv geometry (:class:`ConvOp`, ``weights`` then the folded kernel) or the
    :class:`PooledRelay`; ``delays`` per-synapse model delays; ``suffix`` the name suffix of a sign split;
    ``payload_scale`` / ``in_bound`` for a group out of a graded source (:func:`graded_group`);
    ``weight_exp`` the power-of-two step between two stream relays' scales (a ``stream`` group);
    ``host_pool`` the :class:`~neurodeploy.graph.maxpool.MaxPoolSpec` a host-encoded conv group is max-pooled
    with on the host (its weights then the conv before the pool, ``rowgain`` per channel)."""
    kind: str
    weights: object
    native: object = None
    term: Term | None = None
    delays: object = None
    suffix: str = ""
    weight_exp: int = 0
    payload_scale: float = 0.0      # a graded source (a max-pool): integer payload units per model unit (0: spikes)
    in_bound: float = 1.0           # bound of |source value| in model units (spikes: 1)
    host_pool: object = None        # a max-pool the host encoder applies after this (conv) group


# ---------------------------------------------------------------- conv algebra
def full_kernel(W, groups):
    """A grouped kernel (O, I/g, kh, kw) as the equivalent ungrouped (O, I, kh, kw)."""
    if groups == 1:
        return W
    O, ig = W.shape[:2]
    F_ = np.zeros((O, ig * groups) + W.shape[2:])
    og = O // groups
    for gi in range(groups):
        F_[gi * og:(gi + 1) * og, gi * ig:(gi + 1) * ig] = W[gi * og:(gi + 1) * og]
    return F_


def find_groups(F_):
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


def compose_convs(c1: ConvOp, c2: ConvOp) -> ConvOp | None:
    """c2 after c1 as ONE conv (stride s1 s2, padding p1 + p2 s1, the kernels convolved), or None when
    that is not exact.  c2's zero padding of c1's output is exact only where c1 at those padded
    positions would read nothing but the input's zero padding (e.g. a sum-pool with kernel = stride
    before a padded conv); the output sizes must agree."""
    W1, s1, p1, d1, g1, v1 = c1.weight, c1.stride, c1.padding, c1.dilation, c1.groups, c1.view
    W2, s2, p2, d2, g2, v2 = c2.weight, c2.stride, c2.padding, c2.dilation, c2.groups, c2.view
    if tuple(v2) != c1.out_shape():
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
    # a depthwise conv (one input channel per output channel: a pool, a per-channel scale) is a diagonal
    # matrix per tap: its product with the other kernel is a row (column) scaling, not a matrix product
    # (the same sums: the omitted terms are exact zeros); a global mean after a 3x3 conv has 9 x H x W taps
    dw1 = g1 == W1.shape[0] and W1.shape[1] == 1
    dw2 = g2 == W2.shape[0] and W2.shape[1] == 1
    dw1 = dw1 and not dw2                       # (both depthwise: the first one as its full diagonal kernel)
    F1 = W1 if dw1 else full_kernel(W1, g1)
    F2 = W2 if dw2 else full_kernel(W2, g2)
    W = np.zeros((F2.shape[0], W1.shape[0] if dw1 else F1.shape[1]) + K)
    for a in range(k2[0]):
        for b in range(k2[1]):
            for y in range(k1[0]):
                for x in range(k1[1]):
                    if dw2:
                        prod = F2[:, 0, a, b][:, None] * F1[:, :, y, x]
                    elif dw1:
                        prod = F2[:, :, a, b] * F1[:, 0, y, x][None, :]
                    else:
                        prod = F2[:, :, a, b] @ F1[:, :, y, x]
                    W[:, :, a * d2[0] * s1[0] + y * d1[0], b * d2[1] * s1[1] + x * d1[1]] += prod
    st = (s1[0] * s2[0], s1[1] * s2[1])
    pad = (p1[0] + p2[0] * s1[0], p1[1] + p2[1] * s1[1])
    if ConvOp(W, st, pad, (1, 1), 1, tuple(v1)).out_shape() != c2.out_shape():
        return None
    g, Wg = find_groups(W)
    return ConvOp(Wg, st, pad, (1, 1), g, tuple(v1))


def global_pool(op: ConvOp):
    """The per-channel weights w_c of a conv op that pools each channel's whole map into one value (a mean over
    positions: depthwise, no padding, the kernel the map, one weight per channel), else None."""
    W, view = op.weight, tuple(op.view)
    if len(view) != 3 or op.groups != view[0] or W.shape[:2] != (view[0], 1) or tuple(W.shape[2:]) != view[1:] \
            or any(op.padding) or tuple(op.dilation) != (1, 1):
        return None
    per = W.reshape(view[0], -1)
    return per[:, 0].copy() if np.all(per == per[:, :1]) else None


def op_sparse(op) -> sp.csr_matrix:
    """Float (n_out, n_in) CSR matrix of one structured op (for irregular compositions)."""
    if op.kind == "conv":
        return conv_to_sparse(op.weight, op.view, op.stride, op.padding, op.dilation, op.groups, dtype=np.float64)
    if op.kind == "scale":
        return sp.diags(op.vector).tocsr()
    return sp.csr_matrix(op.matrix)


def conv_t(op: ConvOp, M):
    """M (rows, n_out of conv op) -> M @ conv (rows, n_in): each row pushed back through the conv
    (the transposed conv; exact float sums), memory rows x n_in."""
    W, st, pad, dil, g, view = op.weight, op.stride, op.padding, op.dilation, op.groups, op.view
    co, ho, wo = op.out_shape()
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


def conv_cols(op: ConvOp, M):
    """conv @ M (each column of M pushed through the conv), memory n_out x columns."""
    out = []
    wt = torch.as_tensor(op.weight)
    for i in range(0, M.shape[1], 256):
        x = torch.as_tensor(np.ascontiguousarray(M[:, i:i + 256].T)).reshape((-1,) + tuple(op.view))
        y = F.conv2d(x, wt, stride=op.stride, padding=op.padding, dilation=op.dilation, groups=op.groups)
        out.append(y.reshape(x.shape[0], -1).numpy().T)
    return np.concatenate(out, 1)


def two_stage_sum(h: int, w: int):
    """How a sum over an h x w map splits into two depthwise convs: ``((kernel 1, stride 1, map between),
    kernel 2)``: the rows (1 x w each), then the h row sums; a token map (1 x N) as runs of N / a tokens, then the
    a runs, a the largest divisor of N up to sqrt(N).  None when one conv is as small (a prime N, a map of
    fewer than 9 positions)."""
    if h * w < 9:
        return None
    if h > 1 and w > 1:
        return ((1, w), (1, w), (h, 1)), (h, 1)
    n = h * w
    a = max(d for d in range(1, int(math.isqrt(n)) + 1) if n % d == 0)
    if a == 1:
        return None
    run = n // a
    return ((1, run), (1, run), (1, a)), (1, a)


def pooled_relay(net: LoweredNetwork, relays: dict, src_pop: str, src_shape, geo: PooledRelay | None = None,
                 shift: int | None = None) -> str:
    """The relay population carrying the spike counts of ``src_pop`` summed over its positions (one
    per channel; built once per source, ``relays`` remembers them): a ``relay`` population (C,) fed by a
    sum-pool conv group (weights 1, kernel = the whole map, groups C).  Its output is the exact integer
    count (at most the number of positions) as a graded payload.  With ``geo.taps`` (kh, kw) the relay is
    (C x kh x kw,): the same ones-kernel conv the size of the chain's conv output (``geo.window``) with that
    conv's padding gives, at output (a, b), the sum of the source over the positions tap (a, b) reads.  With
    ``shift`` k the source is graded (a max-pool's payloads): the sums come through a graded Sparse group of
    ones at weight exponent -k (Lava's Conv ignores weight_exp), one floor of each channel's sum."""
    C, h, w = tuple(pop_shape(src_shape))
    taps = tuple(geo.taps) if geo is not None else (1, 1)
    win = tuple(geo.window) if geo is not None and geo.window else (h, w)
    pad = tuple(geo.padding) if geo is not None else (0, 0)
    name = f"{src_pop}.sum" if taps == (1, 1) and win == (h, w) and not any(pad) else \
        f"{src_pop}.sum{taps[0]}x{taps[1]}p{pad[0]}{pad[1]}"
    if name in relays:
        return name
    net.populations.append(Population(name, (C * taps[0] * taps[1],), kind="relay", source=src_pop))
    if shift is not None:
        P = h * w
        ones = sp.csr_matrix((np.ones(C * P, dtype=np.int64), np.arange(C * P), np.arange(0, C * P + 1, P)),
                             shape=(C, C * P))
        net.synapses.append(Synapse(f"{name}.syn", src_pop, name, "sparse", ones, weight_exp=-shift, graded=True,
                                    sign_mode=EXCITATORY, source=f"sum of {src_pop} over positions, >> {shift}"))
        relays[name] = src_pop
        return name
    split = two_stage_sum(h, w) if taps == (1, 1) and win == (h, w) and not any(pad) else None
    if split is not None:
        # rows (or runs of tokens) first, then their sums: the same integer count, in two depthwise convs of
        # a + b taps per channel where one conv has h x w (a core holds one synapse list per channel and tap:
        # cifar10-4-384's 1,536-channel token sums 16 -> 4 + 2 cores)
        (k1, st1, mid), k2 = split
        sub = f"{name}.rows"
        net.populations.append(Population(sub, (C,) + mid, kind="relay", source=src_pop))
        net.synapses.append(Synapse(f"{sub}.syn", src_pop, sub, "conv", np.ones((C, 1) + k1, dtype=np.int64),
                                    groups=C, stride=st1, sign_mode=EXCITATORY,
                                    source=f"sum of {src_pop} over {k1[0]} x {k1[1]} positions"))
        net.synapses.append(Synapse(f"{name}.syn", sub, name, "conv", np.ones((C, 1) + k2, dtype=np.int64),
                                    groups=C, sign_mode=EXCITATORY, graded=True,
                                    source=f"sum of {src_pop} over positions (of its partial sums {sub})"))
        relays[name] = src_pop
        return name
    net.synapses.append(Synapse(f"{name}.syn", src_pop, name, "conv", np.ones((C, 1) + win, dtype=np.int64),
                                groups=C, sign_mode=EXCITATORY, padding=pad,
                                source=f"sum of {src_pop} over positions" + (
                                    f" read by each tap of a {taps[0]}x{taps[1]} conv" if taps != (1, 1) else "")))
    relays[name] = src_pop
    return name


def graded_group(grp: Group, payload_scale: float, in_bound: float, dst) -> Group:
    """``grp`` read from a graded source (a max-pool's relay, :mod:`.maxpool`) whose payload is the model value
    times ``payload_scale``: a sparse group (Lava's Conv ignores weight_exp, so a conv becomes the same
    connections as a Sparse) quantized at ``S / payload_scale`` (:func:`neurodeploy.lower.quantize.make_synapses`),
    the source's values bounded by ``in_bound`` model units."""
    if grp.kind == "conv":
        c = grp.native
        grp = Group("sparse", sp.csr_matrix(conv_to_sparse(grp.weights, c.view, c.stride, c.padding, c.dilation,
                                                           c.groups, dtype=np.float64)), None, grp.term)
    elif grp.kind not in ("sparse", "dense"):
        raise UnsupportedError(f"node '{dst}': a {grp.kind} group out of a max-pool cannot be lowered")
    grp.payload_scale, grp.in_bound = float(payload_scale), float(in_bound)
    return grp


# ---------------------------------------------------------------- chains of one graph
class Chains:
    """The linear algebra of the chains of one flattened NIR graph ``g`` (Affine weights converted once per
    node: a head feeds ~20 chains; pooled-head tests decided once per weight matrix)."""

    def __init__(self, g):
        self.g = g
        self._dense_w = {}
        self._pools = {}

    def op_apply(self, name, x):
        """Apply node ``name`` (without its bias) to x [B, *in_shape] (float64)."""
        node = self.g.nodes[name]
        t = primitive_of(node, name)
        if t == "Flatten":
            out = node_shape(node, "output")
            return x.reshape((x.shape[0],) + tuple(out)) if out else x.reshape(x.shape[0], -1)
        if t in DENSE:
            w = torch.as_tensor(as_float(node.weight))
            return x.reshape(x.shape[0], -1) @ w.T
        if t == "Scale":
            return x * torch.as_tensor(as_float(node.scale))
        if t == "Conv2d":
            w = torch.as_tensor(as_float(node.weight))
            return F.conv2d(x, w, stride=_pair(node.stride), padding=conv_padding(node, name, 2),
                            dilation=_pair(node.dilation), groups=int(node.groups))
        if t == "Conv1d":
            w = torch.as_tensor(as_float(node.weight))
            return F.conv1d(x, w, stride=_pair(node.stride, 1), padding=conv_padding(node, name, 1),
                            dilation=_pair(node.dilation, 1), groups=int(node.groups))
        if t in ("SumPool2d", "AvgPool2d"):
            k, s, p = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
            y = F.avg_pool2d(x, k, s, p, count_include_pad=True)
            return y * (k[0] * k[1]) if t == "SumPool2d" else y
        spec = maxpool_spec(node)
        if spec is not None:            # a bias (one value per channel) through a max-pool: the same value
            return maxpool_forward(spec, x)
        raise UnsupportedError(f"node '{name}': {t}")

    def op_bias(self, name):
        node = self.g.nodes[name]
        if maxpool_spec(node) is not None:
            return None
        b = getattr(node, "bias", None)
        out = node_shape(node, "output")
        t = primitive_of(node, name)
        if b is None or t in ("SumPool2d", "AvgPool2d", "Flatten", "Scale"):
            return None
        b = as_float(b)
        if t in CONV and out is not None:
            b = np.broadcast_to(b.reshape((-1,) + (1,) * (len(out) - 1)), out)
        return b.reshape(-1)

    def bias_vector(self, chain):
        """Bias produced by chain[0]'s bias pushed through chain[1:]."""
        b = self.op_bias(chain[0])
        if b is None:
            return None
        x = torch.as_tensor(b).reshape((1,) + tuple(node_shape(self.g.nodes[chain[0]], "output")))
        for op in chain[1:]:
            x = self.op_apply(op, x)
        return x.reshape(-1).numpy()

    def chain_ops(self, ops, src_shape):
        """The linear nodes of a chain as structured ops on flat C-order neuron vectors: :class:`ConvOp`,
        :class:`DenseOp` (Affine/Linear) and :class:`ScaleOp`; Flatten only renames the shape (a C-order
        reshape keeps the neuron order).  Returns ``(ops, output size)``."""
        shape = tuple(int(a) for a in src_shape)
        struct = shape                  # the last shape before Flattens (channels x positions)
        out = []
        for name in ops:
            node = self.g.nodes[name]
            t = primitive_of(node, name)
            n = int(np.prod(shape))
            if t == "Flatten":
                osh = node_shape(node, "output")
                if osh is not None and int(np.prod(osh)) != n:
                    raise UnsupportedError(f"node '{name}': Flatten output {osh} does not hold {n} values")
                shape = tuple(osh) if osh is not None else (n,)
                continue
            if t in DENSE:
                if name not in self._dense_w:
                    self._dense_w[name] = as_float(node.weight)
                A = self._dense_w[name]
                if A.ndim != 2 or A.shape[1] != n:
                    raise UnsupportedError(f"node '{name}': weight {A.shape} does not take {n} inputs")
                out.append(DenseOp(A, struct))
                shape = struct = (A.shape[0],)
                continue
            if t == "Scale":
                vec = np.broadcast_to(as_float(node.scale), shape).reshape(-1).copy()
                out.append(ScaleOp(vec))
                continue
            if t == "Conv2d":
                if len(shape) != 3:
                    raise UnsupportedError(f"node '{name}': Conv2d on a {len(shape)}-d input {shape}")
                W = as_float(node.weight)
                geo = (_pair(node.stride), conv_padding(node, name, 2), _pair(node.dilation), int(node.groups))
                view, one_d = shape, False
            elif t == "Conv1d":
                if len(shape) != 2:
                    raise UnsupportedError(f"node '{name}': Conv1d on a {len(shape)}-d input {shape}")
                w1 = as_float(node.weight)
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
            out.append(ConvOp(W, *geo, tuple(view)))
            shape = struct = (W.shape[0], wo) if one_d else (W.shape[0], ho, wo)
        return out, int(np.prod(shape))

    def pooled_readout(self, sops, src_shape):
        """``(C, P, E)`` when the chain is pointwise ops (1x1 stride-1 convs, per-channel scales) on a
        source of C channels x P positions, then an Affine that weighs every position of a channel alike
        (Spikingformer's head: mean over tokens, then Linear): the chain is then E (n_out x C) applied to
        the source's spike counts summed over positions (1x1 convs commute with that sum).  Else None."""
        *pre, last = sops
        pooled = last.kind == "conv" and global_pool(last) is not None
        if any(o.kind == "dense" for o in pre) or not (last.kind == "dense" or pooled):
            return None
        src3 = tuple(pop_shape(src_shape))
        if len(src3) != 3:
            return None
        Cs, P = src3[0], src3[1] * src3[2]
        geo, Wc = PooledRelay(P, Cs), np.eye(Cs)
        c0 = pre[0] if pre else None
        if pooled and c0 is not None and c0.kind == "conv" and (c0.weight.shape[2:] != (1, 1) or any(c0.padding)):
            # a spatial conv, then 1x1 ops, then a mean: mean_p conv(x)_p = sum_{c,a,b} K[o,c,a,b] R[c,a,b] / P
            # with R[c,a,b] the sum of x[c] over the window tap (a, b) reads (stride 1: a ones kernel the
            # size of the conv's output, with its padding, computes every R; pooled_relay)
            if tuple(c0.stride) != (1, 1) or tuple(c0.dilation) != (1, 1) or tuple(c0.view) != src3:
                return None
            co, ho, wo = c0.out_shape()
            P = ho * wo
            geo = PooledRelay(P, Cs, tuple(c0.weight.shape[2:]), (ho, wo), tuple(c0.padding))
            Wc = full_kernel(c0.weight, c0.groups).reshape(co, -1)
            pre = pre[1:]
        for o in pre:
            if o.kind == "scale":
                per = o.vector.reshape(Wc.shape[0], -1)
                if not np.all(per == per[:, :1]):
                    return None
                Wc = per[:, 0][:, None] * Wc
                continue
            if o.weight.shape[2:] != (1, 1) or tuple(o.stride) != (1, 1) or any(o.padding) or \
                    int(np.prod(o.view[1:])) != P:
                return None
            Wc = full_kernel(o.weight, o.groups)[:, :, 0, 0] @ Wc
        if last.kind == "conv":                  # a global pool: channel c's output is w_c x its sum
            if last.view[0] != Wc.shape[0] or int(np.prod(last.view[1:])) != P:
                return None
            return geo, global_pool(last)[:, None] * Wc
        A, struct = last.matrix, last.struct
        if len(struct) < 2 or struct[0] != Wc.shape[0] or int(np.prod(struct[1:])) != P:
            return None
        E = self._per_channel(A, struct[0], P)
        if E is None:
            return None
        return geo, E @ Wc

    def _per_channel(self, A, C, P):
        """``A`` (rows, C x P) as (rows, C) when every position of a channel has the same weight (a head
        that averages over positions), else None; decided once per weight matrix."""
        key = (id(A), C, P)
        if key not in self._pools:
            A3 = A.reshape(A.shape[0], C, P)
            self._pools[key] = np.ascontiguousarray(A3[:, :, 0]) if np.all(A3 == A3[:, :, :1]) else None
        return self._pools[key]

    def chain_structure(self, ops, src_shape, rowgain, name, pool_relay: bool = False) -> Group:
        """The synapse group of one chain, structured: ``conv`` (one conv kernel, the chain's convs/pools
        composed where exact, ``rowgain`` folded per output channel), ``dense`` (only when the chain has an
        Affine/Linear: the product of the chain, computed from the Affine's side, memory n_out x n_in of the
        result only), ``relay`` (a pooled readout, :meth:`pooled_readout`: an Affine that pools positions or,
        with ``pool_relay`` (a source of spikes, not a graded one), a mean over positions after 1x1 convs, e.g.
        the Spike-driven Transformer's head reading the membrane stream) or ``sparse`` (an irregular
        composition: the product of the ops' sparse matrices, memory = connections).  Never a matrix pushed
        through the chain from an identity."""
        sops, n_out = self.chain_ops(ops, src_shape)
        n_in = int(np.prod(src_shape))
        if n_out != rowgain.size:
            raise UnsupportedError(f"node '{name}': the chain {ops} gives {n_out} values for {rowgain.size} neurons")
        if not sops:                              # a bare reshape: the identity
            sops = [ScaleOp(np.ones(n_in))]
        dense_at = [i for i, o in enumerate(sops) if o.kind == "dense"]
        pooled = sops[-1].kind == "conv" and global_pool(sops[-1]) is not None and pool_relay
        if (dense_at or pooled) and (n_out * n_in > RELAY_MIN_ELEMENTS or n_in > RELAY_MIN_FAN_IN):
            relay = self.pooled_readout(sops, src_shape)
            if relay is not None:
                geo, E = relay
                return Group("relay", E * rowgain[:, None], geo)
        if dense_at:
            i = dense_at[0]
            M = sops[i].matrix.copy()
            for o in sops[i + 1:]:
                if o.kind == "dense":
                    M = o.matrix @ M
                elif o.kind == "scale":
                    M = o.vector[:, None] * M
                else:
                    M = conv_cols(o, M)
            for o in reversed(sops[:i]):
                if o.kind == "scale":
                    M = M * o.vector[None, :]
                else:
                    M = conv_t(o, M)
            M *= rowgain[:, None]
            return Group("dense", M)
        # conv / pool / scale only: scales become depthwise 1x1 convs (per channel, else per neuron)
        convs = []
        for o in sops:
            if o.kind == "scale":
                cshape = convs[-1].out_shape() if convs else tuple(pop_shape(src_shape))
                if len(cshape) != 3:
                    cshape = (int(np.prod(cshape)), 1, 1)
                per = o.vector.reshape(cshape[0], -1)
                if np.all(per == per[:, :1]):
                    W = per[:, 0].reshape(-1, 1, 1, 1)
                    convs.append(ConvOp(W, (1, 1), (0, 0), (1, 1), cshape[0], cshape))
                else:
                    n = o.vector.size
                    convs.append(ConvOp(o.vector.reshape(-1, 1, 1, 1), (1, 1), (0, 0), (1, 1), n, (n, 1, 1)))
            else:
                convs.append(o)
        cur = convs[0]
        for nxt in convs[1:]:
            cur = compose_convs(cur, nxt) if cur is not None else None
        if cur is not None:
            W, st, pad, dil, g, view = cur.weight, cur.stride, cur.padding, cur.dilation, cur.groups, cur.view
            co = W.shape[0]
            per = rowgain.reshape(co, -1)
            if np.all(per == per[:, :1]):
                # 1x1 stride-1 convs work on any (C, H, W) view with the same channels: use the source's own
                if W.shape[2:] == (1, 1) and st == (1, 1) and not any(pad) and len(pop_shape(src_shape)) == 3 \
                        and pop_shape(src_shape)[0] == view[0]:
                    view = tuple(pop_shape(src_shape))
                return Group("conv", W * per[:, 0][:, None, None, None],
                             ConvOp(W, tuple(st), tuple(pad), tuple(dil), int(g), tuple(view)))
        # irregular: the product of the ops' sparse matrices (connections only)
        m = None
        for o in convs:
            s_ = op_sparse(o)
            m = s_ if m is None else (s_ @ m).tocsr()
        m = sp.diags(rowgain) @ m
        m = sp.csr_matrix(m)
        m.eliminate_zeros()
        return Group("sparse", m)
