"""Data in every layout (neurodeploy.data.graph_samples, neurodeploy.events): static samples, [N, T, ...]
event tensors and sequences, (x, y, t, p) event files binned into frames, and the shared CLI options."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nir
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nir_corpus.generate import chain, lif  # noqa: E402

from neurodeploy.commands.common import add_data_arguments  # noqa: E402
from neurodeploy.data import graph_samples  # noqa: E402
from neurodeploy.errors import BadInputError  # noqa: E402
from neurodeploy.events import event_samples, events_to_frames  # noqa: E402
from neurodeploy.exporters import to_nir  # noqa: E402


def dvs_graph():
    conv = nir.Conv2d(input_shape=(2, 4), weight=np.ones((1, 2, 1, 1), np.float32), stride=1, padding=0, dilation=1,
                      groups=1, bias=np.zeros(1, np.float32))
    return to_nir(chain(conv, lif((1, 2, 4)), in_shape=(2, 2, 4)))


def events(rows):
    ev = np.zeros(len(rows), dtype=[("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64), ("sample", np.int64)])
    for i, r in enumerate(rows):
        ev[i] = r
    return ev


def test_binning_keeps_every_event_and_closes_the_last_bin():
    ev = events([(0, 0, 0, 0, 0), (1, 1, 10, 1, 0), (2, 0, 20, 1, 0), (3, 1, 30, 0, 0)])
    f = events_to_frames(ev, (4, 2, 2), 2)
    assert f.shape == (2, 2, 2, 4) and f.sum() == 4
    assert f[0, 0, 0, 0] == 1 and f[0, 1, 1, 1] == 1 and f[1, 1, 0, 2] == 1 and f[1, 0, 1, 3] == 1  # t=30 = t_max


def test_event_file_static_and_time_axis_layouts(tmp_path):
    g = dvs_graph()
    ev = events([(0, 0, 0, 0, 0), (0, 0, 2, 0, 0), (3, 1, 9, 1, 0), (1, 0, 100, 1, 1)])  # bins of sample 0: [0, 3), [3, 6), [6, 9]
    np.savez(tmp_path / "ev.npz", events=ev, labels=np.array([1, 0]))
    x, y, T = graph_samples(g, str(tmp_path / "ev.npz"), steps=3, input_domain="counts")
    assert x.shape == (2, 3, 2, 2, 4) and T == 3 and y.tolist() == [1, 0]
    assert x[0, 0, 0, 0, 0] == 2 and x[0, 2, 1, 1, 3] == 1 and x[1, 0, 1, 0, 1] == 1 and x.sum() == 4
    x, _, _ = graph_samples(g, str(tmp_path / "ev.npz"), steps=3, input_domain="binary")
    assert x[0, 0, 0, 0, 0] == 1  # two events in one bin: 1 for a binary input
    with pytest.raises(BadInputError, match="give -T/--steps N"):
        graph_samples(g, str(tmp_path / "ev.npz"))
    # columns instead of a structured array
    np.savez(tmp_path / "cols.npz", x=ev["x"], y=ev["y"], t=ev["t"], p=ev["p"], sample=ev["sample"])
    x2, _, _ = graph_samples(g, str(tmp_path / "cols.npz"), steps=3, input_domain="counts")
    assert np.array_equal(x2, graph_samples(g, str(tmp_path / "ev.npz"), steps=3, input_domain="counts")[0])
    # tensors: static [N, *in] and [N, T, *in]
    static = np.ones((5, 2, 2, 4), np.float32)
    np.savez(tmp_path / "static.npz", x=static)
    x, y, T = graph_samples(g, str(tmp_path / "static.npz"), steps=7)
    assert x.shape == (5, 2, 2, 4) and T == 7 and y is None
    np.save(tmp_path / "seq.npy", np.zeros((5, 6, 2, 2, 4), np.float32))
    assert graph_samples(g, str(tmp_path / "seq.npy"))[2] == 6
    with pytest.raises(BadInputError, match="time axis of 6 steps, -T/--steps says 4"):
        graph_samples(g, str(tmp_path / "seq.npy"), steps=4)
    with pytest.raises(BadInputError, match=r"do not fit the graph input \[2, 2, 4\]"):
        graph_samples(g, np.zeros((3, 4, 4)))
    with pytest.raises(BadInputError, match="input domain is binary but the samples hold 2"):
        graph_samples(g, static * 2, steps=2, input_domain="binary")


def test_sequences_for_a_1d_input_and_events_on_a_1d_sensor():
    g = to_nir(chain(nir.Affine(weight=np.ones((3, 4), np.float32), bias=np.zeros(3, np.float32)), lif(3)))
    x, _, T = graph_samples(g, np.zeros((2, 9, 4), np.float32))
    assert x.shape == (2, 9, 4) and T == 9
    ev = np.zeros(2, dtype=[("x", np.int64), ("t", np.int64), ("p", np.int64)])
    ev["x"], ev["t"], ev["p"] = [1, 3], [0, 10], [0, 0]
    x = event_samples(ev, (4,), 2, "ev")
    assert x.tolist() == [[[0, 1, 0, 0], [0, 0, 0, 1]]]


def test_add_data_arguments_is_the_same_for_every_command():
    p = argparse.ArgumentParser()
    add_data_arguments(p)
    a = p.parse_args(["--data", "f.npz", "--input-domain", "binary", "-T", "5"])
    assert (a.data, a.input_domain, a.steps) == ("f.npz", "binary", 5)
    assert p.parse_args(["--steps", "3"]).steps == 3 and p.parse_args(["--time-steps", "4"]).steps == 4


def test_simulate_cli_on_event_file(tmp_path, capsys):
    from neurodeploy.cli import main

    g = chain(nir.Affine(weight=np.full((3, 4), 0.9, np.float32), bias=np.zeros(3, np.float32)), lif(3, tau_steps=1.0))
    nir.write(tmp_path / "m.nir", g)
    rng = np.random.default_rng(0)
    n = 40
    ev = np.zeros(n, dtype=[("x", np.int64), ("t", np.int64), ("p", np.int64), ("sample", np.int64)])
    ev["x"], ev["t"], ev["sample"] = rng.integers(0, 4, n), rng.integers(0, 1000, n), np.repeat([0, 1], n // 2)
    np.savez(tmp_path / "ev.npz", events=ev, labels=np.array([0, 1]))
    code = main(["simulate", str(tmp_path / "m.nir"), "--data", str(tmp_path / "ev.npz"), "--input-domain", "binary",
                 "-T", "6", "--json"])
    out = capsys.readouterr().out
    assert code == 0 and '"steps_per_sample": 6' in out and '"samples": 2' in out


@pytest.mark.parametrize("suffix", [".npz", ".npy"])
def test_a_truncated_sample_file_is_named_as_samples_not_events(tmp_path, capsys, suffix):
    """A file numpy cannot open is a sample file that cannot be read (the event-file probe does not claim it)."""
    from neurodeploy.cli import main

    g = chain(nir.Affine(weight=np.full((3, 4), 0.9, np.float32), bias=np.zeros(3, np.float32)), lif(3, tau_steps=1.0))
    nir.write(tmp_path / "m.nir", g)
    good = tmp_path / f"x{suffix}"
    (np.savez if suffix == ".npz" else np.save)(good, np.zeros((8, 4), np.float32))
    bad = tmp_path / f"broken{suffix}"
    bad.write_bytes(good.read_bytes()[:100])
    code = main(["simulate", str(tmp_path / "m.nir"), "--data", str(bad), "-T", "2"])
    err = capsys.readouterr().err
    assert code == 2 and f"broken{suffix}: cannot read samples (" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
