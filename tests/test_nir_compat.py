"""``to_nir(..., compat=...)`` / ``export --nir-compat``: our exported NIR loaded by snnTorch 1.0.0's
``import_from_nir`` gives the spikes of our reference simulator; what snnTorch cannot read is refused."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nir_corpus.generate import DT, chain, lif  # noqa: E402

from neurodeploy.cli import main  # noqa: E402
from neurodeploy.errors import UnsupportedError  # noqa: E402
from neurodeploy.exporters import to_nir  # noqa: E402
from neurodeploy.graph import simulate, write_graph  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def two_layer_graph(tau_steps=2.0):
    """Our LIF convention (r = 1, tau = 2 dt: per-step gain 1/2), two layers, Linear without bias."""
    r = np.random.default_rng(4)
    return chain(nir.Linear(weight=(r.standard_normal((8, 6)) * 2).astype(np.float32)), lif(8, tau_steps=tau_steps),
                 nir.Affine(weight=(r.standard_normal((3, 8)) * 2).astype(np.float32), bias=np.full(3, 0.1, np.float32)),
                 lif(3, tau_steps=tau_steps, th=0.5), in_shape=(6,))


def run_snntorch(module, x):
    outs, state = [], None
    with torch.no_grad():
        for t in range(x.shape[1]):
            o = module(x[:, t])
            outs.append(o[0] if isinstance(o, tuple) else o)
    return torch.stack(outs)


def test_snntorch_reads_our_compat_export_with_equal_spikes(tmp_path):
    from snntorch.import_nir import import_from_nir

    src = tmp_path / "ours.nir"
    nir.write(src, two_layer_graph())
    ref_graph = to_nir(src)
    x = (torch.rand(4, 30, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    ours = simulate(ref_graph, x)
    assert 10 < ours.sum() < ours.numel()
    assert main(["export", str(src), "-o", str(tmp_path / "out"), "--nir-compat", "snntorch"]) == 0
    g = nir.read(tmp_path / "out" / "model.nir")
    assert isinstance(g.nodes["n0"], nir.Affine)  # Linear -> Affine with a zero bias
    assert np.allclose(g.nodes["n1"].r, 2.0) and np.allclose(g.nodes["n1"].tau, 2 * DT)
    theirs = run_snntorch(import_from_nir(g), x)
    assert torch.equal(theirs.reshape(ours.shape), ours)
    assert torch.equal(simulate(to_nir(tmp_path / "out" / "model.nir"), x), ours)  # same model under NIR semantics


def test_snntorch_compat_refuses_what_it_cannot_read_naming_the_node(tmp_path):
    g = chain(nir.Affine(weight=np.ones((3, 4), np.float32), bias=np.zeros(3, np.float32)),
              nir.Threshold(threshold=np.full(3, 0.5, np.float32)))
    with pytest.raises(UnsupportedError, match=r"node 'n1': NIR type Threshold cannot be read by snnTorch"):
        to_nir(g, compat="snntorch")
    g = chain(nir.Affine(weight=np.ones((3, 4), np.float32), bias=np.zeros(3, np.float32)), lif(3, v_leak=0.2))
    with pytest.raises(UnsupportedError, match=r"node 'n1': LIF field v_leak"):
        to_nir(g, compat="snntorch")
    g = chain(nir.Affine(weight=np.ones((3, 4), np.float32), bias=np.zeros(3, np.float32)),
              nir.IF(r=np.ones(3, np.float32), v_threshold=np.ones(3, np.float32), v_reset=np.zeros(3, np.float32)))
    with pytest.raises(UnsupportedError, match=r"node 'n1': NIR type IF .*beta 0.9"):
        to_nir(g, compat="snntorch")


def test_attention_is_refused_by_every_profile():
    from neurodeploy.models.registry import build_model

    model = build_model("spikingformer-digits").eval()
    for compat in ("strict", "snntorch"):
        with pytest.raises(UnsupportedError, match=r"node '.*attn.attention': the spiking attention extension cannot be read"):
            to_nir(model, compat=compat)
