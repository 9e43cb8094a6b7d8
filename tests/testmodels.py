"""Small seeded Spikingformer models with enough spiking activity for lowering tests (no checkpoint)."""
from __future__ import annotations

import torch
from neurodeploy.lower.balance import balance_network
from neurodeploy.lower.fixed_point import EXCITATORY
from neurodeploy.lower.network import Attention, LoweredNetwork, Population, Synapse
from neurodeploy.models.registry import build_model


def tiny_spikingformer(seed: int = 0, embed_dim: int = 16, heads: int = 2, depth: int = 1, classes: int = 3):
    """An untrained Spikingformer (8x8 digits-like input) whose BatchNorms are re-drawn so that every LIF,
    including the attention LIF, spikes on random inputs in [0, 1]."""
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


def active_cifar10(img_size: int):
    """Full-depth spikingformer-cifar10-4-384 with random seed-0 weights at ``img_size`` input, BatchNorm weights
    x8: with PyTorch's default init the random network is silent past its first two layers."""
    torch.manual_seed(0)
    model = build_model("spikingformer-cifar10-4-384", {"img_size": img_size}).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.weight.mul_(8.0)
    return model


def tiny_attention_net(dim: int = 4, heads: int = 2, tokens: int = 4, T: int = 3, weight: int = 3):
    """A hand-made lowered network around one attention op (process form): spike inputs qin, kin, vin
    ([dim, 1, tokens]) relayed 1:1 by threshold neurons q, k and v (v through one more relay, so the q and k
    paths need a balance delay), the attention into ``attn`` (a LIF with tau 2 and a bias), plus a direct
    group from qin into ``attn`` (a second, shorter path to re-balance).  Delay-balanced for T steps."""
    import numpy as np

    shape = (dim, 1, tokens)
    n = dim * tokens
    eye = np.eye(n, dtype=np.int64)
    net = LoweredNetwork()
    for name in ("qin", "kin", "vin"):
        net.populations.append(Population(name, shape, kind="input", input_kind="spikes"))
    relay = dict(du=4095, dv=4096, vth=0)
    for name in ("q", "k", "v0", "v"):
        net.populations.append(Population(name, shape, **relay))
    net.populations.append(Population("attn", shape, du=4095, dv=2048, vth=12, bias_mant=40, bias_exp=1))
    for src, dst in (("qin", "q"), ("kin", "k"), ("vin", "v0"), ("v0", "v")):
        net.synapses.append(Synapse(f"{dst}.syn", src, dst, "dense", eye.copy(), sign_mode=EXCITATORY))
    rng = np.random.default_rng(5)
    net.synapses.append(Synapse("attn<-qin", "qin", "attn", "dense", 2 * rng.integers(-3, 4, (n, n)),
                                weight_exp=1))
    net.attention.append(Attention("attention", "q", "k", "v", "attn", heads=heads, dim=dim, tokens=tokens,
                                   weight=weight))
    net.outputs = ["attn"]
    net.metadata["time_steps"] = T
    balance_network(net, T)
    net.validate()
    return net
