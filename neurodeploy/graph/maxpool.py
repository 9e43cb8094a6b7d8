"""The ``neurodeploy.max_pool2d`` extension (version 1), see docs/nir.md.

NIR 1.0.8 has no max pooling.  A max-pool of spikes is an OR (``SumPool2d`` then ``Threshold(0.5)``, no
extension needed), but the Spike-driven Transformer and QKFormer max-pool *real* values (BatchNorm outputs,
membrane potentials, before a LIF): one ``nir.NIRGraph`` subgraph node whose namespaced metadata carries the
operation (kernel, stride, padding; positions outside the input are omitted from the max, as PyTorch's
``-inf`` padding).  Its body is ``SumPool2d`` then a ``Scale`` of NaN: a tool that ignores the metadata
computes NaN, never a plausible wrong value.
"""
from __future__ import annotations

from dataclasses import dataclass

import nir
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BadInputError
from .core import extension_node, extension_source

EXTENSION = "max_pool2d"
EXTENSION_VERSION = 1
SEMANTICS = ("input [C, H, W] -> output [C, H', W']: y[c, i, j] = max of x[c, i*s0 - p0 + a, j*s1 - p1 + b] over "
             "0 <= a < k0, 0 <= b < k1 and positions inside the input (outside ones are omitted: -inf padding); "
             "H' = (H + 2 p0 - k0) // s0 + 1")


@dataclass(frozen=True)
class MaxPoolSpec:
    kernel: tuple
    stride: tuple
    padding: tuple
    channels: int
    in_hw: tuple

    @property
    def valid(self) -> bool:
        """Kernel, stride >= 1, padding at most half the kernel, at least one output."""
        k, s, p = self.kernel, self.stride, self.padding
        return min(k) >= 1 and min(s) >= 1 and min(p) >= 0 and all(2 * pp <= kk for pp, kk in zip(p, k)) \
            and min(self.out_hw) >= 1

    @property
    def out_hw(self) -> tuple:
        return tuple((h + 2 * p - k) // s + 1 for h, k, s, p in zip(self.in_hw, self.kernel, self.stride, self.padding))

    def windows(self, axis: int) -> list:
        """Per output index along ``axis`` (0 rows, 1 columns): the input indices its window covers (outside
        ones omitted), in increasing order."""
        k, s, p, n = self.kernel[axis], self.stride[axis], self.padding[axis], self.in_hw[axis]
        return [[i * s - p + a for a in range(k) if 0 <= i * s - p + a < n] for i in range(self.out_hw[axis])]


def make_maxpool_node(channels: int, in_hw, kernel, stride, padding, source: str | None = None,
                      dtype=np.float32) -> nir.NIRGraph:
    """The extension subgraph [C, H, W] -> [C, H', W']: input -> sum (SumPool2d) -> unsupported (Scale NaN)
    -> output."""
    k, s, p = (tuple(int(v) for v in x) for x in (kernel, stride, padding))
    spec = MaxPoolSpec(k, s, p, int(channels), tuple(int(v) for v in in_hw))
    if not spec.valid:
        raise ValueError(f"max_pool2d: kernel {k}, stride {s}, padding {p} on {spec.in_hw} is not a valid pool")
    out = (spec.channels,) + spec.out_hw
    body = {"sum": nir.SumPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p)),
            "unsupported": nir.Scale(scale=np.full(out, np.nan, dtype=dtype))}
    fields = {"kernel_size": list(k), "stride": list(s), "padding": list(p)}
    return extension_node(EXTENSION, EXTENSION_VERSION, fields, SEMANTICS, source, (spec.channels,) + spec.in_hw,
                          body, out)


def _pair(v, where, key) -> tuple:
    a = np.asarray(v).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, 2)
    if a.size != 2:
        raise BadInputError(f"{where}: max_pool2d {key} must have 1 or 2 values")
    return tuple(int(x) for x in a)


def maxpool_spec(node) -> MaxPoolSpec | None:
    """The pooling parameters of an extension node, or None for any other node.  Raises BadInputError for
    an extension node with a version or fields this reader does not know."""
    where = extension_source(node, EXTENSION, EXTENSION_VERSION)
    if where is None:
        return None
    md = node.metadata or {}
    try:
        k, s, p = (_pair(md[f"neurodeploy.{key}"], where, key) for key in ("kernel_size", "stride", "padding"))
        inp = next(n for n in node.nodes.values() if isinstance(n, nir.Input))
        shape = tuple(int(x) for x in np.asarray(next(iter(inp.input_type.values()))).reshape(-1))
    except (KeyError, StopIteration, TypeError, ValueError):
        raise BadInputError(f"{where}: max_pool2d node lacks kernel_size/stride/padding metadata or its input type") from None
    if len(shape) != 3:
        raise BadInputError(f"{where}: max_pool2d input must be [C, H, W], got {list(shape)}")
    spec = MaxPoolSpec(k, s, p, shape[0], shape[1:])
    if not spec.valid:
        raise BadInputError(f"{where}: max_pool2d kernel {k}, stride {s}, padding {p} on {shape[1:]} is not a valid pool")
    return spec


def maxpool_forward(spec: MaxPoolSpec, x: torch.Tensor) -> torch.Tensor:
    """[..., C, H, W] -> [..., C, H', W'] (PyTorch's max_pool2d: -inf padding, exact in any float dtype)."""
    lead = x.shape[:-3]
    y = F.max_pool2d(x.reshape((-1,) + tuple(x.shape[-3:])), spec.kernel, spec.stride, spec.padding)
    return y.reshape(tuple(lead) + tuple(y.shape[-3:]))
