"""Attention lowered into Lava's own neurons (three-input AND coincidence LIFs + sparse groups) equals the
attention process exactly (one step more latency), in our engine and in Lava; refused above the size
limit, naming the node; the export summary counts both options from the built networks."""
import numpy as np
import pytest

from neurodeploy.errors import UnsupportedError
from neurodeploy.lava.processes.attention import attention_numpy
from neurodeploy.lower.attention_neurons import MAX_AND_NEURONS, attention_to_neurons
from neurodeploy.lower.testmodels import tiny_attention_net
from neurodeploy.sim import simulate


def _inputs(net, B, steps, seed=0, p=0.6):
    rng = np.random.default_rng(seed)
    T = net.metadata["time_steps"]
    out = {}
    for pop in net.inputs:
        x = (rng.random((T, B) + pop.shape) < p).astype(np.int64)
        out[pop.name] = np.concatenate([x, np.zeros((steps - T, B) + pop.shape, np.int64)])
    return out


def _assert_shifted_equal(proc, neur, lat_p, lat_n, T, names):
    for name in names:
        for key in ("s", "u", "v"):
            a = proc[name][key][lat_p[name]:lat_p[name] + T + 1]
            b = neur[name][key][lat_n[name]:lat_n[name] + T + 1]
            bad = np.argwhere(a != b)
            assert bad.size == 0, f"{name}.{key}: differs first at {bad[0].tolist()}"


def test_and_neuron_attention_equals_process_in_engine():
    proc_net = tiny_attention_net()            # D 4, heads 2, N 4, T 3
    neur_net = attention_to_neurons(proc_net)
    T = 3
    lat_p, lat_n = proc_net.latency(), neur_net.latency()
    assert lat_p["attn"] == 3 and lat_n["attn"] == 4 and lat_n["attention.and"] == 3
    and_pop = neur_net.pop("attention.and")
    assert and_pop.size == 2 * 4 * 2 * 4 * 2 == 128 and (and_pop.du, and_pop.dv, and_pop.vth) == (4095, 4096, 2)
    # the three inputs meet in the same step: q and k wait one step for the longer v path
    delays = {s.name: s.balance_delay for s in neur_net.synapses}
    assert (delays["attention.and<-q"], delays["attention.and<-k"], delays["attention.and<-v"]) == (1, 1, 0)
    assert delays["attn<-qin"] == 3 and delays["attn<-attention.and"] == 0
    B, steps = 6, T + lat_n["attn"] + 1
    x = _inputs(proc_net, B, steps)
    proc = simulate(proc_net, x, steps, record="all")
    neur = simulate(neur_net, x, steps, record="all")
    _assert_shifted_equal(proc, neur, lat_p, lat_n, T, ["q", "k", "v", "attn"])
    # every AND spike is one term Q[j,n] K[j,m] V[c,m]: per step, their number is sum(Q (K^T V))
    for t in range(T):
        for b in range(B):
            q, k, v = (x[n][t, b].reshape(-1) for n in ("qin", "kin", "vin"))
            terms = int(attention_numpy(q, k, v, heads=2, dim=4, tokens=4, weight=1).sum())
            assert int(neur["attention.and"]["s"][lat_n["attention.and"] + t, b].sum()) == terms
    assert int(neur["attention.and"]["s"].sum()) > 50
    assert int(proc["attn"]["s"][lat_p["attn"]:].sum()) > 10


def test_and_neuron_lowering_refuses_large_attention_naming_it():
    net = tiny_attention_net()
    with pytest.raises(UnsupportedError, match="attention 'attention'.*128 AND coincidence neurons"):
        attention_to_neurons(net, max_neurons=100)
    big = tiny_attention_net(dim=64, heads=4, tokens=16)
    with pytest.raises(UnsupportedError, match="262144 AND"):
        attention_to_neurons(big)
    assert MAX_AND_NEURONS < 262144


def test_lowered_spikingformer_neuron_attention_equals_process():
    from neurodeploy.exporters import to_nir
    from neurodeploy.lower.from_nir import lower_graph
    from neurodeploy.lower.testmodels import tiny_spikingformer
    g = to_nir(tiny_spikingformer(), arch="spikingformer-digits")
    proc_net, _ = lower_graph(g)
    neur_net, _ = lower_graph(g, attention="neurons")
    assert not neur_net.attention and neur_net.pop("block.0.attn.attention.and").size == 2 * 16 * 16 * 8 * 8
    assert neur_net.metadata["latency"] == proc_net.metadata["latency"] + 1
    x = np.random.default_rng(4).random((3, 1, 8, 8)).astype(np.float32)
    inputs = {k: v.numpy() for k, v in proc_net.encode_inputs(x).items()}
    T = 4
    proc = simulate(proc_net, inputs, T + proc_net.metadata["latency"] + 1, record="all")
    neur = simulate(neur_net, inputs, T + neur_net.metadata["latency"] + 1, record="all")
    names = [p.name for p in proc_net.populations if p.kind != "input"]
    _assert_shifted_equal(proc, neur, proc_net.latency(), neur_net.latency(), T - 1, names)
    lp, ln = proc_net.metadata["latency"], neur_net.metadata["latency"]
    assert np.array_equal(proc["readout"]["v"][lp + T - 1], neur["readout"]["v"][ln + T - 1])
    assert int(neur["block.0.attn.attn_lif"]["s"].sum()) > 0


@pytest.mark.lava
def test_and_neuron_attention_in_lava_equals_engine_and_process():
    from neurodeploy.lava.run import run_lava
    proc_net = tiny_attention_net()
    neur_net = attention_to_neurons(proc_net)
    T = 3
    steps = T + neur_net.metadata["latency"] + 1
    x = _inputs(proc_net, 1, steps, seed=3)
    lava = run_lava(neur_net, x, steps, record="all")
    ours = simulate(neur_net, x, steps, record="all")
    for name in ours:
        for key in ours[name]:
            bad = np.argwhere(ours[name][key] != lava[name][key])
            assert bad.size == 0, f"{name}.{key} differs first at {bad[0].tolist()}"
    proc = run_lava(proc_net, x, steps, record="all")
    _assert_shifted_equal(proc, lava, proc_net.latency(), neur_net.latency(), T, ["attn"])
    assert int(lava["attention.and"]["s"].sum()) > 5 and int(lava["attn"]["s"].sum()) > 3
