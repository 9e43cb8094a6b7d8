"""The spiking-transformer families other than Spikingformer, at their official sizes: parameter counts
(the official code's module tree; the papers' figures), official state_dict keys and shapes built from
the repositories' naming rules (shared/reference/spiking-transformers.md), strict loading of forged
official-format checkpoints, forward shapes, and the purity verdicts at full size.

Equality of the logits with the official model code (difference 0.0) needs the official checkouts and
SpikingJelly: benchmarks/bench_official.py."""
from __future__ import annotations

import argparse

import pytest
import torch

from neurodeploy import arch_names, build_model, load_model
from neurodeploy.models.registry import FAMILY_PAPER_PARAMETERS, FAMILY_PARAMETER_COUNTS, family_of

FULL_SIZE = list(FAMILY_PARAMETER_COUNTS)


def test_new_names_are_listed():
    names = arch_names()
    assert set(FULL_SIZE) <= set(names)
    assert family_of("spikformer-cifar10-4-384") == "Spikformer"
    assert family_of("spikingformer-imagenet-8-768") == "Spikingformer"
    assert family_of("no-such-thing") is None


@pytest.mark.slow  # full-size models (up to 66M parameters)
@pytest.mark.parametrize("arch", FULL_SIZE)
def test_parameter_counts(arch):
    model = build_model(arch)
    n = sum(p.numel() for p in model.parameters())
    assert n == FAMILY_PARAMETER_COUNTS[arch]
    # the papers count the parameters the forward uses (Spikformer's LayerNorms, SDT's talking_heads are
    # never called)
    used = n - sum(p.numel() for k, p in model.named_parameters() if ".norm" in k or "talking_heads" in k)
    paper_m, _ = FAMILY_PAPER_PARAMETERS[arch]
    if arch == "sdt-cifar10-2-512":  # the paper's 10.28M is 0.05M above the official module tree
        assert round(used / 1e6, 2) == 10.23
    elif arch.startswith("sdtv2-"):  # Meta-SpikeFormer's paper gives one decimal
        assert round(used / 1e6, 1) == paper_m, (used, paper_m)
    else:
        assert abs(used / 1e6 - paper_m) < 0.01, (used, paper_m)


def _bn(prefix, c):
    return {f"{prefix}.weight": [c], f"{prefix}.bias": [c], f"{prefix}.running_mean": [c],
            f"{prefix}.running_var": [c], f"{prefix}.num_batches_tracked": []}


def spikformer_keys(arch):
    """ZK-Zhou/spikformer naming (reference section 2, "Checkpoint and keys"), in registration order."""
    kind, D, depth, classes = {
        "spikformer-cifar10-4-384": ("linear", 384, 4, 10),
        "spikformer-imagenet-8-384": ("conv", 384, 8, 1000),
        "spikformer-imagenet-8-512": ("conv", 512, 8, 1000),
        "spikformer-imagenet-8-768": ("conv", 768, 8, 1000),
    }[arch]
    keys = {}
    ch = [3, D // 8, D // 4, D // 2, D]
    for i in range(4):
        sfx = "" if i == 0 else str(i)
        keys[f"patch_embed.proj_conv{sfx}.weight"] = [ch[i + 1], ch[i], 3, 3]
        keys.update(_bn(f"patch_embed.proj_bn{sfx}", ch[i + 1]))
    keys["patch_embed.rpe_conv.weight"] = [D, D, 3, 3]
    keys.update(_bn("patch_embed.rpe_bn", D))
    for j in range(depth):
        b = f"block.{j}"
        keys[f"{b}.norm1.weight"] = [D]
        keys[f"{b}.norm1.bias"] = [D]
        for n in ("q", "k", "v", "proj"):
            if kind == "linear":  # nn.Linear with bias everywhere
                keys[f"{b}.attn.{n}_linear.weight"] = [D, D]
                keys[f"{b}.attn.{n}_linear.bias"] = [D]
            else:  # Conv1d; only proj has a bias
                keys[f"{b}.attn.{n}_conv.weight"] = [D, D, 1]
                if n == "proj":
                    keys[f"{b}.attn.{n}_conv.bias"] = [D]
            keys.update(_bn(f"{b}.attn.{n}_bn", D))
        keys[f"{b}.norm2.weight"] = [D]
        keys[f"{b}.norm2.bias"] = [D]
        for i, (o, c) in enumerate(((4 * D, D), (D, 4 * D)), start=1):
            if kind == "linear":
                keys[f"{b}.mlp.fc{i}_linear.weight"] = [o, c]
            else:
                keys[f"{b}.mlp.fc{i}_conv.weight"] = [o, c, 1, 1]
            keys[f"{b}.mlp.fc{i}_{kind}.bias"] = [o]
            keys.update(_bn(f"{b}.mlp.fc{i}_bn", o))
    keys["head.weight"] = [classes, D]
    keys["head.bias"] = [classes]
    return keys


def sdt_keys(arch):
    """BICLab/Spike-Driven-Transformer naming (reference section 3): Conv2d 1x1 everywhere, talking_heads kept."""
    D, depth, classes = {"sdt-cifar10-2-512": (512, 2, 10), "sdt-cifar10-2-256": (256, 2, 10),
                         "sdt-imagenet-8-384": (384, 8, 1000), "sdt-imagenet-8-768": (768, 8, 1000)}[arch]
    keys = {}
    ch = [3, D // 8, D // 4, D // 2, D]
    for i in range(4):
        sfx = "" if i == 0 else str(i)
        keys[f"patch_embed.proj_conv{sfx}.weight"] = [ch[i + 1], ch[i], 3, 3]
        keys.update(_bn(f"patch_embed.proj_bn{sfx}", ch[i + 1]))
    keys["patch_embed.rpe_conv.weight"] = [D, D, 3, 3]
    keys.update(_bn("patch_embed.rpe_bn", D))
    for j in range(depth):
        b = f"block.{j}"
        for n in "qkv":
            keys[f"{b}.attn.{n}_conv.weight"] = [D, D, 1, 1]
            keys.update(_bn(f"{b}.attn.{n}_bn", D))
        keys[f"{b}.attn.talking_heads.weight"] = [8, 8, 1]
        keys[f"{b}.attn.proj_conv.weight"] = [D, D, 1, 1]
        keys[f"{b}.attn.proj_conv.bias"] = [D]
        keys.update(_bn(f"{b}.attn.proj_bn", D))
        for i, (o, c) in enumerate(((4 * D, D), (D, 4 * D)), start=1):
            keys[f"{b}.mlp.fc{i}_conv.weight"] = [o, c, 1, 1]
            keys[f"{b}.mlp.fc{i}_conv.bias"] = [o]
            keys.update(_bn(f"{b}.mlp.fc{i}_bn", o))
    keys["head.weight"] = [classes, D]
    keys["head.bias"] = [classes]
    return keys


def qkformer_keys(arch):
    """zhouchenlin2096/QKFormer naming (reference section 5): patch_embed1..3 registered before stage1..3."""
    coding, D, n2, n3, classes = {"qkformer-cifar10-4-384": ("cifar", 384, 1, 2, 10),
                                  "qkformer-imagenet-10-384": ("imagenet", 384, 2, 7, 1000)}[arch]
    keys = {}

    def conv(name, o, c, k, bias=False):
        keys[f"{name}.weight"] = [o, c, k, k] if k else [o, c, 1]
        if bias:
            keys[f"{name}.bias"] = [o]

    E = D // 4
    conv("patch_embed1.proj_conv", E // 2, 3, 3)
    keys.update(_bn("patch_embed1.proj_bn", E // 2))
    conv("patch_embed1.proj1_conv", E, E // 2, 3)
    keys.update(_bn("patch_embed1.proj1_bn", E))
    if coding == "imagenet":
        conv("patch_embed1.proj2_conv", E, E, 3)
        keys.update(_bn("patch_embed1.proj2_bn", E))
    conv("patch_embed1.proj_res_conv", E, E // 2, 1)
    keys.update(_bn("patch_embed1.proj_res_bn", E))
    for i, w in ((2, D // 2), (3, D)):
        conv(f"patch_embed{i}.proj3_conv", w, w // 2, 3)
        keys.update(_bn(f"patch_embed{i}.proj3_bn", w))
        conv(f"patch_embed{i}.proj4_conv", w, w, 3)
        keys.update(_bn(f"patch_embed{i}.proj4_bn", w))
        conv(f"patch_embed{i}.proj_res_conv", w, w // 2, 1)
        keys.update(_bn(f"patch_embed{i}.proj_res_bn", w))
    mlp = "mlp" if coding == "cifar" else "fc"
    for st, w, n, attn, letters in ((1, D // 4, 1, "tssa", "qk"), (2, D // 2, n2, "tssa", "qk"),
                                    (3, D, n3, "ssa" if coding == "cifar" else "attn", "qkv")):
        for j in range(n):
            b = f"stage{st}.{j}"
            for x in letters:
                conv(f"{b}.{attn}.{x}_conv", w, w, 0)
                keys.update(_bn(f"{b}.{attn}.{x}_bn", w))
            conv(f"{b}.{attn}.proj_conv", w, w, 0, bias=True)
            keys.update(_bn(f"{b}.{attn}.proj_bn", w))
            conv(f"{b}.mlp.{mlp}1_conv", 4 * w, w, 1, bias=True)
            keys.update(_bn(f"{b}.mlp.{mlp}1_bn", 4 * w))
            conv(f"{b}.mlp.{mlp}2_conv", w, 4 * w, 1, bias=True)
            keys.update(_bn(f"{b}.mlp.{mlp}2_bn", w))
    keys["head.weight"] = [classes, D]
    keys["head.bias"] = [classes]
    return keys


def sdtv2_keys(arch):
    """BICLab/Spike-Driven-Transformer-V2 classification/models.py naming (reference section 4), in
    registration order: downsample*.encode_{conv,bn}, ConvBlock*.0.Conv.{pwconv1,bn1,dwconv,pwconv2,bn2},
    ConvBlock*.0.{conv1,bn1,conv2,bn2}, block{3,4}.i.attn.{q,k,v,proj}_conv.{0.body.{0,1.bn,2.0,2.1,2.2},1},
    block*.i.mlp.fc{1,2}_{conv,bn}, head (and head_kd)."""
    dims = {"sdtv2-imagenet-8-384": [96, 192, 384, 480], "sdtv2-imagenet-8-512": [128, 256, 512, 640],
            "sdtv2-imagenet-8-512-kd": [128, 256, 512, 640], "sdtv2-imagenet-8-768": [192, 384, 768, 960]}[arch]
    keys = {}

    def down(name, o, c, k):
        keys[f"{name}.encode_conv.weight"] = [o, c, k, k]
        keys[f"{name}.encode_conv.bias"] = [o]
        keys.update(_bn(f"{name}.encode_bn", o))

    def convblock(name, d):
        p = f"{name}.0.Conv"
        keys[f"{p}.pwconv1.weight"] = [2 * d, d, 1, 1]
        keys.update(_bn(f"{p}.bn1", 2 * d))
        keys[f"{p}.dwconv.weight"] = [2 * d, 1, 7, 7]
        keys[f"{p}.pwconv2.weight"] = [d, 2 * d, 1, 1]
        keys.update(_bn(f"{p}.bn2", d))
        keys[f"{name}.0.conv1.weight"] = [4 * d, d, 3, 3]
        keys.update(_bn(f"{name}.0.bn1", 4 * d))
        keys[f"{name}.0.conv2.weight"] = [d, 4 * d, 3, 3]
        keys.update(_bn(f"{name}.0.bn2", d))

    def block(name, d):
        for n in ("q", "k", "v", "proj"):
            p = f"{name}.attn.{n}_conv"
            keys[f"{p}.0.body.0.weight"] = [d, d, 1, 1]
            keys.update(_bn(f"{p}.0.body.1.bn", d))
            keys[f"{p}.0.body.2.0.weight"] = [d, 1, 3, 3]
            keys[f"{p}.0.body.2.1.weight"] = [d, d, 1, 1]
            keys.update(_bn(f"{p}.0.body.2.2", d))
            keys.update(_bn(f"{p}.1", d))
        for i, (o, c) in enumerate(((4 * d, d), (d, 4 * d)), start=1):
            keys[f"{name}.mlp.fc{i}_conv.weight"] = [o, c, 1]
            keys[f"{name}.mlp.fc{i}_conv.bias"] = [o]
            keys.update(_bn(f"{name}.mlp.fc{i}_bn", o))

    d0, d1, d2, d3 = dims
    down("downsample1_1", d0 // 2, 3, 7)
    convblock("ConvBlock1_1", d0 // 2)
    down("downsample1_2", d0, d0 // 2, 3)
    convblock("ConvBlock1_2", d0)
    down("downsample2", d1, d0, 3)
    convblock("ConvBlock2_1", d1)
    convblock("ConvBlock2_2", d1)
    down("downsample3", d2, d1, 3)
    for j in range(6):
        block(f"block3.{j}", d2)
    down("downsample4", d3, d2, 3)
    for j in range(2):
        block(f"block4.{j}", d3)
    for h in ("head", "head_kd") if arch.endswith("-kd") else ("head",):
        keys[f"{h}.weight"] = [1000, d3]
        keys[f"{h}.bias"] = [1000]
    return keys


OFFICIAL_KEYS = {a: spikformer_keys for a in FULL_SIZE if a.startswith("spikformer-")}
OFFICIAL_KEYS.update({a: sdt_keys for a in FULL_SIZE if a.startswith("sdt-")})
OFFICIAL_KEYS.update({a: qkformer_keys for a in FULL_SIZE if a.startswith("qkformer-")})
OFFICIAL_KEYS.update({a: sdtv2_keys for a in FULL_SIZE if a.startswith("sdtv2-")})


@pytest.mark.slow  # full-size models (up to 66M parameters)
@pytest.mark.parametrize("arch", list(OFFICIAL_KEYS))
def test_state_dict_keys_and_shapes_are_official(arch):
    expected = OFFICIAL_KEYS[arch](arch)
    got = {k: list(v.shape) for k, v in build_model(arch).state_dict().items()}
    assert list(got) == list(expected)
    assert got == expected


def _forged_state_dict(keys, seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in keys.items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(11)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[k] = torch.randn(shape, generator=g) * 0.1
    return sd


#: the container each official training script saves (reference: "Checkpoint and keys")
CONTAINERS = {"spikformer-cifar10-4-384": "timm", "spikformer-imagenet-8-384": "timm", "sdt-cifar10-2-512": "timm",
              "sdt-imagenet-8-384": "timm", "qkformer-cifar10-4-384": "timm", "qkformer-imagenet-10-384": "mae",
              "sdtv2-imagenet-8-384": "mae", "sdtv2-imagenet-8-512-kd": "mae"}


def _container(kind, sd):
    if kind == "timm":  # timm CheckpointSaver (Spikformer, SDT V1, QKFormer CIFAR)
        return {"epoch": 299, "arch": "spikformer", "state_dict": sd, "optimizer": {"state": {}, "param_groups": []},
                "version": 2, "args": argparse.Namespace(model="spikformer", lr=5e-4), "metric": 95.19}
    # MAE/DeiT util/misc.py save_model (QKFormer ImageNet, SDT V2)
    return {"model": sd, "optimizer": {}, "epoch": 199, "scaler": {}, "args": argparse.Namespace(time_steps=4)}


@pytest.mark.slow  # full-size models (up to 66M parameters)
@pytest.mark.parametrize("arch", list(CONTAINERS))
def test_forged_official_checkpoint_loads_strictly(tmp_path, arch):
    sd = _forged_state_dict(OFFICIAL_KEYS[arch](arch))
    path = tmp_path / "checkpoint-299.pth.tar"
    torch.save(_container(CONTAINERS[arch], sd), path)
    model = load_model(path, arch=arch)
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k


SMALL = {"spikformer-cifar10-4-384": 16, "spikformer-imagenet-8-384": 32, "spikformer-imagenet-8-512": 32,
         "spikformer-imagenet-8-768": 32, "sdt-cifar10-2-512": 32, "sdt-cifar10-2-256": 32, "sdt-imagenet-8-384": 32,
         "sdt-imagenet-8-768": 32, "qkformer-cifar10-4-384": 32, "qkformer-imagenet-10-384": 32,
         "sdtv2-imagenet-8-384": 32, "sdtv2-imagenet-8-512": 32, "sdtv2-imagenet-8-512-kd": 32, "sdtv2-imagenet-8-768": 32}


@pytest.mark.slow  # full-size models (up to 66M parameters)
@pytest.mark.parametrize("arch", FULL_SIZE)
def test_forward_shapes(arch):
    torch.manual_seed(0)
    model = build_model(arch, {"img_size": SMALL[arch]}).eval()
    x = torch.randn(2, model.cfg.in_channels, SMALL[arch], SMALL[arch])
    with torch.no_grad():
        feats = model.forward_features(model.to_time_major(x))
        assert feats.shape == (model.cfg.T, 2, model.cfg.embed_dim)
        assert model(x).shape == (2, model.cfg.num_classes)


#: the max-pools of real BN outputs (membrane) before a LIF in each full-size variant: max_pool2d extension nodes
POOLS = {"sdt-cifar10-2-512": ["patch_embed.maxpool3"], "sdt-cifar10-2-256": ["patch_embed.maxpool3"],
         "sdt-imagenet-8-384": ["patch_embed.maxpool3"], "sdt-imagenet-8-768": ["patch_embed.maxpool3"],
         "qkformer-cifar10-4-384": ["patch_embed2.proj4_maxpool", "patch_embed3.proj4_maxpool"],
         "qkformer-imagenet-10-384": ["patch_embed1.proj_maxpool", "patch_embed1.proj1_maxpool",
                                      "patch_embed2.proj3_maxpool", "patch_embed3.proj3_maxpool"]}


@pytest.mark.slow  # full-size models (up to 66M parameters), float64 simulation
@pytest.mark.parametrize("arch", sorted(POOLS))
def test_official_configs_export_the_max_pool_extension_exactly(arch):
    """Every official SDT V1 / QKFormer config exports (every stage), its real max-pools are max_pool2d
    extension nodes, the float simulation of the file gives the torch model's logits (float64), and the purity
    check names exactly those pools as MAX."""
    import numpy as np

    from neurodeploy.analysis.purity import check_purity
    from neurodeploy.exporters import to_nir
    from neurodeploy.graph import reduce_output, simulate
    from neurodeploy.graph.maxpool import maxpool_spec
    torch.manual_seed(0)
    img = 16 if arch.startswith("sdt-cifar") or arch.startswith("qkformer-cifar") else 32
    model = build_model(arch, {"img_size": img, "T": 1}).eval()
    graph = to_nir(model, dtype=np.float64)
    assert [n for n in graph.nodes if maxpool_spec(graph.nodes[n]) is not None] == POOLS[arch]
    # batch 1: the official QKFormer stage-3 proj_lif runs over T*B merged steps (its state crosses samples)
    x = torch.randn(1, model.cfg.in_channels, img, img, dtype=torch.float64)
    with torch.no_grad():
        ref = model.double()(x)
    got = reduce_output(graph, simulate(graph, x, T=1, dtype=torch.float64))
    assert float((got - ref).abs().max()) <= 1e-9 * max(1.0, float(ref.abs().max()))
    rep = check_purity(to_nir(model.float()), allow=["encoder", "readout"])
    assert {o.node for o in rep.violations if o.op_class == "MAX"} == set(POOLS[arch])


def _pure_apart_from_the_encoder(arch: str, encoder: str, binary_ac: tuple):
    """``arch`` (seed 0) is not spike-pure as is, pure with the encoder and readout allowed, its one exception
    is ``encoder``, and every node in ``binary_ac`` accumulates binary spikes; returns the purity report."""
    from neurodeploy.analysis.purity import check_purity
    from neurodeploy.exporters import to_nir
    torch.manual_seed(0)
    g = to_nir(build_model(arch).eval())
    assert not check_purity(g).pure
    rep = check_purity(g, allow=["encoder", "readout"])
    assert rep.pure
    assert {o.node for o in rep.exceptions} == {encoder}
    for n in binary_ac:
        assert rep.op(n).op_class == "AC" and rep.op(n).input_domain.is_binary, n
    return rep


def test_sdt_digits_is_spike_pure_apart_from_encoder_and_readout():
    """SDSA is AND, count, LIF (an OR) and AND: every synaptic layer of the blocks reads binary spikes; the
    membrane stream only enters LIFs (and the head's token mean, part of the readout)."""
    rep = _pure_apart_from_the_encoder("sdt-digits", "patch_embed.proj_conv",
                                       ("block.0.attn.q_conv", "block.0.attn.proj_conv", "block.0.mlp.fc1_conv",
                                        "head"))
    assert rep.op("block.0.attn.proj_conv").input_domain.is_binary  # Q AND mask


def test_qkformer_digits_is_not_spike_pure_and_names_the_sew_layers():
    """The Q-K token attention itself is binary (head count, OR, AND), but the SEW stream feeds integers
    {0..3} to q/k and mlp1 and the PatchEmbedInit shortcut add starts them."""
    from neurodeploy.analysis.purity import check_purity
    from neurodeploy.exporters import to_nir
    torch.manual_seed(0)
    rep = check_purity(to_nir(build_model("qkformer-digits").eval()), allow=["encoder"])
    assert {v.node for v in rep.violations} == {"stage1.0.tssa.q_conv", "stage1.0.tssa.k_conv",
                                                "stage1.0.mlp.mlp1_conv", "head"}
    assert rep.op("stage1.0.tssa.q_conv").input_domain.text() == "integer [0, 2]"
    assert rep.op("stage1.0.tssa.head_sum").op_class == "AC"
    assert rep.op("stage1.0.tssa.proj_conv").op_class == "AC"


@pytest.mark.slow  # full-size models (up to 66M parameters)
def test_spikformer_full_size_is_not_spike_pure_and_names_the_integer_layers():
    """cifar10-4-384 at its full 32x32 input: the SEW stream feeds integers 0..2+2l into q/k/v and fc1 of
    every block and into the head; the purity gate names exactly those layers."""
    from neurodeploy.analysis.purity import check_purity
    from neurodeploy.exporters import to_nir
    torch.manual_seed(0)
    rep = check_purity(to_nir(build_model("spikformer-cifar10-4-384").eval()), allow=["encoder"])
    assert not rep.pure
    bad = {v.node: v for v in rep.violations}
    expected = {f"block.{j}.{n}" for j in range(4) for n in ("attn.q_linear", "attn.k_linear", "attn.v_linear",
                                                              "mlp.fc1_linear")} | {"head"}
    assert set(bad) == expected
    for j in range(4):
        for n in ("attn.q_linear", "mlp.fc1_linear"):
            op = bad[f"block.{j}.{n}"]
            assert op.op_class == "INTxFLOAT"
            hi = 2 + 2 * j + (1 if n.startswith("mlp") else 0)
            assert op.input_domain.text() == f"integer [0, {hi}]", op.input_domain.text()
            assert "fan-in sum" in op.origin
    assert bad["head"].input_domain.text() == "integer [0, 10]"
    # the RPE add of the tokenizer is where the integers start
    assert any(s["at"] == "patch_embed.flatten" for s in rep.integer_sums())
    # the attention itself is accumulate-only (binary Q, K, V); proj/fc2 read binary spikes
    assert rep.op("block.0.attn.attention").op_class == "AC"
    assert rep.op("block.0.attn.proj_linear").op_class == "AC"


def test_sdtv2_repconv_and_sepconv_fold_exactly():
    """Eval mode: ``Sequential(RepConv, BN)`` is one zero-padded 3x3 conv with bias (the BN-padded border of the
    1x1 conv output equals BN of a zero-padded input), and SepConv's ``dw7x7 -> pw1x1 -> BN`` is one 7x7 conv;
    float64, on spikes, at the grid's border too."""
    import torch.nn.functional as F

    from neurodeploy.exporters.torch_models import fold_repconv, fold_sepconv_tail
    from export_helpers import random_model
    model = random_model("sdtv2-digits", 8, 4).double()
    g = torch.Generator().manual_seed(5)
    attn = model.block3[0].attn
    x = (torch.rand(3, 32, 4, 4, generator=g) < 0.4).double()
    for seq in (attn.q_conv, attn.proj_conv):
        w, b = fold_repconv(seq)
        with torch.no_grad():
            ref = seq(x)
        got = F.conv2d(x, torch.from_numpy(w), torch.from_numpy(b), padding=1)
        assert float((got - ref).abs().max()) < 1e-12 * float(ref.abs().max())
    sep = model.ConvBlock1_2[0].Conv
    s = (torch.rand(3, 32, 4, 4, generator=g) < 0.4).double()
    w, b = fold_sepconv_tail(sep)
    with torch.no_grad():
        ref = sep.bn2(sep.pwconv2(sep.dwconv(s)))
    got = F.conv2d(s, torch.from_numpy(w), torch.from_numpy(b), padding=3)
    assert float((got - ref).abs().max()) < 1e-12 * float(ref.abs().max())


def test_sdtv2_digits_is_spike_pure_apart_from_the_encoder():
    """After re-parameterization (RepConv and SepConv folded), every synaptic layer reads binary spikes: the
    convs, the attention (binary Q, K, V: accumulate-only products) and the head; the membrane stream only
    enters LIFs.  Only the first conv reads the real image."""
    _pure_apart_from_the_encoder("sdtv2-digits", "downsample1_1.encode_conv",
                                 ("ConvBlock1_1.0.Conv.dwconv_pwconv2", "block3.0.attn.q_conv",
                                  "block3.0.attn.attention", "block3.0.attn.proj_conv", "block3.0.mlp.fc1_conv",
                                  "downsample3.encode_conv", "head"))


def test_sdtv2_kd_checkpoint_needs_the_kd_architecture(tmp_path):
    """A KD checkpoint (head_kd.*) loads strictly into the -kd architecture only; the plain one names the key."""
    from neurodeploy.errors import BadInputError
    model = build_model("sdtv2-digits", {"kd": True})
    sd = model.state_dict()
    assert "head_kd.weight" in sd
    path = tmp_path / "checkpoint-kd.pth"
    torch.save(_container("mae", sd), path)
    with pytest.raises(BadInputError, match="head_kd"):
        load_model(path, arch="sdtv2-digits")


@pytest.mark.slow  # full-size models (31M parameters)
def test_sdtv2_full_size_is_spike_pure_after_reparameterization():
    """sdtv2-imagenet-8-384 (32x32 input): pure apart from the encoder; 8 attention nodes (6 + 2 blocks) on
    the token grid, no max-pool; every RepConv and SepConv tail is one conv reading spikes."""
    from neurodeploy.analysis.purity import check_purity
    from neurodeploy.exporters import to_nir
    from neurodeploy.graph.attention import attention_spec
    torch.manual_seed(0)
    g = to_nir(build_model("sdtv2-imagenet-8-384", {"img_size": 32}).eval())
    att = [n for n, v in g.nodes.items() if attention_spec(v) is not None]
    assert len(att) == 8 and all(attention_spec(g.nodes[n]).scale == 0.125 for n in att)
    rep = check_purity(g, allow=["encoder", "readout"])
    assert rep.pure
    assert {o.node for o in rep.exceptions} == {"downsample1_1.encode_conv"}
    assert not any(o.op_class == "MAX" for o in rep.ops)
    assert all(rep.op(n).op_class == "AC" for n in att)
