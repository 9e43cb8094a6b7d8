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


@pytest.mark.lava
def test_lava_equals_engine_on_a_split_network():
    from neurodeploy.lava.run import run_lava
    net = split_fan_in(_net(weight_exp=-2), max_fan_in=40)
    x = {k: v[:, :1] for k, v in _x().items()}
    ours = simulate(net, x, 11, record="all")
    lava = run_lava(net, x, 11, record="all")
    for name in ours:
        for key in ours[name]:
            assert np.array_equal(ours[name][key], lava[name][key]), (name, key)
