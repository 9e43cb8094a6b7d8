"""The Spikingformer family: official parameter counts, official state_dict keys/shapes, forward shapes,
attention order, and the baselines."""
import argparse

import pytest
import torch

from neurodeploy import build_model, load_model
from neurodeploy.errors import BadInputError
from neurodeploy.models import OFFICIAL_PARAMETER_COUNTS
from neurodeploy.models.spikingformer import SpikingSelfAttention

VARIANTS = list(OFFICIAL_PARAMETER_COUNTS)


@pytest.mark.parametrize("arch", VARIANTS)
def test_parameter_counts_equal_official(arch):
    model = build_model(arch)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMETER_COUNTS[arch]


def _bn(prefix, c):
    return {f"{prefix}.weight": [c], f"{prefix}.bias": [c], f"{prefix}.running_mean": [c],
            f"{prefix}.running_var": [c], f"{prefix}.num_batches_tracked": []}


def official_keys(arch):
    """Keys and shapes as listed in spikingformer.md section 4 (registration order), built from the
    documented naming rules rather than from our module tree."""
    spec = {
        "spikingformer-cifar10-4-384": ("cifar", 3, 384, 4, 10),
        "spikingformer-cifar100-4-384": ("cifar", 3, 384, 4, 100),
        "spikingformer-imagenet-8-384": ("imagenet", 3, 384, 8, 1000),
        "spikingformer-imagenet-8-512": ("imagenet", 3, 512, 8, 1000),
        "spikingformer-imagenet-8-768": ("imagenet", 3, 768, 8, 1000),
        "spikingformer-cifar10dvs-2-256": ("imagenet", 2, 256, 2, 10),
        "spikingformer-gesture-2-256": ("imagenet", 2, 256, 2, 11),
    }[arch]
    naming, c_in, D, depth, classes = spec
    ch = [D // 8, D // 4, D // 2, D, D]
    keys = {}
    for i, c in enumerate(ch):
        prev = c_in if i == 0 else ch[i - 1]
        if naming == "cifar":
            conv, bn = f"patch_embed.block{i}_conv", f"patch_embed.block{i}_bn"
        else:
            conv, bn = (("patch_embed.proj_conv", "patch_embed.proj_bn") if i == 0
                        else (f"patch_embed.proj{i}_conv", f"patch_embed.proj{i}_bn"))
        keys[f"{conv}.weight"] = [c, prev, 3, 3]
        keys.update(_bn(bn, c))
    for i in range(depth):
        b = f"block.{i}"
        keys[f"{b}.norm1.weight"] = [D]
        keys[f"{b}.norm1.bias"] = [D]
        for n in ("q", "k", "v"):
            keys[f"{b}.attn.{n}_conv.weight"] = [D, D, 1]
            keys.update(_bn(f"{b}.attn.{n}_bn", D))
        keys[f"{b}.attn.proj_conv.weight"] = [D, D, 1]
        keys[f"{b}.attn.proj_conv.bias"] = [D]
        keys.update(_bn(f"{b}.attn.proj_bn", D))
        keys[f"{b}.norm2.weight"] = [D]
        keys[f"{b}.norm2.bias"] = [D]
        keys[f"{b}.mlp.mlp1_conv.weight"] = [4 * D, D, 1, 1]
        keys[f"{b}.mlp.mlp1_conv.bias"] = [4 * D]
        keys.update(_bn(f"{b}.mlp.mlp1_bn", 4 * D))
        keys[f"{b}.mlp.mlp2_conv.weight"] = [D, 4 * D, 1, 1]
        keys[f"{b}.mlp.mlp2_conv.bias"] = [D]
        keys.update(_bn(f"{b}.mlp.mlp2_bn", D))
    keys["head.weight"] = [classes, D]
    keys["head.bias"] = [classes]
    return keys


@pytest.mark.parametrize("arch", VARIANTS)
def test_state_dict_keys_and_shapes_are_official(arch):
    expected = official_keys(arch)
    got = {k: list(v.shape) for k, v in build_model(arch).state_dict().items()}
    assert list(got) == list(expected)  # same keys, same registration order
    assert got == expected
    if arch == "spikingformer-cifar10-4-384":
        assert len(got) == 204  # 30 tokenizer + 43 per block + 2 head (spikingformer.md section 4)


def _official_state_dict(arch, seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in official_keys(arch).items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[k] = torch.randn(shape, generator=g) * 0.1
    return sd


@pytest.mark.parametrize("arch,container", [
    ("spikingformer-cifar10-4-384", "timm"),
    ("spikingformer-cifar100-4-384", "timm"),
    ("spikingformer-gesture-2-256", "dvs"),
    ("spikingformer-cifar10dvs-2-256", "dvs"),
])
def test_official_checkpoint_containers_load_strictly(tmp_path, arch, container):
    sd = _official_state_dict(arch)
    if container == "timm":  # timm CheckpointSaver: args is an argparse.Namespace
        obj = {"epoch": 405, "arch": "Spikingformer", "state_dict": sd, "optimizer": {"state": {}, "param_groups": []},
               "version": 2, "args": argparse.Namespace(model="Spikingformer", lr=5e-4), "metric": 95.81}
        path = tmp_path / "checkpoint-405.pth.tar"
    else:  # DVS scripts
        obj = {"model": sd, "optimizer": {}, "lr_scheduler": {}, "epoch": 105}
        path = tmp_path / "checkpoint_max.pth"
    torch.save(obj, path)
    model = load_model(path, arch=arch)
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k


@pytest.mark.parametrize("arch", ["spikingformer-imagenet-8-384", "spikingformer-imagenet-8-512",
                                  "spikingformer-imagenet-8-768"])
def test_official_imagenet_state_dict_loads_strictly(tmp_path, arch):
    sd = _official_state_dict(arch)
    path = tmp_path / "checkpoint-284.pth.tar"
    torch.save({"state_dict": sd, "epoch": 284}, path)
    model = load_model(path, arch=arch)
    assert torch.equal(model.state_dict()["head.weight"], sd["head.weight"])


def test_missing_and_misshapen_keys_are_named(tmp_path):
    arch = "spikingformer-cifar10-4-384"
    sd = _official_state_dict(arch)
    del sd["block.2.attn.k_bn.running_var"]
    torch.save({"state_dict": sd}, tmp_path / "a.pth.tar")
    with pytest.raises(BadInputError, match=r"missing key 'block\.2\.attn\.k_bn\.running_var'"):
        load_model(tmp_path / "a.pth.tar", arch=arch)
    sd = _official_state_dict(arch)
    sd["head.weight"] = torch.zeros(100, 384)
    torch.save({"state_dict": sd}, tmp_path / "b.pth.tar")
    with pytest.raises(BadInputError, match=r"key 'head\.weight' has shape \[100, 384\], expected \[10, 384\]"):
        load_model(tmp_path / "b.pth.tar", arch=arch)
    sd = _official_state_dict(arch)
    sd["block.0.attn.rpe_conv.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "c.pth")
    with pytest.raises(BadInputError, match=r"unexpected key 'block\.0\.attn\.rpe_conv\.weight'"):
        load_model(tmp_path / "c.pth", arch=arch)


SMALL_INPUTS = {  # tiny inputs: the tokenizer works for any size divisible by its pooling
    "spikingformer-cifar10-4-384": (3, 16),
    "spikingformer-cifar100-4-384": (3, 16),
    "spikingformer-imagenet-8-384": (3, 32),
    "spikingformer-imagenet-8-512": (3, 32),
    "spikingformer-imagenet-8-768": (3, 32),
    "spikingformer-cifar10dvs-2-256": (2, 32),
    "spikingformer-gesture-2-256": (2, 32),
    "spikingformer-digits": (1, 8),
}


@pytest.mark.parametrize("arch", list(SMALL_INPUTS))
def test_forward_shapes_for_T_1_to_4(arch):
    torch.manual_seed(0)
    model = build_model(arch).eval()
    c, s = SMALL_INPUTS[arch]
    classes = model.cfg.num_classes
    with torch.no_grad():
        for T in range(1, 5):
            if model.cfg.event_input:  # DVS: T is taken from the input [B, T, C, H, W]
                x = (torch.rand(2, T, c, s, s) < 0.3).float()
            else:
                model.T = T
                x = torch.randn(2, c, s, s)
            tokens = model.forward_features(model.to_time_major(x))
            assert tokens.shape == (T, 2, model.cfg.embed_dim)
            assert model(x).shape == (2, classes)


def test_wrong_input_rank_is_a_clear_error():
    model = build_model("spikingformer-digits")
    with pytest.raises(ValueError, match=r"image input must be \[B, C, H, W\]"):
        model(torch.zeros(1, 4, 1, 8, 8))


def test_attention_orders_are_identical_and_exact():
    torch.manual_seed(1)
    T, B, C, N, heads = 2, 3, 32, 16, 4
    q, k, v = [(torch.rand(T, B, C, N) < p).float() for p in (0.3, 0.2, 0.4)]
    a = SpikingSelfAttention(C, heads, order="kv_first").attention(q, k, v)
    b = SpikingSelfAttention(C, heads, order="qk_first").attention(q, k, v)
    assert torch.equal(a, b)
    # explicit sums: y[c, n] = scale * sum_m sum_j q[j, n] k[j, m] v[c, m] within the head of channel c
    d = C // heads
    ref = torch.zeros(T, B, C, N, dtype=torch.float64)
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        qh, kh, vh = q[:, :, sl].double(), k[:, :, sl].double(), v[:, :, sl].double()
        scores = torch.einsum("tbjn,tbjm->tbnm", qh, kh)  # Q K^T, [N, N] integers
        ref[:, :, sl] = 0.125 * torch.einsum("tbnm,tbcm->tbcn", scores, vh)
    assert torch.equal(a.double(), ref)


@pytest.mark.parametrize("arch", ["spikformer-digits", "sew-resnet-digits-add", "sew-resnet-digits-and",
                                  "sew-resnet-digits-iand"])
def test_baselines_run(arch):
    model = build_model(arch).eval()
    with torch.no_grad():
        assert model(torch.rand(4, 1, 8, 8)).shape == (4, 10)


def test_spikformer_stream_holds_integers_up_to_2_plus_2l():
    """Spikformer adds spikes to spikes: the stream entering block l takes values in 0..2+2l."""
    torch.manual_seed(0)
    model = build_model("spikformer-digits").eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d) or isinstance(m, torch.nn.BatchNorm1d):
            m.bias.data.fill_(2.0)  # make every LIF fire a lot
    seen = []
    for blk in model.block:
        blk.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0]))
    with torch.no_grad():
        model(torch.rand(8, 1, 8, 8))
    for l, x in enumerate(seen):
        assert torch.equal(x, x.round()) and x.min() >= 0 and x.max() <= 2 + 2 * l
    assert seen[-1].max() > 2  # the range really grows
