"""Confidence of profile numbers as the report reads it: which numbers a verdict used, the weakest of them."""
from neurodeploy.mapping.reference_nets import mlp
from neurodeploy.mapping import fit
from neurodeploy.profiles import CONFIDENCE_ORDER, Profile, load_profile
from neurodeploy.report.summary import target_details


def test_source_of_and_weakest():
    p = load_profile("loihi2")
    q = p.source_of("core.synapse_memory")
    assert q["value"] == 12000 and q["confidence"] == "source" and q["unit"] == "SynMem units"
    assert p.source_of("systems[2].chips")["value"] == 1152
    assert p.source_of("features.attention")["confidence"] == "derived"
    assert p.source_of("core.nonexistent") is None and p.source_of("systems[9].chips") is None
    assert CONFIDENCE_ORDER[0] == "measured" and CONFIDENCE_ORDER[-1] == "assumption"
    entries = [{"key": "a", "confidence": "source"}, {"key": "b", "confidence": "unverified"},
               {"key": "c", "confidence": "derived"}]
    assert Profile.weakest(entries)["key"] == "b" and Profile.weakest([]) is None


def test_fitting_verdict_uses_every_limit_and_the_accounting():
    p = load_profile("loihi2")
    r = fit(mlp([784, 128, 64, 10], "mnist"), p)
    d = target_details(r, p, None)
    keys = {n["key"] for n in d["profile_numbers"]}
    assert {"core.neurons", "core.neuron_groups", "core.input_axons", "core.synapse_memory", "chip.cores",
            "systems[0].chips", "synapse_accounting.axon_header_units", "mapping.pack_populations"} <= keys
    assert all(n["used_for"] == "verdict" for n in d["profile_numbers"])  # no energy estimate given
    assert d["verdict_confidence"]["confidence"] == "assumption" and d["energy_confidence"] is None
    # every core of MNIST is bound by SynMem (fc0: 9,408 of 12,000) or neuron groups (1 of 8 = 12.5%)
    assert d["per_layer_binding"] == {"fc0": {"synapse_memory": 3.0}, "fc1": {"synapse_memory": 1.0},
                                      "fc2": {"neuron_groups": 1.0}}


def test_failing_verdict_uses_the_violated_limit_only():
    # 20,000 inputs on one neuron: over Loihi 2's 16,000 input axons and 12,000 SynMem units per core (both
    # 'source'); the other limits, the chip size and the systems play no part in this verdict
    p = load_profile("loihi2")
    r = fit(mlp([20000, 10]), p)
    d = target_details(r, p, None)
    assert [n["key"] for n in d["profile_numbers"]] == ["core.input_axons", "core.synapse_memory"]
    assert d["verdict_confidence"] == {"confidence": "source", "key": "core.input_axons",
                                       "source": p.source_of("core.input_axons")["source"]}
