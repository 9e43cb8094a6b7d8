"""The new attention forms lowered from standard NIR onto Lava's standard processes (LIF, Dense/Sparse,
Conv): Lava equals our engine bit for bit (s, u, v of every population at every step) on the digits-size
model of each family: SDSA (Spike-driven Transformer V1: K AND V, token count, OR neuron, broadcast, AND Q)
and QKFormer's Q-K token attention (per-head count of Q, OR neuron, broadcast, AND K); and Spike-driven
Transformer V2's re-parameterized convs with its Q (K^T V) attention on the token grid (graded ProdNeuron /
GradedVec populations)."""
import pytest

from neurodeploy.lower.loihi2 import lower_graph

from export_helpers import lava_equals_engine, random_input, random_model

pytestmark = [pytest.mark.lava, pytest.mark.slow]


@pytest.mark.parametrize("arch,attention_pops", [
    ("sdt-digits", ("block.0.attn.kv_and", "block.0.attn.talking_heads_lif", "block.0.attn.q_and_mask")),
    ("qkformer-digits", ("stage1.0.tssa.attn_lif", "stage1.0.tssa.k_and")),
])
def test_lowered_attention_form_in_lava_equals_engine(arch, attention_pops):
    from neurodeploy.exporters import to_nir
    model = random_model(arch, 8, 4)
    net, _ = lower_graph(to_nir(model))
    assert not net.attention  # no attention process: the form is plain neurons and synapses
    x = random_input(model, 8, 4, batch=1).numpy()
    inputs = {k: v.numpy() for k, v in net.encode_inputs(x).items()}
    ours = lava_equals_engine(net, inputs, 4 + net.metadata["latency"])  # s, u, v of every population
    for pop in attention_pops:  # the attention populations really spike (and not everywhere)
        assert {"s", "u", "v"} <= set(ours[pop]), pop
        s = ours[pop]["s"]
        assert 0 < s.sum() < s.size, pop


def test_sdtv2_digits_in_lava_equals_engine():
    """sdtv2-digits: folded RepConv / SepConv convs, the membrane-shortcut stream into LIFs, and the attention
    0.125 Q (K^T V) -> attn_lif on the 4x4 token grid lowered to product and graded neurons (no attention
    process): Lava equals our engine on s, u, v of every population at every step."""
    from neurodeploy.exporters import to_nir
    model = random_model("sdtv2-digits", 8, 4)
    net, _ = lower_graph(to_nir(model))
    assert not net.attention
    assert {"prod", "graded_vec"} <= {p.kind for p in net.populations}
    x = random_input(model, 8, 4, batch=1).numpy()
    inputs = {k: v.numpy() for k, v in net.encode_inputs(x).items()}
    ours = lava_equals_engine(net, inputs, 4 + net.metadata["latency"])
    for pop in ("block3.0.attn.q_lif", "block3.0.attn.attn_lif", "ConvBlock1_2.0.Conv.lif2"):
        s = ours[pop]["s"]
        assert 0 < s.sum() < s.size, pop


def test_sdt_head_through_pooled_relays_in_lava_equals_engine(monkeypatch):
    """The Spike-driven Transformer's head LIF reads the token mean of its membrane stream: the mean of each
    block's 1x1 output conv is read as that source's spike counts summed over tokens (a ``.sum`` relay, exact
    integer counts) times a (D x C) weight, and the mean of a tokenizer 3x3 conv as the counts over the window
    each tap reads (a ``.sum3x3p11`` relay, C x 9) times the (D x 9C) kernel, not as a conv over the whole map
    (what full-size models get: the relay threshold set to 0 here so that digits size takes the same path).
    Lava equals our engine."""
    from neurodeploy.exporters import to_nir
    from neurodeploy.lower import chains
    monkeypatch.setattr(chains, "RELAY_MIN_FAN_IN", 0)
    model = random_model("sdt-digits", 8, 4)
    net, _ = lower_graph(to_nir(model))
    into_head = {s.src for s in net.synapses if s.dst == "head_lif"}
    sums = {s for s in into_head if s.endswith(".sum")}
    # the attention's and the MLP's 1x1 output convs: one count per channel; the tokenizer's 3x3 convs (pad 1):
    # one count per channel and tap, over the window that tap reads
    assert sums == {"block.0.attn.q_and_mask.sum", "block.0.mlp.fc2_lif.sum"}, into_head
    assert into_head - sums == {"patch_embed.maxpool2.or.sum3x3p11", "patch_embed.proj_lif3.sum3x3p11"}
    assert net.pop("patch_embed.proj_lif3.sum3x3p11").shape == (64 * 9,)
    x = random_input(model, 8, 4, batch=1).numpy()
    inputs = {k: v.numpy() for k, v in net.encode_inputs(x).items()}
    ours = lava_equals_engine(net, inputs, 4 + net.metadata["latency"])
    s = ours["head_lif"]["s"]
    assert 0 < s.sum() < s.size
