"""Pipelined samples (``Engine.run_stream``) and the engine's speed-up switches: every sample window of a
streamed run equals the same steps of a fresh one-sample-per-row run of the chained network (resets
between samples, per-sample bias), with each speed-up on and off, integer for integer."""
import numpy as np
import pytest
import torch

from neurodeploy.errors import UnsupportedError
from neurodeploy.lower.chain import chain_network
from neurodeploy.lower.network import LoweredNetwork, Population, Synapse, VTH_MAX
import testnets
from simresults import as_numpy as _np
from neurodeploy.sim import Engine


def encoder_net(seed: int = 3) -> LoweredNetwork:
    """A host-encoder input (per-sample bias) and a spike input -> LIF -> conv LIF with a bias and current
    decay -> dense readout, with a skip connection through a balance delay."""
    rng = np.random.default_rng(seed)
    pops = [Population("enc", (2, 4, 4), kind="input", input_kind="bias"),
            Population("ev", (2, 4, 4), kind="input", input_kind="spikes"),
            Population("x0", (2, 4, 4), du=4095, dv=1024, vth=30, bias_input="enc", bias_exp=6),
            Population("c1", (3, 4, 4), du=3000, dv=512, vth=20, bias_mant=rng.integers(-30, 60, (3, 4, 4)), bias_exp=4),
            Population("ro", (4,), kind="readout", du=4095, dv=0, vth=VTH_MAX)]
    syn = [Synapse("cv", "x0", "c1", "conv", rng.integers(-40, 80, (3, 2, 3, 3)), padding=(1, 1)),
           Synapse("ev_x0", "ev", "x0", "dense", rng.integers(-60, 100, (32, 32))),
           Synapse("head", "c1", "ro", "dense", rng.integers(-128, 127, (4, 48)) * 2),
           Synapse("skip", "x0", "ro", "dense", rng.integers(-128, 127, (4, 32)), balance_delay=1)]
    return LoweredNetwork(populations=pops, synapses=syn, outputs=["ro"])


def _inputs(net, T, batch, seed):
    x = testnets.random_inputs(net, T, batch=batch, seed=seed)
    for p in net.inputs:
        if p.input_kind == "bias":
            x[p.name] = np.random.default_rng(seed).integers(-300, 400, (batch,) + tuple(p.shape))
    return x


def _reference(net, batches, T, record):
    """Each batch alone on the chained network (every window reset at its start): window of each
    population = its steps lat+1 .. lat+T."""
    lat = net.latency()
    L = max(lat.values())
    chained = chain_network(net, T + L, one_window=True, bias_as_graded=False)
    eng = Engine(chained, skip_idle=False, skip_silent=False)
    out = {}
    for bi in batches:
        inp = {}
        for p in net.inputs:
            x = np.asarray(bi[p.name])
            if p.input_kind != "bias":
                x = x[np.arange(T) % x.shape[0]]
                x = np.concatenate([x, np.zeros((L,) + x.shape[1:], x.dtype)])
            inp[p.name] = x
        res = eng.run(inp, T + L, record=record)
        for n, r in res.items():
            for k, v in r.items():
                out.setdefault(n, {}).setdefault(k, []).append(v[lat[n]:lat[n] + T].numpy())
    return {n: {k: np.concatenate(v, axis=1) for k, v in r.items()} for n, r in out.items()}


@pytest.mark.parametrize("make,T", [(encoder_net, 3), (testnets.residual_attention_net, 4),
                                    (testnets.residual_attention_net, 2)])
@pytest.mark.parametrize("opts", [{}, {"skip_idle": False, "skip_silent": False}])
def test_stream_windows_equal_one_sample_per_row(make, T, opts):
    net = make()
    # batches of 3, 3 and 2 samples (the last is padded inside the run and dropped from the result)
    batches = [_inputs(net, T, b, seed) for seed, b in ((1, 3), (2, 3), (3, 2))]
    rec = [p.name for p in net.populations if p.kind != "input" or p.input_kind != "bias"]
    got = _np(Engine(net, **opts).run_stream(batches, T, record="all"))
    ref = _reference(net, batches, T, rec)
    assert got.keys() == ref.keys()
    for n in ref:
        for k in ref[n]:
            assert got[n][k].shape == ref[n][k].shape == (T, 8) + ref[n][k].shape[2:]
            assert np.array_equal(got[n][k], ref[n][k]), (n, k)
    spikes = sum(int(ref[n]["s"].sum()) for n in ref if net.pop(n).kind == "lif")
    assert spikes > 20
    # the samples really differ (a reset that leaked would not be seen otherwise)
    ro = ref[net.outputs[0]]["v"][-1]
    assert len({tuple(r) for r in ro}) > 4


def test_stream_refuses_recurrence_and_own_delays():
    with pytest.raises(UnsupportedError, match="s2"):
        Engine(testnets.conv_dense_net()).run_stream([testnets.random_inputs(testnets.conv_dense_net(), 3)], 3)
    assert "pipeline" in Engine(encoder_net(), pipelined=False).stream_refusal()


def test_stream_on_a_lowered_spikingformer_every_layer():
    """The tiny Spikingformer lowered (host encoder, graded attention stages: prod / graded_vec
    populations, einsum groups): every population's windows, s / u / v, with and without the skips."""
    from neurodeploy.exporters import to_nir
    from neurodeploy.lower.loihi2 import lower_graph
    from testmodels import tiny_spikingformer
    torch.manual_seed(0)
    net, _ = lower_graph(to_nir(tiny_spikingformer(), arch="spikingformer-digits"), input_range=(0.0, 1.0))
    T = int(net.metadata["time_steps"])
    rng = np.random.default_rng(5)
    batches = [{k: v.numpy() for k, v in net.encode_inputs(rng.random((b, 1, 8, 8)).astype(np.float32) * 4).items()}
               for b in (2, 2, 1)]
    rec = [p.name for p in net.populations if p.kind != "input"]
    ref = _reference(net, batches, T, rec)
    kinds = {net.pop(n).kind for n in ref}
    assert {"lif", "prod", "graded_vec"} <= kinds, kinds
    for opts in ({}, {"skip_idle": False, "skip_silent": False}):
        got = _np(Engine(net, **opts).run_stream(batches, T, record=rec))
        for n in ref:
            for k in ref[n]:
                assert np.array_equal(got[n][k], ref[n][k]), (opts, n, k)
    assert sum(int(ref[n]["s"].astype(bool).sum()) for n in ref) > 50


def test_simulate_pipelined_and_skips_give_the_same_predictions(tmp_path, capsys):
    """`neurodeploy simulate`: pipelined batches by default; --no-pipeline / --no-skip change no prediction."""
    import json
    from neurodeploy.cli import main
    from neurodeploy.exporters import to_nir
    from neurodeploy.graph import write_graph
    from testmodels import tiny_spikingformer
    torch.manual_seed(0)
    write_graph(to_nir(tiny_spikingformer(), arch="spikingformer-digits"), tmp_path / "model.nir")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "data.npz", x=(rng.random((11, 1, 8, 8)) * 3).astype(np.float32))
    runs = {}
    for opt in ((), ("--no-pipeline", "--no-skip")):
        assert main(["simulate", str(tmp_path / "model.nir"), "--data", str(tmp_path / "data.npz"), "--batch", "3",
                     "--json", *opt]) == 0
        runs[opt] = json.loads(capsys.readouterr().out)
    assert runs[()]["pipelined_samples"] and not runs[("--no-pipeline", "--no-skip")]["pipelined_samples"]
    assert runs[()]["predictions"] == runs[("--no-pipeline", "--no-skip")]["predictions"]
    assert runs[()]["samples"] == 11 and len(runs[()]["predictions"]) == 11
