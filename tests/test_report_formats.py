"""Every report format for every built-in target, a two-target report, a 'cannot deploy' target, the summary
block (same content in JSON, Markdown and HTML) and `report --strict`."""
import copy
import json
import re

import pytest

from neurodeploy.cli import main
from neurodeploy.profiles import builtin_names
from neurodeploy.report import build_report
from neurodeploy.report.render import render
from neurodeploy.report.summary import summarize

ARGS = ["spikingformer-digits", "--samples", "8"]


@pytest.fixture(scope="module")
def all_targets():
    return build_report("spikingformer-digits", targets=builtin_names(), samples=8)


def _only(doc, names):
    d = copy.deepcopy(doc)
    d["targets"] = [t for t in d["targets"] if t["target"] in names]
    d["summary"] = summarize(d)
    return d


def _md_summary(md: str) -> str:
    """The Markdown summary card: the text between '## Summary' and the next '## '."""
    assert md.split("\n## ")[1].startswith("Summary"), "the summary is not the first section"
    return md.split("\n## ")[1]


@pytest.mark.parametrize("name", builtin_names())
def test_every_format_for_every_builtin_target(all_targets, name):
    doc = _only(all_targets, [name])
    row = doc["summary"]["rows"][0]
    t = doc["targets"][0]
    kind = "cannot_deploy" if t.get("verdict_kind") == "cannot_deploy" else ("fits" if t["fits"] else "does_not_fit")
    assert row["target"] == name and row["verdict_kind"] == kind
    # the summary repeats the target section's figures
    assert row["cores"] == (t["cores"] if t["fits"] else t["cores"] or None)
    if t["fits"]:
        assert (row["chips"], row["system"], row["latency_steps"]) == (t["chips"], t["system"], t["latency_steps"])
    else:  # no chips, system, latency or energy for a model that does not run there
        assert row["chips"] is row["system"] is row["latency_steps"] is row["total_uj"] is None
    js = json.loads(render(doc, "json"))
    assert js["summary"] == json.loads(json.dumps(doc["summary"]))
    md = render(doc, "md")
    card = _md_summary(md)
    assert f"| {name} | {row['verdict']} |" in card
    page = render(doc, "html")
    assert re.search(r"<h1>[^<]*</h1>\s*<section id=\"summary\" class=\"card\">", page)
    assert f"<td>{name}</td>" in page[:page.index("</section>")]
    # a verdict's weakest confidence is the weakest confidence among the profile numbers it used
    used = [n for n in t.get("profile_numbers", []) if n["used_for"] == "verdict"]   # none when it cannot deploy
    order = js["summary"]["confidence_levels"]
    if used:
        worst = max(used, key=lambda n: order.index(n["confidence"]))
        assert row["verdict_confidence"] == worst["confidence"]


def test_loihi2_summary_row_exact(all_targets):
    doc = _only(all_targets, ["loihi2", "speck"])
    loihi2, speck = doc["summary"]["rows"]
    t = doc["targets"][0]
    est = t["energy_estimate"]
    assert loihi2["verdict"] == "fits" and loihi2["system"] == "Oheo Gulch" and loihi2["chips"] == 1
    # dynamic = synaptic + neuron; static = 0.232 W x 2.45 ms x T=4 = 2,273.6 uJ (loihi2.toml, measured)
    assert loihi2["dynamic_uj"] == pytest.approx(est["breakdown_uj"]["synaptic"] + est["breakdown_uj"]["neuron"])
    assert loihi2["static_uj"] == pytest.approx(0.232 * 0.00245 * 4 * 1e6)
    assert loihi2["total_uj"] == pytest.approx(loihi2["dynamic_uj"] + loihi2["static_uj"])
    # the verdict rests on the graded-synapse packing, an assumption in loihi2.toml; energy on derived per-op figures
    assert (loihi2["verdict_confidence"], loihi2["verdict_confidence_key"]) == ("assumption", "synapse_accounting.graded_synapses_per_unit")
    assert loihi2["energy_confidence"] == "derived" and not loihi2["firm"]
    assert loihi2["fidelity"] == doc["lowering"]["fidelity"] and speck["fidelity"] is None
    assert speck["verdict_kind"] == "cannot_deploy" and speck["verdict"].startswith("cannot deploy: patch_embed.block1_lif: ")
    assert doc["summary"]["strict"]["weak"] == [{"target": "loihi2", "key": "synapse_accounting.graded_synapses_per_unit",
                                                 "confidence": "assumption"}]
    # per-layer figures add up to the target's: cores by binding resource, energy dynamic / static
    assert sum(sum(v.values()) for v in t["per_layer_binding"].values()) == pytest.approx(t["cores"])
    epl = doc["summary"]["energy_per_layer"]["loihi2"]
    assert sum(r["dynamic_uj"] for r in epl) == pytest.approx(loihi2["dynamic_uj"])
    assert sum(r["static_uj"] for r in epl) == pytest.approx(loihi2["static_uj"])
    assert "speck" not in doc["summary"]["energy_per_layer"]     # cannot deploy: no per-layer energy
    # the calibration statement: fitted networks, the held-out ones, the largest errors, per layer too
    cal = doc["summary"]["calibration"]
    assert cal["fitted_on"] == ["PilotNet-LIF", "PilotNet-SDNN", "MNIST 784-128-64-10"]
    assert cal["held_out"] == ["YOLO-KP (SDNN, 448x448)", "Oxford 200-256-200"]
    assert cal["largest_error_cores"] == 1 and cal["largest_held_out_error_cores"] == 1
    assert (cal["layers_exact"], cal["layers"]) == (33, 34)
    assert {(L["network"], L["layer"], L["ours"], L["compiler"]) for L in cal["per_layer"]} >= {
        ("PilotNet-LIF", "conv3", 3, 3), ("PilotNet-SDNN", "fc1", 12, 12), ("Oxford 200-256-200", "fc0", 2, 3)}


def test_two_target_report_side_by_side(all_targets):
    doc = _only(all_targets, ["loihi2", "speck"])
    md = render(doc, "md")
    card = _md_summary(md)
    assert card.count("\n| loihi2 |") == 1 and card.count("\n| speck |") == 1
    side = md.split("\n## ")[2]
    assert side.startswith("Targets side by side") and "|  | loihi2 | speck |" in side
    assert "| static energy (uJ) | 2,274 [derived] | - |" in side
    assert "| smallest system | Oheo Gulch (1-chip system) [documented] | - |" in side
    page = render(doc, "html")
    ids = re.findall(r'<section id="([a-z-]+)"', page)
    assert ids == ["summary", "side-by-side", "plots", "assumptions", "details"]
    assert page.count("<svg") == 5
    assumptions = md.split("\n## ")[3]
    assert assumptions.startswith("Assumptions and confidence")
    assert "| Oxford 200-256-200 | held out | 4 | 5 | -1 |" in assumptions
    # per layer: our cores and SynMem per core against the compiler's
    assert "| PilotNet-LIF | fc1 | 12 | 12 | +0 | 7253 | 7253 | +0.0 % |" in assumptions
    assert "| Oxford 200-256-200 | fc0 | 2 | 3 | -1 | 6400 | 5400 | +18.5 % |" in assumptions


def test_cannot_deploy_target_renders(all_targets):
    # the lead's target registry marks a target whose lowering refuses: verdict 'cannot deploy: <node>: <reason>'
    doc = copy.deepcopy(_only(all_targets, ["loihi2"]))
    doc["targets"].append({"target": "akida-1000", "title": "BrainChip Akida AKD1000", "verdict_kind": "cannot_deploy",
                           "cannot_deploy": "block.0.attn.attention: no product of two activations", "fits": False})
    doc["summary"] = summarize(doc)
    row = doc["summary"]["rows"][1]
    assert row["verdict"] == "cannot deploy: block.0.attn.attention: no product of two activations"
    assert row["cores"] is None and row["total_uj"] is None
    md = render(doc, "md")
    assert "| akida-1000 | cannot deploy: block.0.attn.attention: no product of two activations | - |" in _md_summary(md)
    assert "**CANNOT DEPLOY** - block.0.attn.attention: no product of two activations" in md
    page = render(doc, "html")
    assert '<span class="cannot">cannot deploy: block.0.attn.attention: no product of two activations</span>' in page
    assert json.loads(render(doc, "json"))["summary"]["rows"][1]["verdict_kind"] == "cannot_deploy"


@pytest.mark.parametrize("target", ["xylo-imu", "xylo-audio2"])
def test_nir_file_on_xylo_renders(tmp_path, capsys, target):
    # was: ValueError "Cannot specify ',' with 's'" (a bottleneck without binding_cores); Xylo is now a real
    # target (neurodeploy/deploy/xylo.py), which refuses the Spikingformer's first conv by name
    import torch

    from neurodeploy.exporters import to_nir
    from neurodeploy.graph import write_graph
    from neurodeploy.models import build_model

    torch.manual_seed(0)
    path = tmp_path / "model.nir"
    write_graph(to_nir(build_model("spikingformer-digits").eval()), path)
    assert main(["report", str(path), "--target", target, "--samples", "8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Deployment report: ")
    assert f"| {target} | cannot deploy: patch_embed.block0_conv: Conv2d is not deployable on Xylo" in out


@pytest.mark.slow
def test_strict_exit_codes(tmp_path, capsys):
    out = tmp_path / "r.json"
    # loihi2's verdict rests on an 'assumption' (SynMem header units): --strict exits 1, the report is written
    assert main(["report", *ARGS, "--format", "json", "-o", str(out)]) == 0
    assert main(["report", *ARGS, "--strict", "--format", "json", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "--strict: verdict rests on weak numbers: loihi2: synapse_accounting.graded_synapses_per_unit (assumption)" in err
    assert json.loads(out.read_text())["summary"]["strict"]["ok"] is False
    # the same profile with its assumptions measured: firm, exit 0
    from neurodeploy.profiles import load_profile

    text = open(load_profile("loihi2").path).read().replace('confidence = "assumption"', 'confidence = "measured"')
    prof = tmp_path / "loihi2.toml"
    prof.write_text(text)
    assert main(["report", *ARGS, "--profile", str(prof), "--strict", "--format", "json", "-o", str(out)]) == 0
    row = json.loads(out.read_text())["summary"]["rows"][0]
    assert row["firm"] and row["verdict_confidence"] == "derived" and row["verdict_confidence_key"] == "chip.cores"
