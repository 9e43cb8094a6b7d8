"""Spikingformer (arXiv 2304.11954), rebuilt module by module with the official module names so that
official checkpoints load with ``strict=True``.

Layout [T, B, C, H, W]; convolutions and BN run on T merged into the batch; LIFs run on [T, B, ...].
Every conv/linear except the encoder conv and the head receives binary spikes: each residual branch
starts with a LIF (x = x + ConvBN(LIF(x))), the residual stream itself is the float sum of BN outputs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .neuron import MultiStepLIF


def image_over_time(x: torch.Tensor, T: int) -> torch.Tensor:
    """An image batch [B, C, H, W] repeated over T steps: [T, B, C, H, W] (every family's static input)."""
    if x.dim() != 4:
        raise ValueError(f"image input must be [B, C, H, W], got shape {tuple(x.shape)}")
    return x.unsqueeze(0).repeat(T, 1, 1, 1, 1)


@dataclass
class SpikingformerConfig:
    """Architecture of one Spikingformer variant (see ``neurodeploy.models.registry``)."""

    num_classes: int = 10
    in_channels: int = 3
    img_size: int = 32
    embed_dim: int = 384
    depth: int = 4
    num_heads: int = 12
    mlp_ratio: int = 4
    T: int | None = 4  # None: taken from the input (DVS variants)
    tau: float = 2.0
    # tokenizer: output channels of conv 0..K and whether stage k (k >= 1) max-pools after its LIF
    tokenizer_channels: list[int] = field(default_factory=lambda: [48, 96, 192, 384, 384])
    tokenizer_pools: list[bool] = field(default_factory=lambda: [False, False, True, True])
    tokenizer_naming: str = "cifar"  # "cifar": block{i}_*; "imagenet": proj_conv, proj{i}_*
    attention_scale: float = 0.125
    attention_threshold: float = 0.5
    attention_order: str = "kv_first"  # "kv_first": Q(K^T V) (ImageNet file); "qk_first": (QK^T)V
    event_input: bool = False  # DVS: input [B, T, C, H, W]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SpikingformerConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def tokens_side(self) -> int:
        side = self.img_size
        for pool in self.tokenizer_pools:
            if pool:
                side = (side + 2 * 1 - 3) // 2 + 1
        return side


def _bn_over_time(bn: nn.Module, conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """conv then BN on a [T, B, ...] tensor with T merged into the batch."""
    T, B = x.shape[:2]
    y = bn(conv(x.flatten(0, 1)))
    return y.reshape(T, B, *y.shape[1:])


class SpikingTokenizer(nn.Module):
    """ConvBN, then stages LIF -> [MaxPool] -> ConvBN.  CIFAR: ConvBN + 2 SPE + 2 SPED; ImageNet and
    DVS: ConvBN + 4 SPED.  No LIF after the last BN: the output is the float residual stream."""

    def __init__(self, cfg: SpikingformerConfig):
        super().__init__()
        ch = list(cfg.tokenizer_channels)
        pools = list(cfg.tokenizer_pools)
        if len(pools) != len(ch) - 1:
            raise ValueError("tokenizer_pools needs one entry per stage after the first conv")
        self.naming = cfg.tokenizer_naming
        self.num_stages = len(ch)
        self.pools = pools
        for i in range(len(ch)):
            c_in = cfg.in_channels if i == 0 else ch[i - 1]
            names = self.stage_names(i)
            if i > 0:
                setattr(self, names["lif"], MultiStepLIF(tau=cfg.tau))
                if pools[i - 1]:
                    setattr(self, names["pool"], nn.MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False))
            setattr(self, names["conv"], nn.Conv2d(c_in, ch[i], kernel_size=3, stride=1, padding=1, bias=False))
            setattr(self, names["bn"], nn.BatchNorm2d(ch[i]))

    def stage_names(self, i: int) -> dict:
        if self.naming == "cifar":
            return {"conv": f"block{i}_conv", "bn": f"block{i}_bn", "lif": f"block{i}_lif", "pool": f"block{i}_mp"}
        if self.naming == "imagenet":
            if i == 0:
                return {"conv": "proj_conv", "bn": "proj_bn", "lif": None, "pool": None}
            return {"conv": f"proj{i}_conv", "bn": f"proj{i}_bn", "lif": f"proj{i}_lif", "pool": f"maxpool{i}"}
        raise ValueError(f"unknown tokenizer naming {self.naming!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.num_stages):
            names = self.stage_names(i)
            if i > 0:
                x = getattr(self, names["lif"])(x)
                if self.pools[i - 1]:
                    T, B = x.shape[:2]
                    y = getattr(self, names["pool"])(x.flatten(0, 1))
                    x = y.reshape(T, B, *y.shape[1:])
            x = _bn_over_time(getattr(self, names["bn"]), getattr(self, names["conv"]), x)
        return x


class SpikingSelfAttention(nn.Module):
    """Spiking self-attention without softmax: x = (Q K^T V) * scale -> attn_lif -> proj ConvBN.

    ``proj_lif`` is the pre-activation LIF at the start of the branch (the official name)."""

    def __init__(self, dim: int, num_heads: int, tau: float = 2.0, scale: float = 0.125,
                 attn_threshold: float = 0.5, order: str = "kv_first"):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.scale, self.order = dim, num_heads, scale, order
        self.proj_lif = MultiStepLIF(tau=tau)
        self.q_conv = nn.Conv1d(dim, dim, kernel_size=1, stride=1, bias=False)
        self.q_bn = nn.BatchNorm1d(dim)
        self.q_lif = MultiStepLIF(tau=tau)
        self.k_conv = nn.Conv1d(dim, dim, kernel_size=1, stride=1, bias=False)
        self.k_bn = nn.BatchNorm1d(dim)
        self.k_lif = MultiStepLIF(tau=tau)
        self.v_conv = nn.Conv1d(dim, dim, kernel_size=1, stride=1, bias=False)
        self.v_bn = nn.BatchNorm1d(dim)
        self.v_lif = MultiStepLIF(tau=tau)
        self.attn_lif = MultiStepLIF(tau=tau, v_threshold=attn_threshold)
        self.proj_conv = nn.Conv1d(dim, dim, kernel_size=1, stride=1)
        self.proj_bn = nn.BatchNorm1d(dim)

    def heads(self, s: torch.Tensor) -> torch.Tensor:
        """[T, B, C, N] -> [T, B, heads, N, C/heads]"""
        T, B, C, N = s.shape
        return s.transpose(-1, -2).reshape(T, B, N, self.num_heads, C // self.num_heads).permute(0, 1, 3, 2, 4)

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Binary Q, K, V [T, B, C, N] -> attention LIF input (Q K^T V) * scale, [T, B, C, N].

        Both orders are exact in float32 (integer sums below 2^24), so they agree bit for bit."""
        T, B, C, N = q.shape
        qh, kh, vh = self.heads(q), self.heads(k), self.heads(v)
        if self.order == "kv_first":
            x = qh @ (kh.transpose(-2, -1) @ vh)
        else:
            x = (qh @ kh.transpose(-2, -1)) @ vh
        x = x * self.scale
        return x.transpose(3, 4).reshape(T, B, C, N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        x = self.proj_lif(x).flatten(3)  # [T, B, C, N] binary
        q = self.q_lif(_bn_over_time(self.q_bn, self.q_conv, x))
        k = self.k_lif(_bn_over_time(self.k_bn, self.k_conv, x))
        v = self.v_lif(_bn_over_time(self.v_bn, self.v_conv, x))
        x = self.attn_lif(self.attention(q, k, v))
        x = _bn_over_time(self.proj_bn, self.proj_conv, x)
        return x.reshape(T, B, C, H, W)


class MLP(nn.Module):
    """LIF -> 1x1 conv -> BN -> LIF -> 1x1 conv -> BN (two SPEs)."""

    def __init__(self, dim: int, hidden: int, tau: float = 2.0):
        super().__init__()
        self.mlp1_lif = MultiStepLIF(tau=tau)
        self.mlp1_conv = nn.Conv2d(dim, hidden, kernel_size=1, stride=1)
        self.mlp1_bn = nn.BatchNorm2d(hidden)
        self.mlp2_lif = MultiStepLIF(tau=tau)
        self.mlp2_conv = nn.Conv2d(hidden, dim, kernel_size=1, stride=1)
        self.mlp2_bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _bn_over_time(self.mlp1_bn, self.mlp1_conv, self.mlp1_lif(x))
        return _bn_over_time(self.mlp2_bn, self.mlp2_conv, self.mlp2_lif(x))


class SpikingTransformer(nn.Module):
    """x = x + SSA(x); x = x + MLP(x) (membrane-shortcut residuals).  ``norm1``/``norm2`` are unused
    LayerNorms kept because official checkpoints hold them."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int = 4, tau: float = 2.0, scale: float = 0.125,
                 attn_threshold: float = 0.5, order: str = "kv_first"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SpikingSelfAttention(dim, num_heads, tau=tau, scale=scale, attn_threshold=attn_threshold, order=order)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, dim * mlp_ratio, tau=tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class Spikingformer(nn.Module):
    """The official ``vit_snn``: tokenizer ``patch_embed``, ``block`` list, ``head`` Linear.

    Input: images [B, C, H, W] (repeated over T, direct encoding) or, for event models, [B, T, C, H, W].
    Output: logits [B, classes] = head(mean over tokens and T of the residual stream)."""

    arch_family = "spikingformer"

    def __init__(self, cfg: SpikingformerConfig):
        super().__init__()
        self.cfg = cfg
        self.T = cfg.T
        self.patch_embed = SpikingTokenizer(cfg)
        self.block = nn.ModuleList([
            SpikingTransformer(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, tau=cfg.tau, scale=cfg.attention_scale,
                               attn_threshold=cfg.attention_threshold, order=cfg.attention_order)
            for _ in range(cfg.depth)
        ])
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)

    def to_time_major(self, x: torch.Tensor) -> torch.Tensor:
        """Model input -> [T, B, C, H, W] (what the tokenizer sees)."""
        if self.cfg.event_input:
            if x.dim() != 5:
                raise ValueError(f"event input must be [B, T, C, H, W], got shape {tuple(x.shape)}")
            return x.permute(1, 0, 2, 3, 4).contiguous()
        return image_over_time(x, self.T)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for blk in self.block:
            x = blk(x)
        return x.flatten(3).mean(3)  # [T, B, D]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(self.to_time_major(x))
        return self.head(x.mean(0))
