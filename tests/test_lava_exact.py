"""Our engine equals Lava (Loihi2SimCfg fixed_pt) bit for bit: spikes, u and v of every population at
every step, on small random networks (conv, dense, sparse, synaptic and balance delays, residual fan-in,
attention process, graded input, LIFReset, u wrap / v saturation)."""
import numpy as np
import pytest

from neurodeploy.lower import LoweredNetwork, Population, Synapse
import testnets
from neurodeploy.sim import simulate

pytestmark = pytest.mark.lava


def _assert_same(ours, lava, min_spikes=1):
    assert set(ours) == set(lava)
    total = 0
    for name in lava:
        for key in lava[name]:
            a, b = ours[name][key], lava[name][key]
            assert a.shape == b.shape, (name, key)
            bad = np.argwhere(a != b)
            assert bad.size == 0, f"{name}.{key} differs first at step/neuron {bad[0].tolist()}"
            if key == "s":
                total += int(b.sum())
    assert total >= min_spikes


@pytest.mark.parametrize("factory,T", [("conv_dense_net", 12), ("residual_attention_net", 12),
                                       ("extremes_net", 10)])
def test_engine_equals_lava_every_population(factory, T):
    from neurodeploy.lava.run import run_lava
    net = getattr(testnets, factory)()
    x = testnets.random_inputs(net, T, seed=11)
    _assert_same(simulate(net, x, T, record="all"), run_lava(net, x, T, record="all"), min_spikes=20)


def test_hand_network_in_lava():
    from neurodeploy.lava.run import run_lava
    net = LoweredNetwork(
        populations=[Population("in", (2,), kind="input", input_kind="spikes"),
                     Population("n", (1,), du=4095, dv=2048, vth=2)],
        synapses=[Synapse("w", "in", "n", "dense", np.array([[11, -3]]))], outputs=["n"])
    x = np.array([[1, 1], [1, 0], [0, 0], [0, 1], [0, 0], [0, 0]])[:, None, :]
    r = run_lava(net, {"in": x}, 6, record=["n"])["n"]
    assert r["u"][:, 0, 0].tolist() == [0, 384, 640, 0, -256, 0]
    assert r["v"][:, 0, 0].tolist() == [0, 0, 0, 0, -256, -128]
    assert r["s"][:, 0, 0].tolist() == [0, 1, 1, 0, 0, 0]
