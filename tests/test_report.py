"""`neurodeploy report`: content, unsupported-operation verdicts, budgets' exit codes, bad input."""
import json
import re

import pytest

from neurodeploy.cli import main

ARGS = ["spikingformer-digits", "--samples", "8"]


@pytest.fixture(scope="module")
def digits_json(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "r.json"
    rc = main(["report", *ARGS, "--target", "loihi2", "--target", "speck", "--target", "truenorth",
               "--format", "json", "-o", str(out)])
    assert rc == 0
    return json.loads(out.read_text())


def test_report_content(digits_json):
    d = digits_json
    assert d["schema"] == "neurodeploy.report" and d["model"]["name"] == "spikingformer-digits"
    assert d["model"]["attention_ops"] == 1 and d["model"]["time_steps"] == 4
    # encoder and head are MAC (real input): allowed exceptions, listed with their roles
    assert d["purity"]["verdict"] == "spike-pure apart from allowed exceptions"
    assert {(a["node"], a["class"], a["role"]) for a in d["purity"]["allowed"]} == {
        ("patch_embed.block0_conv", "MAC", "encoder"), ("head", "MAC", "readout")}
    assert d["purity"]["violations"] == []
    assert d["firing_rates"]["source"].startswith("measured on bundled digits")
    e = d["energy"]["paper"]
    # encoder conv (1 -> 16, 3x3, 8x8) on T = 4 repeats + head (64*10 + 10) as MAC, exactly
    assert e["macs"] == 4 * 1 * 16 * 9 * 64 + 64 * 10 + 10
    assert d["lowering"]["ran"] and 0.0 <= d["lowering"]["fidelity"] <= 1.0
    loihi2 = d["targets"][0]
    assert loihi2["target"] == "loihi2" and loihi2["fits"] and loihi2["chips"] == 1 and loihi2["system"] == "Oheo Gulch"
    assert loihi2["mapped_from"] == "the lowered integer network"
    pat = re.compile(r"^[\d,.]+ / [\d,.]+ \(\d+\.\d%\)$")
    for r in loihi2["resources"]:
        assert pat.match(r["text"]), r
    assert {r["resource"] for r in loihi2["resources"]} >= {"neurons", "synapse_memory", "input_axons", "cores (system)"}
    assert loihi2["bottleneck"]["resource"] in {"neurons", "synapse_memory", "input_axons", "neuron_groups"}
    assert sum(L["cores"] for L in loihi2["per_layer"]) == loihi2["cores"] == len(loihi2["per_core"])
    assert loihi2["latency_steps"] > d["model"]["time_steps"]
    assert loihi2["energy_estimate"]["assumptions"]


def test_unsupported_operation_verdict(digits_json):
    speck, tn = digits_json["targets"][1], digits_json["targets"][2]
    assert not speck["fits"] and not tn["fits"]
    v = [v for v in tn["violations"] if v["rule"] == "operation" and "activation_product" in v["message"]]
    assert v and v[0]["layer"] == "block.0.attn.attention"
    assert "does not fit" in tn["verdict"]
    # Speck is a real target (neurodeploy/deploy/speck.py): its lowering refuses the first node it has no form for
    assert speck["verdict_kind"] == "cannot_deploy"
    assert speck["verdict"].startswith("cannot deploy: patch_embed.block1_lif: LIF has no Speck form")


def test_markdown_and_firing_rates_file(tmp_path, capsys):
    rates = tmp_path / "rates.json"
    from neurodeploy.front_door import load_graph
    from neurodeploy.graph import topological_order

    g, _ = load_graph("spikingformer-digits")
    import nir

    spiking = [n for n in topological_order(g) if isinstance(g.nodes[n], (nir.LIF, nir.Threshold))]
    rates.write_text(json.dumps({n: 0.25 for n in spiking}))
    out = tmp_path / "r.md"
    assert main(["report", *ARGS, "--firing-rates", str(rates), "--format", "md", "-o", str(out)]) == 0
    text = out.read_text()
    assert "# Deployment report: spikingformer-digits" in text
    assert "supplied by the user" in text and "| neurons |" in text and "used / available (pct)" in text
    # block1_conv: 16 -> 32, 3x3 on 8x8, input rate 0.25, T = 4
    assert f"| patch_embed.block1_conv | conv | 0.25 | 0 | {4 * 0.25 * 16 * 32 * 9 * 64:,.0f} |" in text


def test_budgets_exit_codes(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["report", *ARGS, "--max-chips", "1", "--min-fidelity", "0.5", "--max-energy-uj", "1e6",
                 "--format", "json", "-o", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["budgets"]["ok"] and {c["budget"] for c in d["budgets"]["checks"]} == {"max_chips", "max_energy_uj", "min_fidelity"}
    capsys.readouterr()
    # energy budget below the estimate: exit 1, the report is still written
    out2 = tmp_path / "b2.json"
    assert main(["report", *ARGS, "--max-energy-uj", "0.001", "--format", "json", "-o", str(out2)]) == 1
    assert out2.exists() and not json.loads(out2.read_text())["budgets"]["ok"]
    assert "budget exceeded: max_energy_uj" in capsys.readouterr().err
    # a target that cannot run the model fails the chip budget
    assert main(["report", *ARGS, "--target", "speck", "--max-chips", "4", "--format", "json", "-o", str(tmp_path / "b3.json")]) == 1
    # fidelity: measured agreement below the budget -> not ok (budget logic, measured value injected)
    from neurodeploy.report import _budgets

    b = _budgets([], None, {"ran": True, "fidelity": 0.9}, None, None, 0.95)
    assert not b["ok"] and b["checks"][0] == {"budget": "min_fidelity", "target": "loihi2", "limit": 0.95, "value": 0.9, "ok": False}
    assert _budgets([], None, {"ran": True, "fidelity": 0.96}, None, None, 0.95)["ok"]


@pytest.mark.parametrize("extra, needle", [
    (["--target", "loihi3"], "unknown target 'loihi3'"),
    (["--min-fidelity", "2"], "--min-fidelity must be a fraction"),
    (["--max-chips", "0"], "--max-chips must be >= 1, got 0"),
    (["--target", "speck", "--min-fidelity", "0.5"], "--min-fidelity: fidelity needs the Loihi 2 lowering"),
    (["--firing-rates", "/nonexistent/rates.json"], "no such file"),
])
def test_bad_input_exit_2_and_no_output(tmp_path, capsys, extra, needle):
    out = tmp_path / "r.json"
    rc = main(["report", *ARGS, *extra, "--format", "json", "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and needle in err[0] and err[0].startswith("neurodeploy: error:")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_rates_content(tmp_path, capsys):
    rates = tmp_path / "rates.json"
    rates.write_text(json.dumps({"patch_embed.block1_lif": 1.7}))
    rc = main(["report", *ARGS, "--firing-rates", str(rates), "-o", str(tmp_path / "r.md")])
    assert rc == 2 and "rate must be a number in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "r.md").exists()


def test_rates_that_name_no_node_are_bad_input(tmp_path, capsys):
    rates = tmp_path / "rates.json"
    rates.write_text(json.dumps({"layer1": 0.2, "layer2": 0.1}))
    rc = main(["report", *ARGS, "--firing-rates", str(rates), "-o", str(tmp_path / "r.md")])
    assert rc == 2 and "no key names a spiking node" in capsys.readouterr().err


def test_report_of_a_nir_file_and_files_writer(tmp_path, digits_json):
    import torch

    from neurodeploy.exporters import to_nir
    from neurodeploy.graph import write_graph
    from neurodeploy.models import build_model
    from neurodeploy.report import build_report, write_report_files

    torch.manual_seed(0)
    path = tmp_path / "m.nir"
    write_graph(to_nir(build_model("spikingformer-digits").eval()), path)
    doc = build_report(str(path), targets=["loihi"], samples=8)
    assert doc["model"]["arch"] == "spikingformer-digits" and doc["targets"][0]["target"] == "loihi"
    assert not doc["targets"][0]["fits"] and doc["lowering"]["ran"] is False  # no Loihi 2 target: no lowering
    files = write_report_files(doc, tmp_path / "out")
    assert sorted(p.name for p in files) == ["report.html", "report.json", "report.md"]
    assert json.loads((tmp_path / "out" / "report.json").read_text())["targets"][0]["target"] == "loihi"


def test_a_graph_without_time_steps_reports_its_T_as_assumed(tmp_path):
    """An imported graph fixes no time steps: the op count uses T = 4 and the report says it was assumed;
    -T makes it the graph's own."""
    import nir
    import numpy as np

    from neurodeploy.report import build_report
    from neurodeploy.report.render import render

    n = 5
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([4])}),
                            "fc": nir.Affine(weight=np.ones((n, 4), np.float32), bias=np.zeros(n, np.float32)),
                            "lif": nir.LIF(tau=np.full(n, 2e-3, np.float32), r=np.ones(n, np.float32),
                                           v_leak=np.zeros(n, np.float32), v_threshold=np.ones(n, np.float32)),
                            "output": nir.Output(output_type={"output": np.array([n])})},
                     edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    nir.write(str(tmp_path / "g.nir"), g)
    doc = build_report(str(tmp_path / "g.nir"), targets=["loihi2"], samples=4)
    assert doc["model"]["time_steps"] == 4 and doc["model"]["time_steps_assumed"] is True
    assert "T = 4 time steps (assumed: the model fixes none; give -T/--steps)" in render(doc, "md")
    doc = build_report(str(tmp_path / "g.nir"), targets=["loihi2"], samples=4, steps=10)
    assert doc["model"]["time_steps"] == 10 and doc["model"]["time_steps_assumed"] is False
    assert "T = 10 time steps;" in render(doc, "md")
    assert doc["model"]["dt_s"] == 1e-4 and "| time step dt | 0.0001 s |" in render(doc, "md")


def test_sew_add_residual_needs_graded_spikes_on_loihi1():
    # SEW-ResNet ADD feeds integer spike counts {0, 1, 2} into layer.1.conv1 (INTxFLOAT): Loihi 1 carries
    # binary spikes only, Loihi 2 has graded spikes
    from neurodeploy.report import build_report

    doc = build_report("sew-resnet-digits-add", targets=["loihi", "loihi2"])
    l1, l2 = doc["targets"]
    v = [v for v in l1["violations"] if v["rule"] == "operation" and "graded_spikes" in v["message"]]
    assert not l1["fits"] and v and v[0]["layer"] == "layer.1.conv1"
    assert l2["fits"]
