"""Partial-sum relays (lowering pass ``split_fan_in``, issue 11): a neuron that reads more source neurons than
one Loihi 2 core gives it reads partial sums instead.  With weight_exp >= 0 the readout's input is exactly the
unsplit one, one step later; Lava equals our engine on the split network; the CIFAR Spikingformer's readout is
split (test_lower_scale.py) and its chip fit is found (no neuron above the core limit)."""
import copy

import numpy as np
import pytest

from neurodeploy.lower.balance import balance_network
from neurodeploy.lower.fan_in import split_fan_in
from neurodeploy.lower.network import LoweredNetwork, Population, Synapse
from neurodeploy.sim import simulate

SIZES = (50, 30, 20)


def _net(weight_exp=0, seed=0):
    rng = np.random.default_rng(seed)
    pops = [Population(f"in{i}", (n,), kind="input", input_kind="spikes") for i, n in enumerate(SIZES)]
    pops.append(Population("readout", (4,), kind="readout", du=4095, dv=0, vth=1 << 17))
    syn = [Synapse(f"readout<-in{i}", f"in{i}", "readout", "dense" if i != 1 else "sparse",
                   rng.integers(-255, 255, size=(4, n)) * (rng.random((4, n)) < (1 if i != 1 else 0.8)),
                   weight_exp=weight_exp) for i, n in enumerate(SIZES)]
    net = LoweredNetwork(populations=pops, synapses=syn, outputs=["readout"])
    balance_network(net, None)
    return net


def _x(T=10, B=3, seed=1):
    rng = np.random.default_rng(seed)
    return {f"in{i}": (rng.random((T, B, n)) < 0.5).astype(np.int64) for i, n in enumerate(SIZES)}


def test_bins_hold_at_most_max_fan_in_and_record_the_split():
    net = split_fan_in(_net(), max_fan_in=40)
    net.validate()
    parts = net.metadata["fan_in_splits"]["readout"]
    # 50 -> 40 + 10, 30, 20: first fit gives [40], [10, 30], [20]
    assert parts == ["readout.partial0", "readout.partial1", "readout.partial2"]
    cols = {p: sorted((s.src, int(s.weights.indices.min()), int(s.weights.indices.max())) for s in net.synapses
                      if s.dst == p) for p in parts}
    assert cols == {"readout.partial0": [("in0", 0, 39)], "readout.partial1": [("in0", 40, 49), ("in1", 0, 29)],
                    "readout.partial2": [("in2", 0, 19)]}
    assert {s.src for s in net.synapses if s.dst == "readout"} == set(parts)
    assert net.metadata["latency"] == 2
    # under the limit: nothing changes
    small = split_fan_in(_net(), max_fan_in=100)
    assert "fan_in_splits" not in small.metadata and len(small.synapses) == 3


def test_split_readout_equals_unsplit_one_step_later():
    x = _x()
    a = simulate(_net(), x, 11, record=["readout"])["readout"]
    b = simulate(split_fan_in(_net(), max_fan_in=40), x, 11, record=["readout"])["readout"]
    assert np.abs(a["v"]).max() > 1000
    assert np.array_equal(a["v"][:-1], b["v"][1:]) and np.array_equal(a["u"][:-1], b["u"][1:])


def test_negative_weight_exp_floors_per_chunk_at_most_one_unit_each():
    x = _x()
    a = simulate(_net(weight_exp=-3), x, 11, record=["readout"])["readout"]
    b = simulate(split_fan_in(_net(weight_exp=-3), max_fan_in=40), x, 11, record=["readout"])["readout"]
    # u = a_in << 6 each step (du 4095): 4 chunks where there were 3 groups -> at most 1 unit of a_in per step
    du = (b["u"][1:] - a["u"][:-1]) >> 6
    assert du.max() <= 1 and du.min() >= -1 and np.abs(a["u"]).max() > 1000


def _lava_equals_engine(net, x, steps=11):
    from neurodeploy.lava.run import run_lava
    x = {k: v[:, :1] for k, v in x.items()}
    ours = simulate(net, x, steps, record="all")
    lava = run_lava(net, x, steps, record="all")
    for name in ours:
        for key in ours[name]:
            assert np.array_equal(ours[name][key], lava[name][key]), (name, key)


@pytest.mark.lava
def test_lava_equals_engine_on_a_split_network():
    _lava_equals_engine(split_fan_in(_net(weight_exp=-2), max_fan_in=40), _x())


def _conv_net(seed=0):
    """Three conv sources (2 of them 3x3 over 4 channels: fan-in 36; one 1x1: 4) into one LIF."""
    rng = np.random.default_rng(seed)
    shape = (4, 6, 6)
    pops = [Population(f"c{i}", shape, kind="input", input_kind="spikes") for i in range(3)]
    pops.append(Population("lif", shape, du=3000, dv=1500, vth=40))
    syn = [Synapse("lif<-c0", "c0", "lif", "conv", rng.integers(-9, 12, (4, 4, 3, 3)), padding=(1, 1)),
           Synapse("lif<-c1", "c1", "lif", "conv", rng.integers(-9, 12, (4, 4, 3, 3)), padding=(1, 1)),
           Synapse("lif<-c2", "c2", "lif", "conv", rng.integers(-9, 12, (4, 4, 1, 1)))]
    net = LoweredNetwork(populations=pops, synapses=syn, outputs=["lif"])
    balance_network(net, None)
    return net


def _cx(T=10, B=2, seed=3):
    rng = np.random.default_rng(seed)
    return {f"c{i}": (rng.random((T, B, 4, 6, 6)) < 0.4).astype(np.int64) for i in range(3)}


def test_conv_groups_move_whole_and_stay_exact():
    net = split_fan_in(_conv_net(), max_fan_in=40)
    net.validate()
    parts = net.metadata["fan_in_splits"]["lif"]
    # 36 + 36 + 4: first fit gives [c0, c2], [c1]
    assert {p: sorted(s.name for s in net.synapses if s.dst == p) for p in parts} == {
        "lif.partial0": ["lif<-c0", "lif<-c2"], "lif.partial1": ["lif<-c1"]}
    assert all(s.kind == "conv" for s in net.synapses if s.dst in parts)
    x = _cx()
    a = simulate(_conv_net(), x, 11, record=["lif"])["lif"]
    b = simulate(net, x, 11, record=["lif"])["lif"]
    assert int(a["s"].sum()) > 50
    for key in "suv":
        assert np.array_equal(a[key][:-1], b[key][1:]), key


@pytest.mark.lava
def test_lava_equals_engine_on_split_conv_groups():
    _lava_equals_engine(split_fan_in(_conv_net(), max_fan_in=40), _cx())


@pytest.mark.lava
def test_split_signs_with_a_split_fan_in_stays_sign_pure_and_lava_equals_engine():
    """lower_graph(split_signs=True) on a neuron that reads more than a core gives it (7,000 inputs, mixed
    signs): the sign split comes first, the fan-in split then cuts the excitatory and the inhibitory group
    into partial sums; every group stays one-signed, and Lava equals the engine."""
    import nir

    from neurodeploy.lower.loihi2 import lower_graph
    rng = np.random.default_rng(4)
    n_in, n = 7000, 3
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([n_in])}),
                            "fc": nir.Affine(weight=rng.normal(0, 1, (n, n_in)).astype(np.float32),
                                             bias=np.zeros(n, np.float32)),
                            "lif": nir.LIF(tau=np.full(n, 4e-4, np.float32), r=np.ones(n, np.float32),
                                           v_leak=np.zeros(n, np.float32), v_threshold=np.full(n, 20.0, np.float32)),
                            "output": nir.Output(output_type={"output": np.array([n])})},
                     edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
                     metadata={"neurodeploy.input_domain": "binary", "neurodeploy.time_steps": 6})
    plain, _ = lower_graph(g)
    split, _ = lower_graph(g, split_signs=True)
    assert plain.metadata.get("fan_in_splits") and split.metadata.get("fan_in_splits")
    chip = [s for s in split.synapses if s.kind in ("dense", "sparse")]
    assert len(chip) > len([s for s in plain.synapses if s.kind in ("dense", "sparse")])
    for s in chip:
        w = s.weights.toarray() if hasattr(s.weights, "toarray") else np.asarray(s.weights)
        assert not ((w > 0).any() and (w < 0).any()), s.name
    inp = next(p for p in split.populations if p.kind == "input")
    x = {inp.name: (rng.random((6, 1, n_in)) < 0.3).astype(np.int64)}
    steps = 6 + split.metadata["latency"]
    ours = simulate(split, x, steps, record="all")
    assert ours["lif"]["s"].any()
    _lava_equals_engine(split, x, steps)
