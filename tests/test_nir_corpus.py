"""The NIR corpus (tests/nir_corpus/generate.py: 45 graphs from the ``nir`` package, snnTorch 1.0.0, Norse 1.1.0,
the tools' raw exporters and the NIR paper) through every CLI command, in process.

For every graph: ``check``, ``check --format json``, ``export -o``, ``export --target loihi2 -o``, ``simulate``
with static data [B, *input] (``--steps``) and with event data [B, T, *input], and ``report``.  Each must exit
0, 1 or 2 as documented (docs/cli.md), never with a traceback, and exit 2 with exactly one line on stderr.
Graphs the front ends refuse (a .refused.txt entry) must carry the reason naming the layer.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nir_corpus.generate import build_corpus  # noqa: E402

from neurodeploy.cli import main  # noqa: E402

T = 4


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_corpus(tmp_path_factory.mktemp("nir-corpus"))


def run_cli(argv):
    """(exit code, stdout, stderr) of ``neurodeploy argv`` run in process; SystemExit caught."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        except Exception:  # noqa: BLE001 - what the CLI would print as a traceback
            import traceback

            err.write(traceback.format_exc())
            code = -1
    return code, out.getvalue(), err.getvalue()


def input_shape(path):
    from neurodeploy.exporters import to_nir
    from neurodeploy.graph import input_names, node_shape

    g = to_nir(path)
    node = g.nodes[input_names(g)[0]]
    return node_shape(node, "output") or node_shape(node, "input")


def data_files(path: Path, folder: Path):
    shape = input_shape(path)
    rng = np.random.default_rng(0)
    static = folder / f"{path.stem}.static.npz"
    events = folder / f"{path.stem}.events.npz"
    np.savez(static, x=(rng.random((3,) + shape) < 0.5).astype(np.float32), y=np.array([0, 1, 0]))
    np.savez(events, x=(rng.random((3, T) + shape) < 0.5).astype(np.float32), y=np.array([0, 1, 0]))
    return static, events


def commands(path: Path, folder: Path, static: Path, events: Path):
    m = str(path)
    return {
        "check": ["check", m],
        "check-json": ["check", m, "--format", "json"],
        "export": ["export", m, "-o", str(folder / "out")],
        "export-loihi2": ["export", m, "--target", "loihi2", "-o", str(folder / "out-l2")],
        "simulate-static": ["simulate", m, "--data", str(static), "--steps", str(T)],
        "simulate-events": ["simulate", m, "--data", str(events), "--input-domain", "binary"],
        "simulate-events-real": ["simulate", m, "--data", str(events)],
        "report": ["report", m, "--target", "loihi2"],
    }


def test_corpus_has_at_least_40_graphs_from_every_source(corpus):
    assert len(corpus) >= 40
    for prefix in ("nir_", "snn_", "norse_", "raw_", "paper_", "quirk_"):
        assert any(k.startswith(prefix) for k in corpus), prefix


def test_refusals_name_the_layer_and_the_reason(corpus):
    refused = {k: p.read_text().strip() for k, p in corpus.items() if p.suffix == ".txt"}
    assert set(refused) == {"snn_leaky_subtract", "snn_synaptic_delayed_reset", "snn_rsynaptic", "norse_lifcell"}
    assert "'1' (Leaky): reset_mechanism='subtract'" in refused["snn_leaky_subtract"]
    assert "'1' (Synaptic): reset_delay=True" in refused["snn_synaptic_delayed_reset"]
    assert "'1' (RSynaptic)" in refused["snn_rsynaptic"]
    assert "'1' (LIFCell)" in refused["norse_lifcell"]
    assert all("\n" not in v for v in refused.values())


def test_every_command_on_every_graph_exits_cleanly(corpus, tmp_path):
    results, errors = {}, {}
    bad = []
    for name, path in sorted(corpus.items()):
        if path.suffix != ".nir":
            continue
        folder = tmp_path / name
        folder.mkdir()
        static, events = data_files(path, folder)
        for cmd, argv in commands(path, folder, static, events).items():
            code, out, err = run_cli(argv)
            results[(name, cmd)] = code
            errors[(name, cmd)] = err.strip().splitlines()[-1] if err.strip() else ""
            if code not in (0, 1, 2) or "Traceback" in err:
                bad.append(f"{name} {cmd}: exit {code}: {err.strip()[-300:]}")
            elif code == 2 and len(err.strip().splitlines()) != 1:
                bad.append(f"{name} {cmd}: exit 2 with {len(err.strip().splitlines())} stderr lines: {err.strip()[-300:]}")
            elif cmd == "check-json" and code in (0, 1):
                json.loads(out)
    assert not bad, "\n".join(bad)
    # what the Loihi 2 lowering cannot run (yet) is refused naming the node (messages as of this commit:
    # "node 'n1': recurrent edge from 'n1' cannot be lowered ...", "node 'n1': NIR type CubaLIF cannot be
    # lowered ...", "node 'n1': LIF with v_leak != 0 cannot be lowered ..."); once lowered, exit 0
    expect = {"nir_rec_self_edge": "n1", "snn_rleaky": "1.", "nir_cubalif": "n1", "nir_lif_vleak": "n1",
              "nir_lif_vreset": "n1", "nir_nested": "sub", "nir_delay": "n2", "nir_conv1d_input": "n0"}
    for name, node in expect.items():
        code, err = results[(name, "export-loihi2")], errors[(name, "export-loihi2")]
        assert code == 0 or (code == 2 and f"node '{node}" in err and "Loihi 2" in err), (name, err)
    # event data with a time axis runs on Loihi 2 for a spiking input, and is refused in one line for a real one
    assert results[("snn_leaky", "simulate-events")] == 0 and results[("paper_cnn_sinabs", "simulate-events")] == 0
    assert "give --input-domain binary or counts" in errors[("snn_leaky", "simulate-events-real")]
    # every graph is accepted by check and export (exit 0/1): nothing the reference simulator runs is refused
    for name, path in corpus.items():
        if path.suffix == ".nir":
            assert results[(name, "check")] in (0, 1), name
            assert results[(name, "export")] == 0, name
