"""One export to two real targets (issue 16): the braille-shaped recurrent CubaLIF RNN of the NIR paper
(examples/nir_paper/braille.py, random weights, no biases as the paper's noBias file) deploys to Xylo Audio 2
and Loihi 2 in one `export`, with one report comparing them, and each artifact simulates from OUT."""
import importlib.util
import json
from pathlib import Path

import nir
import numpy as np

from neurodeploy.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _braille(path):
    spec = importlib.util.spec_from_file_location("braille", ROOT / "examples" / "nir_paper" / "braille.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    nir.write(str(path), mod.braille_graph(0, "cubalif", bias=0.0))


def test_braille_exports_to_xylo_and_loihi2_with_one_report(tmp_path, capsys):
    model = tmp_path / "braille.nir"
    _braille(model)
    out = tmp_path / "out"
    # spike input (Xylo's only kind; on Loihi 2 spikes go straight to the first synapses, no host encoder)
    assert main(["export", str(model), "--target", "xylo-audio2", "--target", "loihi2", "-o", str(out),
                 "--input-domain", "binary"]) == 0
    assert (out / "xylo-audio2" / "spec.npz").is_file() and (out / "loihi2" / "network.npz").is_file()
    rep = json.loads((out / "report.json").read_text())
    rows = {r["target"]: r for r in rep["summary"]["rows"]}
    assert set(rows) == {"xylo-audio2", "loihi2"}
    assert all(r["verdict_kind"] == "fits" and r["chips"] == 1 for r in rows.values())
    md = (out / "report.md").read_text()
    assert "## Targets side by side" in md and "| xylo-audio2 | loihi2 |" in md
    # each artifact runs from OUT on the same spike data [N, T, 12]
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "spikes.npz", x=(rng.random((3, 20, 12)) < 0.3).astype(np.float32))
    capsys.readouterr()
    for target in ("xylo-audio2", "loihi2"):
        assert main(["simulate", str(out), "--target", target, "--data", str(tmp_path / "spikes.npz"),
                     "--json"]) == 0, target
        res = json.loads(capsys.readouterr().out)
        assert res["samples"] == 3 and 0.0 <= res["prediction_agreement"] <= 1.0
