"""Test sets larger than memory (issue 15): .npy files and uncompressed .npz members are memory-mapped, the
checks run in chunks, and the simulators read one batch at a time, with results identical to in-memory data.
The 2 GiB figure (throughput and peak RSS) is in benchmarks/bench_fidelity.py --streaming."""
import numpy as np
import pytest
import torch

from neurodeploy.data import _read, graph_samples, load_labeled_samples
from neurodeploy.errors import BadInputError


def _digits_like(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 8, 8)).astype(np.float32) * 16, rng.integers(0, 10, n)


def test_npy_and_uncompressed_npz_are_mapped_compressed_read(tmp_path):
    x, y = _digits_like()
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "plain.npz", x=x, y=y)
    np.savez_compressed(tmp_path / "small.npz", x=x, y=y)
    for name, mapped in (("x.npy", True), ("plain.npz", True), ("small.npz", False)):
        got, labels = _read(tmp_path / name)
        assert isinstance(got, np.memmap) == mapped, name
        assert np.array_equal(np.asarray(got), x)
        if name != "x.npy":
            assert np.array_equal(labels, y)
    # Fortran order and a 2-byte dtype map too
    np.savez(tmp_path / "f.npz", x=np.asfortranarray(x[:, 0, :, 0].astype(np.float16)))
    got, _ = _read(tmp_path / "f.npz")
    assert isinstance(got, np.memmap) and np.array_equal(got, x[:, 0, :, 0].astype(np.float16))
    xs, ys = load_labeled_samples(tmp_path / "plain.npz", limit=7)
    assert xs.dtype == np.float32 and np.array_equal(xs, x[:7]) and np.array_equal(ys, y[:7])


def test_checks_still_refuse_nan_and_domain_violations_in_chunks(tmp_path, monkeypatch):
    import neurodeploy.data as data
    monkeypatch.setattr(data, "CHECK_CHUNK", 1000)      # many chunks over a small file
    x, y = _digits_like()
    x[250, 0, 3, 3] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=y)
    with pytest.raises(BadInputError, match="nan.npz: samples contain NaN or infinity"):
        _read(tmp_path / "nan.npz")
    from neurodeploy.exporters import to_nir
    from neurodeploy.models.registry import build_model
    g = to_nir(build_model("spikingformer-digits").eval())
    x, y = _digits_like()
    x = (x > 8).astype(np.float32)
    x[290, 0, 7, 7] = 2.0
    np.save(tmp_path / "spikes.npy", x)
    with pytest.raises(BadInputError, match="the input domain is binary but the samples hold 2"):
        graph_samples(g, tmp_path / "spikes.npy", input_domain="binary")
    xs, _, _ = graph_samples(g, tmp_path / "spikes.npy", input_domain="counts", limit=100)
    assert isinstance(xs, np.memmap) and len(xs) == 100


def test_simulate_mapped_equals_in_memory(tmp_path):
    from neurodeploy.exporters import to_nir
    from neurodeploy.fidelity import simulate_loihi2
    from neurodeploy.models.registry import build_model
    torch.manual_seed(0)
    g = to_nir(build_model("spikingformer-digits").eval())
    x, y = _digits_like(40)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    xm, ym, _ = graph_samples(g, tmp_path / "d.npz")
    assert isinstance(xm, np.memmap)
    a = simulate_loihi2(g, xm, ym, batch=16, progress=False)
    b = simulate_loihi2(g, x, y, batch=16, progress=False)
    for key in ("predictions", "float_predictions", "prediction_agreement", "layer_spike_agreement"):
        assert a[key] == b[key], key
