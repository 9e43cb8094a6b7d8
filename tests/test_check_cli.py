"""``neurodeploy check``: exit codes 0/1/2, model kinds, output files, one-line errors."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from neurodeploy import build_model, save_checkpoint
from neurodeploy.analysis.formats import report_schema
from neurodeploy.cli import main


def run(capsys, *argv):
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_pure_model_exits_0(capsys):
    code, out, err = run(capsys, "spikingformer-digits", "--allow", "encoder,readout", "--no-dynamic")
    assert code == 0, err
    assert out.splitlines()[-1] == "verdict: SPIKE-PURE apart from 2 allowed exception(s)"
    assert "block.0.attn.attention" in out and "AND + popcount" in out


def test_violations_exit_1_and_name_the_nodes(capsys):
    code, out, _ = run(capsys, "spikformer-digits", "--allow", "encoder", "--allow", "readout", "--no-dynamic")
    assert code == 1
    assert "block.1.attn.q_conv" in out and "integer [0, 4]" in out and "(source block.1.attn.q_conv" in out
    assert "fix:   the input is a sum of spike tensors" in out
    assert out.splitlines()[-1] == "verdict: NOT SPIKE-PURE (8 violation(s))"


def test_console_script_exit_code():
    p = subprocess.run([sys.executable, "-m", "neurodeploy", "check", "sew-resnet-digits-add", "--no-dynamic",
                        "--format", "json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    assert [v["node"] for v in doc["violations"]] == ["conv", "layer.1.conv1", "fc"]


def test_nir_file_and_input_domain(capsys, nir_paper):
    f = str(nir_paper / "02_cnn" / "cnn_sinabs.nir")
    assert run(capsys, f, "--input-domain", "binary")[0] == 0
    code, out, _ = run(capsys, f, "--input-domain", "counts")
    assert code == 1 and "integer [0, inf)" in out
    assert run(capsys, f, "--input-domain", "counts", "--allow", "encoder")[0] == 0


def test_checkpoints_ours_and_official(capsys, tmp_path):
    torch.manual_seed(0)
    model = build_model("sew-resnet-digits-iand")
    ours = save_checkpoint(model, tmp_path / "sew.pt")
    assert run(capsys, str(ours), "--allow", "encoder,readout", "--no-dynamic")[0] == 0
    official = tmp_path / "official.pth"
    torch.save({"state_dict": model.state_dict()}, official)
    assert run(capsys, str(official), "--arch", "sew-resnet-digits-iand", "--allow", "encoder,readout",
               "--no-dynamic")[0] == 0
    code, out, err = run(capsys, str(official), "--no-dynamic")
    assert code == 2 and out == "" and "--arch" in err and len(err.strip().splitlines()) == 1


def test_output_file_json_with_data_and_folding(capsys, tmp_path):
    from neurodeploy.front_door import digits_samples

    data = tmp_path / "x.npy"
    np.save(data, digits_samples(6).numpy())
    out_file = tmp_path / "reports" / "purity.json"
    code, out, err = run(capsys, "spikingformer-digits", "--allow", "encoder", "--fold-readout", "--data", str(data),
                         "--format", "json", "-o", str(out_file))
    assert code == 0, err
    assert out.strip().endswith(f"spike-pure; report written to {out_file}")
    doc = json.loads(out_file.read_text())
    import jsonschema

    jsonschema.validate(doc, report_schema())
    assert doc["dynamic"]["samples"] == 6 and doc["dynamic"]["data"] == str(data)
    assert doc["folding"]["verification"]["equal"] and doc["folding"]["verification"]["data"] == str(data)
    assert [e["node"] for e in doc["exceptions"]] == ["patch_embed.block0_conv"]
    assert not list(out_file.parent.glob("*.tmp"))


@pytest.mark.parametrize("fmt,start", [("junit", "<?xml"), ("sarif", "{")])
def test_ci_formats_to_file(capsys, tmp_path, fmt, start):
    out_file = tmp_path / f"r.{fmt}"
    code, _, _ = run(capsys, "spikformer-digits", "--allow", "encoder,readout", "--no-dynamic", "--format", fmt,
                     "-o", str(out_file))
    assert code == 1 and out_file.read_text().startswith(start)


@pytest.mark.parametrize("argv,msg", [
    (["no/such/model.pt"], "no such file"),
    (["spikingformer-digits", "--allow", "encoder,heda"], "heda"),
    (["spikingformer-digits", "--data", "MISSING.npy"], "MISSING.npy"),
    (["spikingformer-digits", "--samples", "0"], "--samples"),
])
def test_bad_input_exit_2_one_line_no_output(capsys, tmp_path, argv, msg):
    out_file = tmp_path / "out.json"
    code, out, err = run(capsys, *argv, "-o", str(out_file))
    assert code == 2
    assert out == "" and len(err.strip().splitlines()) == 1 and msg in err and err.startswith("neurodeploy: error:")
    assert not out_file.exists() and not list(tmp_path.iterdir())


def test_bad_data_files(capsys, tmp_path):
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 1, 5, 5), np.float32))
    code, _, err = run(capsys, "spikingformer-digits", "--data", str(wrong))
    # the front door every command shares (neurodeploy.front_door): the same words as export and simulate
    assert code == 2 and "do not fit the graph input [1, 8, 8]: expected [N, 1, 8, 8] (static)" in err
    real = tmp_path / "real.npz"
    np.savez(real, x=np.full((2, 1, 8, 8), 0.5, np.float32))
    code, _, err = run(capsys, "spikingformer-digits", "--data", str(real), "--input-domain", "binary")
    assert code == 2 and "declared binary" in err
    junk = tmp_path / "junk.nir"
    junk.write_bytes(b"not hdf5")
    code, _, err = run(capsys, str(junk))
    assert code == 2 and "junk.nir" in err
    # argparse's own usage errors: main returns 2 (one line)
    assert main(["check", "spikingformer-digits", "--format", "nope"]) == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_command_on_the_trained_model(capsys, trained_digits_checkpoint):
    """What `make demo` runs: the trained digits model, folded readout, bundled digits for the dynamic check."""
    code, out, err = run(capsys, str(trained_digits_checkpoint), "--allow", "encoder", "--fold-readout")
    assert code == 0, err
    assert "dynamic check: 64 samples x 4 steps (bundled digits" in out and "internal errors: 0" in out
    assert "logits equal by simulation: True" in out
    rates = [float(l.split()[-1]) for l in out.splitlines() if l.startswith("    block.0.")]
    assert rates and max(rates) > 0.01
    assert out.splitlines()[-1] == "verdict: SPIKE-PURE apart from 1 allowed exception(s)"


def test_pre_commit_script_gates_each_model(nir_paper, tmp_path):
    """examples/ci/check-models.sh (the pre-commit hook): worst exit status of all staged models."""
    import os
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "ci" / "check-models.sh"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    sinabs = str(nir_paper / "02_cnn" / "cnn_sinabs.nir")
    missing = tmp_path / "gone.nir"
    p = subprocess.run(["bash", str(script), "--input-domain", "binary", "--no-dynamic", sinabs, str(missing)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2  # the worst of: 0 (cnn_sinabs, pure with binary input), 2 (missing file)
    assert f"== neurodeploy check {sinabs}" in p.stdout and "verdict: SPIKE-PURE" in p.stdout
    assert "gone.nir: no such file" in p.stderr
