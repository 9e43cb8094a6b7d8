"""A new chip is one module plus one TOML: a toy target defined here, outside the package (a profile file
and a Target subclass with a simple lower and simulate), goes through export, simulate and report with no
neurodeploy file changed."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import nir
import numpy as np
import pytest

from neurodeploy.cli import main
from neurodeploy.deploy import Target, get_target, register_target, registered_targets, unregister_target

TOY_TOML = """
name = "toychip"
title = "Toy chip (test)"
vendor = "tests"
cost_model = "crossbar"
description = "A test target: weights rounded to weight_bits, simulated by the reference simulator."

[chip]
cores = { value = 64, source = "test value", confidence = "assumption" }

[core]
neurons = { value = 4096, source = "test value", confidence = "assumption" }
input_axons = { value = 4096, source = "test value", confidence = "assumption" }

[synapse_accounting]
model = "crossbar"
description = "test"

[precision]
weight_bits = { value = 4, source = "test value", confidence = "assumption" }
state_bits = { value = 16, source = "test value", confidence = "assumption" }
spike_payload_bits = { value = 1, source = "test value", confidence = "assumption" }
delay_max = { value = 0, source = "test value", confidence = "assumption" }

[features]
neuron_models = ["lif"]
operations = ["dense", "conv2d", "conv1d", "sumpool", "threshold", "flatten", "readout", "activation_product", "graded_spikes"]
attention = { supported = true, how = "test", source = "test", confidence = "assumption" }

[mapping]
pack_populations = { value = false, source = "test", confidence = "assumption" }
tiling = "flat"

[[systems]]
name = "Toy board"
chips = { value = 4, source = "test", confidence = "assumption" }

[energy]
"""


@dataclass
class ToyArtifact:
    graph: nir.NIRGraph
    bits: int


def _quantize(graph: nir.NIRGraph, bits: int) -> nir.NIRGraph:
    levels = (1 << (bits - 1)) - 1
    nodes = {}
    for name, node in graph.nodes.items():
        w = getattr(node, "weight", None)
        if isinstance(node, (nir.Affine, nir.Linear, nir.Conv1d, nir.Conv2d)) and np.abs(w).max() > 0:
            step = float(np.abs(w).max()) / levels
            node = dataclasses.replace(node, weight=(np.round(np.asarray(w) / step) * step).astype(np.asarray(w).dtype))
        nodes[name] = node
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), metadata=dict(graph.metadata or {}))


class ToyTarget(Target):
    backends = ("reference",)

    def lower(self, deployment, profile):
        bits = int(profile.value("precision", "weight_bits"))
        return ToyArtifact(_quantize(deployment.graph, bits), bits)

    def predict(self, artifact, x, backend=None, **options):
        from neurodeploy.fidelity import float_predictions

        return float_predictions(artifact.graph, x)

    def map(self, artifact, profile, rates=None):
        from neurodeploy.mapping import fit, from_graph

        return fit(from_graph(artifact.graph, residual="direct"), profile, rates=rates)

    def write(self, artifact, folder):
        from neurodeploy.graph import write_graph

        Path(folder).mkdir(parents=True, exist_ok=True)
        return [write_graph(artifact.graph, Path(folder) / "quantized.nir")]

    def read(self, folder):
        from neurodeploy.graph import read_graph

        return ToyArtifact(read_graph(Path(folder) / "quantized.nir"), 0)

    def describe(self, artifact):
        return {"mapped_from": f"the {artifact.bits}-bit quantized graph"}


@pytest.fixture
def toy(tmp_path):
    profile = tmp_path / "toychip.toml"
    profile.write_text(TOY_TOML)
    register_target("toychip", ToyTarget)
    yield profile
    unregister_target("toychip")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from neurodeploy.exporters import to_nir
    from neurodeploy.graph import write_graph
    from testmodels import tiny_spikingformer

    path = tmp_path_factory.mktemp("toy") / "tiny.nir"
    write_graph(to_nir(tiny_spikingformer(), arch="spikingformer-digits"), path)
    return path


def test_toy_target_export_simulate_report(toy, tiny_model, tmp_path, capsys):
    pkg = Path(__import__("neurodeploy").__file__).parent
    before = {p: p.stat().st_mtime_ns for p in pkg.rglob("*.py")}
    assert "toychip" in registered_targets() and isinstance(get_target("toychip"), ToyTarget)
    out = tmp_path / "out"
    assert main(["export", str(tiny_model), "-o", str(out), "--target", "toychip", "--profile", str(toy)]) == 0
    assert (out / "model.nir").is_file() and (out / "toychip" / "quantized.nir").is_file()
    doc = json.loads((out / "report.json").read_text())
    (sec,) = doc["targets"]
    assert sec["target"] == "toychip" and sec["mapped_from"] == "the 4-bit quantized graph"
    assert sec["cores"] >= 1 and sec["verdict_kind"] in ("fits", "does_not_fit")
    fid = sec["fidelity"]
    assert fid["samples"] == 64 and fid["backend"] == "reference" and 0.0 <= fid["prediction_agreement"] <= 1.0
    capsys.readouterr()
    # the written artifact, simulated again from the folder, gives the report's figure exactly
    assert main(["simulate", str(out), "--target", "toychip", "--limit", "64", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["prediction_agreement"] == fid["prediction_agreement"]
    # the report command with the profile file
    rep = tmp_path / "r.json"
    assert main(["report", str(tiny_model), "--target", "toychip", "--profile", str(toy), "--format", "json",
                 "-o", str(rep)]) == 0
    assert json.loads(rep.read_text())["targets"][0]["fidelity"]["prediction_agreement"] == fid["prediction_agreement"]
    # 4-bit weights are not the float model: the toy's own quantized graph was simulated
    q = get_target("toychip").read(out / "toychip").graph
    w = [n.weight for n in q.nodes.values() if isinstance(n, nir.Affine)]
    assert w and all(len(np.unique(np.abs(a))) <= 8 for a in w)
    assert {p: p.stat().st_mtime_ns for p in pkg.rglob("*.py")} == before


def test_profile_without_a_target_module_is_profile_only(tiny_model, capsys):
    t = get_target("truenorth")
    assert type(t).__name__ == "ProfileTarget" and t.backends == ()
    assert main(["simulate", str(tiny_model), "--target", "truenorth"]) == 2
    assert "has no simulator" in capsys.readouterr().err


def test_registry_refuses_bad_registrations():
    from neurodeploy.errors import BadInputError

    with pytest.raises(BadInputError, match="Target subclass"):
        register_target("x", object)
    with pytest.raises(BadInputError, match="already registered"):
        register_target("loihi2", ToyTarget)
