"""Loihi 2 lowering of NIR's CubaLIF, LI, CubaLI, IF, I, Delay, v_leak, recurrence and nested subgraphs
(issue 13): hand-checked registers, engine == Lava fixed_pt bit for bit (s, u, v of every population, every
step), float reference vs fixed point, and the refusals that name node and field (docs/lowering.md,
"Neuron models")."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from neurodeploy.errors import UnsupportedError
from neurodeploy.graph import simulate as float_simulate
from neurodeploy.lower.loihi2 import lower_graph
from neurodeploy.sim import simulate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "examples" / "nir_paper"))
from export_helpers import lava_equals_engine  # noqa: E402
from nir_corpus.generate import DT, chain, cubalif, lif, nir_graphs  # noqa: E402

T = 16


def _full(n, v):
    return np.full(n, v, np.float32)


def _binary(g):
    g.metadata = dict(g.metadata or {}, **{"neurodeploy.input_domain": "binary"})
    return g


def _inputs(net, batch=1, T=T, p=0.5, seed=1):
    inp = next(p_ for p_ in net.populations if p_.kind == "input")
    x = (np.random.default_rng(seed).random((T, batch) + tuple(inp.shape)) < p).astype(np.int64)
    return {inp.name: x}


def test_cubalif_registers_and_states_by_hand():
    """Linear 0.5 -> CubaLIF(tau_syn 2 dt, tau_mem 4 dt, r 4, w_in 1, v_leak 0.25, v_th 1), input 1 every step.
    Gain w_in r / (k_syn k_mem) = 0.5, so the weight is 0.25 threshold units; S = 254 / 0.25 = 1016:
    weight 254, du = 4096/2 - 1 = 2047, dv = 4096/4 = 1024, vth = 1016, bias = 0.25/4 x 1016 x 64 = 4064.
    u = u/2 + 254*64, v = trunc(3v/4) + u + 4064 (reset of u, v at step 2, when the first input arrives):
    v = 20320, 43688, 65278 > 65024 -> spike: 0.3125, 0.671875, 1.0039 threshold units, the float model's
    v of steps 1, 2, 3 (i = 0.25, 0.375, 0.4375)."""
    g = _binary(chain(nir.Linear(weight=np.array([[0.5]], np.float32)),
                      nir.CubaLIF(tau_syn=_full(1, 2 * DT), tau_mem=_full(1, 4 * DT), r=_full(1, 4.0), w_in=_full(1, 1.0),
                                  v_leak=_full(1, 0.25), v_threshold=_full(1, 1.0), v_reset=_full(1, 0.0)),
                      in_shape=(1,)))
    net, _ = lower_graph(g, T=4)
    p = net.pop("n1")
    assert (p.du, p.dv, p.vth, int(np.asarray(p.bias_mant).reshape(-1)[0]), p.bias_exp) == (2047, 1024, 1016, 4064, 0)
    s = net.synapses[0]
    assert (int(np.asarray(s.weights)[0, 0]), s.weight_exp) == (254, 0)
    r = lava_equals_engine(net, {"input": np.ones((4, 1, 1), np.int64)}, 5)["n1"]
    assert r["u"][1:4, 0, 0].tolist() == [16256, 24384, 28448]
    assert r["v"][1:4, 0, 0].tolist() == [20320, 43688, 0] and r["s"][1:5, 0, 0].tolist() == [0, 0, 1, 0]
    ref = float_simulate(g, torch.ones(1, 3, 1), record=True)[1]
    assert ref["n1"][:, 0, 0].tolist() == [0.0, 0.0, 1.0]


NEW = ["nir_cubalif", "nir_cubalif_win_vleak", "nir_lif_vleak", "nir_affine_if", "nir_lif_li_readout",
       "nir_lif_i_readout", "nir_cubali_readout", "nir_delay", "nir_rec_self_edge", "nir_rec_affine",
       "nir_rec_cubalif", "nir_nested", "nir_nested_recurrent"]


@pytest.fixture(scope="module")
def graphs():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nir_graphs()


@pytest.mark.parametrize("name", NEW)
def test_new_primitives_in_lava_equal_engine_and_follow_the_float_model(graphs, name):
    g = _binary(graphs[name])
    net, _ = lower_graph(g, T=T)
    L = net.metadata["latency"]
    x = _inputs(net, T=T)
    lava_equals_engine(net, x, T + L)
    # float reference vs fixed point (8 samples): spikes agree where quantization allows
    xb = _inputs(net, batch=8, T=T, p=0.3, seed=4)
    (key, xs), = xb.items()
    pad = np.concatenate([xs, np.zeros((L,) + xs.shape[1:], np.int64)])
    out = net.outputs[0]
    fixed = simulate(net, {key: pad}, T + L, record=[out])[out]
    in_shape = next(iter(g.nodes[n] for n in g.nodes if isinstance(g.nodes[n], nir.Input))).input_type["input"]
    ref = float_simulate(g, torch.as_tensor(xs.swapaxes(0, 1).reshape((8, T) + tuple(np.asarray(in_shape).reshape(-1))),
                                            dtype=torch.float64))
    ref = ref.reshape(T, 8, -1).numpy()          # [T, B, n]
    po = net.pop(out)
    if po.kind == "readout":
        # non-spiking readouts: v / (64 S) is the float v (quantization and the hidden spikes' rare differences)
        err = np.abs(fixed["v"][L:] / (64 * po.scale) - ref).max() / max(np.abs(ref).max(), 1e-9)
        assert err < 0.1, err
    else:
        agree = float((fixed["s"][L:] == ref).mean())
        assert agree >= 0.98, agree
        assert ref.sum() > 0


def test_recurrence_pipelined_equals_layer_synchronous_shifted(graphs):
    """A population feeding itself: the group has no balance delay, so spikes of step t arrive at t + 1 as
    NIR's back edge; the pipelined run equals the layer-synchronous one shifted by the latency."""
    net, _ = lower_graph(_binary(graphs["nir_rec_cubalif"]), T=T)
    rec = next(s for s in net.synapses if s.src == s.dst == "n1")
    assert rec.balance_delay == 0
    L = net.metadata["latency"]
    (k, x), = _inputs(net, batch=4, T=T, p=0.4).items()
    pad = np.concatenate([x, np.zeros((L,) + x.shape[1:], np.int64)])
    from neurodeploy.sim.engine import simulate as sim
    pipe = sim(net, {k: pad}, T + L, record=["n1"])["n1"]["s"]
    sync = sim(net, {k: x}, T, record=["n1"], pipelined=False)["n1"]["s"]
    assert pipe.sum() > 0 and np.array_equal(pipe[L:], sync)


def test_delay_nodes_become_synaptic_delays(graphs):
    net, _ = lower_graph(_binary(graphs["nir_delay"]), T=T)
    s = next(s for s in net.synapses if s.dst == "n4")
    d = np.asarray(s.delays)
    assert d.shape == (3, 5) and d[0].tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("field,node,expect", [
    ("v_reset", lif(5, v_reset=1.0), "node 'n1': LIF field v_reset >= v_threshold"),
    ("tau", lif(5, tau_steps=0.5), "node 'n1': tau shorter than one step"),
])
def test_refusals_name_node_and_field(field, node, expect):
    rng = np.random.default_rng(0)
    g = _binary(chain(nir.Affine(weight=rng.standard_normal((5, 4)).astype(np.float32), bias=_full(5, 0.0)), node))
    with pytest.raises(UnsupportedError, match=expect):
        lower_graph(g, T=4)


def test_loop_through_two_populations_is_refused(graphs):
    with pytest.raises(UnsupportedError, match=r"node 'n1': recurrent loop through populations \['n1', 'n3'\].*2 steps"):
        lower_graph(_binary(graphs["nir_rec_to_earlier"]), T=4)


def test_delay_after_a_linear_node_is_refused():
    rng = np.random.default_rng(0)
    g = _binary(chain(nir.Affine(weight=rng.standard_normal((5, 4)).astype(np.float32), bias=_full(5, 0.0)),
                      nir.Delay(delay=_full(5, 2 * DT)), lif(5)))
    with pytest.raises(UnsupportedError, match="node 'n1': a Delay after a linear node"):
        lower_graph(g, T=4)


@pytest.fixture(scope="module")
def snn_graphs(tmp_path_factory):
    import snntorch as snn
    from neurodeploy.exporters import to_nir
    torch.manual_seed(0)
    kw = dict(init_hidden=True, output=True, reset_mechanism="zero", reset_delay=False)
    models = {"synaptic": torch.nn.Sequential(torch.nn.Linear(4, 6), snn.Synaptic(alpha=torch.full((6,), 0.5),
                                              beta=torch.full((6,), 0.75), threshold=torch.full((6,), 0.5), **kw)),
              "rleaky": torch.nn.Sequential(torch.nn.Linear(4, 6), snn.RLeaky(beta=torch.full((6,), 0.5),
                                            threshold=torch.full((6,), 0.5), linear_features=6, **kw))}
    out = {}
    for k, m in models.items():         # neurodeploy's front end runs snnTorch's own exporter
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[k] = to_nir(m, sample_data=torch.zeros(1, 4))
    return out


@pytest.mark.parametrize("name", ["synaptic", "rleaky"])
def test_snntorch_exports_in_lava_equal_engine(snn_graphs, name):
    net, _ = lower_graph(_binary(snn_graphs[name]), T=T)
    if name == "synaptic":
        assert net.pop(net.outputs[0]).du == 2047          # alpha 0.5: tau_syn = 2 dt
    else:
        assert any(s.src == s.dst for s in net.synapses)
    ours = lava_equals_engine(net, _inputs(net), T + net.metadata["latency"])
    assert ours[net.outputs[0]]["s"].sum() > 0


def _braille(tmp_path, readout):
    from braille import braille_graph
    path = tmp_path / f"braille_{readout}.nir"
    nir.write(path, braille_graph(0, readout))
    return path


@pytest.mark.parametrize("readout", ["cubalif", "li"])
def test_braille_rnn_loweredlava_equals_engine(tmp_path, readout):
    from neurodeploy.exporters import to_nir
    g = _binary(to_nir(_braille(tmp_path, readout)))
    net, _ = lower_graph(g, T=40)
    hid = net.pop("lif1.lif")
    assert (hid.du, hid.dv, hid.size) == (1844, 410, 38)      # 4096 / 2.22 - 1, 4096 / 10
    assert any(s.src == s.dst == "lif1.lif" for s in net.synapses)
    ours = lava_equals_engine(net, _inputs(net, T=40, p=0.3), 40 + net.metadata["latency"])
    assert ours["lif1.lif"]["s"].sum() > 20
    if readout == "cubalif":
        assert ours["lif2"]["s"].sum() > 0
    else:
        assert net.pop("lif2").kind == "readout"


def test_braille_export_cli_exits_0(tmp_path):
    from neurodeploy.cli import main
    path = _braille(tmp_path, "cubalif")
    assert main(["export", str(path), "--target", "loihi2", "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "loihi2" / "network.npz").exists()


def test_export_and_report_take_input_domain_and_steps_and_measure_fidelity_of_a_nir_file(tmp_path):
    """`export` and `report` accept --input-domain and -T/--steps as `simulate` does; fidelity runs for a .nir
    file with static data (-T 12) and with event data ([N, T, 12]); the recurrent network is simulated
    one sample per batch row (the chained-mode refusal of recurrence applies to Lava's back-to-back runs)."""
    import json

    from neurodeploy.cli import main
    path = _braille(tmp_path, "cubalif")
    rng = np.random.default_rng(0)
    static, events = tmp_path / "static.npz", tmp_path / "events.npz"
    np.savez(static, x=(rng.random((5, 12)) < 0.3).astype(np.float32), y=np.arange(5))
    np.savez(events, x=(rng.random((5, 9, 12)) < 0.3).astype(np.float32), y=np.arange(5))
    out = tmp_path / "out"
    assert main(["export", str(path), "--target", "loihi2", "-o", str(out), "--data", str(static), "-T", "12",
                 "--input-domain", "binary"]) == 0
    rep = json.loads((out / "report.json").read_text())
    fid = rep["targets"][0]["fidelity"]
    assert (fid["samples"], fid["steps_per_sample"]) == (5, 12) and 0.0 <= fid["prediction_agreement"] <= 1.0
    assert nir.read(out / "model.nir").metadata["neurodeploy.input_domain"] == "binary"
    assert main(["report", str(path), "--data", str(events), "--input-domain", "binary", "--format", "json",
                 "-o", str(tmp_path / "r.json")]) == 0
    fid = json.loads((tmp_path / "r.json").read_text())["targets"][0]["fidelity"]
    assert (fid["samples"], fid["steps_per_sample"]) == (5, 9)
    assert main(["report", str(path), "--input-domain", "spikes"]) == 2  # argparse: invalid choice


def test_delay_beyond_62_steps_is_refused_naming_the_synapse():
    rng = np.random.default_rng(0)
    g = _binary(chain(nir.Affine(weight=rng.standard_normal((5, 4)).astype(np.float32), bias=_full(5, 0.0)), lif(5),
                      nir.Delay(delay=_full(5, 70 * DT)), nir.Affine(weight=rng.standard_normal((3, 5)).astype(np.float32),
                                                                   bias=_full(3, 0.0)), lif(3)))
    with pytest.raises(UnsupportedError, match=r"synapse 'n4.syn' \(n2/n3\): delay 70 exceeds the Loihi 2 maximum of 62"):
        lower_graph(g, T=4)


def test_constant_population_name_avoids_graph_node_names():
    rng = np.random.default_rng(0)
    g = _binary(chain(nir.Affine(weight=rng.standard_normal((3, 4)).astype(np.float32), bias=_full(3, 0.3)),
                      cubalif(3)))
    g.nodes["const1"] = g.nodes.pop("n1")
    g.edges = [(a.replace("n1", "const1"), b.replace("n1", "const1")) for a, b in g.edges]
    net, _ = lower_graph(g, T=4)
    assert {p.name for p in net.populations} == {"input", "const1", "const1_"}
    assert net.pop("const1_").size == 1 and net.pop("const1").du == 2047


def test_fidelity_lava_backend_runs_recurrent_networks_one_sample_per_graph(tmp_path):
    """Chained Lava runs refuse recurrence (a tail would leak into the next window); the Lava backend of the
    fidelity then runs one sample per process graph, and its predictions equal the fast engine's."""
    from neurodeploy.exporters import to_nir
    from neurodeploy.fidelity import simulate_loihi2
    g = _binary(to_nir(_braille(tmp_path, "li")))
    x = (np.random.default_rng(3).random((3, 15, 12)) < 0.3).astype(np.float32)
    fast = simulate_loihi2(g, x, steps=15, progress=False)
    lava = simulate_loihi2(g, x, steps=15, backend="lava", progress=False)
    assert lava["predictions"] == fast["predictions"] and lava["samples"] == 3


# ------------------------------------------------------------------ v_reset != 0 (shifted membrane)
def test_v_reset_registers_and_states_by_hand():
    """Linear 1 -> LIF(tau 2 dt, r 1, v_leak 0, v_th 0.75, v_reset -0.25), input 1 every step.  Shifted
    membrane v' = v + 0.25: threshold 1.0, leak towards 0.25, initial v' = 0.25.  Weight 1 x r / k = 0.5
    threshold units, S = 254 / 0.5 = 508: weight 254, vth 508 (64 S = 32512 is one threshold unit),
    v_init = 0.25 x 32512 = 8128, bias = 0.25 / 2 x 32512 = 4064, dv 2048.  V = V / 2 + 254 x 64 + 4064:
    24384, 32512 (= vth << 6: no spike, as the float v = 0.75 is not > 0.75), 36576 -> spike, V = 0
    (v = v_reset), 20320, 30480, 35560 -> spike: the float v = 0.5, 0.75, 0.875 (spike), 0.375, 0.6875,
    0.84375 (spike), shifted by 0.25 and times 32512."""
    g = _binary(chain(nir.Linear(weight=np.array([[1.0]], np.float32)),
                      nir.LIF(tau=_full(1, 2 * DT), r=_full(1, 1.0), v_leak=_full(1, 0.0), v_threshold=_full(1, 0.75),
                              v_reset=_full(1, -0.25)), in_shape=(1,)))
    net, _ = lower_graph(g, T=6)
    p = net.pop("n1")
    assert (p.dv, p.vth, p.v_init, int(np.asarray(p.bias_mant).reshape(-1)[0]), p.bias_exp) == (2048, 508, 8128, 4064, 0)
    assert (p.reset_interval, p.reset_offset) == (7, 2)        # v := v_init, u := 0 when the input arrives
    assert int(np.asarray(net.synapses[0].weights)[0, 0]) == 254
    r = lava_equals_engine(net, {"input": np.ones((7, 1, 1), np.int64)}, 7)["n1"]
    assert r["v"][1:7, 0, 0].tolist() == [24384, 32512, 0, 20320, 30480, 0]
    assert r["s"][1:7, 0, 0].tolist() == [0, 0, 1, 0, 0, 1]
    ref = float_simulate(g, torch.ones(1, 6, 1, dtype=torch.float64), record=True, record_membrane=True,
                         dtype=torch.float64)[1]
    assert ref["n1"][:, 0, 0].tolist() == [0, 0, 1, 0, 0, 1]
    assert ref["n1:v"][:, 0, 0].tolist() == [0.5, 0.75, -0.25, 0.375, 0.6875, -0.25]


def _on_grid_neuron(kind, n, v_reset, v_leak):
    """A neuron whose shifted threshold v_th - v_reset is 1 (so S = 256 below), with dyadic parameters."""
    th = 1.0 + v_reset
    if kind == "LIF":
        return nir.LIF(tau=_full(n, 2 * DT), r=_full(n, 1.0), v_leak=_full(n, v_leak), v_threshold=_full(n, th),
                       v_reset=_full(n, v_reset)), 0.5
    if kind == "IF":
        return nir.IF(r=_full(n, 1.0), v_threshold=_full(n, th), v_reset=_full(n, v_reset)), 1.0
    return nir.CubaLIF(tau_syn=_full(n, 2 * DT), tau_mem=_full(n, 4 * DT), r=_full(n, 4.0), w_in=_full(n, 1.0),
                       v_leak=_full(n, v_leak), v_threshold=_full(n, th), v_reset=_full(n, v_reset)), 0.5


def _on_grid_graph(kind, v_reset, v_leak, n_in=6, n=5):
    """Linear -> neuron: weights w_int / 256 threshold units (w_int even, |w_int| <= 254, one of them 254),
    so S = 256, every weight is an 8-bit mantissa, v_init = -v_reset x 16384 and the bias are exact."""
    rng = np.random.default_rng(7)
    w_int = 2 * rng.integers(-127, 128, (n, n_in))
    w_int[0, 0] = 254
    node, gain = _on_grid_neuron(kind, n, v_reset, v_leak)
    return _binary(chain(nir.Linear(weight=(w_int / 256.0 / gain).astype(np.float32)), node, in_shape=(n_in,)))


VRESET_CASES = [(k, vr, vl) for k in ("LIF", "IF", "CubaLIF") for vr in (0.25, -0.25)
                for vl in ((0.0, 0.375) if k != "IF" else (0.0,))]


@pytest.mark.parametrize("kind,v_reset,v_leak", VRESET_CASES)
def test_v_reset_lowered_equals_float_model_and_lava_with_resets_between_samples(kind, v_reset, v_leak):
    """LIF / IF / CubaLIF with v_reset = +-0.25 (and v_leak), parameters on the fixed-point grid: our engine
    gives the float reference simulator's spikes exactly (8 samples x 16 steps); Lava == engine bit for bit
    (s, u, v) in one run and in a chained run of 3 samples with the reset to v_init between them."""
    from neurodeploy.lava.run import run_lava_chained
    from neurodeploy.sim.chained import simulate_chained
    g = _on_grid_graph(kind, v_reset, v_leak)
    net, _ = lower_graph(g, T=T)
    p = net.pop("n1")
    assert (p.scale, p.vth, p.v_init) == (256.0, 256, int(-v_reset * 16384))
    L = net.metadata["latency"]
    xb = _inputs(net, batch=8, T=T, p=0.5, seed=4)
    (key, xs), = xb.items()
    pad = np.concatenate([xs, np.zeros((L,) + xs.shape[1:], np.int64)])
    fixed = simulate(net, {key: pad}, T + L, record=["n1"])["n1"]["s"][L:]
    ref = float_simulate(g, torch.as_tensor(xs.swapaxes(0, 1), dtype=torch.float64), dtype=torch.float64).numpy()
    assert ref.sum() > 10 and np.array_equal(fixed, ref)
    lava_equals_engine(net, {key: pad[:, :1]}, T + L)
    x3 = {key: xs[:, :3]}
    chained, lava, _ = run_lava_chained(net, x3, record="all")
    _, ours = simulate_chained(net, x3, record="all")
    assert type(chained.pop("n1").v_init) is int and chained.pop("n1").reset_interval == T + L
    for name in lava:
        for k in lava[name]:
            assert np.array_equal(lava[name][k], ours[name][k]), (name, k)
    # each window equals the float model of that sample: the reset restores the initial v
    win = ours["n1"]["s"].reshape(3, T + L, -1)[:, L:]
    assert np.array_equal(win, ref[:, :3].transpose(1, 0, 2))


def test_v_init_survives_save_load_and_bumps_the_format_version(tmp_path):
    import json

    from neurodeploy.lower.network_file import load_network, save_network
    net, _ = lower_graph(_on_grid_graph("LIF", 0.25, 0.0), T=4)
    path = tmp_path / "net.npz"
    save_network(net, str(path))
    meta = json.loads(bytes(np.load(str(path))["__meta__"]).decode())
    assert meta["version"] == 3
    back = load_network(str(path))
    assert back.pop("n1").v_init == -4096
