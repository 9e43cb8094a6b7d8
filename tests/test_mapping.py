"""Chip fit on networks whose core counts are computed by hand, and verdicts for targets that cannot run."""
import json
import math
from pathlib import Path

import pytest

from neurodeploy.mapping import MapNetwork, MapPopulation, MapSynapses, fit, from_graph
from neurodeploy.mapping.boxes import receptive_box
from neurodeploy.mapping.reference_nets import mlp, pilotnet_lif, pilotnet_sdnn, yolo_kp
from neurodeploy.profiles import load_profile, load_profile_file

LOIHI2 = Path(__file__).resolve().parents[1] / "hardware_profiles" / "loihi2.toml"


def test_mnist_784_128_64_10_on_loihi2_is_5_cores_like_the_compiler():
    # Compiler (tests/data/loihi2_compiler_tables.json, mnist): 3 + 1 + 1 = 5 cores.  By hand (ceil(n / 4)
    # SynMem units per input axon for the n neurons of a core, 12,000 per core; a layer that overflows is split
    # again by the overflow ratio, as the compiler's max_ratio iteration does):
    #   fc0 784 -> 128: one core 784 * 32 = 25,088 = 2.09 x 12,000 -> 3 cores of 43: 784 * 11 = 8,624
    #   fc1 128 -> 64: 128 * 16 = 2,048 (compiler 2,016 = 16.80 %); fc2 64 -> 10: 64 * 3 = 192 (compiler 1.60 %)
    r = fit(mlp([784, 128, 64, 10], "mnist"), load_profile("loihi2"))
    assert r.fits and r.n_cores == 5 and r.n_chips == 1 and r.system == "Oheo Gulch"
    per = {L["layer"]: L for L in r.per_layer}
    assert per["fc0"]["cores"] == 3 and per["fc1"]["cores"] == 1 and per["fc2"]["cores"] == 1
    assert max(c.usage["synapse_memory"] for c in r.cores) == 8624
    assert per["fc1"]["synapse_memory"] == 2048 and per["fc2"]["synapse_memory"] == 192 == round(0.0160 * 12000)
    assert r.bottleneck["resource"] == "synapse_memory"
    assert r.bottleneck["peak_core_pct"] == pytest.approx(100 * 8624 / 12000)
    assert r.latency_steps == 1 + 3  # T=1 plus one step per synapse group


TABLES = json.loads((Path(__file__).parent / "data" / "loihi2_compiler_tables.json").read_text())["tables"]


def _tile(r, layer):
    """(x, y, c) of the largest piece of ``layer`` (the compiler prints its full tile per conv layer)."""
    c0, c1, h0, h1, w0, w1 = max((p for c in r.cores for p in c.pieces if p.layer == layer), key=lambda p: p.neurons).box
    return f"Conv({w1 - w0}, {h1 - h0}, {c1 - c0})"


@pytest.mark.parametrize("name,build", [("pilotnet_lif", pilotnet_lif), ("pilotnet_sdnn", pilotnet_sdnn)])
def test_pilotnet_on_loihi2_equals_the_compiler_layer_by_layer(name, build):
    """Every layer of PilotNet LIF (74 cores) and SDNN (61) gets the compiler's cores, its tile (x, y, c),
    its input axons on dense layers and its SynMem units on dense layers (tables in lava-dl's notebooks).
    By hand: conv4 [64, 4, 22]: 16x4x64 = 4,096 neurons > 4,095 -> 8x4x64, ceil(22 / 8) = 3 cores;
    fc1 2560 -> 100: one core 2,560 * 25 = 64,000 = 5.3 x 12,000 -> 6 cores of 17: 2,560 * 5 = 12,800 =
    1.07 x -> 12 cores of 9 (the compiler's own messages: 61,440 / 66,560 then 12,800 units, max_ratio 6 then
    1): 11 * 7,680 + 2,560 = 87,040 units, 7,253 per core as the compiler prints."""
    table = TABLES[name]
    r = fit(build(), load_profile("loihi2"))
    assert r.fits and r.n_cores == table["total_cores"] and r.system == "Oheo Gulch"
    per = {L["layer"]: L for L in r.per_layer}
    assert [(L["layer"], L["cores"]) for L in r.per_layer] == [(row["layer"], row["Cores"]) for row in table["rows"]]
    for row in table["rows"]:
        L = per[row["layer"]]
        if row["tile"]:
            assert _tile(r, row["layer"]) == row["tile"]
        else:   # dense: the compiler's columns are the layer's totals over its cores
            assert round(L["input_axons"] / L["cores"]) == row["AxonIn"]
            assert int(L["synapse_memory"] / L["cores"]) == row["Synapses"] or name == "pilotnet_sdnn" and \
                row["layer"] == "fc2"   # 1,500: the SDNN's fc2 packs 3.3 synapses per unit, not 4
            assert int(L["neurons"] / L["cores"]) == row["Neurons"]
    # conv SynMem by hand: conv3 keeps 36 input channels x 9 taps = 324 lists of its 48 output channels, each
    # 1.8 units + 48 / 17.7: ceil(324 * 4.512) = 1,462 (compiler 1,620); conv1 27 lists of 24: ceil(27 * 3.156) = 86
    assert per["conv3"]["synapse_memory"] == 3 * math.ceil(324 * (1.8 + 48 / 17.7)) == 3 * 1462
    assert per["conv1"]["synapse_memory"] == 25 * 86 and per["conv1"]["input_axons"] == 25 * 2
    # conv SynMem (kernel lists, fitted on these rows): within 10 % of the compiler's per layer
    for row in table["rows"]:
        if row["layer"].startswith("conv"):
            ours = per[row["layer"]]["synapse_memory"] / per[row["layer"]]["cores"]
            assert abs(ours - row["Synapses"]) <= 0.10 * row["Synapses"], row


def test_yolo_kp_held_out_equals_the_compiler_layer_by_layer(capsys):
    """Held out (never used to fit): lava-dl's YOLO-KP SDNN, 10 conv layers, 574 cores on the compiler.
    Every layer's core count and neurons per core (3,584 = 87.52 % of 4,095; conv10 2,688 = 65.64 %) equal
    the compiler's; 6 of 10 tiles are the compiler's (conv6, 7, 9 split channels once more: 8x14x32 instead of
    8x7x64, same neurons; conv10 8x7x48 for 4x14x48)."""
    table = TABLES["yolo_kp"]
    r = fit(yolo_kp(), load_profile("loihi2"))
    assert r.fits and r.n_cores == 574 == table["total_cores"] and r.n_chips == 5
    per = {L["layer"]: L for L in r.per_layer}
    assert [(L["layer"], L["cores"]) for L in r.per_layer] == [(row["layer"], row["Cores"]) for row in table["rows"]]
    tiles = 0
    lines = []
    for row in table["rows"]:
        c0, c1, h0, h1, w0, w1 = max((p for c in r.cores for p in c.pieces if p.layer == row["layer"]),
                                     key=lambda p: p.neurons).box
        assert round(100 * (c1 - c0) * (h1 - h0) * (w1 - w0) / 4095, 2) == row["Neurons"]
        tiles += _tile(r, row["layer"]) == row["tile"]
        ours = per[row["layer"]]["synapse_memory"] / per[row["layer"]]["cores"]
        err = 100 * (ours - row["Synapses"] * 120) / (row["Synapses"] * 120)
        lines.append(f"{row['layer']} {row['Cores']} cores; SynMem/core {ours:.0f} vs {row['Synapses'] * 120:.0f} ({err:+.0f} %)")
        assert -25 <= err <= 85
    assert tiles == 6
    with capsys.disabled():
        print("\nYOLO-KP on Loihi 2 (held out): " + "; ".join(lines))


def test_loihi1_nengo_bits_hand_count():
    # 100 -> 2000 on Loihi 1: <= 1024 compartments -> at least 2 cores.  Synapse bits per axon (nengo-loihi):
    # groups of 64, each n*(9 + index_bits) + 10 bits rounded up to 64.  3 cores (667, 10 index bits):
    # 10 groups * 1,280 + ceil((27*19 + 10)/64)*64 = 13,376 bits per axon * 100 = 1,337,600 > 1,048,576.
    # 4 cores (500, 9 index bits): 7 * 1,216 + 960 = 9,472 bits per axon * 100 = 947,200 -> fits.
    r = fit(mlp([100, 2000], "wide"), load_profile("loihi"))
    assert r.n_cores == 4
    assert [c.usage["synapse_memory"] for c in r.cores] == [947_200] * 4
    assert r.system == "Kapoho Bay"


def test_packing_small_populations():
    # 10 -> 100 -> 50: SpiNNaker 2 packs: 150 neurons <= 256, (1,000 + 5,000) synapses * 4 B <= 96 KiB -> 1 PE
    net = mlp([10, 100, 50])
    r = fit(net, load_profile("spinnaker2"))
    assert r.n_cores == 1 and r.cores[0].usage["synapse_memory"] == 24_000
    # Loihi 2 keeps one layer per core (as its compiler does) unless packing is asked for
    assert fit(net, load_profile("loihi2")).n_cores == 2
    assert fit(net, load_profile("loihi2"), pack=True).n_cores == 1


def _tiny_profile(tmp_path):
    text = LOIHI2.read_text()
    text = text.replace('name = "loihi2"', 'name = "tiny"').replace("value = 122,", "value = 2,", 1)
    text = text.replace("value = 4095,", "value = 100,", 1)
    f = tmp_path / "tiny.toml"
    f.write_text(text)
    return load_profile_file(f)


def test_chips_system_and_interchip_traffic(tmp_path):
    prof = _tiny_profile(tmp_path)  # 2 cores per chip, 100 neurons per core
    # host 10 -> A 200 (2 cores, chip 0) -> B 50 (1 core, chip 1): each A neuron sends to one other chip
    net = mlp([10, 200, 50])
    r = fit(net, prof, rates={"fc0": 0.1})
    assert r.n_cores == 3 and r.n_chips == 2 and r.system == "Kapoho Point"
    assert [c.chip for c in r.cores] == [0, 0, 1]
    assert r.interchip_spikes_per_step == pytest.approx(0.1 * 200)
    assert "from firing rates" in r.interchip_note
    r = fit(net, prof)  # no rates: worst case (every neuron every step), said so
    assert r.interchip_spikes_per_step == pytest.approx(200) and "worst case" in r.interchip_note


def test_limit_no_split_can_meet_is_a_verdict():
    # a neuron with 20,000 inputs needs 20,000 input axons on its core; Loihi 2 has 16,000
    r = fit(mlp([20000, 10]), load_profile("loihi2"))
    assert not r.fits
    v = r.violations[0]
    assert v.rule == "limit" and v.layer == "fc0" and "input_axons 20000 > 16000" in v.message


def test_too_many_chips_is_a_verdict():
    prof = load_profile("loihi2")
    net = MapNetwork("huge")
    net.add_pop(MapPopulation("in", (16, 1, 1), "in", "input", on_chip=False))
    net.add_pop(MapPopulation("big", (4096 * 122 * 1200, 1, 1), "big"))
    net.add_syn(MapSynapses("w", "in", "big", "structured", "big", fan_in=1, targets_per_axon=4096 * 122 * 1200 // 16))
    r = fit(net, prof)
    assert not r.fits and r.violations[-1].rule == "system" and "1152" in r.violations[-1].message


@pytest.fixture(scope="module")
def digits_net():
    from neurodeploy.exporters import to_nir
    from neurodeploy.models import build_model

    return from_graph(to_nir(build_model("spikingformer-digits")))


def test_spikingformer_attention_verdicts(digits_net):
    # Loihi 1, Speck, TrueNorth, Akida cannot multiply two activations: the verdict names the rule and layer
    for target in ("loihi", "speck", "truenorth", "akida-1000", "xylo-audio2"):
        r = fit(digits_net, load_profile(target))
        assert not r.fits
        ops = [v for v in r.violations if v.rule == "operation" and "activation_product" in v.message]
        assert ops and ops[0].layer == "block.0.attn.attention", target
    # TrueNorth also: fan-in beyond one core's 256 axons; Akida: LIF is not its neuron model
    tn = fit(digits_net, load_profile("truenorth"))
    assert any(v.rule == "limit" and "fan-in" in v.message for v in tn.violations)
    ak = fit(digits_net, load_profile("akida-1000"))
    assert any(v.rule == "neuron_model" and v.layer == "patch_embed.block1_lif" for v in ak.violations)


def test_spikingformer_digits_fits_loihi2_with_the_built_product_neurons(digits_net):
    # from the NIR graph the attention is not costed for Loihi 2 (it is mapped from what the lowering builds)
    r = fit(digits_net, load_profile("loihi2"))
    assert not r.fits and [v.rule for v in r.violations] == ["unmapped"]
    assert r.violations[0].layer == "block.0.attn.attention"
    from neurodeploy.exporters import to_nir
    from neurodeploy.lower.loihi2 import lower_graph
    from neurodeploy.mapping import from_lowered
    from neurodeploy.models import build_model

    low, _ = lower_graph(to_nir(build_model("spikingformer-digits")))
    net = from_lowered(low, "digits")
    prof = load_profile("loihi2")
    r = fit(net, prof)
    assert r.fits and r.n_chips == 1
    # attention (4 heads, d = 16, 16 tokens), order Q (K^T V): 2 * 4*16*16*16 ProdNeurons (2 LIF slots each:
    # [core] product_neurons 2047 of 4095) + 4*16*16 GradedVec counts (1 slot each)
    built = {p.name: p for p in net.populations if p.layer == "block.0.attn.attention"}
    assert sorted((p.kind, p.size) for p in built.values()) == [("accumulator", 1024), ("product", 16384),
                                                                 ("product", 16384)]
    assert prof.core_limit("product_neurons") == 2047 and prof.core_limit("graded_vec_neurons") == 4095
    attn = sum(L["neurons"] for L in r.per_layer if L["layer"] == "block.0.attn.attention")
    assert attn == 2 * (2 * 4 * 16 * 16 * 16) + 4 * 16 * 16
    # every einsum group of the lowering is one structured group here, graded where the lowering says so
    groups = {s.name: s for s in net.synapses if s.kind == "structured"}
    assert {s.name for s in low.synapses if s.kind == "einsum"} == set(groups)
    assert sum(s.graded for s in groups.values()) == 3


def test_lowered_network_adapter_counts_real_weights():
    # the lowering's integer network: exact per-axon synapse counts from the weights (zeros cost nothing)
    import numpy as np

    from neurodeploy.lower.attention_graded import attention_to_graded
    from neurodeploy.lower.network import Attention, LoweredNetwork, Population, Synapse
    from neurodeploy.mapping import from_lowered

    w = np.zeros((128, 784), dtype=np.int64)
    w[:, :392] = 2          # only the first 392 inputs connect, each to all 128 neurons
    low = LoweredNetwork(
        populations=[Population("in", (784,), kind="input", input_kind="spikes"), Population("h", (128,)),
                     Population("q", (8, 4)), Population("k", (8, 4)), Population("v", (8, 4)), Population("a", (8, 4))],
        synapses=[Synapse("w", "in", "h", "dense", w)],
        attention=[Attention("att", "q", "k", "v", "a", heads=2, dim=8, tokens=4)])
    assert from_lowered(low, "process").unmapped == ["att"]     # a process op is not costed
    low = attention_to_graded(low)
    net = from_lowered(low, "lowered")
    assert not net.pop("in").on_chip and net.pop("q").shape == (8, 1, 4)
    r = fit(net, load_profile("loihi2"))
    per = {L["layer"]: L for L in r.per_layer}
    # 392 axons * ceil(128 / 4) = 12,544 > 12,000 -> 2 cores of 64: 392 * 16 = 6,272 each
    assert per["h"]["cores"] == 2 and per["h"]["input_axons"] == 2 * 392 and per["h"]["synapse_memory"] == 2 * 6272
    # attention: heads 2, d 4, N 4 -> Q (K^T V) (N*d^2 = 64 <= N^2*d = 64): 2 * 2*4*4*4 products (2 slots
    # each) + 2*4*4 accumulators
    assert per["att"]["neurons"] == 2 * (2 * 2 * 4 * 4 * 4) + 2 * 4 * 4
    # SynMem of the counts (GradedVec, 32 neurons, one core): stage-1 products -> counts, graded, fan-in N = 4:
    # 128 axons (the products) * ceil(1 synapse per axon / 2 graded per unit) = 128
    cnt = next(c for c in r.cores if c.pieces[0].population == "att.counts")
    assert cnt.usage["synapse_memory"] == 128 and cnt.usage["input_axons"] == 128
    assert "activation_product" in net.operations and not fit(net, load_profile("loihi")).fits


def test_uneven_explicit_weights_are_checked_on_every_tile():
    """A tile the tiler did not probe can hold more synapses: every tile of an exact-weights population
    is compared with the core limits, so an overfull core is a verdict, never a silent fit."""
    import numpy as np

    w = np.zeros((5, 20000), np.int8)
    w[[0, 2, 4], :5000] = 1   # rows 0, 2, 4: 5,000 synapses each
    w[[1, 3], :] = 1          # rows 1, 3: 20,000 synapses each, over 16,000 input axons per core on their own
    net = MapNetwork("uneven")
    net.add_pop(MapPopulation("in", (20000, 1, 1), layer="in", kind="input", on_chip=False))
    net.add_pop(MapPopulation("out", (5, 1, 1), layer="out"))
    net.add_syn(MapSynapses("in->out", "in", "out", "dense", layer="out", weights=w))
    r = fit(net, load_profile("loihi2"))
    assert not r.fits
    assert any(v.rule == "limit" and "exceeds a core" in v.message for v in r.violations), r.violations


def test_oxford_200_256_200_held_out_on_loihi2(capsys):
    # Held out: never used to fit the Loihi 2 core model.  Compiler: 3 + 2 = 5 cores.  Ours, by hand (input
    # spikes from the host, ceil(n/4) units per input axon, <= 12,000 per core, split by the overflow ratio):
    #   fc0 200 -> 256: one core 200 * 64 = 12,800 > 12,000 -> 2 cores of 128: 200 * 32 = 6,400 (compiler: 3)
    #   fc1 256 -> 200: one core 256 * 50 = 12,800 > 12,000 -> 2 cores of 100: 256 * 25 = 6,400 (compiler: 2)
    # The compiler's own messages show 10-bit-wide synapses here (one core: 200 * ceil(256 * 10 / 32) = 16,000
    # units); at 8 bits fc0 needs one core fewer.
    r = fit(mlp([200, 256, 200], "oxford"), load_profile("loihi2"))
    per = {L["layer"]: L for L in r.per_layer}
    assert per["fc0"]["cores"] == 2 and per["fc1"]["cores"] == 2 == TABLES["oxford"]["rows"][1]["Cores"]
    assert sorted(c.usage["synapse_memory"] for c in r.cores) == [6400] * 4
    assert r.fits and r.n_cores == 4 and r.system == "Oheo Gulch"
    with capsys.disabled():
        print(f"\nOxford 200-256-200 on Loihi 2 (held out): ours {r.n_cores} cores, compiler 5 "
              f"(error {r.n_cores - 5:+d} core, in fc0)")
    assert abs(r.n_cores - TABLES["oxford"]["total_cores"]) <= 1


def test_calibration_table_matches_the_core_model_and_the_compiler_tables():
    # the report's calibration statement (report/summary.py) is what the model computes, against the compiler
    # figures recorded in tests/data/loihi2_compiler_tables.json
    from neurodeploy.mapping.calibration import COMPILER
    from neurodeploy.report.summary import calibration

    cal = calibration()
    assert cal["fitted_on"] == ["PilotNet-LIF", "PilotNet-SDNN", "MNIST 784-128-64-10"]
    assert cal["held_out"] == ["YOLO-KP (SDNN, 448x448)", "Oxford 200-256-200"]
    assert [(r["ours"], r["compiler"]) for r in cal["networks"]] == [(74, 74), (61, 61), (5, 5), (574, 574), (4, 5)]
    assert cal["largest_error_cores"] == 1 and cal["largest_held_out_error_cores"] == 1
    assert cal["largest_layer_error_cores"] == 1 and cal["layers"] == 34 and cal["layers_exact"] == 33
    bad = [(L["network"], L["layer"]) for L in cal["per_layer"] if L["error"]]
    assert bad == [("Oxford 200-256-200", "fc0")]
    # the compiler's numbers in the calibration module are the recorded table's
    keys = {"PilotNet-LIF": "pilotnet_lif", "PilotNet-SDNN": "pilotnet_sdnn", "MNIST 784-128-64-10": "mnist",
            "YOLO-KP (SDNN, 448x448)": "yolo_kp", "Oxford 200-256-200": "oxford"}
    for net, (_, _, rows) in COMPILER.items():
        t = TABLES[keys[net]]
        syn = [round(r["Synapses"] * 120) if t.get("percent") else r["Synapses"] for r in t["rows"]]
        assert [(L, c, s) for L, c, s in rows] == [(r["layer"], r["Cores"], s) for r, s in zip(t["rows"], syn)]


def test_an_overfull_tile_is_halved_until_it_fits():
    """Tiles of an exact-weights population that the probe did not size right are split, not refused, when
    every neuron fits a core on its own (ImageNet's 1,000-neuron readout partial sums needed this)."""
    import numpy as np

    # rows 2 and 3 (6,100 inputs of their own each, 1 unit per axon: one fits a core, two need 12,200 of 12,000
    # units) sit in the one tile of size 2 that the tiler's probes (first, middle, last tile) never look at
    light = [0, 1, 4, 5, 6, 7]
    w = np.zeros((8, 500 * len(light) + 2 * 6100), np.int8)
    for k, i in enumerate(light):
        w[i, 500 * k:500 * (k + 1)] = 1
    for k, i in enumerate((2, 3)):
        w[i, 3000 + 6100 * k:3000 + 6100 * (k + 1)] = 1
    net = MapNetwork("halves")
    net.add_pop(MapPopulation("in", (w.shape[1], 1, 1), layer="in", kind="input", on_chip=False))
    net.add_pop(MapPopulation("out", (8, 1, 1), layer="out"))
    net.add_syn(MapSynapses("in->out", "in", "out", "dense", layer="out", weights=w))
    r = fit(net, load_profile("loihi2"))
    assert r.fits, r.violations
    pieces = [p for c in r.cores for p in c.pieces]
    assert sorted((p.box[0], p.box[1]) for p in pieces) == [(0, 2), (2, 3), (3, 4), (4, 6), (6, 8)]
    assert all(c.usage["synapse_memory"] <= 12000 for c in r.cores)


def test_grouped_conv_reads_the_input_channels_of_its_own_groups():
    # 16 input channels, groups 16, 32 output channels: each group has 2 output channels and reads 1 input
    # channel.  A box of output channels [2, 6) (groups 1 and 2), rows [1, 3), columns [0, 4) reads input
    # channels [1, 3) over rows [0, 4) and columns [0, 5) (3x3 kernel, padding 1, clipped at the border).
    # Read as one output channel per group (the group count) it would be channels [2, 6).
    net = MapNetwork("g")
    net.add_pop(MapPopulation("x", (16, 8, 8), kind="input", on_chip=False))
    net.add_pop(MapPopulation("y", (32, 8, 8)))
    syn = net.add_syn(MapSynapses("xy", "x", "y", "conv", kernel=(3, 3), padding=(1, 1), groups=16))
    assert receptive_box(syn, (16, 8, 8), (2, 6, 1, 3, 0, 4)) == (1, 3, 0, 4, 0, 5)


def test_sparse_group_load_counts_each_axon_of_a_box_like_the_dense_weights():
    # A lowered sparse group (scipy CSR, COO from other callers; stored zeros included) into boxes of a
    # (3, 4, 5) population: the axons it brings, its synapses and the synapses per axon (in axon order) equal
    # the dense matrix's nonzero count per column over the box's rows, box by box.
    import numpy as np
    import scipy.sparse as sp

    from neurodeploy.mapping.boxes import group_load

    rng = np.random.default_rng(3)
    dense = rng.integers(-2, 3, size=(60, 400)) * (rng.random((60, 400)) < 0.05)
    stored = sp.coo_matrix(np.where(rng.random((60, 400)) < 0.02, 0, 1) * dense)
    stored = sp.coo_matrix((np.r_[stored.data, 0, 0], (np.r_[stored.row, 4, 7], np.r_[stored.col, 11, 399])),
                           shape=stored.shape)           # two explicit zeros: not connections
    want_w = stored.toarray()
    for weights in (stored.tocsr(), stored):
        net = MapNetwork("sparse-load")
        net.add_pop(MapPopulation("src", (400, 1, 1)))
        net.add_pop(MapPopulation("dst", (3, 4, 5)))
        net.add_syn(MapSynapses("s", "src", "dst", "dense", weights=weights))
        syn, dst = net.synapses[0], net.pop("dst")
        for box in [(0, 3, 0, 4, 0, 5), (1, 2, 0, 4, 0, 5), (0, 3, 1, 3, 2, 4), (2, 3, 3, 4, 4, 5)]:
            c0, c1, h0, h1, w0, w1 = box
            rows = np.ravel_multi_index(np.mgrid[c0:c1, h0:h1, w0:w1].reshape(3, -1), dst.shape)
            cols = np.count_nonzero(want_w[rows], axis=0)
            axons, synapses, per_axon = group_load(net, syn, dst, box)
            assert axons == np.count_nonzero(cols) and synapses == cols.sum() > 0
            assert per_axon.tolist() == cols[cols > 0].tolist()
