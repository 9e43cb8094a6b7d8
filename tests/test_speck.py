"""The Speck target against sinabs 3.1.3 (ground truth): memory per layer, layer -> core assignment and the
"No valid mapping found" refusal, and the discretized forward spike for spike, on generated networks at and
just past each limit, and on the NIR paper's cnn_sinabs.nir.  sinabs is imported through the tests-only
samna import guard (tests/speck_vendor.py)."""
from __future__ import annotations

import random
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from neurodeploy.errors import UnsupportedError
from neurodeploy.lower.speck import lower_graph as lower_speck
from neurodeploy.mapping.speck import assign_cores, fit as fit_speck, memory_summary
from neurodeploy.profiles import load_profile
from neurodeploy.sim.speck import run as run_layers
from speck_vendor import build, import_dynapcnn, sinabs_from_nir_scalar

DynapcnnNetwork, ConfigBuilder, sinabs_mapping = import_dynapcnn()
PROFILE = load_profile("speck")
CNN = Path(__file__).parent / "data" / "nir-paper" / "02_cnn" / "cnn_sinabs.nir"


def C(co, k=3, s=1, p=1, pool=1):
    return ("conv", co, k, s, p, pool)


def L(n, bias=True):
    return ("linear", n, bias)


# (id, input, layers, fits?) -- "fits" is what sinabs says; each is checked against sinabs below as well
LIMITS = [
    # kernel memory: 64 Ki (cores 5, 6) at / just past: 64 in-channels * 2^(4 + 6) = 65,536; 65 -> 66,560
    ("kernel64k-at", (64, 16, 16), [C(64)], True),
    ("kernel64k-past", (65, 16, 16), [C(64)], False),
    # kernel 16 Ki with 64 Ki neurons (cores 0-2 only): 16 * 2^(4+6) = 16,384; 17 -> 17,408 needs cores 3-6 (<= 32 Ki neurons)
    ("kernel16k-at", (16, 32, 32), [C(64)], True),
    ("kernel16k-past", (17, 32, 32), [C(64)], False),
    # neuron memory: 64 * 32 * 32 = 65,536 at; 33 rows round to 64 -> 131,072; 65 channels -> 66,560
    ("neuron64k-at", (2, 32, 32), [C(64)], True),
    ("neuron64k-past-rows", (2, 33, 32), [C(64)], False),
    ("neuron64k-past-channels", (2, 32, 32), [C(65)], False),
    # layer count: 9 cores
    ("layers-9", (2, 8, 8), [C(4, 1, 1, 0)] * 9, True),
    ("layers-10", (2, 8, 8), [C(4, 1, 1, 0)] * 10, False),
    # two cores (5, 6) hold a 64 Ki-kernel layer: two fit, three do not (the max-flow refusal)
    ("kernel64k-2-layers", (64, 16, 16), [C(64), C(64)], True),
    ("kernel64k-3-layers", (64, 16, 16), [C(64), C(64), C(64)], False),
    # 32 Ki kernel (32 * 2^(5+5)) + 32 Ki neurons (32 * 32 * 32): only cores 3, 4 hold one
    ("k32n32-2-layers", (32, 32, 32), [C(32, 5, 1, 2)] * 2, True),
    ("k32n32-3-layers", (32, 32, 32), [C(32, 5, 1, 2)] * 3, False),
    # bias memory 1024 at the limit (1024 channels of a 1x1 conv)
    ("bias-1024", (4, 4, 4), [C(1024, 1, 1, 0)], True),
]
_R = random.Random(16)


def _random_spec(i):
    c, side = _R.choice([1, 2, 3]), _R.choice([8, 12, 16, 20])
    layers = []
    h = side
    for _ in range(_R.randint(1, 4)):
        k = _R.choice([1, 3, 5])
        s = _R.choice([1, 1, 2])
        p = _R.choice([0, 1, 2]) if k > 1 else 0
        if (h + 2 * p - k) // s + 1 < 2:
            break
        h = (h + 2 * p - k) // s + 1
        pool = _R.choice([1, 1, 2]) if h >= 4 else 1
        h //= pool
        layers.append(C(_R.choice([2, 4, 8, 16]), k, s, p, pool))
    layers += [L(_R.choice([4, 10, 16]), _R.random() < 0.7) for _ in range(_R.randint(0, 2))]
    return (f"random-{i}", (c, side, side), layers, None)


RANDOM = [_random_spec(i) for i in range(20)]


def _sinabs_mapping(dn):
    try:
        return ConfigBuilder.map_layers_to_cores(dn.dynapcnn_layers)
    except ValueError as exc:
        assert "No valid mapping found" in str(exc)
        return None


def _compare(spec, seed, steps):
    name, shape, layers, expect = spec
    g, seq = build({"input": shape, "layers": layers}, seed)
    dn = DynapcnnNetwork(seq, input_shape=shape, discretize=True, batch_size=1)
    net = lower_speck(g)
    # memory per layer == sinabs' memory_summary (floats there, the same integers)
    assert memory_summary(net) == {k: {i: int(v) for i, v in d.items()} for k, d in dn.memory_summary().items()}
    # assignment and verdict == sinabs' get_valid_mapping (and its "No valid mapping found")
    ref_map = _sinabs_mapping(dn)
    fit = fit_speck(net, PROFILE)
    assert fit.fits == (ref_map is not None)
    if expect is not None:
        assert fit.fits == expect, name
    if fit.fits:
        assert {i: p["core"] for i, p in enumerate(fit.per_layer)} == ref_map
    else:
        assert fit.violations and fit.violations[0].layer
    # integers == sinabs' discretized layers
    for i, lay in enumerate(net.layers):
        dl = dn.dynapcnn_layers[i]
        assert np.array_equal(dl.conv.weight.detach().numpy(), lay.weight)
        if lay.bias is None:
            assert dl.conv.bias is None
        else:
            assert np.array_equal(dl.conv.bias.detach().numpy(), lay.bias)
        assert (int(dl.spk.spike_threshold), int(dl.spk.min_v_mem)) == (lay.threshold, lay.min_v_mem)
        assert np.abs(lay.weight).max() <= 128 and lay.weight.min() >= -128 and lay.weight.max() <= 127
    # simulation == sinabs' discretized CPU forward, every layer, spike for spike
    rec = {}
    hooks = [dn.dynapcnn_layers[i].register_forward_hook(lambda m, a, o, i=i: rec.__setitem__(i, o.detach().numpy()))
             for i in range(len(net.layers))]
    x = (np.random.default_rng(seed).random((1, steps) + tuple(shape)) < 0.3).astype(np.float32)
    with torch.no_grad():
        dn(torch.tensor(x[0]))
    for h in hooks:
        h.remove()
    _, ours = run_layers(net, x, record=True)
    for i, lay in enumerate(net.layers):
        assert np.array_equal(rec[i].reshape(ours[lay.name].shape), ours[lay.name]), (name, lay.name)
    return fit, sum(int(v.sum()) for v in ours.values())


@pytest.mark.parametrize("spec", LIMITS, ids=[s[0] for s in LIMITS])
def test_limits_equal_sinabs(spec):
    _compare(spec, seed=3, steps=4)


def test_random_networks_equal_sinabs():
    spikes = []
    for spec in RANDOM:
        fit, n = _compare(spec, seed=int(spec[0].split("-")[1]), steps=12)
        assert fit.fits
        spikes.append(n)
    assert sum(s > 0 for s in spikes) >= 15      # the comparisons are not about silent networks


def test_bias_past_the_limit_refused_by_both():
    g, seq = build({"input": (4, 4, 4), "layers": [C(1025, 1, 1, 0)]}, 0)
    dn = DynapcnnNetwork(seq, input_shape=(4, 4, 4), discretize=True, batch_size=1)
    assert _sinabs_mapping(dn) is None
    with pytest.raises(UnsupportedError, match=r"^c0: 1025 output channels exceed Speck's 1024"):
        lower_speck(g)


def test_matcher_equals_sinabs_edmonds_karp():
    kmem = PROFILE.core_limit("kernel_memory")
    nmem = PROFILE.core_limit("neuron_memory")
    kinds = [[c for c in range(9) if kmem[c] >= k and nmem[c] >= n] for k in (16384, 32768, 65536)
             for n in (16384, 32768, 65536)]
    r = random.Random(5)
    for _ in range(1000):
        cands = [r.choice(kinds) for _ in range(r.randint(1, 10))]
        try:
            ref = sinabs_mapping.recover_mapping(sinabs_mapping.edmonds(sinabs_mapping.make_flow_graph(cands, 9), 0,
                                                                        len(cands) + 10), len(cands))
        except ValueError:
            ref = None
        assert assign_cores(cands, 9) == ref, cands


def test_cnn_sinabs_nir_fits_on_5_cores_and_runs_like_sinabs():
    g = nir.read(str(CNN))
    net = lower_speck(g)
    dn = DynapcnnNetwork(sinabs_from_nir_scalar(g), input_shape=(2, 34, 34), discretize=True, batch_size=1)
    fit = fit_speck(net, PROFILE)
    assert fit.fits and [p["core"] for p in fit.per_layer] == [0, 1, 2, 3, 4]
    assert _sinabs_mapping(dn) == {0: 0, 1: 1, 2: 2, 3: 3, 4: 4}
    assert memory_summary(net) == {"kernel": {0: 1024, 1: 4096, 2: 2048, 3: 32768, 4: 4096},
                                   "neuron": {0: 4096, 1: 4096, 2: 512, 3: 256, 4: 10},
                                   "bias": {0: 16, 1: 16, 2: 8, 3: 256, 4: 10}}
    assert [lay.threshold for lay in net.layers] == [72, 128, 205, 108, 197]
    x = (np.random.default_rng(0).random((1, 30, 2, 34, 34)) < 0.2).astype(np.float32)
    with torch.no_grad():
        ref = dn(torch.tensor(x[0])).numpy()
    ours = run_layers(net, x)
    assert ours.sum() > 0 and np.array_equal(ref.reshape(ours.shape), ours)


def test_cnn_sinabs_export_simulate_report_cli(tmp_path, capsys):
    import json

    from neurodeploy.cli import main
    from neurodeploy.deploy.speck import SpeckTarget

    out = tmp_path / "out"
    assert main(["export", str(CNN), "--target", "speck", "-o", str(out)]) == 0
    net = SpeckTarget().read(out / "speck")
    again = lower_speck(nir.read(str(CNN)))
    assert [lay.name for lay in net.layers] == ["0", "2", "5", "9", "11"]
    for a, b in zip(net.layers, again.layers):
        assert np.array_equal(a.weight, b.weight) and (a.threshold, a.pool, a.stride) == (b.threshold, b.pool, b.stride)
    summary = json.loads((out / "speck" / "summary.json").read_text())
    assert [lay["memory"]["kernel"] for lay in summary["layers"]] == [1024, 4096, 2048, 32768, 4096]
    capsys.readouterr()
    rep = tmp_path / "r.json"
    assert main(["report", str(CNN), "--target", "speck", "--format", "json", "-o", str(rep)]) == 0
    doc = json.loads(rep.read_text())
    t = doc["targets"][0]
    assert t["fits"] and t["cores"] == 5 and t["mapped_from"] == "the lowered Speck integer network"
    assert [r["core"] for r in t["per_core"]] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("mutate, needle", [
    (lambda g: g.nodes.__setitem__("1", nir.LIF(tau=np.ones((16, 16, 16)), r=np.ones((16, 16, 16)),
                                                v_leak=np.zeros((16, 16, 16)), v_threshold=np.ones((16, 16, 16)))),
     r"^1: LIF has no Speck form"),
    (lambda g: setattr(g.nodes["3"], "v_threshold", np.linspace(1, 2, 16 * 16 * 16).reshape(16, 16, 16)),
     r"^3: per-neuron v_threshold values differ"),
    (lambda g: setattr(g.nodes["6"], "v_reset", np.full((8, 8, 8), 0.5)), r"^6: v_reset != 0"),
    (lambda g: setattr(g.nodes["2"], "dilation", np.array([2, 2])), r"^2: dilation \[2, 2\] has no Speck form"),
    (lambda g: g.edges.append(("1", "5")), r"^(1|5): branches or merges"),
])
def test_refusals_name_the_node(mutate, needle):
    g = nir.read(str(CNN))
    mutate(g)
    with pytest.raises(UnsupportedError, match=needle):
        lower_speck(g)


def test_cnn_sinabs_deployment_fidelity_and_predictions_equal_sinabs():
    from neurodeploy.deploy import Deployment

    x = (np.random.default_rng(1).random((4, 20, 2, 34, 34)) < 0.2).astype(np.float32)
    dep = Deployment.build(str(CNN), targets=["speck"], data=(x, np.zeros(4, dtype=int))).run()
    t = dep.targets[0]
    assert t.deployable and t.fit.fits and t.fidelity["samples"] == 4 and t.fidelity["backend"] == "fast"
    assert 0.0 <= t.fidelity["prediction_agreement"] <= 1.0 and "sinabs' reading" in t.fidelity["note"]
    dn = DynapcnnNetwork(sinabs_from_nir_scalar(nir.read(str(CNN))), input_shape=(2, 34, 34), discretize=True,
                         batch_size=1)
    ref = []
    for xi in x:
        for lay in dn.dynapcnn_layers.values():     # (DynapcnnNetwork.reset_states needs a device)
            lay.spk.reset_states()
        with torch.no_grad():
            ref.append(int(dn(torch.tensor(xi)).sum(0).reshape(-1).argmax()))
    assert t.target.predict(t.artifact, x).tolist() == ref and len(set(ref)) > 1


def test_profile_feature_limits_are_the_lowerings(tmp_path):
    """A --profile variant of Speck with a 3x3 kernel limit refuses the paper CNN's 5x5 conv by name."""
    from neurodeploy.deploy import Deployment

    src = (Path(__file__).resolve().parents[1] / "hardware_profiles" / "speck.toml").read_text()
    small = src.replace("kernel_size = { value = 16,", "kernel_size = { value = 3,")
    assert small != src
    (tmp_path / "speck.toml").write_text(small)
    dep = Deployment.build(str(CNN), profile_files=[str(tmp_path / "speck.toml")], annotate=False)
    dep.lower()
    assert dep.targets[0].cannot_deploy == "0: kernel 5x5 exceeds Speck's 3x3"
