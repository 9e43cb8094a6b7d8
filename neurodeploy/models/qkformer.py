"""QKFormer (Zhou et al., NeurIPS 2024; zhouchenlin2096/QKFormer), rebuilt with the official module names
so that official checkpoints load with ``strict=True``, and with the official files' tensor operations in
the same layout so that logits agree bit for bit (benchmarks/bench_official.py).

Hierarchical, three stages (shared/reference/spiking-transformers.md section 5):

* ``patch_embed1`` (``PatchEmbedInit``) -> ``stage1`` (Q-K token-attention blocks, width D/4) ->
  ``patch_embed2`` (``PatchEmbeddingStage``) -> ``stage2`` (Q-K blocks, D/2) -> ``patch_embed3`` ->
  ``stage3`` (Spikformer-style SSA blocks, D) -> token and time mean -> ``head``.
* Spike-element-wise residuals (``x = x + attn(x)``, ``x = x + mlp(x)``, each branch ending in a LIF): the
  stream holds integers.  Patch embeddings add a deformed shortcut ``LIF(BN(conv1x1 s2(x)))``.
* Q-K token attention: binary Q, K = SN(BN(Conv1d(x))); ``A[h, n] = attn_lif(sum of Q over the channels
  of head h)`` (V_th 0.5: an OR over the head's channels); ``out = A * K``; then proj Conv1d, BN, proj_lif.
* Two codings: ``coding="cifar"`` (``cifar{10,100}/model.py``: max-pool in proj4, stage-3 module ``ssa``, MLP
  ``mlp{1,2}_*``, heads fixed to 8, one block in stage 2, ``depth - 2`` in stage 3) and ``"imagenet"``
  (``imagenet/qkformer.py``: ``PatchEmbedInit`` with two max-pools and ``proj2``, pools in proj3, module
  ``attn``, MLP ``fc{1,2}_*``, two blocks in stage 2, ``depth - 3`` in stage 3).  Every max-pool acts on
  the real BN output before its LIF.
* ``num_stages`` < 3 keeps only the first stages (the digits-size model: one Q-K stage, which deploys).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .neuron import MultiStepLIF
from .spikingformer import image_over_time


@dataclass
class QKFormerConfig:
    num_classes: int = 10
    in_channels: int = 1
    img_size: int = 8
    embed_dim: int = 128  # D: stage widths D/4, D/2, D
    depth: int = 4  # L: all blocks (stage 3 holds L - 2 (cifar) or L - 3 (imagenet))
    num_heads: int = 8
    mlp_ratio: int = 4
    T: int = 4
    tau: float = 2.0
    coding: str = "cifar"
    num_stages: int = 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "QKFormerConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)


def _tb(x: torch.Tensor, T: int, B: int) -> torch.Tensor:
    return x.reshape(T, B, *x.shape[1:]).contiguous()


class MLP(nn.Module):
    """conv1x1 -> BN -> LIF -> conv1x1 -> BN -> LIF (names ``mlp{1,2}_*`` cifar, ``fc{1,2}_*`` imagenet)."""

    def __init__(self, dim: int, hidden: int, tau: float, prefix: str):
        super().__init__()
        self.prefix = prefix
        self.c_hidden = hidden
        for i, (a, b) in enumerate(((dim, hidden), (hidden, dim)), start=1):
            setattr(self, f"{prefix}{i}_conv", nn.Conv2d(a, b, kernel_size=1, stride=1))
            setattr(self, f"{prefix}{i}_bn", nn.BatchNorm2d(b))
            setattr(self, f"{prefix}{i}_lif", MultiStepLIF(tau=tau))

    def layer(self, i: int, part: str) -> nn.Module:
        return getattr(self, f"{self.prefix}{i}_{part}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        x = self.layer(1, "bn")(self.layer(1, "conv")(x.flatten(0, 1))).reshape(T, B, self.c_hidden, H, W).contiguous()
        x = self.layer(1, "lif")(x)
        x = self.layer(2, "bn")(self.layer(2, "conv")(x.flatten(0, 1))).reshape(T, B, C, H, W).contiguous()
        return self.layer(2, "lif")(x)


class Token_QK_Attention(nn.Module):
    """out = proj_lif(BN(proj(OR_{c in head}(Q) * K))); binary throughout, linear in tokens."""

    def __init__(self, dim: int, num_heads: int, tau: float = 2.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads = dim, num_heads
        for n in ("q", "k"):
            setattr(self, f"{n}_conv", nn.Conv1d(dim, dim, kernel_size=1, stride=1, bias=False))
            setattr(self, f"{n}_bn", nn.BatchNorm1d(dim))
            setattr(self, f"{n}_lif", MultiStepLIF(tau=tau))
        self.attn_lif = MultiStepLIF(tau=tau, v_threshold=0.5)
        self.proj_conv = nn.Conv1d(dim, dim, kernel_size=1, stride=1)
        self.proj_bn = nn.BatchNorm1d(dim)
        self.proj_lif = MultiStepLIF(tau=tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        x = x.flatten(3)
        N, h = H * W, self.num_heads
        xf = x.flatten(0, 1)
        q = self.q_lif(self.q_bn(self.q_conv(xf)).reshape(T, B, C, N)).unsqueeze(2).reshape(T, B, h, C // h, N)
        k = self.k_lif(self.k_bn(self.k_conv(xf)).reshape(T, B, C, N)).unsqueeze(2).reshape(T, B, h, C // h, N)
        attn = self.attn_lif(torch.sum(q, dim=3, keepdim=True))  # [T, B, h, 1, N]: OR over the head's channels
        x = torch.mul(attn, k).flatten(2, 3)
        x = self.proj_bn(self.proj_conv(x.flatten(0, 1))).reshape(T, B, C, H, W)
        return self.proj_lif(x)


class Spiking_Self_Attention(nn.Module):
    """Stage-3 SSA: proj_lif(BN(proj(attn_lif(Q (K^T V) * 0.125)))) with binary Q, K, V."""

    def __init__(self, dim: int, num_heads: int, tau: float = 2.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.scale = dim, num_heads, 0.125
        for n in ("q", "k", "v"):
            setattr(self, f"{n}_conv", nn.Conv1d(dim, dim, kernel_size=1, stride=1, bias=False))
            setattr(self, f"{n}_bn", nn.BatchNorm1d(dim))
            setattr(self, f"{n}_lif", MultiStepLIF(tau=tau))
        self.attn_lif = MultiStepLIF(tau=tau, v_threshold=0.5)
        self.proj_conv = nn.Conv1d(dim, dim, kernel_size=1, stride=1)
        self.proj_bn = nn.BatchNorm1d(dim)
        self.proj_lif = MultiStepLIF(tau=tau)
        self.qkv_mp = nn.MaxPool1d(4)  # defined by the official code, never called

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        x = x.flatten(3)
        N, h = H * W, self.num_heads
        xf = x.flatten(0, 1)

        def heads(n):
            y = getattr(self, f"{n}_bn")(getattr(self, f"{n}_conv")(xf)).reshape(T, B, C, N).contiguous()
            y = getattr(self, f"{n}_lif")(y)
            return y.transpose(-1, -2).reshape(T, B, N, h, C // h).permute(0, 1, 3, 2, 4).contiguous()

        q, k, v = heads("q"), heads("k"), heads("v")
        x = (q @ (k.transpose(-2, -1) @ v)) * self.scale
        x = self.attn_lif(x.transpose(3, 4).reshape(T, B, C, N).contiguous()).flatten(0, 1)
        return self.proj_lif(self.proj_bn(self.proj_conv(x))).reshape(T, B, C, W, H)  # (W, H) as the official


class TokenSpikingTransformer(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, tau: float, mlp_prefix: str):
        super().__init__()
        self.tssa = Token_QK_Attention(dim, num_heads, tau)
        self.mlp = MLP(dim, dim * mlp_ratio, tau, mlp_prefix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.tssa(x)
        return x + self.mlp(x)


class SpikingTransformer(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, tau: float, coding: str):
        super().__init__()
        self.attn_name = "ssa" if coding == "cifar" else "attn"
        setattr(self, self.attn_name, Spiking_Self_Attention(dim, num_heads, tau))
        self.mlp = MLP(dim, dim * mlp_ratio, tau, "mlp" if coding == "cifar" else "fc")

    @property
    def attention(self) -> Spiking_Self_Attention:
        return getattr(self, self.attn_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(x)
        return x + self.mlp(x)


class PatchEmbedInit(nn.Module):
    """cifar: proj(3x3) -> LIF = s; proj1(3x3) -> LIF; + res(1x1, s1)(s) -> LIF.  imagenet: proj -> pool -> LIF = s;
    proj1 -> pool -> LIF -> proj2 -> LIF; + res(1x1, s2)(s) -> LIF.  Pools act on the BN output."""

    def __init__(self, c_in: int, D: int, tau: float, coding: str):
        super().__init__()
        self.coding = coding
        self.proj_conv = nn.Conv2d(c_in, D // 2, 3, 1, 1, bias=False)
        self.proj_bn = nn.BatchNorm2d(D // 2)
        if coding == "imagenet":
            self.proj_maxpool = _pool()
        self.proj_lif = MultiStepLIF(tau=tau)
        self.proj1_conv = nn.Conv2d(D // 2, D, 3, 1, 1, bias=False)
        self.proj1_bn = nn.BatchNorm2d(D)
        if coding == "imagenet":
            self.proj1_maxpool = _pool()
        self.proj1_lif = MultiStepLIF(tau=tau)
        if coding == "imagenet":
            self.proj2_conv = nn.Conv2d(D, D, 3, 1, 1, bias=False)
            self.proj2_bn = nn.BatchNorm2d(D)
            self.proj2_lif = MultiStepLIF(tau=tau)
        self.proj_res_conv = nn.Conv2d(D // 2, D, 1, 2 if coding == "imagenet" else 1, 0, bias=False)
        self.proj_res_bn = nn.BatchNorm2d(D)
        self.proj_res_lif = MultiStepLIF(tau=tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        x = self.proj_bn(self.proj_conv(x.flatten(0, 1)))
        if self.coding == "imagenet":
            x = self.proj_maxpool(x)
        x = self.proj_lif(_tb(x, T, B)).flatten(0, 1)
        if self.coding == "imagenet":
            x = x.contiguous()
        x_feat = x
        x = self.proj1_bn(self.proj1_conv(x))
        if self.coding == "imagenet":
            x = self.proj1_lif(_tb(self.proj1_maxpool(x), T, B)).flatten(0, 1).contiguous()
            x = self.proj2_lif(_tb(self.proj2_bn(self.proj2_conv(x)), T, B))
        else:
            x = self.proj1_lif(x.reshape(T, B, *x.shape[1:]))
        x_feat = self.proj_res_lif(_tb(self.proj_res_bn(self.proj_res_conv(x_feat)), T, B))
        return x + x_feat


class PatchEmbeddingStage(nn.Module):
    """Halves the resolution: main path proj3 (3x3) -> proj4 (3x3), a max-pool on the BN output of proj4
    (cifar) or proj3 (imagenet) before its LIF; deformed shortcut proj_res (1x1, stride 2) -> LIF on the
    (integer) stage input; output main + shortcut."""

    def __init__(self, D: int, tau: float, coding: str):
        super().__init__()
        self.coding = coding
        self.proj3_conv = nn.Conv2d(D // 2, D, 3, 1, 1, bias=False)
        self.proj3_bn = nn.BatchNorm2d(D)
        if coding == "imagenet":
            self.proj3_maxpool = _pool()
        self.proj3_lif = MultiStepLIF(tau=tau)
        self.proj4_conv = nn.Conv2d(D, D, 3, 1, 1, bias=False)
        self.proj4_bn = nn.BatchNorm2d(D)
        if coding == "cifar":
            self.proj4_maxpool = _pool()
        self.proj4_lif = MultiStepLIF(tau=tau)
        self.proj_res_conv = nn.Conv2d(D // 2, D, 1, 2, 0, bias=False)
        self.proj_res_bn = nn.BatchNorm2d(D)
        self.proj_res_lif = MultiStepLIF(tau=tau)

    @property
    def pool_name(self) -> str:
        return "proj4_maxpool" if self.coding == "cifar" else "proj3_maxpool"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        x = x.flatten(0, 1).contiguous()
        x_feat = x
        x = self.proj3_bn(self.proj3_conv(x))
        if self.coding == "imagenet":
            x = self.proj3_maxpool(x)
        x = self.proj3_lif(_tb(x, T, B)).flatten(0, 1).contiguous()
        x = self.proj4_bn(self.proj4_conv(x))
        if self.coding == "cifar":
            x = self.proj4_maxpool(x)
        x = self.proj4_lif(_tb(x, T, B))
        x_feat = self.proj_res_lif(_tb(self.proj_res_bn(self.proj_res_conv(x_feat)), T, B))
        return x + x_feat


class QKFormer(nn.Module):
    """The official ``spiking_transformer`` (cifar) / ``hierarchical_spiking_transformer`` (imagenet)."""

    arch_family = "qkformer"

    def __init__(self, cfg: QKFormerConfig):
        super().__init__()
        if cfg.coding not in ("cifar", "imagenet"):
            raise ValueError(f"coding must be 'cifar' or 'imagenet', not {cfg.coding!r}")
        self.cfg = cfg
        self.T = cfg.T
        D, tau, coding, S = cfg.embed_dim, cfg.tau, cfg.coding, cfg.num_stages
        mlp = "mlp" if coding == "cifar" else "fc"
        n2 = 1 if coding == "cifar" else 2
        n3 = cfg.depth - (2 if coding == "cifar" else 3)
        embeds = {1: PatchEmbedInit(cfg.in_channels, D // 4, tau, coding)}
        stages = {1: nn.ModuleList([TokenSpikingTransformer(D // 4, cfg.num_heads, cfg.mlp_ratio, tau, mlp)])}
        if S >= 2:
            embeds[2] = PatchEmbeddingStage(D // 2, tau, coding)
            stages[2] = nn.ModuleList([TokenSpikingTransformer(D // 2, cfg.num_heads, cfg.mlp_ratio, tau, mlp)
                                       for _ in range(n2)])
        if S >= 3:
            embeds[3] = PatchEmbeddingStage(D, tau, coding)
            stages[3] = nn.ModuleList([SpikingTransformer(D, cfg.num_heads, cfg.mlp_ratio, tau, coding)
                                       for _ in range(n3)])
        for i, m in embeds.items():  # the official registration order: all patch embeddings, then all stages
            setattr(self, f"patch_embed{i}", m)
        for i, m in stages.items():
            setattr(self, f"stage{i}", m)
        self.head = nn.Linear(D // 4 if S == 1 else D // 2 if S == 2 else D, cfg.num_classes)

    def stages(self) -> list[tuple[str, nn.Module, str, nn.ModuleList]]:
        return [(f"patch_embed{i}", getattr(self, f"patch_embed{i}"), f"stage{i}", getattr(self, f"stage{i}"))
                for i in range(1, self.cfg.num_stages + 1)]

    def to_time_major(self, x: torch.Tensor) -> torch.Tensor:
        return image_over_time(x, self.T)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for _, embed, _, blocks in self.stages():
            x = embed(x)
            for blk in blocks:
                x = blk(x)
        return x.flatten(3).mean(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(self.to_time_major(x)).mean(0))
