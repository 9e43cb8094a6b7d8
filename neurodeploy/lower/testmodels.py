"""Small seeded Spikingformer models with enough spiking activity for lowering tests (no checkpoint)."""
from __future__ import annotations

import torch


def tiny_spikingformer(seed: int = 0, embed_dim: int = 16, heads: int = 2, depth: int = 1, classes: int = 3):
    """An untrained Spikingformer (8x8 digits-like input) whose BatchNorms are re-drawn so that every LIF,
    including the attention LIF, spikes on random inputs in [0, 1]."""
    from ..models.registry import build_model
    torch.manual_seed(seed)
    cfg = {"num_classes": classes, "in_channels": 1, "img_size": 8, "embed_dim": embed_dim, "depth": depth,
           "num_heads": heads, "mlp_ratio": 2, "T": 4, "tau": 2.0,
           "tokenizer_channels": [embed_dim // 4, embed_dim // 2, embed_dim], "tokenizer_pools": [False, True],
           "tokenizer_naming": "cifar", "attention_order": "kv_first"}
    model = build_model("spikingformer-digits", cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.3)
                m.weight.copy_(torch.rand(n, generator=g) * 1.5 + 0.8)
                m.bias.copy_(torch.rand(n, generator=g) * 1.0 + (0.6 if "attn" in name or "mlp" in name else 0.3))
    return model.eval()
