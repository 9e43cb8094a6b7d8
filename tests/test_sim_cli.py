"""``neurodeploy simulate`` and the Loihi 2 target's artifact files."""
import json

import numpy as np
import pytest

from neurodeploy.cli import main
from neurodeploy.lower.network_file import load_network
from testmodels import tiny_spikingformer
from neurodeploy.sim import simulate


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    from neurodeploy.exporters import to_nir
    from neurodeploy.graph import write_graph
    d = tmp_path_factory.mktemp("tiny")
    g = to_nir(tiny_spikingformer(), arch="spikingformer-digits")
    write_graph(g, d / "model.nir")
    rng = np.random.default_rng(0)
    np.savez(d / "data.npz", x=rng.random((12, 1, 8, 8)).astype(np.float32), y=rng.integers(0, 3, 12))
    return g, d


def test_simulate_fast_prints_accuracy_and_agreement(tiny_files, capsys):
    _, d = tiny_files
    rc = main(["simulate", str(d / "model.nir"), "--target", "loihi2", "--backend", "fast",
               "--data", str(d / "data.npz"), "--json", "--batch", "5", "--layers"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    # latency 8 with the attention process op, + 3 steps of the graded attention stages (the default), + 2
    # residual-stream relays (x_0, x_1: the stream built once, the default)
    assert res["samples"] == 12 and res["latency_steps"] == 8 + 3 + 2 and res["steps_per_sample"] == 4
    assert 0.0 <= res["loihi2_accuracy"] <= 1.0 and res["prediction_agreement"] >= 0.75
    assert min(res["layer_spike_agreement"].values()) > 0.9
    assert len(res["layer_spike_agreement"]) == 10
    # without --layers the agreement per layer is not computed; --profile-time prints the stages
    assert main(["simulate", str(d / "model.nir"), "--data", str(d / "data.npz"), "--batch", "5",
                 "--profile-time"]) == 0
    out = capsys.readouterr().out
    assert "spike agreement" not in out
    line = next(x for x in out.splitlines() if x.startswith("time: "))
    assert "lower (model, data, artifact)" in line and "float reference" in line and "fixed point" in line


def test_simulate_bad_input_exits_2(tiny_files, tmp_path, capsys):
    _, d = tiny_files
    assert main(["simulate", str(tmp_path / "missing.nir")]) == 2
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"nope")
    assert main(["simulate", str(d / "model.nir"), "--data", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("neurodeploy: error:") for line in err)


def test_loihi2_target_writes_lowered_network_netx_and_summary(tiny_files, tmp_path):
    from neurodeploy.deploy import Deployment, get_target
    g, _ = tiny_files
    dep = Deployment.build(g, targets=["loihi2"], annotate=False)
    dep.lower()
    t = dep.targets[0]
    files = t.target.write(t.artifact, tmp_path / "loihi2")
    out = tmp_path / "loihi2"
    # one lowering only: its biases are not in the weight units netx fixes (bias_exp 6), so no netx prefix
    # is written, and the summary says why
    assert sorted(p.name for p in files) == ["network.npz", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    # graded attention (default): 2 heads, d 8, 16 tokens -> order ktv, 2*2*16*8*8 ProdNeurons + 2*8*8
    # GradedVec counts on top of the 2,947 LIF neurons; 6 einsum groups on top of the 12 (the process op
    # was none); 3 more steps of latency, and the residual path around the attention waits 3 more steps.
    # The residual stream built once: 2 relays of 256 neurons (x_0, x_1), one step each, and 2 more groups
    # (x_0 and x_1 into their relays, each relay into its reader, x_0 into x_1: 5, where expanded had 3)
    assert summary["latency_steps"] == 8 + 3 + 2
    assert summary["attention_latency_added_steps"] == 3
    assert summary["neurons"] == 2947 + 512 + 4096 + 128 and summary["synapse_groups"] == 12 + 2 + 6
    assert summary["max_delay"] == 7 + 3      # the readout's patch-embedding path (5 + 2 stream relays) + 3
    assert summary["product_neurons"] == 2 * 2 * 16 * 8 * 8 and summary["graded_vec_neurons"] == 2 * 8 * 8
    assert summary["inputs"][0]["mode"].startswith("host-side encoder")
    op = summary["attention"][0]
    assert (op["order"], op["product_neurons"], op["product_neurons_other_order"]) == ("ktv", 4096, 2 * 2 * 16 * 16 * 8)
    # a digits model: the input range is calibrated on the bundled digits (first 64), recorded in the artifact
    from neurodeploy.training import digits_split
    xd = digits_split()[2][:64]
    assert summary["input_range"] == {"range": [float(xd.min()), float(xd.max())],
                                      "source": "calibrated on bundled digits (test split, first 64) (64 samples)"}
    assert summary["lava_standard_library_only"] and {d["class"] for d in summary["lava_processes"]} >= {
        "ProdNeuron", "GradedVec", "Sparse", "DelaySparse", "LIFReset"}
    assert not summary["netx"]["written"] and "bias_exp" in summary["netx"]["stopped"]
    net = load_network(str(out / "network.npz"))
    back = get_target("loihi2").read(out)
    assert back.net.metadata["input_range"] == summary["input_range"]
    x = np.random.default_rng(3).random((2, 1, 8, 8)).astype(np.float32)
    r = simulate(net, net.encode_inputs(x), 12, record=["readout"])
    assert np.abs(r["readout"]["v"]).max() > 0


def test_simulate_rejects_bad_options_with_one_line(capsys):
    from neurodeploy.cli import main

    for opts, msg in ((["--batch", "0"], "--batch must be >= 1"), (["--limit", "-3"], "--limit must be >= 1"),
                      (["--device", "nope"], "--device 'nope'"), (["--device", "cuda:0"], "--device 'cuda:0'")):
        if opts[0] == "--device" and opts[1].startswith("cuda"):
            import torch

            if torch.cuda.is_available():
                continue  # a machine with a GPU accepts it
        assert main(["simulate", "spikingformer-digits", *opts]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and msg in err, err


def test_max_memory_cuts_the_batch_not_the_result(capsys):
    """--max-memory: the fast engine's batch is what fits the budget; the predictions do not change."""
    runs = {}
    for opt in ([], ["--max-memory", "30M"]):
        assert main(["simulate", "spikingformer-digits", "--limit", "24", "--batch", "24", "--json", *opt]) == 0
        runs[bool(opt)] = json.loads(capsys.readouterr().out)
    assert runs[False]["batch"] == 24 and 1 <= runs[True]["batch"] < 24
    assert runs[True]["predictions"] == runs[False]["predictions"]
    assert main(["simulate", "spikingformer-digits", "--max-memory", "lots"]) == 2
    assert "--max-memory 'lots'" in capsys.readouterr().err


def test_layer_agreement_runs_on_the_samples_that_fit_the_memory_budget(tiny_files):
    """--layers records every layer in both runs, so it takes the first samples that fit --max-memory, not the
    whole batch (gesture-2-256, 16 event samples: 11.4 GiB peak before, 3.9 GiB within the default 4 GiB
    after): the same measure on fewer samples, and the count is reported."""
    import torch

    from neurodeploy.fidelity import layer_agreement_batch, simulate_lowered
    from neurodeploy.graph import simulate as float_simulate
    from neurodeploy.graph.simulate import record_bytes as float_record_bytes
    from neurodeploy.lower.loihi2 import lower_graph
    from neurodeploy.sim.batch import memory_estimate

    g, d = tiny_files
    x = np.load(d / "data.npz")["x"]
    T = 4
    # the float records' size comes from the graph's shapes: equal to what the simulator keeps
    _, rec = float_simulate(g, torch.as_tensor(x[:2]), T=T, record=True)
    kept = sum(v.numel() * v.element_size() for v in rec.values()) / 2
    assert 0.9 * float_record_bytes(g, T) <= kept <= float_record_bytes(g, T)

    net, _ = lower_graph(g, T=T, input_range=(0.0, 1.0))
    lifs = [p.name for p in net.populations if p.kind == "lif"]
    big = 10 ** 12
    n_all, sync = layer_agreement_batch(g, net, T, 12, max_memory=big)
    assert n_all == 12
    fixed, per = memory_estimate(sync, T, lifs)
    per += float_record_bytes(g, T)
    budget = fixed + 3 * per + per // 2
    assert layer_agreement_batch(g, net, T, 12, max_memory=budget)[0] == 3
    assert layer_agreement_batch(g, net, T, 12, max_memory=fixed)[0] == 1        # never fewer than one

    full = simulate_lowered(g, net, x, batch=12, max_memory=big, progress=False)
    cut = simulate_lowered(g, net, x, batch=12, max_memory=budget, progress=False)
    three = simulate_lowered(g, net, x, batch=3, max_memory=big, progress=False)
    assert full["layer_agreement_samples"] == 12 and three["layer_agreement_samples"] == 3
    assert cut["batch"] > 3 and cut["layer_agreement_samples"] == 3   # the fixed-point run keeps its batch
    assert cut["predictions"] == full["predictions"] == three["predictions"]
    assert cut["layer_spike_agreement"] == three["layer_spike_agreement"]
    assert set(cut["layer_spike_agreement"]) == set(full["layer_spike_agreement"])


def test_float_reference_records_no_more_than_its_budget_at_a_time(tiny_files, monkeypatch):
    """The deployment's float run keeps every node's records for the batch it runs: a batch whose records
    pass RECORD_BUDGET is cut (imagenet-8-768 with --data: 17.6 GiB peak RSS at 8 samples a batch), with
    the same predictions and activity figures."""
    from neurodeploy.analysis import reference as ref
    from neurodeploy.graph.simulate import record_bytes

    g, d = tiny_files
    x = np.load(d / "data.npz")["x"]
    whole = ref.float_reference(g, x, 4)
    seen = []
    real = ref.simulate

    def counting(graph, xb, *a, **k):
        seen.append(len(xb))
        return real(graph, xb, *a, **k)

    monkeypatch.setattr(ref, "simulate", counting)
    monkeypatch.setattr(ref, "RECORD_BUDGET", 3 * record_bytes(g, 4, membranes=True) + 1)
    cut = ref.float_reference(g, x, 4)
    assert seen == [3, 3, 3, 3]
    assert (cut.predictions == whole.predictions).all()
    assert cut.activity["samples"] == whole.activity["samples"] == 12
    assert cut.activity["firing_rates"] == pytest.approx(whole.activity["firing_rates"], rel=1e-12)
    assert cut.activity["input_mean"] == pytest.approx(whole.activity["input_mean"], rel=1e-9)
