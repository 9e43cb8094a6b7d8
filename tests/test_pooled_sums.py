"""The sum of a spike map over its positions (``lower/chains.py`` ``pooled_relay``: the Spikingformer head's mean
over tokens, read as counts by the readout) in two depthwise convs: the rows (or runs of tokens), then their
sums.  The same integer counts as one conv over the whole map, one step later; a + b synapse lists per channel
where one conv has a x b (the chip fit's cost per core: cifar10-4-384's 1,536-channel token sums 16 -> 6
cores); Lava equals our engine."""
import numpy as np
import pytest

from neurodeploy.lower.balance import balance_network
from neurodeploy.lower.chains import pooled_relay, two_stage_sum
from neurodeploy.lower.network import LoweredNetwork, Population
from neurodeploy.sim import simulate


def test_how_a_map_splits():
    assert two_stage_sum(1, 64) == (((1, 8), (1, 8), (1, 8)), (1, 8))         # 64 tokens: 8 runs of 8
    assert two_stage_sum(1, 196) == (((1, 14), (1, 14), (1, 14)), (1, 14))   # ImageNet's 14 x 14 tokens
    assert two_stage_sum(1, 12) == (((1, 4), (1, 4), (1, 3)), (1, 3))
    assert two_stage_sum(4, 5) == (((1, 5), (1, 5), (4, 1)), (4, 1))         # a map: rows, then the rows' sums
    assert two_stage_sum(1, 7) is None and two_stage_sum(2, 2) is None      # prime, too small: one conv


def _net(shape):
    net = LoweredNetwork(populations=[Population("x", shape, kind="input", input_kind="spikes")], outputs=[])
    name = pooled_relay(net, {}, "x", shape)
    net.outputs = [name]
    balance_network(net, None)
    return net, name


@pytest.mark.parametrize("shape", [(3, 1, 12), (2, 4, 5), (5, 1, 64), (2, 1, 7)])
def test_two_stage_sums_are_the_counts(shape):
    net, name = _net(shape)
    split = two_stage_sum(*shape[1:])
    rows = f"{name}.rows"
    assert (rows in {p.name for p in net.populations}) == (split is not None)
    assert net.pop(name).shape == (shape[0],)
    if split:
        (k1, st1, mid), k2 = split
        assert net.pop(rows).shape == (shape[0],) + mid and net.pop(rows).kind == "relay"
        g = {s.name: s for s in net.synapses}
        assert g[f"{rows}.syn"].kind == g[f"{name}.syn"].kind == "conv" and g[f"{name}.syn"].graded
        assert np.shape(g[f"{rows}.syn"].weights) == (shape[0], 1) + k1 and g[f"{rows}.syn"].stride == st1
    rng = np.random.default_rng(0)
    x = (rng.random((10, 2) + shape) < 0.6).astype(np.int64)
    r = simulate(net, {"x": x}, 10, record=[name])[name]["s"]
    lat = net.latency()[name]
    assert lat == (2 if split else 1)
    want = x.reshape(10, 2, shape[0], -1).sum(-1)
    assert np.array_equal(r[lat:], want[:10 - lat]) and want.max() > 3


@pytest.mark.lava
def test_lava_equals_engine_on_two_stage_sums():
    from export_helpers import lava_equals_engine
    net, name = _net((130, 1, 16))          # 130 channels: Lava's Conv holds groups in an int8 (merged groups)
    x = (np.random.default_rng(1).random((8, 1, 130, 1, 16)) < 0.5).astype(np.int64)
    ours = lava_equals_engine(net, {"x": x}, 8)
    assert ours[name]["s"].max() > 8
