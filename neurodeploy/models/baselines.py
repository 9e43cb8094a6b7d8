"""Spikformer (every official size) and the SEW-ResNet baseline, in the same code style as Spikingformer.

* :class:`Spikformer` (ICLR 2023, ZK-Zhou/spikformer): post-activation blocks, every branch ends in a LIF,
  so the residual stream adds spikes to spikes (values 0..2+2l after l blocks) and q/k/v and fc1 receive
  integers; its SPS tokenizer adds the RPE branch's spikes to the pooled spikes (values {0, 1, 2}).
  Two official codings (shared/reference/spiking-transformers.md section 2): ``projection="linear"``
  (``cifar10/model.py``: ``nn.Linear`` with bias + BN1d on a [T, B, N, C] stream, attention ``(Q K^T) V``)
  and ``projection="conv"`` (``imagenet/model.py``: q/k/v ``Conv1d`` without bias, MLP ``Conv2d`` 1x1,
  attention ``Q (K^T V)``).  Each forward runs the same tensor operations in the same layout as the
  official file, so that logits agree bit for bit (benchmarks/bench_official.py).
* :class:`SEWResNet`: spike-element-wise residual blocks ``out = SN(BN(conv(SN(BN(conv(x))))))`` joined to
  the identity by ADD (integers), AND or IAND (binary).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .neuron import MultiStepLIF
from .spikingformer import _bn_over_time, image_over_time


@dataclass
class SpikformerConfig:
    num_classes: int = 10
    in_channels: int = 1
    img_size: int = 8
    embed_dim: int = 32
    depth: int = 2
    num_heads: int = 2
    mlp_ratio: int = 4
    T: int = 4
    tau: float = 2.0
    sps_channels: list[int] = field(default_factory=lambda: [8, 16, 32])  # proj_conv, proj_conv1, proj_conv2
    sps_pools: list[bool] = field(default_factory=lambda: [False, False, True])  # max-pool after lif, lif1, lif2
    attention_scale: float = 0.125
    attention_threshold: float = 0.5
    projection: str = "conv"  # "conv": imagenet/model.py; "linear": cifar10/model.py (nn.Linear, [T, B, N, C])
    layer_norms: bool = False  # official blocks hold unused LayerNorms norm1/norm2 (in the checkpoints)
    attention_order: str = "kv_first"  # "qk_first": (Q K^T) V as cifar10/model.py; "kv_first": Q (K^T V)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SpikformerConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class SPS(nn.Module):
    """Spikformer's tokenizer: (conv, bn, lif[, maxpool]) stages, then the RPE branch
    ``rpe_lif(rpe_bn(rpe_conv(x_feat))) + x_feat`` (spikes + spikes).  Output [T, B, C, H, W], or the
    official CIFAR code's token-major view [T, B, N, C] when ``projection == "linear"``."""

    def __init__(self, cfg: SpikformerConfig):
        super().__init__()
        self.num_stages = len(cfg.sps_channels)
        self.pools = list(cfg.sps_pools)
        self.token_major = cfg.projection == "linear"
        c_in = cfg.in_channels
        for i, c in enumerate(cfg.sps_channels):
            sfx = "" if i == 0 else str(i)
            setattr(self, f"proj_conv{sfx}", nn.Conv2d(c_in, c, 3, 1, 1, bias=False))
            setattr(self, f"proj_bn{sfx}", nn.BatchNorm2d(c))
            setattr(self, f"proj_lif{sfx}", MultiStepLIF(tau=cfg.tau))
            if self.pools[i]:
                setattr(self, f"maxpool{sfx}", nn.MaxPool2d(3, 2, 1))
            c_in = c
        D = cfg.embed_dim
        if c_in != D:
            raise ValueError("the last SPS stage must output embed_dim channels")
        self.rpe_conv = nn.Conv2d(D, D, 3, 1, 1, bias=False)
        self.rpe_bn = nn.BatchNorm2d(D)
        self.rpe_lif = MultiStepLIF(tau=cfg.tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.num_stages):
            sfx = "" if i == 0 else str(i)
            x = _bn_over_time(getattr(self, f"proj_bn{sfx}"), getattr(self, f"proj_conv{sfx}"), x)
            x = getattr(self, f"proj_lif{sfx}")(x)
            if self.pools[i]:
                T, B = x.shape[:2]
                y = getattr(self, f"maxpool{sfx}")(x.flatten(0, 1))
                x = y.reshape(T, B, *y.shape[1:])
        x_feat = x
        x = self.rpe_lif(_bn_over_time(self.rpe_bn, self.rpe_conv, x))
        x = x + x_feat  # spikes + spikes: {0, 1, 2}
        return x.flatten(-2).transpose(-1, -2) if self.token_major else x


def _linear_bn(lin: nn.Linear, bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """The CIFAR code's projection: Linear on [T*B, N, C], BN1d over channels, back to [T, B, N, C']."""
    T, B, N = x.shape[:3]
    y = lin(x.flatten(0, 1))
    return bn(y.transpose(-1, -2)).transpose(-1, -2).reshape(T, B, N, -1).contiguous()


class SpikformerSSA(nn.Module):
    """q/k/v projection-BN-LIF read the (integer) residual stream directly; the branch ends in proj_lif.

    ``projection="conv"``: q/k/v ``Conv1d`` (no bias), proj ``Conv1d``; ``"linear"``: ``q_linear`` ... with
    bias.  The attention has no softmax, so ``(Q K^T) V`` and ``Q (K^T V)`` give the same integers."""

    def __init__(self, dim: int, num_heads: int, tau: float, scale: float, attn_threshold: float,
                 projection: str = "conv", order: str = "kv_first"):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.scale, self.order = dim, num_heads, scale, order
        self.projection = projection
        kind = "linear" if projection == "linear" else "conv"
        self.kind = kind
        for n in ("q", "k", "v", "proj"):
            if kind == "linear":
                setattr(self, f"{n}_linear", nn.Linear(dim, dim))
            else:
                setattr(self, f"{n}_conv", nn.Conv1d(dim, dim, 1, 1, bias=n == "proj"))
            setattr(self, f"{n}_bn", nn.BatchNorm1d(dim))
            if n != "proj":
                setattr(self, f"{n}_lif", MultiStepLIF(tau=tau))
        self.attn_lif = MultiStepLIF(tau=tau, v_threshold=attn_threshold)
        self.proj_lif = MultiStepLIF(tau=tau)

    def projection_layer(self, n: str) -> nn.Module:
        return getattr(self, f"{n}_{self.kind}")

    def _attend(self, q, k, v):
        """Binary [T, B, heads, N, d] -> [T, B, heads, N, d] * scale, in the official file's order."""
        if self.order == "qk_first":
            return ((q @ k.transpose(-2, -1)) * self.scale) @ v
        return (q @ (k.transpose(-2, -1) @ v)) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.num_heads
        if self.kind == "linear":  # [T, B, N, C]
            T, B, N, C = x.shape
            q, k, v = (getattr(self, f"{n}_lif")(_linear_bn(self.projection_layer(n), getattr(self, f"{n}_bn"), x))
                       .reshape(T, B, N, h, C // h).permute(0, 1, 3, 2, 4).contiguous() for n in "qkv")
            a = self._attend(q, k, v).transpose(2, 3).reshape(T, B, N, C).contiguous()
            a = self.attn_lif(a)
            return self.proj_lif(_linear_bn(self.proj_linear, self.proj_bn, a))
        T, B, C, H, W = x.shape
        x = x.flatten(3)

        def heads(s):
            return s.transpose(-1, -2).reshape(T, B, -1, h, C // h).permute(0, 1, 3, 2, 4).contiguous()

        q, k, v = (heads(getattr(self, f"{n}_lif")(_bn_over_time(getattr(self, f"{n}_bn"), self.projection_layer(n), x)))
                   for n in "qkv")
        a = self._attend(q, k, v).transpose(3, 4).reshape(T, B, C, -1).contiguous()
        a = self.attn_lif(a)
        out = self.proj_lif(_bn_over_time(self.proj_bn, self.proj_conv, a).reshape(T, B, C, H, W))
        return out


class SpikformerMLP(nn.Module):
    """fc1 -> BN -> LIF -> fc2 -> BN -> LIF: ``Conv2d`` 1x1 + BN2d on [T, B, C, H, W] (``projection="conv"``)
    or ``Linear`` + BN1d on [T, B, N, C] (``"linear"``)."""

    def __init__(self, dim: int, hidden: int, tau: float, projection: str = "conv"):
        super().__init__()
        self.kind = "linear" if projection == "linear" else "conv"
        if self.kind == "linear":
            self.fc1_linear = nn.Linear(dim, hidden)
            self.fc1_bn = nn.BatchNorm1d(hidden)
        else:
            self.fc1_conv = nn.Conv2d(dim, hidden, 1, 1)
            self.fc1_bn = nn.BatchNorm2d(hidden)
        self.fc1_lif = MultiStepLIF(tau=tau)
        if self.kind == "linear":
            self.fc2_linear = nn.Linear(hidden, dim)
            self.fc2_bn = nn.BatchNorm1d(dim)
        else:
            self.fc2_conv = nn.Conv2d(hidden, dim, 1, 1)
            self.fc2_bn = nn.BatchNorm2d(dim)
        self.fc2_lif = MultiStepLIF(tau=tau)

    def layer(self, i: int) -> nn.Module:
        return getattr(self, f"fc{i}_{self.kind}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            x = self.fc1_lif(_linear_bn(self.fc1_linear, self.fc1_bn, x))
            return self.fc2_lif(_linear_bn(self.fc2_linear, self.fc2_bn, x))
        x = self.fc1_lif(_bn_over_time(self.fc1_bn, self.fc1_conv, x))
        return self.fc2_lif(_bn_over_time(self.fc2_bn, self.fc2_conv, x))


class SpikformerBlock(nn.Module):
    """x = x + SSA(x); x = x + MLP(x) (spike-element-wise residual).  ``norm1``/``norm2``: the official
    blocks' LayerNorms, never called but present in official checkpoints (``layer_norms=True``)."""

    def __init__(self, cfg: SpikformerConfig):
        super().__init__()
        if cfg.layer_norms:
            self.norm1 = nn.LayerNorm(cfg.embed_dim)
        self.attn = SpikformerSSA(cfg.embed_dim, cfg.num_heads, cfg.tau, cfg.attention_scale, cfg.attention_threshold,
                                  cfg.projection, cfg.attention_order)
        if cfg.layer_norms:
            self.norm2 = nn.LayerNorm(cfg.embed_dim)
        self.mlp = SpikformerMLP(cfg.embed_dim, cfg.embed_dim * cfg.mlp_ratio, cfg.tau, cfg.projection)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)  # spikes added to the integer stream
        return x + self.mlp(x)


class Spikformer(nn.Module):
    """The official ``Spikformer``: ``patch_embed`` (SPS), ``block`` list, ``head`` Linear on the mean over
    tokens and T of the integer stream."""

    arch_family = "spikformer"

    def __init__(self, cfg: SpikformerConfig):
        super().__init__()
        self.cfg = cfg
        self.T = cfg.T
        self.patch_embed = SPS(cfg)
        self.block = nn.ModuleList([SpikformerBlock(cfg) for _ in range(cfg.depth)])
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)

    def to_time_major(self, x: torch.Tensor) -> torch.Tensor:
        return image_over_time(x, self.T)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for blk in self.block:
            x = blk(x)
        return x.mean(2) if self.cfg.projection == "linear" else x.flatten(3).mean(3)  # [T, B, D]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(self.to_time_major(x)).mean(0))


@dataclass
class SEWConfig:
    num_classes: int = 10
    in_channels: int = 1
    img_size: int = 8
    channels: int = 16
    num_blocks: int = 2
    connect_f: str = "ADD"  # ADD, AND or IAND
    T: int = 4
    tau: float = 2.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SEWConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class SEWBlock(nn.Module):
    """out = SN(BN(conv2(SN(BN(conv1(x)))))) joined with the identity by connect_f."""

    def __init__(self, channels: int, connect_f: str, tau: float):
        super().__init__()
        if connect_f not in ("ADD", "AND", "IAND"):
            raise ValueError(f"connect_f must be ADD, AND or IAND, not {connect_f!r}")
        self.connect_f = connect_f
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.sn1 = MultiStepLIF(tau=tau)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.sn2 = MultiStepLIF(tau=tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.sn1(_bn_over_time(self.bn1, self.conv1, x))
        out = self.sn2(_bn_over_time(self.bn2, self.conv2, out))
        if self.connect_f == "ADD":
            return out + x
        if self.connect_f == "AND":
            return out * x
        return x * (1.0 - out)  # IAND


class SEWResNet(nn.Module):
    """Stem conv-BN-SN, ``num_blocks`` SEW blocks, mean over space and T, Linear head."""

    arch_family = "sew-resnet"

    def __init__(self, cfg: SEWConfig):
        super().__init__()
        self.cfg = cfg
        self.T = cfg.T
        self.conv = nn.Conv2d(cfg.in_channels, cfg.channels, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(cfg.channels)
        self.sn = MultiStepLIF(tau=cfg.tau)
        self.layer = nn.ModuleList([SEWBlock(cfg.channels, cfg.connect_f, cfg.tau) for _ in range(cfg.num_blocks)])
        self.fc = nn.Linear(cfg.channels, cfg.num_classes)

    def to_time_major(self, x: torch.Tensor) -> torch.Tensor:
        return image_over_time(x, self.T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sn(_bn_over_time(self.bn, self.conv, self.to_time_major(x)))
        for blk in self.layer:
            x = blk(x)
        return self.fc(x.flatten(3).mean(3).mean(0))
