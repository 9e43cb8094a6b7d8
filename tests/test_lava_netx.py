"""Our netx reader + engine against lava-dl's own netx loader running in Lava (fixed_pt)."""
import os

import numpy as np
import pytest

from neurodeploy.sim import simulate
from neurodeploy.sim.netx import netx_test_dir, read_netx

pytestmark = pytest.mark.lava


def _run_netx_in_lava(path, x, steps, num_layers):
    """lava-dl's loader in Lava: output spikes of the last layer (a sink on ``net.out``)."""
    from neurodeploy.lava_compat import ensure_lava
    ensure_lava()
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import RunConfig
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer

    class FirstFixedPt(RunConfig):       # netx blocks are SubProcessModels tagged fixed_pt
        def __init__(self):
            super().__init__(custom_sync_domains=None)

        def select(self, _proc, models):
            return next((m for m in models if "fixed_pt" in m.tags), models[0])

    net = netx.hdf5.Network(net_config=path, num_layers=num_layers)
    src = RingBuffer(data=x)
    sink = Sink(shape=net.out.shape, buffer=steps)
    src.s_out.connect(net.in_layer.neuron.a_in)   # as lava-dl connects inputs to neurons
    net.out_layer.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=FirstFixedPt())
        return np.asarray(sink.data.get()).astype(np.int64)      # (n, steps)
    finally:
        net.stop()


def test_mnist_engine_equals_lava_netx():
    path = os.path.join(netx_test_dir(), "mnist.net")
    steps = 10
    rng = np.random.default_rng(0)
    x = rng.integers(0, 160, (784, steps)).astype(np.int32)      # graded a_in of the input neurons
    lava = _run_netx_in_lava(path, x, steps, num_layers=3)
    net = read_netx(path, input_mode="a_in", num_layers=3)
    ours = simulate(net, {"input": x.T[:, None, :]}, steps, record="all")
    assert np.array_equal(ours["layer2"]["s"][:, 0].T, lava)
    assert lava.sum() > 20


def test_written_netx_file_runs_in_lava_netx(tmp_path):
    """Our netx writer: the lowered NIR-paper CNN as a .net that lava-dl's loader runs in Lava with the
    same output spikes as our engine."""
    import nir

    from neurodeploy.lava.netx_writer import write_netx
    from neurodeploy.lower.loihi2 import lower_graph

    g = nir.read(os.path.join(os.path.dirname(__file__), "data", "nir-paper", "02_cnn", "cnn_sinabs.nir"))
    net, _ = lower_graph(g, T=4)
    info = write_netx(net, str(tmp_path / "cnn.net"))
    assert info["layers"] == 6 and info["stopped"] == "end of network"
    steps = 8
    x = (np.random.default_rng(0).random((steps, 1, 2, 34, 34)) < 0.2).astype(np.int64)
    # netx's first conv reads (W, H, C) frames: data (W, H, C, T)
    lava = _run_netx_in_lava_spikes(info["path"], x[:, 0].transpose(3, 2, 1, 0).astype(np.int32), steps)
    ours = simulate(net, {"input": x}, steps, record=["12"])["12"]["s"][:, 0].T
    assert np.array_equal(ours, lava) and lava.sum() > 0


def _run_netx_in_lava_spikes(path, x, steps):
    from neurodeploy.lava_compat import ensure_lava
    ensure_lava()
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import RunConfig
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer

    class FirstFixedPt(RunConfig):
        def __init__(self):
            super().__init__(custom_sync_domains=None)

        def select(self, _proc, models):
            return next((m for m in models if "fixed_pt" in m.tags), models[0])

    net = netx.hdf5.Network(net_config=path)
    src = RingBuffer(data=x)
    sink = Sink(shape=net.out.shape, buffer=steps)
    src.s_out.connect(net.inp)              # no input neuron: the first conv block reads the spikes
    net.out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=FirstFixedPt())
        return np.asarray(sink.data.get()).astype(np.int64)
    finally:
        net.stop()
