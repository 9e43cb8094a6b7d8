"""One artifact per target: what `export --target loihi2` writes is what the report maps and measures, and
what `simulate OUT/loihi2` runs; a refused lowering is a verdict, never "fits"; a failed export leaves
nothing and keeps an older good output."""
from __future__ import annotations

import json

import nir
import numpy as np
import pytest

from neurodeploy.cli import main


@pytest.fixture(scope="module")
def tiny_nir(tmp_path_factory):
    from neurodeploy.exporters import to_nir
    from neurodeploy.graph import write_graph
    from testmodels import tiny_spikingformer

    path = tmp_path_factory.mktemp("dep") / "tiny.nir"
    write_graph(to_nir(tiny_spikingformer(), arch="spikingformer-digits"), path)
    return path


@pytest.fixture(scope="module")
def exported(tiny_nir, tmp_path_factory):
    out = tmp_path_factory.mktemp("dep") / "out"
    assert main(["export", str(tiny_nir), "-o", str(out), "--target", "loihi2"]) == 0
    return out


def _refused_graph():
    """Input -> Affine -> LIF with tau half a time step (Loihi 2's decay cannot express it) -> Affine -> Output."""
    rng = np.random.default_rng(0)
    dt = 1e-4
    nodes = {
        "input": nir.Input(input_type=np.array([4])),
        "fc1": nir.Affine(weight=rng.normal(size=(3, 4)), bias=np.zeros(3)),
        "lif": nir.LIF(tau=np.full(3, 0.5 * dt), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3),
                       v_reset=np.zeros(3)),
        "fc2": nir.Affine(weight=rng.normal(size=(2, 3)), bias=np.zeros(2)),
        "output": nir.Output(output_type=np.array([2])),
    }
    edges = [("input", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"neurodeploy.dt": dt, "neurodeploy.time_steps": 4})


def test_simulate_of_the_export_folder_reproduces_the_report(exported, capsys):
    rep = json.loads((exported / "report.json").read_text())
    sec = rep["targets"][0]
    assert sec["target"] == "loihi2" and sec["mapped_from"] == "the lowered integer network"
    fid = sec["fidelity"]
    assert fid["samples"] == 64 and rep["data"]["source"].startswith("bundled digits")
    assert rep["lowering"]["fidelity"] == fid["prediction_agreement"]
    # the artifact's own record of the calibration and of the counts the chip fit used
    summary = json.loads((exported / "loihi2" / "summary.json").read_text())
    assert summary["input_range"]["source"].startswith("calibrated on bundled digits")
    assert sec["artifact"]["neurons"] == summary["neurons"]
    # the report lists the Lava process classes of the deployed network: standard library only (issue 12)
    classes = {d["class"]: d["origin"] for d in sec["artifact"]["lava_processes"]}
    assert set(classes.values()) == {"Lava standard library"} and {"ProdNeuron", "GradedVec"} <= set(classes)
    assert sec["artifact"]["lava_standard_library_only"]
    assert "Lava standard library only" in (exported / "report.md").read_text()
    assert sec["artifact"]["passes"] == ["lower_nir", "graded_attention", "split_fan_in", "split_channels",
                                          "balance_delays"]
    capsys.readouterr()
    for folder in (exported, exported / "loihi2"):
        assert main(["simulate", str(folder), "--limit", "64", "--layers", "--json"]) == 0
        res = json.loads(capsys.readouterr().out)
        assert res["prediction_agreement"] == fid["prediction_agreement"]
        assert res["layer_spike_agreement"] == rep["lowering"]["layer_spike_agreement"]


def test_split_signs_is_an_export_option_recorded_in_the_artifact(tiny_nir, exported, tmp_path, capsys):
    """--split-signs: the lowering splits mixed-sign spike groups by sign (docs/lowering.md); the artifact
    records it, the report maps the split network, and simulate OUT reproduces its fidelity; asking a folder
    lowered without it for it is refused."""
    out = tmp_path / "split"
    assert main(["export", str(tiny_nir), "-o", str(out), "--target", "loihi2", "--split-signs"]) == 0
    plain = json.loads((exported / "loihi2" / "summary.json").read_text())
    split = json.loads((out / "loihi2" / "summary.json").read_text())
    assert split["split_signs"] is True and plain["split_signs"] is False
    assert split["synapse_groups"] > plain["synapse_groups"] and split["neurons"] == plain["neurons"]
    rep = json.loads((out / "report.json").read_text())
    assert rep["targets"][0]["artifact"]["synapse_groups"] == split["synapse_groups"]
    capsys.readouterr()
    assert main(["simulate", str(out), "--limit", "64", "--json", "--split-signs"]) == 0
    assert json.loads(capsys.readouterr().out)["prediction_agreement"] == rep["lowering"]["fidelity"]
    assert main(["simulate", str(exported), "--limit", "4", "--split-signs"]) == 2
    assert "lowered without it" in capsys.readouterr().err


def test_core_count_does_not_depend_on_data(tiny_nir, tmp_path):
    from neurodeploy.report import build_report

    rng = np.random.default_rng(1)
    data = tmp_path / "x.npz"
    np.savez(data, x=rng.normal(size=(16, 1, 8, 8)).astype(np.float32))
    with_data = build_report(str(tiny_nir), targets=["loihi2"], data=str(data))["targets"][0]
    without = build_report(str(tiny_nir), targets=["loihi2"])["targets"][0]
    assert with_data["mapped_from"] == without["mapped_from"] == "the lowered integer network"
    assert with_data["cores"] == without["cores"] > 0 and with_data["chips"] == without["chips"]
    # only the calibration differs (and is recorded)
    assert with_data["artifact"]["input_range"] != without["artifact"]["input_range"]


def test_a_refused_lowering_cannot_deploy(tmp_path, capsys):
    from neurodeploy.graph import write_graph

    path = tmp_path / "fast_tau.nir"
    write_graph(_refused_graph(), path)
    out = tmp_path / "r.json"
    rc = main(["report", str(path), "--target", "loihi2", "--format", "json", "-o", str(out)])
    assert rc == 0
    sec = json.loads(out.read_text())["targets"][0]
    assert not sec["fits"] and sec["verdict_kind"] == "cannot_deploy"
    assert sec["verdict"].startswith("cannot deploy: ") and "lif" in sec["verdict"] and "tau" in sec["verdict"]
    assert sec["cores"] is None
    capsys.readouterr()
    rc = main(["report", str(path), "--target", "loihi2", "--max-chips", "4", "--format", "json", "-o", str(out)])
    assert rc == 1 and "cannot deploy" in capsys.readouterr().err
    # export refuses the whole deployment and writes nothing
    rc = main(["export", str(path), "-o", str(tmp_path / "exp"), "--target", "loihi2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "loihi2: cannot deploy" in err[0]
    assert not (tmp_path / "exp").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fast_tau.nir", "r.json"]


def test_failed_export_keeps_the_older_good_output(exported, tmp_path, capsys):
    import shutil

    from neurodeploy.graph import write_graph

    out = tmp_path / "out"
    shutil.copytree(exported, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    bad = tmp_path / "bad.nir"
    write_graph(_refused_graph(), bad)
    assert main(["export", str(bad), "-o", str(out), "--target", "loihi2"]) == 2
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.nir", "out"]   # no temporary folder left


def test_api_refuses_what_the_cli_refuses():
    """Issue 14's API cases: an empty graph, a two-value input shape, a negative chip budget."""
    from neurodeploy.analysis.purity import check_purity
    from neurodeploy.errors import BadInputError
    from neurodeploy.exporters import to_nir
    from testmodels import tiny_spikingformer
    from neurodeploy.report import build_report

    with pytest.raises(BadInputError, match="no nodes"):
        check_purity(nir.NIRGraph(nodes={}, edges=[]))
    with pytest.raises(BadInputError, match=r"input shape \[1, 8\]: expected \[1, H, W\]"):
        to_nir(tiny_spikingformer(), input_shape=(1, 8))
    for bad in ({"max_chips": -1}, {"max_chips": 0}, {"max_energy_uj": float("nan")}, {"min_fidelity": 1.5}):
        with pytest.raises(BadInputError, match=next(iter(bad))):
            build_report("spikingformer-digits", **bad)


def test_export_with_data_runs_the_float_model_once(tiny_nir, tmp_path, monkeypatch):
    """`export --target loihi2 --data`: every sample goes through the float model once (analysis/reference.py),
    and that one run serves activity, NeuroBench and fidelity; the only other float call is the per-layer
    replay of the first batch behind the report's layer spike agreement."""
    import neurodeploy.analysis.activity as activity
    import neurodeploy.analysis.neurobench as neurobench
    import neurodeploy.analysis.reference as reference
    import neurodeploy.deploy.deployment as deployment
    import neurodeploy.fidelity as fidelity

    x = (np.random.default_rng(0).random((10, 1, 8, 8))).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    runs, rows, plain = [], [], []
    real_reference, real_simulate, real_predictions = reference.float_reference, reference.simulate, \
        fidelity.float_predictions

    def counted_reference(*a, **k):
        runs.append(1)
        return real_reference(*a, **k)

    def counted_simulate(graph, xb, *a, **k):
        rows.append(len(xb))
        return real_simulate(graph, xb, *a, **k)

    def counted_predictions(*a, **k):
        if not k.get("record_first"):
            plain.append(1)
        return real_predictions(*a, **k)

    def forbidden(*a, **k):
        raise AssertionError("a second float run")

    monkeypatch.setattr(deployment, "float_reference", counted_reference)
    monkeypatch.setattr(reference, "simulate", counted_simulate)
    monkeypatch.setattr(fidelity, "float_predictions", counted_predictions)
    monkeypatch.setattr(activity, "record_activity", forbidden)
    monkeypatch.setattr(neurobench, "neurobench_from_graph", forbidden)
    out = tmp_path / "out"
    assert main(["export", str(tiny_nir), "-o", str(out), "--target", "loihi2", "--data", str(tmp_path / "x.npy")]) == 0
    assert len(runs) == 1 and sum(rows) == 10 and plain == []
    rep = json.loads((out / "report.json").read_text())
    assert rep["targets"][0]["fidelity"]["samples"] == 10
    assert rep["energy"]["neurobench"]["samples"] == 10
    assert rep["firing_rates"]["source"].startswith(f"measured on {tmp_path / 'x.npy'}") and "(10 samples)" in \
        rep["firing_rates"]["source"]
