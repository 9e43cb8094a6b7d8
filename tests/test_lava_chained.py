"""Chained mode (neurodeploy.lower.chain): many samples back to back in ONE run, every population reset
at the start of its sample window, the per-sample encoder output fed as graded input.  Our engine in
chained mode equals one fresh run per sample; Lava in chained mode equals our engine bit for bit; the
trained digits model's accuracy on Lava and on our engine is within 1 point of the float model."""
import numpy as np
import pytest
import torch

from neurodeploy.errors import UnsupportedError
from neurodeploy.lower.chain import chain_inputs, chain_network, split_windows
from neurodeploy.sim.chained import simulate_chained
from neurodeploy.lower.loihi2 import lower_graph
from testmodels import tiny_spikingformer
from neurodeploy.sim import simulate


@pytest.fixture(scope="module")
def tiny_net():
    from neurodeploy.exporters import to_nir
    g = to_nir(tiny_spikingformer(), arch="spikingformer-digits")
    # the process form (one attention op): the numbers below; the default graded form is chained in
    # tests/test_attention_graded.py
    net, _ = lower_graph(g, T=4, attention="process")
    return net


def _assert_windows_equal(chained_res, batched_res, lat, K, P):
    w = split_windows(chained_res, K, P)
    checked = 0
    for name, r in batched_res.items():
        for key, ref in r.items():
            got = w[name][key]
            l = lat[name]
            # steps before the population's reset hold the previous sample's tail in chained mode
            bad = np.argwhere(got[l:] != ref[l:])
            assert bad.size == 0, f"{name}.{key}: differs first at (step - {l}, sample, neuron) {bad[0].tolist()}"
            checked += ref[l:].size
    return checked


def test_chained_engine_equals_one_fresh_run_per_sample(tiny_net):
    net = tiny_net
    K, P = 5, 4 + net.metadata["latency"]
    x = np.random.default_rng(7).random((K, 1, 8, 8)).astype(np.float32)
    inputs = {k: v.numpy() for k, v in net.encode_inputs(x).items()}
    chained, res = simulate_chained(net, inputs, record="all")
    assert chained.metadata["chain"]["period"] == P == 14         # T 4 + latency 10 (2 stream relays)
    assert all(p.reset_interval == P for p in chained.populations if p.kind not in ("input", "relay"))  # relays: no state
    graded = chained.metadata["chain"]["graded_bias"]
    assert list(graded) == ["patch_embed.block1_lif.bias_in"]
    assert all(next(iter(r.values())).shape[:2] == (K * P, 1) for r in res.values())
    # reference: each sample alone (one batch row each) through the same chained network
    ref = simulate(chained, chain_inputs(chained, inputs, batched=True), P, record="all")
    assert _assert_windows_equal(res, ref, chained.latency(), K, P) > 100000
    spikes = sum(int(r["s"].sum()) for n, r in res.items() if n not in graded)
    assert spikes > 1000
    # conv groups as Sparse (what the Lava runner uses): same integers
    sp, res_sp = simulate_chained(net, inputs, record="all", conv_as_sparse=True)
    # (every conv of spikes; the residual stream's graded depthwise convs stay Lava Convs: their 24-bit clamp)
    assert sum(s.kind == "sparse" for s in sp.synapses) >= 5
    assert {s.name for s in sp.synapses if s.kind == "conv"} == {s.name for s in net.synapses if s.kind == "conv"
                                                                 and s.graded} != set()
    for name in res:
        for key in res[name]:
            assert np.array_equal(res[name][key], res_sp[name][key]), (name, key)
    # the graded bias input carries the encoder mantissas shifted to a_in units
    e = inputs["patch_embed.block1_lif.encoded"].reshape(K, -1)
    sh = graded["patch_embed.block1_lif.bias_in"]["shift"]
    cin = chain_inputs(chained, inputs)
    g = cin["patch_embed.block1_lif.bias_in"].reshape(K, P, -1)
    assert np.array_equal(g[:, 3], e << sh if sh >= 0 else e >> -sh)


def test_chaining_refuses_a_bias_that_graded_input_cannot_carry(tiny_net):
    import copy
    net = copy.deepcopy(tiny_net)
    pop = net.pop("patch_embed.block1_lif")
    pop.bias_exp = 3                   # bias_mant << 3: only multiples of 8 reach a_in << 6 exactly
    chained = chain_network(net)
    ok = np.full((2,) + pop.shape, 8 * 5, dtype=np.int64)
    assert np.all(chain_inputs(chained, {pop.bias_input: ok})["patch_embed.block1_lif.bias_in"] == 5)
    bad = ok.copy()
    bad[1, 0, 0, 0] = 12
    with pytest.raises(UnsupportedError, match="patch_embed.block1_lif"):
        chain_inputs(chained, {pop.bias_input: bad})


def test_chaining_refuses_own_synaptic_delays_naming_the_group():
    from testmodels import tiny_attention_net
    net = tiny_attention_net()
    assert chain_network(net).metadata["chain"]["period"] == 3 + 3
    net.synapses[0].delays = np.ones_like(net.synapses[0].weights)
    with pytest.raises(UnsupportedError, match="synapse 'q.syn'.*own synaptic delays"):
        chain_network(net)


@pytest.mark.lava
def test_chained_lava_equals_engine_tiny(tiny_net):
    """Lava's Conv, DelaySparse (delayed conv), DelayDense, LIFReset, attention process in chained mode."""
    from neurodeploy.lava.run import run_lava_chained
    net = tiny_net
    K = 3
    x = np.random.default_rng(8).random((K, 1, 8, 8)).astype(np.float32)
    inputs = {k: v.numpy() for k, v in net.encode_inputs(x).items()}
    chained, lava, timing = run_lava_chained(net, inputs, record="all", conv_as_sparse=False, chunk=12)
    assert any(s.kind == "conv" for s in chained.synapses)
    P = chained.metadata["chain"]["period"]
    assert P == 14 and timing["first_steps"] == 12 and timing["rest_steps"] == K * P - 12
    _, ours = simulate_chained(net, inputs, record="all")
    assert set(lava) == set(ours)
    for name in ours:
        for key in ours[name]:
            bad = np.argwhere(ours[name][key] != lava[name][key])
            assert bad.size == 0, f"{name}.{key} differs first at {bad[0].tolist()}"
    assert int(lava["block.0.attn.attn_lif"]["s"].sum()) > 0


def _digits(trained_digits_checkpoint):
    from neurodeploy.commands.simulate import load_graph
    from neurodeploy.training import digits_split
    g = load_graph(str(trained_digits_checkpoint))
    _, _, x, y = digits_split()
    x, y = x.numpy(), y.numpy()
    net, _ = lower_graph(g, input_range=(float(x.min()), float(x.max())))
    return g, net, x, y


def _float_pred(g, x, T):
    from neurodeploy.graph import simulate as float_simulate
    with torch.no_grad():
        out = float_simulate(g, torch.as_tensor(x), T=T)
    return out.float().mean(0).reshape(len(x), -1).numpy().argmax(1)


@pytest.mark.lava
@pytest.mark.slow
def test_trained_digits_in_lava_chained_equals_engine_and_float_accuracy(trained_digits_checkpoint):
    from neurodeploy.lava.run import run_lava_chained
    g, net, x, y = _digits(trained_digits_checkpoint)
    N = 100
    T, L = net.metadata["time_steps"], net.metadata["latency"]
    P = T + L
    inputs = {k: v.numpy() for k, v in net.encode_inputs(x[:N]).items()}
    chained, lava, timing = run_lava_chained(net, inputs, record="all", chunk=25 * P)
    _, ours = simulate_chained(net, inputs, record="all", conv_as_sparse=True)
    assert set(lava) == set(ours) == {p.name for p in chained.populations}
    for name in ours:
        for key in ours[name]:
            assert lava[name][key].shape == (N * P, 1, chained.pop(name).size)
            bad = np.argwhere(ours[name][key] != lava[name][key])
            assert bad.size == 0, f"{name}.{key} differs first at {bad[0].tolist()}"
    lava_pred = split_windows({"readout": lava["readout"]}, N, P)["readout"]["v"][P - 1].argmax(1)
    fp = _float_pred(g, x[:N], T)
    acc_lava, acc_float = float((lava_pred == y[:N]).mean()), float((fp == y[:N]).mean())
    steady = timing["rest_steps"] / timing["rest_s"]
    print(f"\nLava chained, {N} digits: accuracy {100 * acc_lava:.2f} % (float {100 * acc_float:.2f} %), "
          f"compile + first {timing['first_steps']} steps {timing['first_s']:.1f} s, steady {steady:.1f} steps/s")
    assert abs(acc_lava - acc_float) <= 0.01 + 1e-9
    assert acc_float > 0.9


@pytest.mark.slow
def test_trained_digits_engine_accuracy_all_360_and_layer_agreement(trained_digits_checkpoint, capsys):
    from neurodeploy.fidelity import simulate_loihi2
    g, net, x, y = _digits(trained_digits_checkpoint)
    res = simulate_loihi2(g, x, y, backend="fast", batch=120, progress=False)
    assert res["samples"] == 360
    with capsys.disabled():
        print(f"\nengine, 360 digits: accuracy {100 * res['loihi2_accuracy']:.2f} % "
              f"(float {100 * res['float_accuracy']:.2f} %), prediction agreement "
              f"{100 * res['prediction_agreement']:.2f} %")
        for name, a in res["layer_spike_agreement"].items():
            print(f"  spike agreement float vs fixed {name}: {100 * a:.2f} %")
    assert abs(res["loihi2_accuracy"] - res["float_accuracy"]) <= 0.01 + 1e-9
    assert res["float_accuracy"] > 0.9
    assert len(res["layer_spike_agreement"]) == 10 and min(res["layer_spike_agreement"].values()) > 0.9
