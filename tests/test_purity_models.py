"""Purity of our models through the real exporter (neurodeploy.exporters.to_nir): every Spikingformer
variant, Spikformer, SEW ADD/AND/IAND; readout folding proved by simulation; the dynamic check."""
import numpy as np
import pytest
import torch

from neurodeploy import build_model
from neurodeploy.analysis import Domain, check_purity
from neurodeploy.analysis.activity import record_activity
from neurodeploy.analysis.fold import fold_readout, verify_fold
from neurodeploy.errors import NeurodeployError, UnsupportedError
from neurodeploy.exporters import to_nir
from neurodeploy.graph import reduce_output, simulate
from neurodeploy.models.registry import SPIKINGFORMER_CONFIGS
from neurodeploy.models.neuron import MultiStepLIF



def _graph(arch, **kw):
    torch.manual_seed(0)
    return to_nir(build_model(arch).eval(), **kw)


def _spikingformer_expectations(arch):
    g = _graph(arch)
    encoder = "patch_embed.block0_conv" if build_model(arch).cfg.tokenizer_naming == "cifar" else "patch_embed.proj_conv"
    r = check_purity(g)
    assert [(v.node, v.role) for v in r.violations] == [(encoder, "encoder"), ("head", "readout")]
    events = g.metadata["neurodeploy.input_domain"] == "counts"
    assert r.op(encoder).op_class == ("INTxFLOAT" if events else "MAC")  # DVS frames carry event counts
    assert r.op("head").op_class == "MAC"
    ok = check_purity(g, allow=["encoder", "readout"])
    assert ok.pure and [e.node for e in ok.exceptions] == [encoder, "head"]
    depth = build_model(arch).cfg.depth
    att = [o for o in ok.ops if o.op == "Attention"]
    assert len(att) == depth and all(o.op_class == "AC" and "threshold 0.5 -> 4" in o.detail for o in att)
    others = [o for o in ok.ops if o.node not in (encoder, "head")]
    assert all(o.op_class in ("AC", "ROUTING") for o in others)
    assert sum(o.op_class == "ROUTING" for o in others) == 3 * depth


@pytest.mark.parametrize("arch", list(SPIKINGFORMER_CONFIGS))
def test_spikingformer_pure_apart_from_encoder_and_head(arch):
    _spikingformer_expectations(arch)


def test_spikformer_flagged_at_qkv_and_fc1_with_growing_range():
    g = _graph("spikformer-digits")
    depth = build_model("spikformer-digits").cfg.depth
    r = check_purity(g, allow="encoder,readout")
    flagged = {v.node: v for v in r.violations}
    expected = {f"block.{l}.attn.{n}_conv" for l in range(depth) for n in "qkv"} | \
               {f"block.{l}.mlp.fc1_conv" for l in range(depth)}
    assert set(flagged) == expected
    for l in range(depth):
        for n in "qkv":
            v = flagged[f"block.{l}.attn.{n}_conv"]
            assert v.op_class == "INTxFLOAT" and v.input_domain == Domain.integer(0, 2 + 2 * l)
            assert v.source == f"block.{l}.attn.{n}_conv"
        assert flagged[f"block.{l}.mlp.fc1_conv"].input_domain == Domain.integer(0, 3 + 2 * l)
    # the RPE sum (rpe_lif spikes + pooled spikes) is where the integers start
    rpe = flagged["block.0.attn.q_conv"].origin
    assert "fan-in sum of 2 edges" in rpe and "patch_embed.rpe_lif" in rpe
    assert "move the LIF before the conv" in flagged["block.0.attn.q_conv"].hint
    sums = {sm["at"]: sm for sm in r.integer_sums()}
    assert sorted(sums["patch_embed.flatten"]["edges"]) == ["patch_embed.maxpool2.or", "patch_embed.rpe_lif"]
    assert sums["patch_embed.flatten"]["domain"] == "integer [0, 2]"
    assert sorted(sums["patch_embed.flatten"]["feeds"]) == [f"block.0.attn.{n}_conv" for n in "kqv"]
    assert r.op("head").input_domain == Domain.integer(0, 2 + 2 * depth)


@pytest.mark.parametrize("arch,flagged", [("sew-resnet-digits-add", ["layer.1.conv1"]),
                                          ("sew-resnet-digits-and", []), ("sew-resnet-digits-iand", [])])
def test_sew(arch, flagged):
    r = check_purity(_graph(arch), allow="encoder,readout")
    assert [v.node for v in r.violations] == flagged
    if flagged:
        assert r.violations[0].input_domain == Domain.integer(0, 2)


def test_expanded_attention_is_pure_too():
    """The fully standard expansion (AND units + shifted sums + 0.125 placements) is accumulate-only."""
    r = check_purity(_graph("spikingformer-digits", expand_attention=True), allow="encoder,readout")
    assert r.pure and not any(o.op == "Attention" for o in r.ops)
    assert r.summary()["classes"]["FOLDED"] > 0  # the 0.125 placements fold into attn_lif's threshold


def _lively(arch="spikingformer-digits", gain=8.0):
    """An untrained model whose conv weights are scaled up so that every LIF layer fires."""
    torch.manual_seed(0)
    model = build_model(arch).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d)):
                m.weight.mul_(gain)
    return model


def _images(n=12, gain=4.0):
    from neurodeploy.front_door import digits_samples

    return digits_samples(n) * gain  # brighter than training: untrained weights still spike


def test_fold_readout_spikingformer_exact_and_pure():
    model = _lively()
    g = to_nir(model)
    folded, info = fold_readout(g)
    assert info["readouts"][0]["head"] == "head" and "head" not in folded.nodes
    # one accumulate branch per conv that feeds the stream: tokenizer output, proj_conv, mlp2_conv
    assert sorted(b["leaf"] for b in info["branches"]) == ["block.0.attn.proj_conv", "block.0.mlp.mlp2_conv",
                                                          "patch_embed.block2_conv"]
    x = _images()
    ver = verify_fold(g, folded, x)
    assert ver["equal"] and ver["max_abs_diff"] < 1e-4 * max(1.0, ver["max_abs_logit"])
    with torch.no_grad():
        torch_logits = model(x).double()
    folded_logits = reduce_output(folded, simulate(folded, x)).double()
    assert torch.allclose(folded_logits, torch_logits, atol=1e-3, rtol=1e-3)
    r = check_purity(folded, allow="encoder")
    assert r.pure and [e.node for e in r.exceptions] == ["patch_embed.block0_conv"]
    assert all(o.op_class == "AC" for o in r.ops if o.role == "readout")


def test_fold_readout_spikformer_folds_the_head_but_not_the_blocks():
    g = _graph("spikformer-digits")
    folded, info = fold_readout(g)
    assert all(b["kind"] == "spikes" for b in info["branches"])
    assert verify_fold(g, folded, _images(6))["equal"]
    r = check_purity(folded, allow="encoder")
    assert not r.pure and all(v.op_class == "INTxFLOAT" and "readout" != v.role for v in r.violations)


def test_fold_readout_needs_a_foldable_head():
    folded, _ = fold_readout(_graph("spikingformer-digits"))
    with pytest.raises(UnsupportedError, match="no non-spiking readout"):
        fold_readout(folded)


def test_dynamic_check_records_values_and_firing_rates():
    model = _lively()
    g = to_nir(model)
    x = _images(16)
    r = check_purity(g)
    act = record_activity(g, x, analysis=r.analysis, batch_size=5)
    assert act["internal_errors"] == [] and act["samples"] == 16 and act["time_steps"] == 4
    # rates of the graph's LIF nodes equal the torch model's LIF outputs (node names = module paths)
    rates = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: rates.__setitem__(name, float(o.mean())))
             for name, m in model.named_modules() if isinstance(m, MultiStepLIF)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    assert set(rates) <= set(act["firing_rates"])
    assert all(v > 0.005 for v in rates.values()), rates
    for name, rate in rates.items():
        assert act["firing_rates"][name] == pytest.approx(rate, abs=2e-3), name
    # binary-proven inputs saw only 0/1; the encoder saw the real pixels
    assert act["input_range"]["block.0.attn.q_conv"][1] <= 1.0
    assert act["input_range"]["patch_embed.block0_conv"][1] == pytest.approx(float(x.max()))
    assert 0 < act["input_rates"]["block.0.mlp.mlp1_conv"] < 1


def test_dynamic_check_reports_a_wrong_proof_as_internal_error():
    g = _graph("spikingformer-digits")
    wrong = check_purity(g, input_domain="binary").analysis  # claims the encoder reads binary input
    x = _images(4)
    act = record_activity(g, x, analysis=wrong)
    assert len(act["internal_errors"]) == 1
    assert "patch_embed.block0_conv" in act["internal_errors"][0] and "binary" in act["internal_errors"][0]
    with pytest.raises(NeurodeployError, match="internal error"):
        record_activity(g, x, analysis=wrong, strict=True)


def test_cnn_sinabs_through_the_front_door(nir_paper):
    g = to_nir(nir_paper / "02_cnn" / "cnn_sinabs.nir")
    assert check_purity(g, input_domain="binary").pure
    r = check_purity(g, input_domain="counts")
    assert [v.node for v in r.violations] == ["0"]
    # the dynamic check on binary events: the sum-pool counts really reach 2+ and stay within [0, 4]
    rng = np.random.default_rng(0)
    x = torch.as_tensor((rng.random((4, 6, 2, 34, 34)) < 0.3).astype(np.float32))
    act = record_activity(g, x, analysis=check_purity(g, input_domain="binary").analysis)
    assert act["internal_errors"] == []
    lo, hi = act["input_range"]["5"]
    assert lo >= 0 and 1 < hi <= 4
