"""Lowered NIR networks in Lava equal our engine bit for bit (every population, every step): a
Spikingformer with attention process, host encoder bias, max-pool threshold neurons, residual
DelaySparse/DelayDense balancing and LIFReset; and a CNN with sum-pool composed into dense."""
import os

import nir
import numpy as np
import pytest

from neurodeploy.lower.loihi2 import lower_graph
from testmodels import tiny_spikingformer
from neurodeploy.sim import simulate

pytestmark = pytest.mark.lava


def _compare(net, inputs, steps):
    from neurodeploy.lava.run import run_lava
    ours = simulate(net, inputs, steps, record="all")
    lava = run_lava(net, inputs, steps, record="all")
    assert set(lava) == set(ours)
    spikes = 0
    for name in lava:
        for key in lava[name]:
            bad = np.argwhere(ours[name][key] != lava[name][key])
            assert bad.size == 0, f"{name}.{key} differs first at {bad[0].tolist()}"
        spikes += int(lava[name]["s"].sum())
    return ours, spikes


def test_lowered_spikingformer_in_lava_equals_engine():
    from neurodeploy.exporters import to_nir
    g = to_nir(tiny_spikingformer(), arch="spikingformer-digits")
    net, _ = lower_graph(g)
    x = np.random.default_rng(2).random((1, 1, 8, 8)).astype(np.float32)
    inputs = {k: v.numpy() for k, v in net.encode_inputs(x).items()}
    steps = 4 + net.metadata["latency"]
    ours, spikes = _compare(net, inputs, steps)
    assert spikes > 200 and ours["block.0.attn.attn_lif"]["s"].sum() > 0


def test_lowered_cnn_in_lava_equals_engine():
    g = nir.read(os.path.join(os.path.dirname(__file__), "data", "nir-paper", "02_cnn", "cnn_sinabs.nir"))
    net, _ = lower_graph(g, T=4)
    x = (np.random.default_rng(0).random((6, 1, 2, 34, 34)) < 0.2).astype(np.int64)
    _, spikes = _compare(net, {"input": x}, 6)
    assert spikes > 200
