"""Channel splitting (issue 28, fit a Kapoho Point): conv populations cut by output channels so that the Loihi 2
compiler's power-of-two tiling fills its cores (neurodeploy/lower/channels.py, chosen by the core model in
neurodeploy/mapping/channels.py).  Proxy: spikingformer-gesture-2-256 (random weights) at 32 x 32 input, the
same tokenizer (32 -> 64 -> 128 -> 256 channels, LIF -> max-pool OR -> conv) that takes 600 of the full-size
model's cores unsplit.  The cut must leave every spike, u and v unchanged (our engine and Lava), keep the
latency, and take fewer cores."""
import numpy as np
import pytest
import torch

from neurodeploy.lower.loihi2 import lower_graph
from neurodeploy.mapping import fit, from_lowered
from neurodeploy.mapping.channels import choose_channel_splits
from neurodeploy.profiles import load_profile
from neurodeploy.sim import simulate

from simresults import assert_same


@pytest.fixture(scope="module")
def gesture32():
    from neurodeploy.exporters import to_nir
    from neurodeploy.models.registry import build_model
    torch.manual_seed(0)
    model = build_model("spikingformer-gesture-2-256", {"img_size": 32, "T": 4}).eval()
    with torch.no_grad():       # BatchNorm x8: with the default init the random network is nearly silent
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.weight.mul_(8.0)
    g = to_nir(model)
    prof = load_profile("loihi2")
    whole, _ = lower_graph(g, input_range=(-1.0, 1.0))
    cut, _ = lower_graph(g, input_range=(-1.0, 1.0), channel_splits=choose_channel_splits(prof))
    rng = np.random.default_rng(0)
    T = int(whole.metadata["time_steps"])
    # DVS events: the graded input population takes the event counts per step, [T, batch, neurons]
    x = {"input": (rng.random((T, 1, 2 * 32 * 32)) < 0.3).astype(np.int64)}
    assert [p.name for p in whole.inputs] == ["input"]
    return whole, cut, prof, x, g


def _rejoin(cut, rec):
    """The cut network's recordings with every cut population's parts joined in channel order."""
    out = dict(rec)
    for name, parts in cut.metadata["channel_splits"].items():
        recs = [out.pop(p[0]) for p in parts]
        out[name] = {k: np.concatenate([r[k] for r in recs], axis=-1) for k in recs[0]}
    return out


def test_the_cut_is_where_the_core_model_saves_cores(gesture32):
    whole, cut, prof, _, _ = gesture32
    splits = cut.metadata["channel_splits"]
    # the LIF and its max-pool OR (linked by the depthwise pool) are cut at the same channel: the first
    # C - 1 channels tile at (C - 1) x 2^k neurons per core (e.g. 31 x 128 = 3,968), not C x 2^(k-1) = 2,048
    assert splits["patch_embed.proj1_lif"] == [["patch_embed.proj1_lif.c0_31", 0, 31],
                                               ["patch_embed.proj1_lif.c31_32", 31, 32]]
    assert [p[1:] for p in splits["patch_embed.maxpool1.or"]] == [[0, 31], [31, 32]]
    assert [p[1:] for p in splits["patch_embed.proj2_lif"]] == [[0, 63], [63, 64]]
    # proj3 (128 x 8 x 8) would save a core cut (4 -> 2 + 1), but its linked OR (128 x 4 x 4 = 2,048 neurons,
    # one core) would take one more (1 + 1): the group stays whole
    assert "patch_embed.proj3_lif" not in splits and "patch_embed.maxpool3.or" not in splits
    assert whole.metadata["latency"] == cut.metadata["latency"]
    assert whole.counts()["neurons"] == cut.counts()["neurons"]
    a = fit(from_lowered(whole), prof)
    b = fit(from_lowered(cut), prof)
    per = {L["layer"]: L["cores"] for L in b.per_layer}
    per_whole = {L["layer"]: L["cores"] for L in a.per_layer}
    # hand-checked: proj1_lif 32 x 32 x 32 whole at 2,048 per core = 16 cores; cut: 31 channels at
    # 31 x 128 = 3,968 per core = 8 cores, plus the last channel (1,024 neurons) on 1
    assert per_whole["patch_embed.proj1_lif"] == 16 and per["patch_embed.proj1_lif"] == 9
    assert b.n_cores < a.n_cores
    # without a profile (or a chooser) nothing is cut: the pass is not even run
    assert "split_channels" not in whole.metadata["passes"] and "channel_splits" not in whole.metadata


def test_the_cut_network_computes_the_same_spikes_u_and_v(gesture32):
    whole, cut, _, x, _ = gesture32
    steps = int(whole.metadata["time_steps"]) + int(whole.metadata["latency"])
    ref = simulate(whole, x, steps, record="all")
    got = _rejoin(cut, simulate(cut, x, steps, record="all"))
    assert int(ref["patch_embed.proj1_lif"]["s"].sum()) > 1000       # the cut layers are active
    assert int(ref["patch_embed.proj3_lif"]["s"].sum()) > 100
    assert_same(got, ref)


@pytest.mark.slow
@pytest.mark.lava
def test_lava_equals_engine_on_the_cut_populations(gesture32):
    from neurodeploy.lava.slices import check_slices
    _, cut, _, x, _ = gesture32
    inputs = x
    steps = int(cut.metadata["time_steps"]) + int(cut.metadata["latency"])
    ref = simulate(cut, inputs, steps, record="all")
    parts = [p[0] for v in cut.metadata["channel_splits"].values() for p in v]
    readers = sorted({syn.dst for syn in cut.synapses if syn.src in parts} - set(parts))
    assert readers == ["patch_embed.proj3_lif"]
    # every cut population, the population that reads the last ones and the max-pool OR after it (Lava Conv
    # processes, as built: the cut plain convs, the cut depthwise max-pool convs, the input-channel halves
    # summed into one LIF, and a depthwise conv over 128 channels, whose groups Lava's Conv takes merged)
    reps = check_slices(cut, inputs, steps, ref, [parts + readers + ["patch_embed.maxpool3.or"]])
    assert reps[0]["mismatch"] == ""


def test_the_fidelity_report_rejoins_the_cut_layers(gesture32):
    """The float-vs-integer layer agreement of the cut network is the uncut one's, layer by layer (the parts'
    spikes are rejoined in channel order before they are compared with the float model's)."""
    from neurodeploy.fidelity import simulate_lowered
    whole, cut, _, _, g = gesture32
    x = (np.random.default_rng(1).random((2, int(whole.metadata["time_steps"]), 2, 32, 32)) < 0.3).astype(np.float32)
    a = simulate_lowered(g, whole, x, batch=2)["layer_spike_agreement"]
    b = simulate_lowered(g, cut, x, batch=2)["layer_spike_agreement"]
    assert "patch_embed.proj1_lif" in b and a == b


@pytest.mark.slow
def test_the_cut_fits_a_budget_the_whole_network_does_not():
    """The same mechanism as full-size gesture-2-256 on a Kapoho Point (1,156 -> 891 cores, 10 -> 8 chips), at
    64 x 64 input: the uncut network needs more chips than the cut one (4 vs 3 at 122 cores per chip)."""
    from neurodeploy.exporters import to_nir
    from neurodeploy.models.registry import build_model
    torch.manual_seed(0)
    g = to_nir(build_model("spikingformer-gesture-2-256", {"img_size": 64, "T": 4}).eval())
    prof = load_profile("loihi2")
    whole, _ = lower_graph(g, input_range=(-1.0, 1.0))
    cut, _ = lower_graph(g, input_range=(-1.0, 1.0), channel_splits=choose_channel_splits(prof))
    a, b = fit(from_lowered(whole), prof), fit(from_lowered(cut), prof)
    assert a.fits and b.fits and b.n_cores < a.n_cores
    assert b.n_chips == 3 < a.n_chips
