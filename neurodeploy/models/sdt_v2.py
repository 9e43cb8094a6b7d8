"""Spike-driven Transformer V2 / Meta-SpikeFormer (Yao et al., ICLR 2024; BICLab/Spike-Driven-Transformer-V2,
``classification/models.py``), rebuilt with the official module names so that official checkpoints load with
``strict=True``, and with the official file's tensor operations in the same layout so that logits agree bit
for bit (benchmarks/bench_official.py).

Structure (shared/reference/spiking-transformers.md section 4); every residual is a membrane shortcut (real
stream, each branch starts with a LIF):

* ``MS_DownSampling``: ``[LIF ->] conv (with bias) -> BN``; only ``downsample1_1`` (the encoder, 7x7 stride 2
  on the real image) has no LIF.  ``downsample4`` has stride 1.
* Conv stages: ``downsample1_1, ConvBlock1_1, downsample1_2, ConvBlock1_2, downsample2, ConvBlock2_1,
  ConvBlock2_2``.  ``MS_ConvBlock(d)``: ``x = SepConv(x) + x``; ``x = x + BN(conv3x3(SN(BN(conv3x3_{d->4d}(SN(x))))))``
  with ``SepConv = LIF -> pw1x1 (d -> 2d) -> BN -> LIF -> dw7x7 -> pw1x1 (2d -> d) -> BN`` (no LIF between the
  depthwise and the second pointwise conv).
* Transformer stages ``downsample3, block3 x 6, downsample4, block4 x 2``.  ``MS_Block``: ``x = x + Attn(x)``;
  ``x = x + BN1d(Conv1d(SN(BN1d(Conv1d(SN(x))))))``.
* Attention (``MS_Attention_RepConv_qkv_id``): ``s = head_lif(x)``; Q, K, V = SN(BN(RepConv(s))) with
  ``RepConv = conv1x1 -> BNAndPad (BN, then a 1-pixel border filled with BN(0)) -> dw3x3 (valid) -> pw1x1 -> BN``;
  ``x = Q (K^T V) * 0.125`` per head, ``attn_lif`` (V_th 0.5), then ``proj_conv`` (RepConv + BN).  No softmax,
  no LayerNorm, no max-pool.
* Head: token mean of the stream -> ``lif`` -> ``head`` (Linear) -> mean over T; with ``kd`` the eval output is
  ``(head + head_kd) / 2`` (the official training mode returns the pair for distillation; this rebuild returns
  the mean in both modes, since it has no distillation loss).

The official code holds T as an attribute that defaults to 1 (``main_finetune.py --time_steps``); the published
results (and ``55M_kd_T4.pth``) are at T = 4, which is the default here.

Configurable beyond the official sizes (the digits-size model): ``first_kernel`` (7) and ``strides`` (the five
downsamplings), ``conv_stage2`` (False drops ``downsample2``/``ConvBlock2_*``), ``depths`` (blocks in stages 3
and 4; 0 blocks in stage 4 drops ``downsample4`` too).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .neuron import MultiStepLIF
from .spikingformer import image_over_time


@dataclass
class SDTV2Config:
    """One Meta-SpikeFormer variant (``metaspikformer_8_{384,512,768}`` of ``classification/models.py``)."""

    num_classes: int = 10
    in_channels: int = 1
    img_size: int = 8
    embed_dims: list[int] = field(default_factory=lambda: [16, 32, 32, 32])  # stage widths (stage 1 starts at half)
    depths: list[int] = field(default_factory=lambda: [1, 0])  # blocks in stage 3 and stage 4 (official 6, 2)
    strides: list[int] = field(default_factory=lambda: [1, 2, 2, 1, 1])  # downsample1_1, 1_2, 2, 3, 4
    first_kernel: int = 3  # downsample1_1's kernel (official 7, padding 3)
    conv_stage2: bool = False  # downsample2 + ConvBlock2_1/2_2 (official True)
    num_heads: int = 4
    mlp_ratio: int = 4
    T: int = 4
    tau: float = 2.0
    kd: bool = False  # the distillation head head_kd (KD checkpoints hold head_kd.*)

    @property
    def embed_dim(self) -> int:
        """The width of the last stage (what the head reads)."""
        return self.embed_dims[3] if self.depths[1] else self.embed_dims[2]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SDTV2Config":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def official_config(dims: list[int], kd: bool = False) -> SDTV2Config:
    """``metaspikformer_8_*``: 224x224 RGB, 1000 classes, 8 heads, mlp 4, 6 + 2 blocks, T 4."""
    return SDTV2Config(num_classes=1000, in_channels=3, img_size=224, embed_dims=list(dims), depths=[6, 2],
                       strides=[2, 2, 2, 2, 1], first_kernel=7, conv_stage2=True, num_heads=8, mlp_ratio=4, T=4,
                       tau=2.0, kd=kd)


def _tb(x: torch.Tensor, T: int, B: int) -> torch.Tensor:
    return x.reshape(T, B, *x.shape[1:]).contiguous()


class BNAndPadLayer(nn.Module):
    """BatchNorm2d, then a ``pad_pixels`` border filled with the value BN gives a zero input (running
    statistics, as the official layer computes it in both modes)."""

    def __init__(self, pad_pixels: int, num_features: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features)
        self.pad_pixels = pad_pixels

    def pad_values(self) -> torch.Tensor:
        bn = self.bn
        return bn.bias.detach() - bn.running_mean * bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn(x)
        p = self.pad_pixels
        if p > 0:
            out = F.pad(out, [p] * 4)
            v = self.pad_values().view(1, -1, 1, 1)
            out[:, :, 0:p, :] = v
            out[:, :, -p:, :] = v
            out[:, :, :, 0:p] = v
            out[:, :, :, -p:] = v
        return out


class RepConv(nn.Module):
    """``body = [conv1x1 (C -> C), BNAndPad(1), [dw3x3 valid, pw1x1 (C -> C_out), BN]]`` (keys ``body.0``,
    ``body.1.bn``, ``body.2.{0,1,2}``).  In eval mode, with the BN after it, one zero-padded 3x3 conv with bias
    on its input (the exporter folds it: docs/nir.md, "Spike-driven Transformer V2")."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        c = in_channels
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 1, 1, 0, bias=False),
            BNAndPadLayer(pad_pixels=1, num_features=c),
            nn.Sequential(nn.Conv2d(c, c, 3, 1, 0, groups=c, bias=False),
                          nn.Conv2d(c, out_channels, 1, 1, 0, bias=False),
                          nn.BatchNorm2d(out_channels)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SepConv(nn.Module):
    """Inverted separable conv: LIF -> pw1x1 (d -> 2d) -> BN -> LIF -> dw7x7 -> pw1x1 (2d -> d) -> BN."""

    def __init__(self, dim: int, tau: float, expansion_ratio: int = 2, kernel_size: int = 7, padding: int = 3):
        super().__init__()
        med = int(expansion_ratio * dim)
        self.lif1 = MultiStepLIF(tau=tau)
        self.pwconv1 = nn.Conv2d(dim, med, kernel_size=1, stride=1, bias=False)
        self.bn1 = nn.BatchNorm2d(med)
        self.lif2 = MultiStepLIF(tau=tau)
        self.dwconv = nn.Conv2d(med, med, kernel_size=kernel_size, padding=padding, groups=med, bias=False)
        self.pwconv2 = nn.Conv2d(med, dim, kernel_size=1, stride=1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        x = self.lif1(x)
        x = self.bn1(self.pwconv1(x.flatten(0, 1))).reshape(T, B, -1, H, W)
        x = self.lif2(x)
        x = self.dwconv(x.flatten(0, 1))
        return self.bn2(self.pwconv2(x)).reshape(T, B, -1, H, W)


class MS_ConvBlock(nn.Module):
    def __init__(self, dim: int, mlp_ratio: int, tau: float):
        super().__init__()
        self.mlp_ratio = mlp_ratio
        self.Conv = SepConv(dim, tau)
        self.lif1 = MultiStepLIF(tau=tau)
        self.conv1 = nn.Conv2d(dim, dim * mlp_ratio, kernel_size=3, padding=1, groups=1, bias=False)
        self.bn1 = nn.BatchNorm2d(dim * mlp_ratio)
        self.lif2 = MultiStepLIF(tau=tau)
        self.conv2 = nn.Conv2d(dim * mlp_ratio, dim, kernel_size=3, padding=1, groups=1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        x = self.Conv(x) + x
        x_feat = x
        x = self.bn1(self.conv1(self.lif1(x).flatten(0, 1))).reshape(T, B, self.mlp_ratio * C, H, W)
        x = self.bn2(self.conv2(self.lif2(x).flatten(0, 1))).reshape(T, B, C, H, W)
        return x_feat + x


class MS_MLP(nn.Module):
    """Token-wise Conv1d + BatchNorm1d: ``BN(fc2(SN(BN(fc1(SN(x))))))`` (the residual add is in the block)."""

    def __init__(self, dim: int, hidden: int, tau: float):
        super().__init__()
        self.fc1_conv = nn.Conv1d(dim, hidden, kernel_size=1, stride=1)
        self.fc1_bn = nn.BatchNorm1d(hidden)
        self.fc1_lif = MultiStepLIF(tau=tau)
        self.fc2_conv = nn.Conv1d(hidden, dim, kernel_size=1, stride=1)
        self.fc2_bn = nn.BatchNorm1d(dim)
        self.fc2_lif = MultiStepLIF(tau=tau)
        self.c_hidden = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        N = H * W
        x = self.fc1_lif(x.flatten(3))
        x = self.fc1_bn(self.fc1_conv(x.flatten(0, 1))).reshape(T, B, self.c_hidden, N).contiguous()
        x = self.fc2_lif(x)
        return self.fc2_bn(self.fc2_conv(x.flatten(0, 1))).reshape(T, B, C, H, W).contiguous()


class MS_Attention_RepConv_qkv_id(nn.Module):
    def __init__(self, dim: int, num_heads: int, tau: float):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads = dim, num_heads
        self.scale = 0.125
        self.head_lif = MultiStepLIF(tau=tau)
        self.q_conv = nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim))
        self.k_conv = nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim))
        self.v_conv = nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim))
        self.q_lif = MultiStepLIF(tau=tau)
        self.k_lif = MultiStepLIF(tau=tau)
        self.v_lif = MultiStepLIF(tau=tau)
        self.attn_lif = MultiStepLIF(tau=tau, v_threshold=0.5)
        self.proj_conv = nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim))

    def _heads(self, lif: nn.Module, y: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = y.shape
        y = lif(y).flatten(3)
        return y.transpose(-1, -2).reshape(T, B, H * W, self.num_heads, C // self.num_heads).permute(0, 1, 3, 2, 4) \
            .contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        N = H * W
        x = self.head_lif(x)
        q = self.q_conv(x.flatten(0, 1)).reshape(T, B, C, H, W)
        k = self.k_conv(x.flatten(0, 1)).reshape(T, B, C, H, W)
        v = self.v_conv(x.flatten(0, 1)).reshape(T, B, C, H, W)
        q, k, v = self._heads(self.q_lif, q), self._heads(self.k_lif, k), self._heads(self.v_lif, v)
        x = k.transpose(-2, -1) @ v
        x = (q @ x) * self.scale
        x = x.transpose(3, 4).reshape(T, B, C, N).contiguous()
        x = self.attn_lif(x).reshape(T, B, C, H, W)
        return self.proj_conv(x.flatten(0, 1)).reshape(T, B, C, H, W)


class MS_Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, tau: float):
        super().__init__()
        self.attn = MS_Attention_RepConv_qkv_id(dim, num_heads, tau)
        self.mlp = MS_MLP(dim, int(dim * mlp_ratio), tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class MS_DownSampling(nn.Module):
    def __init__(self, in_channels: int, embed_dims: int, kernel_size: int, stride: int, padding: int,
                 first_layer: bool, tau: float):
        super().__init__()
        self.encode_conv = nn.Conv2d(in_channels, embed_dims, kernel_size=kernel_size, stride=stride, padding=padding)
        self.encode_bn = nn.BatchNorm2d(embed_dims)
        if not first_layer:
            self.encode_lif = MultiStepLIF(tau=tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        if hasattr(self, "encode_lif"):
            x = self.encode_lif(x)
        x = self.encode_conv(x.flatten(0, 1))
        return self.encode_bn(x).reshape(T, B, *x.shape[1:]).contiguous()


class SpikeDrivenTransformerV2(nn.Module):
    """The official ``Spiking_vit_MetaFormer`` (module names and registration order kept)."""

    arch_family = "sdtv2"

    def __init__(self, cfg: SDTV2Config):
        super().__init__()
        self.cfg = cfg
        self.T = cfg.T
        d0, d1, d2, d3 = cfg.embed_dims
        s = cfg.strides
        tau, r = cfg.tau, cfg.mlp_ratio
        k = cfg.first_kernel
        self.downsample1_1 = MS_DownSampling(cfg.in_channels, d0 // 2, k, s[0], k // 2, True, tau)
        self.ConvBlock1_1 = nn.ModuleList([MS_ConvBlock(d0 // 2, r, tau)])
        self.downsample1_2 = MS_DownSampling(d0 // 2, d0, 3, s[1], 1, False, tau)
        self.ConvBlock1_2 = nn.ModuleList([MS_ConvBlock(d0, r, tau)])
        c = d0
        if cfg.conv_stage2:
            self.downsample2 = MS_DownSampling(d0, d1, 3, s[2], 1, False, tau)
            self.ConvBlock2_1 = nn.ModuleList([MS_ConvBlock(d1, r, tau)])
            self.ConvBlock2_2 = nn.ModuleList([MS_ConvBlock(d1, r, tau)])
            c = d1
        self.downsample3 = MS_DownSampling(c, d2, 3, s[3], 1, False, tau)
        self.block3 = nn.ModuleList([MS_Block(d2, cfg.num_heads, r, tau) for _ in range(cfg.depths[0])])
        if cfg.depths[1]:
            self.downsample4 = MS_DownSampling(d2, d3, 3, s[4], 1, False, tau)
            self.block4 = nn.ModuleList([MS_Block(d3, cfg.num_heads, r, tau) for _ in range(cfg.depths[1])])
        D = cfg.embed_dim
        self.lif = MultiStepLIF(tau=tau)
        self.head = nn.Linear(D, cfg.num_classes)
        self.kd = cfg.kd
        if cfg.kd:
            self.head_kd = nn.Linear(D, cfg.num_classes)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)

    def stages(self) -> list[tuple[str, nn.Module]]:
        """The modules of forward_features in order: (name, module) for downsamplings and blocks."""
        out = [("downsample1_1", self.downsample1_1), ("ConvBlock1_1.0", self.ConvBlock1_1[0]),
               ("downsample1_2", self.downsample1_2), ("ConvBlock1_2.0", self.ConvBlock1_2[0])]
        if self.cfg.conv_stage2:
            out += [("downsample2", self.downsample2), ("ConvBlock2_1.0", self.ConvBlock2_1[0]),
                    ("ConvBlock2_2.0", self.ConvBlock2_2[0])]
        out.append(("downsample3", self.downsample3))
        out += [(f"block3.{j}", b) for j, b in enumerate(self.block3)]
        if self.cfg.depths[1]:
            out.append(("downsample4", self.downsample4))
            out += [(f"block4.{j}", b) for j, b in enumerate(self.block4)]
        return out

    def to_time_major(self, x: torch.Tensor) -> torch.Tensor:
        return image_over_time(x, self.T)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for _, m in self.stages():
            x = m(x)
        return x.flatten(3).mean(3)  # [T, B, D]: token mean of the real stream

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lif(self.forward_features(self.to_time_major(x)))
        out = self.head(x).mean(0)
        if self.kd:
            return (out + self.head_kd(x).mean(0)) / 2
        return out
