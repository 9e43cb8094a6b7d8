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
from neurodeploy.graph import simulate, steps_per_tau, write_graph  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def two_layer_graph(tau_steps=2.0):
    """Our LIF convention (r = 1, tau = 2 dt: per-step gain 1/2), two layers, Linear without bias."""
    r = np.random.default_rng(4)
    w = lambda o, i: (r.standard_normal((o, i)) * 2).astype(np.float32)  # noqa: E731
    return chain(nir.Linear(weight=w(8, 6)), lif(8, tau_steps=tau_steps),
                 nir.Affine(weight=w(3, 8), bias=np.full(3, 0.125, np.float32)),
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
    for compat in ("strict", "nirtorch", "snntorch", "norse"):
        with pytest.raises(UnsupportedError, match=r"node '.*attn.attention': the spiking attention extension cannot be read"):
            to_nir(model, compat=compat)


def run_norse(module, x):
    outs, state = [], None
    with torch.no_grad():
        for t in range(x.shape[1]):
            o, state = module(x[:, t], state)
            outs.append(o)
    return torch.stack(outs)


@pytest.mark.parametrize("source", ["nir", "snntorch"])
def test_norse_reads_our_compat_export_with_equal_spikes(source, tmp_path):
    """Our LIF (r = 1) and an snnTorch import (r = tau / dt, folded into the Affine) both load in Norse."""
    import norse.torch as nt
    import snntorch as snn

    if source == "nir":
        nir.write(tmp_path / "src.nir", two_layer_graph())
        ref_graph = to_nir(tmp_path / "src.nir")
    else:
        torch.manual_seed(2)
        net = torch.nn.Sequential(torch.nn.Linear(6, 8), snn.Leaky(beta=0.6, threshold=0.7, init_hidden=True, reset_mechanism="zero"))
        with torch.no_grad():
            net[0].weight.mul_(3)
        ref_graph = to_nir(net, sample_data=torch.zeros(1, 6))
        write_graph(ref_graph, tmp_path / "src.nir")
    x = (torch.rand(4, 30, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    ours = simulate(ref_graph, x)
    assert 10 < ours.sum() < ours.numel()
    assert main(["export", str(tmp_path / "src.nir"), "-o", str(tmp_path / "out"), "--nir-compat", "norse"]) == 0
    g = nir.read(tmp_path / "out" / "model.nir")
    theirs = run_norse(nt.from_nir(g, dt=float(g.metadata["neurodeploy.dt"])), x)
    assert torch.equal(theirs.reshape(ours.shape), ours)


def test_nirtorch_runs_our_strict_export_with_a_neuron_map(tmp_path):
    """nirtorch 2.6 builds our file given modules for LIF (it has none of its own): same spikes.  It ignores an
    Affine's bias (measured: random spikes from run to run), so the profile refuses a nonzero bias."""
    import nirtorch

    class LIF(torch.nn.Module):  # NIR's LIF, forward Euler: v += ((v_leak - v) + r x) dt / tau
        def __init__(self, node):
            super().__init__()
            self.k = torch.as_tensor(steps_per_tau(node.tau, DT)).float()  # tau / dt without float32 rounding
            self.r, self.th = torch.as_tensor(node.r), torch.as_tensor(node.v_threshold)

        def forward(self, x, state=None):
            v = torch.zeros_like(x) if state is None else state
            v = v + (self.r * x - v) / self.k
            z = (v > self.th).float()
            return z, v * (1 - z)

    g = two_layer_graph()
    with pytest.raises(UnsupportedError, match=r"node 'n2': Affine field bias != 0 is not loaded by nirtorch"):
        to_nir(g, compat="nirtorch")
    g.nodes["n2"].bias[:] = 0  # -> written as a Linear
    nir.write(tmp_path / "src.nir", g)
    ref_graph = to_nir(tmp_path / "src.nir")
    x = (torch.rand(4, 30, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    ours = simulate(ref_graph, x)
    assert 10 < ours.sum() < ours.numel()
    assert main(["export", str(tmp_path / "src.nir"), "-o", str(tmp_path / "out"), "--nir-compat", "nirtorch"]) == 0
    module = nirtorch.nir_to_torch(nir.read(tmp_path / "out" / "model.nir"), {nir.LIF: LIF})
    outs, state = [], None
    with torch.no_grad():
        for t in range(x.shape[1]):
            o, state = module(x[:, t], state)
            outs.append(o)
    assert torch.equal(torch.stack(outs), ours)


def test_norse_compat_refuses_v_reset_and_li(tmp_path):
    g = chain(nir.Affine(weight=np.ones((3, 4), np.float32), bias=np.zeros(3, np.float32)), lif(3, v_reset=-0.5))
    with pytest.raises(UnsupportedError, match=r"node 'n1': LIF field v_reset != 0 is ignored by Norse"):
        to_nir(g, compat="norse")
    g = chain(nir.Affine(weight=np.ones((3, 4), np.float32), bias=np.zeros(3, np.float32)),
              nir.LI(tau=np.full(3, 2e-4, np.float32), r=np.ones(3, np.float32), v_leak=np.zeros(3, np.float32)))
    with pytest.raises(UnsupportedError, match=r"node 'n1': NIR type LI cannot be read by Norse"):
        to_nir(g, compat="norse")
