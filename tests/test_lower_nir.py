"""Lowering NIR graphs to the integer network: hand-checkable neuron mapping (NIR paper LIF), a plain CNN
and a Spikingformer (attention, residual delay balancing): the pipelined integer network equals the
layer-synchronous integer model shifted by each population's latency, and agrees with the float model."""
import os

import nir
import numpy as np
import pytest
import torch

from neurodeploy.errors import UnsupportedError
from neurodeploy.graph import simulate as float_simulate
from neurodeploy.lower.network_file import load_network, network_from_dict, network_to_dict, save_network
from neurodeploy.lower.loihi2 import lower_graph
from testmodels import tiny_spikingformer
from neurodeploy.sim import simulate

DATA = os.path.join(os.path.dirname(__file__), "data", "nir-paper")


def _shift_equal(net, inputs, T):
    """Run pipelined (T + latency steps, zero input after T) and layer-synchronous; compare all states."""
    L = net.metadata["latency"]
    lat = net.metadata["population_latency"]
    padded = {}
    for p in net.inputs:
        x = np.asarray(inputs[p.name])
        padded[p.name] = x if p.input_kind == "bias" else np.concatenate([x, np.zeros((L,) + x.shape[1:], x.dtype)])
    pipe = simulate(net, padded, T + L, record="all")
    sync = simulate(net, inputs, T, record="all", pipelined=False)
    for p in net.populations:
        if p.kind == "input":
            continue
        for key in pipe[p.name]:          # s, u, v (a relay: s, its graded payload)
            a = pipe[p.name][key][lat[p.name]:lat[p.name] + T]
            assert np.array_equal(a, sync[p.name][key]), (p.name, key)
    return sync


def test_nir_paper_lif_reproduces_lava_cpu_fixed_trace():
    """lif_norse.nir (Affine 1 -> LIF tau 2.5 ms, threshold 0.1, dt 0.1 ms) with the NIR paper's Lava
    conversion (scale 25 units per threshold, truncated decay): dv = trunc(4096/25) = 163, vth = 25,
    weight 10 (mantissa 160, weight_exp -4).  All 1000 steps of v and spikes equal lif_lava_cpu_fixed.csv.
    Loihi 2 (lif_lava_loihi_fixed.csv) has the same spikes; it differs only in the 4 spike steps, where
    the chip reports v = 128 for the spiking neuron instead of the reset 0 (as in the PilotNet captures)."""
    g = nir.read(os.path.join(DATA, "01_lif", "lif_norse.nir"))
    net, report = lower_graph(g, scale=25, rounding="floor")
    lif = net.pop("1")
    assert (lif.du, lif.dv, lif.vth) == (4095, 163, 25)
    syn = net.synapses[0]
    assert syn.weights.tolist() == [[160]] and syn.weight_exp == -4
    cpu = np.loadtxt(os.path.join(DATA, "01_lif", "lif_lava_cpu_fixed.csv"), delimiter=",")
    hw = np.loadtxt(os.path.join(DATA, "01_lif", "lif_lava_loihi_fixed.csv"), delimiter=",")
    r = simulate(net, {"input": cpu[:, 0].astype(np.int64)[:, None, None]}, 1000, record="all")["1"]
    v, s = r["v"][:, 0, 0], r["s"][:, 0, 0]
    assert np.array_equal(v, cpu[:, 1]) and np.array_equal(s, cpu[:, 2]) and s.sum() == 4
    assert np.array_equal(s, hw[:, 2])
    diff = np.nonzero(v != hw[:, 1])[0]
    assert diff.tolist() == np.nonzero(s)[0].tolist() and np.all(hw[diff, 1] == 128)
    # default lowering: nearest-rounded decay and the largest 8-bit scale
    net2, _ = lower_graph(g)
    assert net2.pop("1").dv == 164 and net2.synapses[0].weights.max() <= 254


def test_cnn_sinabs_lowering_exact_shift_and_fidelity():
    g = nir.read(os.path.join(DATA, "02_cnn", "cnn_sinabs.nir"))
    T, B = 8, 2
    net, report = lower_graph(g, T=T)
    # 3 -> SumPool(2, s2) -> Conv(3x3, pad 1) -> 6 is ONE conv (6x6 kernel, stride 2, pad 2): the pool reads
    # no padding, so the conv's zero padding of the pooled map is the input's zero padding
    assert [s.kind for s in net.synapses] == ["conv", "conv", "conv", "dense", "dense"]
    assert net.metadata["latency"] == 5 and report["clipped_weights"] == 0
    x = (np.random.default_rng(0).random((T, B, 2, 34, 34)) < 0.15).astype(np.int64)
    sync = _shift_equal(net, {"input": x}, T)
    _, rec = float_simulate(g, torch.as_tensor(x, dtype=torch.float32).transpose(0, 1), record=True)
    for name in ("1", "3", "6", "10"):
        agree = (rec[name].reshape(T, B, -1).numpy() == sync[name]["s"]).mean()
        assert agree > 0.9, (name, agree)
    assert sync["1"]["s"].sum() > 100


@pytest.fixture(scope="module")
def spikingformer():
    from neurodeploy.exporters import to_nir
    model = tiny_spikingformer()
    g = to_nir(model, arch="spikingformer-digits")
    # the process form keeps the attention as one op (the structure checked below); the default graded form
    # is checked in tests/test_attention_graded.py
    net, report = lower_graph(g, attention="process")
    return g, net, report


def test_spikingformer_lowering_structure(spikingformer):
    g, net, report = spikingformer
    lat = net.metadata["population_latency"]
    assert net.metadata["latency"] == 10         # 8 + one step per residual-stream relay (2)
    assert lat["block.0.attn.attn_lif"] == lat["block.0.attn.q_lif"] + 1
    (att,) = net.attention
    assert (att.heads, att.dim, att.tokens, att.balance_delays) == (2, 16, 16, (0, 0, 0))
    # attn LIF: attention scale, 1/tau and the 0.5 threshold folded into S = m / (0.125 * (1/2) / 0.5) = 8 m;
    # ">=" on the 64-grid -> vth = S - 1
    attn = net.pop("block.0.attn.attn_lif")
    assert attn.scale == att.weight * 8 and attn.vth == attn.scale - 1 and attn.dv == 2048
    # residual stream, built once: x_0 (the tokenizer's conv) in one relay, x_1 = x_0 + the attention
    # branch in a second one; each LIF of the stream reads its relay one-to-one (weight 1, graded: a depthwise
    # 1x1 conv on the 16 x 16 token map), at twice the stream's scale (gain 1/2); x_0 waits 3 steps in x_1's
    # relay for the attention branch
    x0, x1 = net.pop("block.0.attn.proj_lif.stream"), net.pop("block.0.mlp.mlp1_lif.stream")
    assert x0.kind == x1.kind == "relay" and x0.scale == x1.scale
    skip = next(s for s in net.synapses if s.dst == x1.name and s.src == x0.name)
    assert skip.balance_delay == 3 and skip.graded and skip.kind == "conv" and skip.groups == 16
    assert np.array_equal(skip.weights, np.ones((16, 1, 1, 1)))
    for reader, x in (("block.0.attn.proj_lif", x0), ("block.0.mlp.mlp1_lif", x1)):
        (syn,) = [s for s in net.synapses if s.dst == reader]
        assert syn.src == x.name and syn.graded and syn.weight_exp == 0 and net.pop(reader).scale == 2 * x.scale
    assert [s.src for s in net.synapses if s.dst == x1.name] == [x0.name, "block.0.attn.attn_lif"]
    assert sorted(s.balance_delay for s in net.synapses if s.dst == "readout") == [0, 3, 7]
    assert net.pop("patch_embed.block2_mp.or").dv == 4096          # max-pool: threshold population
    assert net.pop("patch_embed.block1_lif").bias_input            # host-side encoder
    for p in net.populations:
        if p.kind == "lif":
            assert p.du == 4095 and p.dv in (2048, 4096)
    assert report["clipped_weights"] == 0 and report["clipped_biases"] == 0


def test_spikingformer_exact_shift_and_float_fidelity(spikingformer):
    g, net, _ = spikingformer
    T, B = 4, 4
    x = np.random.default_rng(0).random((B, 1, 8, 8)).astype(np.float32)
    sync = _shift_equal(net, net.encode_inputs(x), T)
    out, rec = float_simulate(g, torch.as_tensor(x), T=T, record=True)
    for p in net.populations:
        if p.kind != "lif":
            continue
        f = rec[p.name].reshape(T, B, -1).numpy()
        assert f.sum() > 0 and sync[p.name]["s"].sum() > 0, p.name
        assert (f == sync[p.name]["s"]).mean() > 0.95, p.name
    decoded = sync["readout"]["v"][-1] / (64 * net.metadata["readout_scale"] * T)
    assert np.abs(decoded - out.mean(0).numpy()).max() < 0.35


def test_lowered_network_save_load_roundtrip(spikingformer, tmp_path):
    _, net, _ = spikingformer
    path = tmp_path / "net.npz"
    save_network(net, str(path))
    back = load_network(str(path))
    via_dict = network_from_dict(network_to_dict(net))
    x = np.random.default_rng(1).random((2, 1, 8, 8)).astype(np.float32)
    ref = simulate(net, net.encode_inputs(x), 10, record=["readout", "block.0.attn.attn_lif"])
    assert ref["block.0.attn.attn_lif"]["s"].sum() > 0          # the attention spikes: the compared spikes are real
    assert np.any(ref["readout"]["v"] != 0)                     # and the readout integrates them
    for other in (back, via_dict):
        assert [p.name for p in other.populations] == [p.name for p in net.populations]
        res = simulate(other, other.encode_inputs(x), 10, record=["readout", "block.0.attn.attn_lif"])
        for name in ref:
            for key in ref[name]:
                assert np.array_equal(ref[name][key], res[name][key])


def _chain_graph(depth, v_reset=0.0):
    nodes = {"input": nir.Input(input_type={"input": np.array([4])})}
    edges = []
    prev = "input"
    for i in range(depth):
        nodes[f"fc{i}"] = nir.Affine(weight=np.eye(4, dtype=np.float32), bias=np.zeros(4, np.float32))
        nodes[f"if{i}"] = nir.IF(r=np.ones(4, np.float32), v_threshold=np.ones(4, np.float32) * 0.5,
                                 v_reset=np.full(4, v_reset, np.float32))
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"if{i}")]
        prev = f"if{i}"
    nodes["skip"] = nir.Affine(weight=np.eye(4, dtype=np.float32), bias=np.zeros(4, np.float32))
    edges += [("if0", "skip"), ("skip", f"if{depth - 1}")]
    nodes["output"] = nir.Output(output_type={"output": np.array([4])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges)


def test_lowering_errors_name_the_node():
    with pytest.raises(UnsupportedError, match="'if0'.*v_reset"):
        lower_graph(_chain_graph(3, v_reset=0.5))
    net, _ = lower_graph(_chain_graph(64))            # skip if0 -> if63: 62 steps of balance delay: allowed
    assert max(s.balance_delay for s in net.synapses) == 62
    # 63 steps: the skip reads a delay relay of if0 (63 steps later) instead (tests/test_delay_relays.py)
    net, _ = lower_graph(_chain_graph(65))
    assert net.metadata["delay_relays"] == {"if0": ["if0.delay1"]}
    assert max(s.balance_delay for s in net.synapses) == 62
