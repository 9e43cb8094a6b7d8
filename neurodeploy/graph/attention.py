"""The ``neurodeploy.spiking_attention`` extension (version 1), see docs/nir.md.

NIR 1.0.8 has no product of two activations, so Spikingformer's attention ``scale * Q (K^T V)`` is one
``nir.NIRGraph`` subgraph node whose namespaced metadata carries the operation.  Its body is a Conv1d
with all-NaN weights: a tool that ignores the metadata computes NaN, never a plausible wrong value.
"""
from __future__ import annotations

from dataclasses import dataclass

import nir
import numpy as np
import torch

from ..errors import BadInputError
from .core import extension_node, extension_source, meta, predecessors, successors

EXTENSION = "spiking_attention"
EXTENSION_VERSION = 1
SEMANTICS = (
    "input [3D, N] = stack(Q, K, V) along channels; per head h (channels h*d..h*d+d-1, d = D/heads): "
    "y_h = scale * Q_h (K_h^T V_h) with Q_h, K_h, V_h the [N, d] slices; output [D, N] = heads merged "
    "along channels"
)
#: the same operation on a token grid (Spike-driven Transformer V2, whose q/k/v/proj are 3x3 convs): input
#: [3D, H, W], output [D, H, W], the N = H*W tokens in C order (row-major), i.e. the [D, N] form viewed as a grid
SEMANTICS_GRID = (
    "input [3D, H, W] = stack(Q, K, V) along channels, N = H*W tokens in row-major order; per head h "
    "(channels h*d..h*d+d-1, d = D/heads): y_h = scale * Q_h (K_h^T V_h) with Q_h, K_h, V_h the [N, d] slices; "
    "output [D, H, W] = heads merged along channels, tokens back on the grid"
)


@dataclass(frozen=True)
class AttentionSpec:
    dim: int
    heads: int
    tokens: int
    scale: float

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


def make_attention_node(dim: int, heads: int, tokens: int, scale: float, source: str | None = None,
                        dtype=np.float32, grid: tuple[int, int] | None = None) -> nir.NIRGraph:
    """The extension subgraph [3D, N] -> [D, N]: input -> unsupported (all-NaN Conv1d) -> output; with
    ``grid = (H, W)`` (H*W = tokens) the same operation on the token grid, [3D, H, W] -> [D, H, W] (an all-NaN
    1x1 Conv2d body)."""
    if dim % heads:
        raise ValueError(f"dim {dim} is not divisible by heads {heads}")
    nan_b = np.full((dim,), np.nan, dtype=dtype)
    fields = {"heads": int(heads), "dim": int(dim), "tokens": int(tokens), "scale": float(scale)}
    if grid is not None:
        H, W = (int(v) for v in grid)
        if H * W != tokens:
            raise ValueError(f"grid {H}x{W} does not hold {tokens} tokens")
        nan_w = np.full((dim, 3 * dim, 1, 1), np.nan, dtype=dtype)
        body = nir.Conv2d(input_shape=(H, W), weight=nan_w, stride=1, padding=0, dilation=1, groups=1, bias=nan_b)
        return extension_node(EXTENSION, EXTENSION_VERSION, fields, SEMANTICS_GRID, source, [3 * dim, H, W],
                              {"unsupported": body}, [dim, H, W])
    nan_w = np.full((dim, 3 * dim, 1), np.nan, dtype=dtype)
    body = nir.Conv1d(input_shape=tokens, weight=nan_w, stride=1, padding=0, dilation=1, groups=1, bias=nan_b)
    return extension_node(EXTENSION, EXTENSION_VERSION, fields, SEMANTICS, source, [3 * dim, tokens],
                          {"unsupported": body}, [dim, tokens])


def attention_spec(node) -> AttentionSpec | None:
    """The attention parameters of an extension node, or None for any other node.

    Raises BadInputError for an extension node with a version or fields this reader does not know."""
    where = extension_source(node, EXTENSION, EXTENSION_VERSION)
    if where is None:
        return None
    try:
        spec = AttentionSpec(int(meta(node, "neurodeploy.dim")), int(meta(node, "neurodeploy.heads")),
                             int(meta(node, "neurodeploy.tokens")), float(meta(node, "neurodeploy.scale")))
    except (TypeError, ValueError):
        raise BadInputError(f"{where}: spiking_attention node lacks dim/heads/tokens/scale metadata") from None
    if spec.heads <= 0 or spec.dim % spec.heads:
        raise BadInputError(f"{where}: spiking_attention dim {spec.dim} not divisible by heads {spec.heads}")
    return spec


def attention_forward(spec: AttentionSpec, x: torch.Tensor) -> torch.Tensor:
    """[..., 3D, N] stacked Q, K, V -> [..., D, N] = scale * Q_h (K_h^T V_h) per head.

    For binary Q, K, V every product and sum is an integer below 2^24, so the result is exact in float32
    and independent of the multiplication order (the torch model's (QK^T)V and Q(K^TV) agree bit for bit)."""
    D, N, h, d = spec.dim, spec.tokens, spec.heads, spec.head_dim
    grid = None
    if x.dim() >= 3 and x.shape[-3] == 3 * D and x.shape[-2] * x.shape[-1] == N and x.shape[-2:] != (3 * D, N):
        grid = tuple(x.shape[-2:])          # the token-grid form [..., 3D, H, W]
        x = x.flatten(-2)
    if x.shape[-2:] != (3 * D, N):
        raise BadInputError(f"spiking_attention expects [..., {3 * D}, {N}], got {list(x.shape)}")
    lead = x.shape[:-2]
    q, k, v = (x[..., i * D:(i + 1) * D, :].reshape(*lead, h, d, N) for i in range(3))
    kv = k @ v.transpose(-1, -2)            # [.., h, d, d] = K_h^T V_h (rows i of K, columns j of V)
    y = kv.transpose(-1, -2) @ q            # [.., h, d(j), N] = sum_i Q[i, n] * KV[i, j]
    return (y * spec.scale).reshape(*lead, D, *(grid or (N,)))


def attention_roles(graph: nir.NIRGraph, name: str) -> dict:
    """The one way every stage finds an attention node's operands: ``{"q", "k", "v"}`` -> the node feeding
    each stack routing Conv1d (found by its weights: an identity block at rows i*D..(i+1)*D, zeros elsewhere,
    never by node names, which other tools choose freely), plus ``"q_route"``... the routing nodes and
    ``"out"``: the nodes the attention feeds.  Raises BadInputError naming the node when the routing is not
    the one the extension defines."""
    spec = attention_spec(graph.nodes[name])
    if spec is None:
        raise BadInputError(f"node '{name}': not a spiking_attention node")
    D = spec.dim
    pred = predecessors(graph)
    roles: dict = {}
    for p in pred.get(name, []):
        node = graph.nodes[p]
        w = np.asarray(getattr(node, "weight", np.zeros((0, 0, 0))))
        # [3D, D, 1] Conv1d on tokens, or [3D, D, 1, 1] Conv2d on the token grid
        routing = (isinstance(node, nir.Conv1d) and w.shape[2:] == (1,)) or \
            (isinstance(node, nir.Conv2d) and w.shape[2:] == (1, 1))
        if not routing or w.shape[:2] != (3 * D, D) or len(pred.get(p, [])) != 1:
            raise BadInputError(f"node '{name}': its input '{p}' is not a stack routing Conv1d [{3 * D}, {D}, 1] "
                                f"or Conv2d [{3 * D}, {D}, 1, 1]")
        w2 = w.reshape(3 * D, D)
        for i, tag in enumerate("qkv"):
            block = w2[i * D:(i + 1) * D]
            rest = np.delete(w2, np.s_[i * D:(i + 1) * D], 0)
            if np.array_equal(block, np.eye(D)) and not np.any(rest):
                roles[tag] = pred[p][0]
                roles[f"{tag}_route"] = p
    missing = [t for t in "qkv" if t not in roles]
    if missing:
        raise BadInputError(f"node '{name}': no stack routing for {', '.join(missing)}")
    roles["out"] = list(successors(graph).get(name, []))
    return roles
