"""The paper's energy method reproduces Spikingformer's published numbers (spikingformer.md 5.1/5.2)."""
import pytest

from neurodeploy.energy import (PUBLISHED_ENERGY_MJ, PUBLISHED_LOG, neurobench_metrics, ops_from_model,
                                paper_energy, published_firing_rates, target_energy)
from neurodeploy.errors import BadInputError
from neurodeploy.models import build_model
from neurodeploy.profiles import load_profile


@pytest.fixture(scope="module")
def imagenet_ops():
    return {a: ops_from_model(a) for a in ("spikingformer-imagenet-8-512", "spikingformer-imagenet-8-768")}


@pytest.mark.parametrize("arch", ["spikingformer-imagenet-8-512", "spikingformer-imagenet-8-768"])
def test_paper_energy_reproduces_published_mj(imagenet_ops, arch):
    rates, note = published_firing_rates(arch)
    assert "published" in note and "borrowed" not in note
    e = paper_energy(imagenet_ops[arch], rates)
    assert e.energy_mj == pytest.approx(PUBLISHED_ENERGY_MJ[arch], rel=0.02)
    # tighter: the MAC total is exact (encoder conv on T repeats + head once), the AC total within 0.2 %
    assert e.macs / 1e9 == pytest.approx(PUBLISHED_LOG[arch]["mac_g"], rel=1e-4)
    assert e.acs / 1e9 == pytest.approx(PUBLISHED_LOG[arch]["ac_g"], rel=0.002)


def test_8_512_matches_the_energy_log_closely(imagenet_ops):
    rates, _ = published_firing_rates("spikingformer-imagenet-8-512")
    e = paper_energy(imagenet_ops["spikingformer-imagenet-8-512"], rates)
    assert e.energy_mj == pytest.approx(7.4635, rel=1e-3)
    # encoder: 3 -> 64 channels, 3x3, 224x224, counted on T=4 repeats; head 512*1000 + 1000 once
    enc = next(L for L in e.layers if L.name == "patch_embed.proj_conv")
    assert enc.macs == 4 * 3 * 64 * 9 * 224 * 224
    head = next(L for L in e.layers if L.name == "head")
    assert head.macs == 512 * 1000 + 1000


def test_8_768_with_the_energy_codes_12_heads_gives_the_logged_13_659():
    # the energy code's ssa_info says 12 heads for 8-768 (spikingformer.md 1.2 / 10.1); the model has 8
    import torch

    with torch.device("meta"):
        model = build_model("spikingformer-imagenet-8-768", {"num_heads": 12})
    rates, _ = published_firing_rates("spikingformer-imagenet-8-768")
    e12 = paper_energy(ops_from_model(model), rates)
    assert e12.energy_mj == pytest.approx(13.659, rel=1e-3)
    assert e12.acs / 1e9 == pytest.approx(12.5137, rel=1e-3)


def test_attention_term_is_the_reference_formula(imagenet_ops):
    rates, _ = published_firing_rates("spikingformer-imagenet-8-512")
    e = paper_energy(imagenet_ops["spikingformer-imagenet-8-512"], rates)
    row = next(L for L in e.layers if L.name == "block.0.attn.attention")
    # T * heads * N * d^2 * (min(fr_k, fr_v) + fr_q), block 0: q 17.23 %, k 3.63 %, v 6.96 %
    assert row.acs == pytest.approx(4 * 8 * 196 * 64 ** 2 * (0.0363 + 0.1723))


def test_missing_rate_is_a_clear_error(imagenet_ops):
    rates, _ = published_firing_rates("spikingformer-imagenet-8-512")
    del rates["block.3.mlp.mlp1_lif"]
    with pytest.raises(BadInputError, match="block.3.mlp.mlp1_lif"):
        paper_energy(imagenet_ops["spikingformer-imagenet-8-512"], rates)


def test_neurobench_counts_attention_and_sparsity(imagenet_ops):
    ops = imagenet_ops["spikingformer-imagenet-8-512"]
    rates, _ = published_firing_rates("spikingformer-imagenet-8-512")
    nb = neurobench_metrics(ops, rates, weight_bits=8)
    e = paper_energy(ops, rates)
    attn = sum(L.acs for L in e.layers if L.kind == "attention")
    assert attn > 0
    assert nb["SynapticOperations"]["Effective_ACs"] == pytest.approx(e.acs)
    assert nb["SynapticOperations"]["Effective_MACs"] == pytest.approx(e.macs)
    # dense includes 2 * heads * N * d^2 per step for each of the 8 blocks
    dense_attn = 8 * 4 * 2 * 8 * 196 * 64 ** 2
    dense_layers = sum(L.repeats * L.dense_ops for L in ops.layers if L.kind != "attention")
    assert nb["SynapticOperations"]["Dense"] == pytest.approx(dense_layers + dense_attn)
    assert 0.8 < nb["ActivationSparsity"] < 0.95
    assert nb["ParameterCount"] == 29_705_768  # includes the unused LayerNorms, as the official count
    assert nb["Footprint_at_target_bits"] < nb["Footprint"]


def test_loihi2_estimate_states_assumptions(imagenet_ops):
    ops = imagenet_ops["spikingformer-imagenet-8-512"]
    rates, _ = published_firing_rates("spikingformer-imagenet-8-512")
    est = target_energy(ops, rates, load_profile("loihi2"))
    assert est["synaptic_ops"] == pytest.approx(6.5179e9 + 0.34733e9, rel=1e-3)
    assert est["breakdown_uj"]["synaptic"] == pytest.approx(est["synaptic_ops"] * 6.8e-6)
    assert any("static power" in a for a in est["assumptions"])
    assert target_energy(ops, rates, load_profile("speck")) is None  # no energy figures in that profile


def test_graph_op_counts_reproduce_8_512():
    # the report counts ops on the NIR graph (exporter output); same published result
    import torch

    from neurodeploy.energy import ops_from_graph
    from neurodeploy.exporters import to_nir

    torch.manual_seed(0)
    g = to_nir(build_model("spikingformer-imagenet-8-512").eval())
    ops = ops_from_graph(g)
    assert ops.source == "graph"
    rates, _ = published_firing_rates("spikingformer-imagenet-8-512")
    e = paper_energy(ops, rates)
    assert e.energy_mj == pytest.approx(7.46, rel=0.02)
    assert e.macs / 1e9 == pytest.approx(0.34733, rel=1e-4)
    assert e.acs / 1e9 == pytest.approx(6.5175, rel=0.002)


def test_graph_and_module_shape_tables_agree_on_cifar10():
    import torch

    from neurodeploy.energy import ops_from_graph
    from neurodeploy.exporters import to_nir

    torch.manual_seed(0)
    arch = "spikingformer-cifar10-4-384"
    a = {L.name: (L.kind, L.dense_ops, L.repeats, L.input) for L in ops_from_graph(to_nir(build_model(arch).eval())).layers}
    b = {L.name: (L.kind, L.dense_ops, L.repeats, L.input) for L in ops_from_model(arch).layers}
    assert set(a) == set(b)
    for name in a:
        assert a[name][:3] == b[name][:3], name
        # the graph names the max-pool output node `<pool>.or`; the module table the pool module
        assert (a[name][3] or "").removesuffix(".or") == (b[name][3] or ""), name
