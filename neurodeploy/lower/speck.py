"""NIR graph -> Speck (DYNAP-CNN) integer network.

Speck runs a chain of layers, each one core: conv -> IAF -> sum-pool (lava_loihi.md 5.1).  A NIR chain of
Conv2d / Affine / Linear (after an optional Flatten), IF and SumPool2d nodes is grouped into such layers
(a Linear becomes a conv whose kernel covers its whole input, as on the chip); any other node, a branch or a
merge is refused by name (``UnsupportedError`` "<node>: <reason>").

IF nodes are read the way SynSense's sinabs reads NIR (``sinabs.from_nir``): IAF that emits
``floor(v / threshold)`` spikes per step when ``v > 0``, resets by subtracting them, with ``v`` floored at
``-threshold``; one threshold per layer (Speck holds one), ``r = 1``, ``v_reset = 0``.

Quantization is sinabs' ``discretize`` (vendors.md): per layer one scale
``s = min(127/max|W|, 127/max|b|, 32767/max|(min_v, threshold)|)`` (each the ``determine_discretization_scale``
rule: the bound of the signed range on the side of the larger magnitude), ``round(x * s)`` (half to even) of
weights, biases (8 bit) and threshold / floor (16 bit).  It is computed with torch float32 ops in the same
order as sinabs so that the integers are identical (a different float order can move a rounding by one).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import nir
import numpy as np
import torch

from ..errors import UnsupportedError
from ..graph import predecessors, successors, topological_order
from ..graph.core import node_shape
from ..graph.primitives import primitive_of

WEIGHT_BITS = 8
STATE_BITS = 16
#: feature limits from the Speck docs (lava_loihi.md 5.1); memory and core limits are the chip fit's
MAX_KERNEL = 16
STRIDES = (1, 2, 4, 8)
MAX_PADDING = 7
POOLS = (1, 2, 4)
MAX_CHANNELS = 1024
MAX_INPUT = 128
#: the NIR primitives a Speck chain is made of
SPECK_FORMS = ("Input", "Output", "Conv2d", "SumPool2d", "IF", "Flatten", "Affine", "Linear")


@dataclass
class SpeckLayer:
    """One core's layer: conv (Linear as conv) -> IAF -> sum-pool, in chip integers."""

    name: str                       # the conv / linear node
    nodes: list                     # every NIR node this layer covers, in order
    in_shape: tuple                 # (C, H, W) the conv reads
    weight: np.ndarray              # int32 [C_out, C_in, k, k], in [-128, 127]
    bias: np.ndarray | None         # int32 [C_out] or None (no bias in the NIR node)
    threshold: int
    min_v_mem: int
    stride: int = 1
    padding: int = 0
    pool: int = 1                   # sum-pool after the IAF (1: none)
    scale: float = 1.0              # the discretization scale (integer = round(float * scale))

    @property
    def neuron_shape(self) -> tuple:
        c_out, _, k, _ = self.weight.shape
        h = (self.in_shape[1] + 2 * self.padding - k) // self.stride + 1
        w = (self.in_shape[2] + 2 * self.padding - k) // self.stride + 1
        return (int(c_out), int(h), int(w))

    @property
    def out_shape(self) -> tuple:
        c, h, w = self.neuron_shape
        return (c, h // self.pool, w // self.pool)


@dataclass
class SpeckNetwork:
    layers: list                    # [SpeckLayer], in order
    input_shape: tuple              # (C, H, W)
    input_node: str = "input"
    output_node: str = "output"
    metadata: dict = field(default_factory=dict)


# -- sinabs' discretization ------------------------------------------------------------------------------
def _scale(t, bits: int):
    """The largest factor that maps ``t`` into a signed ``bits``-bit range (sinabs' rule, in float32)."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    mn, mx = torch.min(t), torch.max(t)
    if abs(mn) <= abs(mx) * abs(lo / hi):
        return abs(hi / mx)
    return abs(lo / mn)


def discretize(weight, bias, threshold: float, min_v_mem: float):
    """``(W_int, b_int, threshold_int, min_v_int, scale)`` with one scale for the layer (see module doc)."""
    w = torch.as_tensor(np.asarray(weight), dtype=torch.float32)
    b = torch.as_tensor(np.asarray(bias), dtype=torch.float32) if bias is not None else torch.zeros(w.shape[0])
    thr = torch.tensor((float(min_v_mem), float(threshold)))
    with np.errstate(divide="ignore"):
        s = min(_scale(w, WEIGHT_BITS), _scale(b, WEIGHT_BITS), _scale(thr, STATE_BITS))
    wq = torch.round(w * s).to(torch.int64).numpy().astype(np.int32)
    bq = torch.round(b * s).to(torch.int64).numpy().astype(np.int32)
    mv, th = (int(v) for v in torch.round(thr * s).to(torch.int64))
    return wq, (bq if bias is not None else None), th, mv, float(s)


# -- the lowering ----------------------------------------------------------------------------------------
def _uniform(name: str, what: str, value) -> float:
    a = np.asarray(value, dtype=np.float64).reshape(-1)
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise UnsupportedError(f"{name}: {what} is empty or not finite")
    if np.any(a != a[0]):
        raise UnsupportedError(f"{name}: per-neuron {what} values differ ({a.min():g} .. {a.max():g}); a Speck "
                               "core holds one value per layer")
    return float(a[0])


def _pair(name: str, what: str, v) -> int:
    a = np.asarray(v).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, 2)
    if a.size != 2 or a[0] != a[1]:
        raise UnsupportedError(f"{name}: {what} {a.tolist()} is not square (Speck takes square {what}s)")
    return int(a[0])


def _conv_params(name: str, node: nir.Conv2d, max_kernel: int = MAX_KERNEL) -> tuple[int, int]:
    w = np.asarray(node.weight)
    if w.ndim != 4:
        raise UnsupportedError(f"{name}: Conv2d weight must be 4-D, got {w.shape}")
    if int(np.asarray(node.groups).reshape(-1)[0]) != 1:
        raise UnsupportedError(f"{name}: grouped convolution (groups={node.groups}) has no Speck form")
    if np.any(np.asarray(node.dilation).reshape(-1) != 1):
        raise UnsupportedError(f"{name}: dilation {np.asarray(node.dilation).tolist()} has no Speck form")
    if isinstance(node.padding, str):
        raise UnsupportedError(f"{name}: padding '{node.padding}' must be given as integers for Speck")
    if w.shape[2] != w.shape[3]:
        raise UnsupportedError(f"{name}: kernel {w.shape[2]}x{w.shape[3]} is not square")
    k, stride, pad = w.shape[2], _pair(name, "stride", node.stride), _pair(name, "padding", node.padding)
    if k > max_kernel:
        raise UnsupportedError(f"{name}: kernel {k}x{k} exceeds Speck's {max_kernel}x{max_kernel}")
    if stride not in STRIDES:
        raise UnsupportedError(f"{name}: stride {stride} not in Speck's {STRIDES}")
    if not 0 <= pad <= MAX_PADDING:
        raise UnsupportedError(f"{name}: padding {pad} outside Speck's 0..{MAX_PADDING}")
    return stride, pad


def lower_graph(graph: nir.NIRGraph, limits: dict | None = None) -> SpeckNetwork:
    """The Speck integer network of ``graph`` (a chain Input -> [conv|Flatten? linear] -> IF -> [SumPool]* ...
    -> Output); anything else raises UnsupportedError naming the node.  ``limits``: ``kernel_size``,
    ``channels``, ``input_size`` from the profile (default: the Speck docs' 16, 1024, 128)."""
    lim = {"kernel_size": MAX_KERNEL, "channels": MAX_CHANNELS, "input_size": MAX_INPUT,
           **{k: int(v) for k, v in (limits or {}).items() if v is not None}}
    preds, succs = predecessors(graph), successors(graph)
    order = topological_order(graph)
    prim = {}
    for n in order:
        prim[n] = primitive_of(graph.nodes[n], n)
        if prim[n] not in SPECK_FORMS:
            raise UnsupportedError(f"{n}: {prim[n]} has no Speck form (Speck runs conv -> IF -> "
                                   "sum-pool layers: Conv2d, Affine/Linear, IF, SumPool2d, Flatten)")
        if len(succs.get(n, [])) > 1 or len(preds.get(n, [])) > 1:
            raise UnsupportedError(f"{n}: branches or merges are not supported by the Speck lowering (a chain of "
                                   "layers only)")
    inputs = [n for n in order if prim[n] == "Input"]
    if len(inputs) != 1:
        raise UnsupportedError(f"{inputs[1] if inputs else 'graph'}: the Speck lowering takes one Input node")
    chain = [inputs[0]]
    while succs.get(chain[-1]):
        chain.append(succs[chain[-1]][0])
    if len(chain) != len(order):
        loose = next(n for n in order if n not in chain)
        raise UnsupportedError(f"{loose}: not on the chain from the input (the Speck lowering takes a chain)")
    shp = tuple(int(v) for v in (node_shape(graph.nodes[chain[0]]) or ()))
    if len(shp) == 1:
        shp = (shp[0], 1, 1)
    if len(shp) != 3:
        raise UnsupportedError(f"{chain[0]}: input shape {shp} is neither (C, H, W) nor (N,)")
    if max(shp[1:]) > lim["input_size"]:
        raise UnsupportedError(f"{chain[0]}: input {shp[1]}x{shp[2]} exceeds Speck's {lim['input_size']}x"
                               f"{lim['input_size']}")
    input_shape, cur = shp, shp
    layers: list[SpeckLayer] = []
    i = 1
    flat_pending = None
    while i < len(chain):
        n = chain[i]
        node = graph.nodes[n]
        if prim[n] == "Output":
            if i != len(chain) - 1:
                raise UnsupportedError(f"{n}: Output in the middle of the chain")
            if not layers or flat_pending:
                raise UnsupportedError(f"{n}: the network must end with an IF (or a sum-pool after one)")
            break
        if prim[n] == "Flatten":
            flat_pending = n
            i += 1
            continue
        if prim[n] in ("SumPool2d", "IF"):
            what = "sum-pool" if prim[n] == "SumPool2d" else "IF"
            raise UnsupportedError(f"{n}: a {what} must follow a conv -> IF layer (Speck has no {what} of its "
                                   "own; a pool before the first conv needs the DVS layer)")
        covered = ([flat_pending] if flat_pending else []) + [n]
        w = np.asarray(node.weight, dtype=np.float32)
        if prim[n] == "Conv2d":
            if flat_pending:
                raise UnsupportedError(f"{flat_pending}: Flatten before a Conv2d has no Speck form")
            stride, pad = _conv_params(n, node, lim["kernel_size"])
            if w.shape[1] != cur[0]:
                raise UnsupportedError(f"{n}: weight takes {w.shape[1]} channels, input has {cur[0]}")
            bias = np.asarray(node.bias, dtype=np.float32) if getattr(node, "bias", None) is not None else None
        else:                       # Affine / Linear: a conv whose kernel is the whole (C, H, W) input
            if w.ndim != 2 or w.shape[1] != int(np.prod(cur)):
                raise UnsupportedError(f"{n}: weight {w.shape} does not take the {int(np.prod(cur))} inputs {cur}")
            if cur[1] != cur[2]:
                raise UnsupportedError(f"{n}: a linear layer over a {cur[1]}x{cur[2]} map needs a non-square "
                                       "kernel, which Speck does not have")
            if not flat_pending and (cur[1], cur[2]) != (1, 1):
                raise UnsupportedError(f"{n}: a linear layer over a {cur} map needs a Flatten before it")
            w = w.reshape(w.shape[0], cur[0], cur[1], cur[2])
            stride, pad = 1, 0
            b = getattr(node, "bias", None)
            bias = np.asarray(b, dtype=np.float32) if b is not None else None
        flat_pending = None
        if w.shape[0] > lim["channels"]:
            raise UnsupportedError(f"{n}: {w.shape[0]} output channels exceed Speck's {lim['channels']}")
        if i + 1 >= len(chain) or prim[chain[i + 1]] != "IF":
            nxt = chain[i + 1] if i + 1 < len(chain) else "the end"
            raise UnsupportedError(f"{n}: must be followed by an IF node on Speck (followed by {nxt})")
        ifn = chain[i + 1]
        ifnode = graph.nodes[ifn]
        thr = _uniform(ifn, "v_threshold", ifnode.v_threshold)
        if thr <= 0:
            raise UnsupportedError(f"{ifn}: threshold {thr:g} must be positive")
        if _uniform(ifn, "r", ifnode.r) != 1.0:
            raise UnsupportedError(f"{ifn}: r != 1 (Speck's IAF adds its input unscaled; fold r into the weights)")
        if _uniform(ifn, "v_reset", ifnode.v_reset) != 0.0:
            raise UnsupportedError(f"{ifn}: v_reset != 0 (Speck resets by subtracting the threshold)")
        covered.append(ifn)
        wq, bq, th, mv, s = discretize(w, bias, thr, -thr)
        layer = SpeckLayer(name=n, nodes=covered, in_shape=tuple(int(v) for v in cur), weight=wq, bias=bq,
                           threshold=th, min_v_mem=mv, stride=stride, padding=pad, scale=s)
        nh = layer.neuron_shape
        if nh[1] < 1 or nh[2] < 1:
            raise UnsupportedError(f"{n}: output {nh} is empty")
        i += 2
        pool = 1
        while i < len(chain) and prim[chain[i]] == "SumPool2d":
            pn = chain[i]
            pnode = graph.nodes[pn]
            k = _pair(pn, "kernel", pnode.kernel_size)
            st = _pair(pn, "stride", pnode.stride if pnode.stride is not None else k)
            if st != k or np.any(np.asarray(pnode.padding).reshape(-1) != 0):
                raise UnsupportedError(f"{pn}: sum-pool stride must equal its kernel, no padding (Speck)")
            pool *= k
            covered.append(pn)
            i += 1
        if pool not in POOLS:
            raise UnsupportedError(f"{covered[-1]}: sum-pool {pool} not in Speck's {POOLS}")
        layer.pool = pool
        layers.append(layer)
        cur = layer.out_shape
    if not layers:
        raise UnsupportedError(f"{chain[0]}: no conv -> IF layer to deploy")
    return SpeckNetwork(layers=layers, input_shape=input_shape, input_node=chain[0], output_node=chain[-1],
                        metadata={"time_steps": int((graph.metadata or {}).get("neurodeploy.time_steps", 0) or 0)})
