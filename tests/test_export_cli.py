"""``neurodeploy export``: our checkpoint, an official one with --arch, a .nir file; error cases exit 2
with one clear line and leave no partial output."""
from __future__ import annotations

from conftest import NIR_PAPER
import nir
import numpy as np
import pytest
import torch

import neurodeploy
from neurodeploy.cli import main
from neurodeploy.graph import read_graph, reduce_output, simulate, write_graph

from export_helpers import random_input, random_model

CNN = str(NIR_PAPER / "02_cnn" / "cnn_sinabs.nir")


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory):
    model = random_model("spikingformer-digits")
    path = neurodeploy.save_checkpoint(model, tmp_path_factory.mktemp("ck") / "digits.pt")
    return model, path


def err_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("neurodeploy: error: ")
    return err[0]


def test_export_our_checkpoint(digits_ckpt, tmp_path, capsys):
    model, path = digits_ckpt
    assert main(["export", str(path), "-o", str(tmp_path / "out")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.nir"]
    g = read_graph(tmp_path / "out" / "model.nir")
    assert g.metadata["neurodeploy.arch"] == "spikingformer-digits"
    x = random_input(model, batch=4)
    with torch.no_grad():
        ref = model(x)
    got = reduce_output(g, simulate(g, x))
    assert float((got - ref).abs().max() / ref.abs().max()) < 1e-5


def test_export_official_checkpoint_needs_arch(tmp_path, capsys):
    model = random_model("sew-resnet-digits-and")
    path = tmp_path / "official.pth"
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, path)
    assert main(["export", str(path), "-o", str(tmp_path / "o1")]) == 2
    assert "pass --arch" in err_line(capsys)
    assert not (tmp_path / "o1" / "model.nir").exists()
    assert main(["export", str(path), "--arch", "sew-resnet-digits-and", "-o", str(tmp_path / "o2")]) == 0
    assert isinstance(read_graph(tmp_path / "o2" / "model.nir").nodes["layer.0.connect"], nir.Threshold)


def test_export_expanded_attention_is_standard(digits_ckpt, tmp_path):
    _, path = digits_ckpt
    assert main(["export", str(path), "-o", str(tmp_path), "--expand-attention"]) == 0
    g = nir.read(tmp_path / "model.nir")
    assert not any(isinstance(n, nir.NIRGraph) for n in g.nodes.values())


def test_export_nir_file(tmp_path):
    assert main(["export", CNN, "-o", str(tmp_path)]) == 0
    g = read_graph(tmp_path / "model.nir")
    assert g.metadata["neurodeploy.arch"] == "nir-file" and len(g.nodes) == 15


def test_corrupt_nir_file(tmp_path, capsys):
    bad = tmp_path / "bad.nir"
    bad.write_bytes(open(CNN, "rb").read()[:4096])
    assert main(["export", str(bad), "-o", str(tmp_path / "out")]) == 2
    line = err_line(capsys)
    assert "bad.nir" in line and "NIR" in line
    assert not (tmp_path / "out" / "model.nir").exists()


def test_unsupported_graph_in_nir_file(tmp_path, capsys):
    g = nir.NIRGraph(nodes={"a": nir.Input(input_type={"input": np.array([2])}),
                            "b": nir.Input(input_type={"input": np.array([2])}),
                            "x": nir.Threshold(threshold=np.zeros(2, np.float32)),
                            "output": nir.Output(output_type={"output": np.array([2])})},
                     edges=[("a", "x"), ("b", "x"), ("x", "output")])
    path = write_graph(g, tmp_path / "two_inputs.nir")
    assert main(["export", str(path), "-o", str(tmp_path / "out")]) == 2
    assert "exactly one Input and one Output" in err_line(capsys)


def test_wrong_input_shape(digits_ckpt, tmp_path, capsys):
    _, path = digits_ckpt
    assert main(["export", str(path), "-o", str(tmp_path), "--input-shape", "3", "8", "8"]) == 2
    assert err_line(capsys) == "neurodeploy: error: input shape [3, 8, 8]: expected [1, H, W] with H, W >= 1"
    assert main(["export", str(path), "-o", str(tmp_path), "--input-shape", "1", "0", "8"]) == 2
    assert err_line(capsys) == "neurodeploy: error: export: --input-shape must be >= 1, got 0"  # at parsing
    assert not (tmp_path / "model.nir").exists()


def test_missing_model_and_arch_with_nir(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.pt"), "-o", str(tmp_path)]) == 2
    assert "nope.pt: no such file" in err_line(capsys)
    assert main(["export", CNN, "--arch", "spikingformer-digits", "-o", str(tmp_path)]) == 2
    assert "--arch applies to checkpoints" in err_line(capsys)


@pytest.mark.slow
def test_export_target_loihi2_writes_lowering_and_report(trained_digits_checkpoint, tmp_path, capsys):
    import json

    from neurodeploy.lower.network_file import load_network

    out = tmp_path / "deploy"
    assert main(["export", str(trained_digits_checkpoint), "-o", str(out), "--target", "loihi2"]) == 0
    printed = capsys.readouterr().out
    assert "loihi2: fits (1 chip(s), Oheo Gulch)" in printed
    summary = json.loads((out / "loihi2" / "summary.json").read_text())
    net = load_network(str(out / "loihi2" / "network.npz"))
    assert summary["neurons"] == sum(p.size for p in net.populations if p.kind != "input") == net.counts()["neurons"]
    assert summary["latency_steps"] == net.metadata["latency"] > 0
    # the netx file is the netx-expressible prefix of this same network; netx fixes bias_exp = 6, and the one
    # lowering keeps finer biases, so for the digits model no prefix is written and the summary says why
    assert not summary["netx"]["written"] and "bias_exp" in summary["netx"]["stopped"]
    assert not (out / "loihi2" / "network.net").exists()
    report = json.loads((out / "report.json").read_text())
    assert [t["target"] for t in report["targets"]] == ["loihi2"] and report["targets"][0]["fits"]
    assert report["lowering"]["ran"] and report["lowering"]["fidelity"] >= 0.99
    assert (out / "report.md").read_text().startswith("# Deployment report: spikingformer-digits")
    assert "<svg" in (out / "report.html").read_text()  # plots are inline SVG


def test_export_unknown_target_writes_nothing(trained_digits_checkpoint, tmp_path, capsys):
    out = tmp_path / "deploy"
    assert main(["export", str(trained_digits_checkpoint), "-o", str(out), "--target", "loihi9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown target 'loihi9'" in err
    assert not out.exists()


def test_export_target_with_bad_data_writes_nothing(trained_digits_checkpoint, tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 2, 5, 5), np.float32))
    out = tmp_path / "deploy"
    assert main(["export", str(trained_digits_checkpoint), "-o", str(out), "--target", "loihi2",
                 "--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "do not fit the graph input [1, 8, 8]" in err     # graph_samples, as simulate
    assert not out.exists() or not any(out.iterdir())


def test_unwritable_output_is_a_one_line_error(trained_digits_checkpoint, capsys):
    assert main(["export", str(trained_digits_checkpoint), "-o", "/proc/neurodeploy-out"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err


def test_headline_command_without_out_writes_the_default_folder(trained_digits_checkpoint, tmp_path, monkeypatch,
                                                                  capsys):
    # `neurodeploy export model.pt --target loihi2`, as the design card writes it: OUT is ./model-deploy/
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copy(trained_digits_checkpoint, tmp_path / "model.pt")
    assert main(["export", "model.pt", "--target", "loihi2"]) == 0
    out = tmp_path / "model-deploy"
    assert read_graph(out / "model.nir").metadata["neurodeploy.arch"] == "spikingformer-digits"
    assert (out / "loihi2" / "network.npz").is_file() and (out / "report.json").is_file()
    first = (out / "loihi2" / "network.npz").read_bytes()
    # an earlier export's folder is replaced whole; a failed run leaves it as it was (all-or-nothing)
    np.save(tmp_path / "bad.npy", np.zeros((3, 2, 5, 5), np.float32))
    assert main(["export", "model.pt", "--target", "loihi2", "--data", "bad.npy"]) == 2
    assert (out / "loihi2" / "network.npz").read_bytes() == first
    assert main(["export", "model.pt"]) == 0                 # no target: the old target folder goes with it
    assert sorted(p.name for p in out.iterdir()) == ["model.nir"]
    # a folder of that name that no export wrote is never replaced (nothing of it is touched)
    other = tmp_path / "cnn_sinabs-deploy"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["export", CNN]) == 2
    assert "cnn_sinabs-deploy: exists and is not a folder an earlier 'neurodeploy export' wrote" in err_line(capsys)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"] and (other / "notes.txt").read_text() == "mine"
    (tmp_path / "x-deploy").write_text("a file")
    assert main(["export", str(tmp_path / "x.nir")]) == 2 and (tmp_path / "x-deploy").read_text() == "a file"


def test_export_help_names_the_default_folder(capsys):
    assert main(["export", "--help"]) == 0
    assert "./<model stem>-deploy/" in " ".join(capsys.readouterr().out.split())
