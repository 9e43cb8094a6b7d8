"""Spike-driven Transformer V1 (Yao et al., NeurIPS 2023; BICLab/Spike-Driven-Transformer), rebuilt with the
official module names so that official checkpoints load with ``strict=True``, and with the official
file's tensor operations in the same layout so that logits agree bit for bit (benchmarks/bench_official.py).

Structure (shared/reference/spiking-transformers.md section 3):

* ``MS_SPS`` tokenizer: stages ``conv3x3 -> BN -> LIF [-> MaxPool on spikes]`` (stages 0-2), then stage 3
  ``conv3 -> BN3 [-> MaxPool3 on the real BN output]`` = ``x_feat``; ``LIF3 -> rpe_conv -> rpe_bn``; output
  ``rpe + x_feat``: a real-valued membrane stream (no LIF).  ``pooling_stat`` says which stages pool.
* Blocks with membrane shortcuts: ``U += BN(proj(SDSA(SN(U))))``; ``U += BN(fc2(SN(BN(fc1(SN(U))))))``.
* SDSA: binary Q, K, V = SN(BN(conv1x1(s))); ``kv = sum over tokens of K * V`` per channel;
  ``mask = talking_heads_lif(kv)`` (V_th 0.5: fires iff the count is >= 1, an OR over tokens);
  ``out = Q * mask``.  ``talking_heads`` (a Conv1d heads x heads) is in the checkpoints but never called,
  nor is ``attn_lif``.
* Head: token mean of the stream -> ``head_lif`` -> Linear -> mean over T.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .neuron import MultiStepLIF
from .spikingformer import image_over_time


@dataclass
class SDTConfig:
    """One Spike-driven Transformer V1 variant (``conf/*.yml`` of the official repository)."""

    num_classes: int = 10
    in_channels: int = 1
    img_size: int = 8
    embed_dim: int = 64
    depth: int = 1
    num_heads: int = 8
    mlp_ratio: int = 4
    T: int = 4
    tau: float = 2.0
    pooling_stat: str = "0010"  # one character per tokenizer stage: "1" = MaxPool(3, 2, 1) after it
    attention_threshold: float = 0.5  # talking_heads_lif

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SDTConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class MS_SPS(nn.Module):
    """The official tokenizer (module names ``proj_conv``, ``proj_conv1..3``, ``maxpool``, ``maxpool1..3``,
    ``rpe_conv``).  Every MaxPool exists (no parameters); ``pooling_stat`` decides which are applied."""

    def __init__(self, cfg: SDTConfig):
        super().__init__()
        D = cfg.embed_dim
        stat = cfg.pooling_stat
        if len(stat) != 4 or set(stat) - {"0", "1"}:
            raise ValueError(f"pooling_stat must be 4 characters 0/1, got {stat!r}")
        self.pooling_stat = stat
        ch = [cfg.in_channels, D // 8, D // 4, D // 2, D]
        for i in range(4):
            sfx = "" if i == 0 else str(i)
            setattr(self, f"proj_conv{sfx}", nn.Conv2d(ch[i], ch[i + 1], 3, 1, 1, bias=False))
            setattr(self, f"proj_bn{sfx}", nn.BatchNorm2d(ch[i + 1]))
            setattr(self, f"proj_lif{sfx}", MultiStepLIF(tau=cfg.tau))
            setattr(self, f"maxpool{sfx}", nn.MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False))
        self.rpe_conv = nn.Conv2d(D, D, 3, 1, 1, bias=False)
        self.rpe_bn = nn.BatchNorm2d(D)
        self.rpe_lif = MultiStepLIF(tau=cfg.tau)  # defined by the official code, never called

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        x = x.flatten(0, 1)
        for i in range(3):
            sfx = "" if i == 0 else str(i)
            x = getattr(self, f"proj_bn{sfx}")(getattr(self, f"proj_conv{sfx}")(x))
            x = getattr(self, f"proj_lif{sfx}")(x.reshape(T, B, *x.shape[1:]).contiguous()).flatten(0, 1).contiguous()
            if self.pooling_stat[i] == "1":
                x = getattr(self, f"maxpool{sfx}")(x)
        x = self.proj_bn3(self.proj_conv3(x))
        if self.pooling_stat[3] == "1":
            x = self.maxpool3(x)  # on the real BN output (membrane), not on spikes
        x_feat = x
        x = self.proj_lif3(x.reshape(T, B, *x.shape[1:]).contiguous()).flatten(0, 1).contiguous()
        x = self.rpe_bn(self.rpe_conv(x))
        return (x + x_feat).reshape(T, B, *x.shape[1:]).contiguous()


class MS_SSA_Conv(nn.Module):
    """Spike-driven self-attention (SDSA) in a membrane-shortcut branch: U + BN(proj(Q * SN(sum_N K*V)))."""

    def __init__(self, dim: int, num_heads: int, tau: float = 2.0, attn_threshold: float = 0.5):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads = dim, num_heads
        for n in ("q", "k", "v"):
            setattr(self, f"{n}_conv", nn.Conv2d(dim, dim, kernel_size=1, stride=1, bias=False))
            setattr(self, f"{n}_bn", nn.BatchNorm2d(dim))
            setattr(self, f"{n}_lif", MultiStepLIF(tau=tau))
        self.attn_lif = MultiStepLIF(tau=tau, v_threshold=0.5)  # defined by the official code, never called
        self.talking_heads = nn.Conv1d(num_heads, num_heads, kernel_size=1, stride=1, bias=False)  # never called
        self.talking_heads_lif = MultiStepLIF(tau=tau, v_threshold=attn_threshold)
        self.proj_conv = nn.Conv2d(dim, dim, kernel_size=1, stride=1)
        self.proj_bn = nn.BatchNorm2d(dim)
        self.shortcut_lif = MultiStepLIF(tau=tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        N, h = H * W, self.num_heads
        identity = x
        s = self.shortcut_lif(x).flatten(0, 1)

        def qkv(n):
            y = getattr(self, f"{n}_bn")(getattr(self, f"{n}_conv")(s)).reshape(T, B, C, H, W).contiguous()
            y = getattr(self, f"{n}_lif")(y)
            return y.flatten(3).transpose(-1, -2).reshape(T, B, N, h, C // h).permute(0, 1, 3, 2, 4).contiguous()

        q, k, v = qkv("q"), qkv("k"), qkv("v")
        kv = self.talking_heads_lif(k.mul(v).sum(dim=-2, keepdim=True))  # [T, B, h, 1, d]: OR over tokens
        x = q.mul(kv).transpose(3, 4).reshape(T, B, C, H, W).contiguous()
        x = self.proj_bn(self.proj_conv(x.flatten(0, 1))).reshape(T, B, C, H, W).contiguous()
        return x + identity


class MS_MLP_Conv(nn.Module):
    """U + BN(fc2(SN(BN(fc1(SN(U)))))); with hidden == dim the official code adds an inner shortcut."""

    def __init__(self, dim: int, hidden: int, tau: float = 2.0):
        super().__init__()
        self.res = dim == hidden
        self.c_hidden = hidden
        self.fc1_conv = nn.Conv2d(dim, hidden, kernel_size=1, stride=1)
        self.fc1_bn = nn.BatchNorm2d(hidden)
        self.fc1_lif = MultiStepLIF(tau=tau)
        self.fc2_conv = nn.Conv2d(hidden, dim, kernel_size=1, stride=1)
        self.fc2_bn = nn.BatchNorm2d(dim)
        self.fc2_lif = MultiStepLIF(tau=tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        identity = x
        x = self.fc1_bn(self.fc1_conv(self.fc1_lif(x).flatten(0, 1))).reshape(T, B, self.c_hidden, H, W).contiguous()
        if self.res:
            x = identity + x
            identity = x
        x = self.fc2_bn(self.fc2_conv(self.fc2_lif(x).flatten(0, 1))).reshape(T, B, C, H, W).contiguous()
        return x + identity


class MS_Block_Conv(nn.Module):
    def __init__(self, cfg: SDTConfig):
        super().__init__()
        self.attn = MS_SSA_Conv(cfg.embed_dim, cfg.num_heads, cfg.tau, cfg.attention_threshold)
        self.mlp = MS_MLP_Conv(cfg.embed_dim, cfg.embed_dim * cfg.mlp_ratio, cfg.tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.attn(x))


class SpikeDrivenTransformer(nn.Module):
    """The official ``sdt`` model (``spike_mode='lif'``, ``TET=False``, ``dvs_mode=False``)."""

    arch_family = "sdt"

    def __init__(self, cfg: SDTConfig):
        super().__init__()
        self.cfg = cfg
        self.T = cfg.T
        self.patch_embed = MS_SPS(cfg)
        self.block = nn.ModuleList([MS_Block_Conv(cfg) for _ in range(cfg.depth)])
        self.head_lif = MultiStepLIF(tau=cfg.tau)
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)

    def to_time_major(self, x: torch.Tensor) -> torch.Tensor:
        return image_over_time(x, self.T)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for blk in self.block:
            x = blk(x)
        return x.flatten(3).mean(3)  # [T, B, D]: token mean of the real stream

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head_lif(self.forward_features(self.to_time_major(x)))
        return self.head(x).mean(0)
