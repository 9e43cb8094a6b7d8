"""The NIR -> Loihi 2 mapping rules on a network small enough to check every integer by hand:
Spikingformer's LIF (tau 2, spike on >=) with the 1/tau gain folded into the weights, the shared
per-population scale with 8-bit even mantissas, vth = S - 1 for >=, du/dv, the readout integrator,
MaxPool-on-spikes as a sum-pool into threshold neurons, and the one-step-per-synapse pipeline."""
import nir
import numpy as np

from neurodeploy.lower.loihi2 import lower_graph
from neurodeploy.sim import simulate

F32 = np.float32
TH = np.nextafter(F32(1.0), F32(-np.inf))  # the exporter's threshold: H > TH  <=>  H >= 1 in float32


def _lif(n, tau_steps=2.0, dt=1e-4):
    return nir.LIF(tau=np.full(n, tau_steps * dt, F32), r=np.ones(n, F32), v_leak=np.zeros(n, F32),
                   v_threshold=np.full(n, TH, F32), v_reset=np.zeros(n, F32),
                   metadata={"neurodeploy.spike_rule": ">=", "neurodeploy.v_threshold": 1.0})


def _graph():
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2])}),
        "fc1": nir.Affine(weight=np.array([[2.0, -0.5], [0.5, 1.5]], F32), bias=np.zeros(2, F32)),
        "lif1": _lif(2),
        "head": nir.Affine(weight=np.array([[1.0, -1.0]], F32), bias=np.zeros(1, F32),
                           metadata={"neurodeploy.role": "readout"}),
        "output": nir.Output(output_type={"output": np.array([1])}),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "head"), ("head", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={
        "neurodeploy.time_steps": 3, "neurodeploy.input_domain": "binary", "neurodeploy.dt": 1e-4})


def test_lif_quantization_by_hand():
    net, report = lower_graph(_graph(), T=3)
    lif = net.pop("lif1")
    # forward Euler with tau = 2 dt: H = V + (X - V)/2: du 4095 (u is this step's input only), dv 2048
    assert (lif.du, lif.dv) == (4095, 2048)
    # gain 1/tau folded: [[1, -0.25], [0.25, 0.75]]; the largest 8-bit scale: S = 254 (1.0 -> 254);
    # mixed signs are even mantissas: -63.5 -> -64, 63.5 -> 64, 190.5 -> 190; ">=" -> vth = S - 1
    assert lif.scale == 254 and lif.vth == 253
    syn = next(s for s in net.synapses if s.dst == "lif1")
    assert np.asarray(syn.weights).tolist() == [[254, -64], [64, 190]] and syn.weight_exp == 0
    # the readout: a non-spiking integrator (dv 0, threshold out of reach) with weights 254 * [1, -1]
    ro = net.pop(net.outputs[0])
    assert ro.kind == "readout" and (ro.du, ro.dv, ro.vth) == (4095, 0, 2 ** 17 - 1)
    assert np.asarray(next(s for s in net.synapses if s.dst == ro.name).weights).tolist() == [[254, -254]]
    assert net.metadata["latency"] == 2  # two synapse groups: one step each
    assert report["clipped_weights"] == 0


def test_lif_integers_by_hand():
    net, _ = lower_graph(_graph(), T=3)
    x = np.array([[1, 0], [1, 1], [0, 1]])[:, None, :]  # [T, B=1, 2]
    r = simulate(net, {"input": x}, 3, record="all", pipelined=False)
    # a_in = W x: t1 [254, 64]; t2 [190, 254]; t3 [-64, 190]; u = 64 a_in; threshold 253 * 64 = 16192
    # neuron 0: v1 = 16256 > 16192 spike -> 0; v2 = 190*64 = 12160; v3 = 12160/2 - 4096 = 1984
    # neuron 1: v1 = 4096; v2 = 2048 + 16256 = 18304 spike -> 0; v3 = 12160
    assert r["lif1"]["u"][:, 0].tolist() == [[16256, 4096], [12160, 16256], [-4096, 12160]]
    assert r["lif1"]["v"][:, 0].tolist() == [[0, 4096], [12160, 0], [1984, 12160]]
    assert r["lif1"]["s"][:, 0].tolist() == [[1, 0], [0, 1], [0, 0]]
    # the float model agrees: H1 = [1.0, 0.25] (1.0 >= 1 fires), H2 = [0.75, 1.125], H3 = [0.25, 0.75]
    ro = net.outputs[0]
    # readout a_in = 254 (s0 - s1): +254, -254, 0 -> v = 64 * cumulative sum
    assert r[ro]["v"][:, 0, 0].tolist() == [16256, 0, 0]
    # pipelined as in Lava: the same integers, lif1 one step later and the readout two steps later
    p = simulate(net, {"input": np.concatenate([x, np.zeros((2, 1, 2), int)])}, 5, record="all")
    assert p["lif1"]["s"][1:4, 0].tolist() == r["lif1"]["s"][:, 0].tolist()
    assert p[ro]["v"][2:5, 0, 0].tolist() == [16256, 0, 0]


def test_maxpool_on_spikes_is_sum_pool_into_threshold_neurons():
    # MaxPool2d(2, 2) on a binary [1, 2, 2] map as the exporter writes it: SumPool2d + Threshold(0.5)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 2, 2])}),
        "mp.sum": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "mp.or": nir.Threshold(threshold=np.full((1, 1, 1), 0.5, F32)),
        "output": nir.Output(output_type={"output": np.array([1, 1, 1])}),
    }
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "mp.sum"), ("mp.sum", "mp.or"), ("mp.or", "output")],
                     metadata={"neurodeploy.time_steps": 4, "neurodeploy.input_domain": "binary"})
    net, _ = lower_graph(g, T=4)
    pool = next(s for s in net.synapses if s.dst == "mp.or")
    assert pool.kind == "conv" and np.asarray(pool.weights).shape == (1, 1, 2, 2)
    w = int(np.asarray(pool.weights).ravel()[0])
    assert set(np.asarray(pool.weights).ravel().tolist()) == {w}  # all-ones kernel times the scale
    th = net.pop("mp.or")
    assert th.dv == 4096 and th.du == 4095  # no memory: a pure threshold of this step's count
    assert th.vth * 64 < w * 64  # one spike in the window is enough (strict >, threshold 0.5)
    x = np.array([[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 1, 0], [1, 1, 1, 1]]).reshape(4, 1, 1, 2, 2)
    r = simulate(net, {"input": x}, 4, record="all", pipelined=False)
    assert r["mp.or"]["s"].reshape(4).tolist() == [0, 1, 1, 1]  # OR of the window = max of bits


def test_string_conv_padding_is_converted_or_refused_by_name():
    import pytest

    from neurodeploy.errors import UnsupportedError

    def graph(pad, stride, out):
        n = (2,) + out
        nodes = {
            "input": nir.Input(input_type={"input": np.array([1, 4, 4])}),
            "c": nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3), F32), stride=stride, padding=pad,
                            dilation=1, groups=1, bias=np.zeros(2, F32)),
            "l": nir.LIF(tau=np.full(n, 2e-4, F32), r=np.ones(n, F32), v_leak=np.zeros(n, F32),
                         v_threshold=np.ones(n, F32)),
            "output": nir.Output(output_type={"output": np.array(n)}),
        }
        return nir.NIRGraph(nodes=nodes, edges=[("input", "c"), ("c", "l"), ("l", "output")],
                            metadata={"neurodeploy.time_steps": 2, "neurodeploy.input_domain": "binary"})

    for pad, out, want in (("same", (4, 4), (1, 1)), ("valid", (2, 2), (0, 0))):
        net, _ = lower_graph(graph(pad, 1, out), T=2)
        assert next(s for s in net.synapses if s.kind == "conv").padding == want
    with pytest.raises(UnsupportedError, match=r"node 'c': padding 'same' with stride \(2, 2\)"):
        lower_graph(graph("same", 2, (4, 4)), T=2)  # NIR keeps the size for "same" whatever the stride
