"""Each mapping rule of docs/nir.md, checked on the exported graph of the digits models."""
from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.errors import UnsupportedError
from neurodeploy.exporters import to_nir
from neurodeploy.graph import attention_spec, predecessors, read_graph, write_graph

from export_helpers import random_model


@pytest.fixture(scope="module")
def digits():
    model = random_model("spikingformer-digits")
    return model, to_nir(model)


def md(node, key):
    return node.metadata.get(f"neurodeploy.{key}")


def test_graph_metadata_and_names(digits):
    model, g = digits
    assert {k: g.metadata[k] for k in ("neurodeploy.format_version", "neurodeploy.arch", "neurodeploy.dt",
                                       "neurodeploy.time_steps", "neurodeploy.input_encoding",
                                       "neurodeploy.input_domain", "neurodeploy.readout_reduction")} == {
        "neurodeploy.format_version": 1, "neurodeploy.arch": "spikingformer-digits", "neurodeploy.dt": 1e-4,
        "neurodeploy.time_steps": 4, "neurodeploy.input_encoding": "direct", "neurodeploy.input_domain": "real",
        "neurodeploy.readout_reduction": "mean_over_time"}
    expected = {"input", "output", "patch_embed.block0_conv", "patch_embed.block1_lif", "patch_embed.block1_conv",
                "patch_embed.block2_lif", "patch_embed.block2_mp.sum", "patch_embed.block2_mp.or",
                "patch_embed.block2_conv", "patch_embed.flatten", "head.flatten", "head"}
    attn = {f"block.0.attn.{n}" for n in ("proj_lif", "q_conv", "q_lif", "k_conv", "k_lif", "v_conv", "v_lif", "stack_q",
                                          "stack_k", "stack_v", "attention", "attn_lif", "proj_conv")}
    mlp = {f"block.0.mlp.{n}" for n in ("mlp1_lif", "mlp1_conv", "mlp2_lif", "mlp2_conv")}
    assert set(g.nodes) == expected | attn | mlp
    assert md(g.nodes["patch_embed.block0_conv"], "role") == "encoder"
    assert md(g.nodes["block.0.attn.stack_k"], "role") == "routing"
    assert md(g.nodes["head"], "role") == md(g.nodes["head.flatten"], "role") == "readout"
    assert md(g.nodes["block.0.attn.q_conv"], "source") == "block.0.attn.q_conv"
    assert list(g.nodes["input"].output_type["output"]) == [1, 8, 8]


def test_bn_is_folded_with_eval_statistics(digits):
    model, g = digits
    conv, bn = model.block[0].mlp.mlp1_conv, model.block[0].mlp.mlp1_bn
    s = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    with torch.no_grad():
        w = (conv.weight.double()[:, :, 0, 0] * s[:, None]).float().numpy()
        b = ((conv.bias.double() - bn.running_mean.double()) * s + bn.bias.double()).float().numpy()
    node = g.nodes["block.0.mlp.mlp1_conv"]
    assert isinstance(node, nir.Conv1d) and node.weight.shape == (256, 64, 1)
    assert np.array_equal(node.weight[:, :, 0], w) and np.array_equal(node.bias, b)
    assert md(node, "folded_bn") == "block.0.mlp.mlp1_bn"
    enc = g.nodes["patch_embed.block0_conv"]
    assert isinstance(enc, nir.Conv2d) and enc.weight.shape == (16, 1, 3, 3)
    assert not np.array_equal(enc.weight, model.patch_embed.block0_conv.weight.detach().numpy())


def test_lif_parameters(digits):
    _, g = digits
    lif = g.nodes["block.0.attn.q_lif"]
    assert isinstance(lif, nir.LIF) and lif.tau.shape == (64, 16) and lif.tau.dtype == np.float32
    assert np.all(lif.tau == np.float32(2e-4)) and np.all(lif.r == 1) and np.all(lif.v_leak == 0) and np.all(lif.v_reset == 0)
    assert np.all(lif.v_threshold == np.nextafter(np.float32(1.0), np.float32(0)))
    att = g.nodes["block.0.attn.attn_lif"]
    assert np.all(att.v_threshold == np.nextafter(np.float32(0.5), np.float32(0)))
    assert md(att, "v_threshold") == 0.5 and md(att, "spike_rule") == ">="


def test_maxpool_becomes_sumpool_and_threshold(digits):
    _, g = digits
    pool, orr = g.nodes["patch_embed.block2_mp.sum"], g.nodes["patch_embed.block2_mp.or"]
    assert isinstance(pool, nir.SumPool2d) and list(pool.kernel_size) == [3, 3] and list(pool.stride) == [2, 2]
    assert list(pool.padding) == [1, 1]
    assert isinstance(orr, nir.Threshold) and np.all(orr.threshold == 0.5) and orr.threshold.shape == (32, 4, 4)
    assert ("patch_embed.block2_lif", "patch_embed.block2_mp.sum") in g.edges
    assert ("patch_embed.block2_mp.sum", "patch_embed.block2_mp.or") in g.edges


def test_residuals_are_summed_edges():
    model = random_model("spikingformer-cifar10-4-384", img=16, T=1)
    model.block = model.block[:2]
    model.cfg.depth = 2
    g = to_nir(model, input_shape=(3, 16, 16))
    pred = predecessors(g)
    assert pred["block.0.attn.proj_lif"] == ["patch_embed.flatten"]
    assert pred["block.0.mlp.mlp1_lif"] == ["patch_embed.flatten", "block.0.attn.proj_conv"]
    assert pred["block.1.attn.proj_lif"] == ["patch_embed.flatten", "block.0.attn.proj_conv", "block.0.mlp.mlp2_conv"]
    assert pred["head.flatten"] == ["patch_embed.flatten", "block.0.attn.proj_conv", "block.0.mlp.mlp2_conv",
                                    "block.1.attn.proj_conv", "block.1.mlp.mlp2_conv"]


def test_head_is_one_readout_affine(digits):
    model, g = digits
    head = g.nodes["head"]
    N = 16
    assert isinstance(head, nir.Affine) and head.weight.shape == (10, 64 * N)
    W = model.head.weight.detach().double().numpy()
    assert np.array_equal(head.weight[:, 5 * N:6 * N], np.repeat((W[:, 5:6] / N).astype(np.float32), N, axis=1))
    assert np.array_equal(head.bias, model.head.bias.detach().numpy())
    assert g.nodes["head.flatten"].start_dim == 0


def test_attention_extension_node(digits, tmp_path):
    _, g = digits
    back = read_graph(write_graph(g, tmp_path / "model.nir"))
    node = back.nodes["block.0.attn.attention"]
    spec = attention_spec(node)
    assert (spec.dim, spec.heads, spec.tokens, spec.scale) == (64, 4, 16, 0.125)
    assert md(node, "extension") == "spiking_attention" and int(md(node, "extension_version")) == 1
    assert predecessors(back)["block.0.attn.attention"] == ["block.0.attn.stack_q", "block.0.attn.stack_k",
                                                            "block.0.attn.stack_v"]
    w = back.nodes["block.0.attn.stack_k"].weight[:, :, 0]
    assert w.shape == (192, 64) and np.array_equal(w[64:128], np.eye(64)) and w[:64].sum() == w[128:].sum() == 0


def test_dvs_takes_event_counts():
    model = random_model("spikingformer-cifar10dvs-2-256", img=32, T=2)
    g = to_nir(model, input_shape=(2, 32, 32))
    assert g.metadata["neurodeploy.input_encoding"] == "events" and g.metadata["neurodeploy.input_domain"] == "counts"
    assert g.metadata["neurodeploy.time_steps"] == 0
    assert np.all(g.nodes["patch_embed.proj1_lif"].tau == np.float32(1.5e-4))


def test_sew_and_spikformer_joins():
    g = to_nir(random_model("sew-resnet-digits-add"))
    pred = predecessors(g)
    assert pred["layer.1.conv1"] == ["layer.0.sn2", "sn"]
    assert pred["fc.flatten"] == ["layer.1.sn2", "layer.0.sn2", "sn"]  # integer-valued sum of spikes, as it is
    g = to_nir(random_model("sew-resnet-digits-and"))
    node = g.nodes["layer.0.connect"]
    assert isinstance(node, nir.Threshold) and np.all(node.threshold == 1.5)
    assert predecessors(g)["layer.0.connect"] == ["layer.0.sn2", "sn"]
    g = to_nir(random_model("sew-resnet-digits-iand"))
    assert np.all(g.nodes["layer.0.connect.neg"].scale == -1) and np.all(g.nodes["layer.0.connect"].threshold == 0.5)
    assert predecessors(g)["layer.0.connect"] == ["sn", "layer.0.connect.neg"]
    g = to_nir(random_model("spikformer-digits"))
    pred = predecessors(g)
    assert pred["patch_embed.flatten"] == ["patch_embed.rpe_lif", "patch_embed.maxpool2.or"]
    assert pred["block.1.attn.q_conv"] == ["patch_embed.flatten", "block.0.attn.proj_lif", "block.0.mlp.fc2_lif"]


def test_unsupported_layers_are_named():
    model = random_model("spikingformer-digits")
    model.patch_embed.block2_mp = nn.AvgPool2d(2)
    with pytest.raises(UnsupportedError, match=r"module 'patch_embed.block2_mp' is torch.nn.modules.pooling.AvgPool2d; expected MaxPool2d"):
        to_nir(model)
    model = random_model("spikingformer-digits")
    model.block[0].mlp.drop = nn.Dropout(0.1)
    with pytest.raises(UnsupportedError, match=r"module 'block.0.mlp.drop' \(torch.nn.modules.dropout.Dropout\) is not part .* supported: "):
        to_nir(model)
    with pytest.raises(UnsupportedError, match=r"model Sequential is not a neurodeploy, snnTorch or Norse model; its first layer '0' is torch.nn.modules.linear.Linear; supported: "):
        to_nir(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    model = random_model("spikingformer-cifar10-4-384", img=32, T=1)
    with pytest.raises(UnsupportedError, match="exact attention expansion would need"):
        to_nir(model, expand_attention=True)
