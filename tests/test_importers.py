"""Importers (.nir files from other tools, snnTorch and Norse modules) and cross-checks of the reference
simulator against nirtorch / snnTorch / Norse on the NIR paper files."""
from __future__ import annotations

from conftest import NIR_PAPER
import warnings

import nir
import nirtorch
import numpy as np
import pytest
import torch

from neurodeploy.errors import BadInputError, UnsupportedError
from neurodeploy.exporters import to_nir
from neurodeploy.graph import read_graph, simulate, write_graph

DATA = str(NIR_PAPER)
CNN = f"{DATA}/02_cnn/cnn_sinabs.nir"
LIF = f"{DATA}/01_lif/lif_norse.nir"


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def lif_trace():
    d = np.loadtxt(f"{DATA}/01_lif/lif_norse.csv", delimiter=",")
    assert d.shape == (1000, 3)
    return d


def run_stepwise(module, x):
    """x [B, T, ...] through a (out, state) step module -> [T, B, ...]."""
    state, outs = None, []
    with torch.no_grad():
        for t in range(x.shape[1]):
            o, state = module(x[:, t], state)
            outs.append(o[0] if isinstance(o, tuple) else o)
    return torch.stack(outs)


def test_nir_files_import_with_metadata():
    g = to_nir(CNN)
    assert g.metadata["neurodeploy.arch"] == "nir-file" and g.metadata["neurodeploy.dt"] == 1e-4
    assert g.metadata["neurodeploy.source_file"] == "cnn_sinabs.nir"
    assert sorted(type(n).__name__ for n in g.nodes.values()).count("IF") == 5
    g = to_nir(LIF)
    assert isinstance(g.nodes["1"], nir.LIF)


def test_lif_norse_trace_matches_the_paper_csv():
    d = lif_trace()
    g = to_nir(LIF)
    x = torch.tensor(d[:, 0]).reshape(1, -1, 1)
    out, rec = simulate(g, x, record_membrane=True, dtype=torch.float64)
    spikes, v = out[:, 0, 0].numpy(), rec["1:v"][:, 0, 0].numpy()
    assert np.array_equal(spikes, d[:, 2]) and spikes.sum() == 4
    assert np.abs(v - d[:, 1]).max() < 1e-7  # the CSV holds float32 values (measured max 2.4e-8)


def test_lif_norse_matches_snntorch_and_norse_imports():
    from snntorch.import_nir import import_from_nir
    import norse.torch as nt

    d = lif_trace()
    x = torch.tensor(d[:, 0], dtype=torch.float32).reshape(1, -1, 1)
    ours = simulate(to_nir(LIF), x)[:, 0, 0]
    snn_out = run_stepwise(import_from_nir(nir.read(LIF)), x)[:, 0, 0]
    norse_out = run_stepwise(nt.from_nir(nir.read(LIF), dt=1e-4), x)[:, 0, 0]
    assert torch.equal(ours, snn_out) and torch.equal(ours, norse_out)
    assert torch.nonzero(ours).reshape(-1).tolist() == [460, 510, 710, 760]


class _IF(torch.nn.Module):
    """IF for nirtorch's interpreter (nirtorch has no neuron defaults): v += r x, spike v > th, reset."""

    def __init__(self, node):
        super().__init__()
        self.r, self.th, self.vr = (torch.tensor(a, dtype=torch.float32) for a in (node.r, node.v_threshold, node.v_reset))

    def forward(self, x, state=None):
        v = (torch.zeros_like(x) if state is None else state) + self.r * x
        s = v > self.th
        return s.float(), torch.where(s, self.vr, v)


def _affine(node):  # nirtorch 2.6's default Affine mapper drops the bias (reference nir.md 3.3)
    lin = torch.nn.Linear(node.weight.shape[1], node.weight.shape[0])
    lin.weight.data, lin.bias.data = torch.tensor(node.weight), torch.tensor(node.bias)
    return lin


def _flatten(node):  # nirtorch 2.6 passes NIR dims (no batch) to torch unchanged: off by one
    end = int(node.end_dim)
    return torch.nn.Flatten(int(node.start_dim) + 1, end if end < 0 else end + 1)


def test_cnn_sinabs_matches_nirtorch():
    g = to_nir(CNN)
    torch.manual_seed(0)
    x = (torch.rand(3, 25, 2, 34, 34) < 0.15).float()
    ours, rec = simulate(g, x, record=True)
    module = nirtorch.nir_to_torch(nir.read(CNN), {nir.IF: _IF, nir.Affine: _affine, nir.Flatten: _flatten})
    theirs = run_stepwise(module, x)
    assert torch.equal(ours, theirs)
    for name in ("1", "3", "6", "10"):
        assert 0 < float(rec[name].mean()) < 0.5
    assert ours.sum() > 0
    # without the Flatten workaround nirtorch's default map fails on a batch (the off-by-one Flatten)
    broken = nirtorch.nir_to_torch(nir.read(CNN), {nir.IF: _IF})
    with pytest.raises(RuntimeError):
        run_stepwise(broken, x[:, :1])


def test_snntorch_module_import_is_exact():
    import snntorch as snn
    from snntorch import utils

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(5, 8),
        snn.Leaky(beta=torch.full((8,), 0.8), threshold=torch.full((8,), 1.0), init_hidden=True, reset_mechanism="zero"),
        torch.nn.Linear(8, 3),
        snn.Leaky(beta=torch.full((3,), 0.9), threshold=torch.full((3,), 0.5), init_hidden=True, output=True,
                  reset_mechanism="zero"),
    )
    g = to_nir(net, sample_data=torch.zeros(1, 5))
    assert g.metadata["neurodeploy.arch"] == "snntorch"
    assert [type(g.nodes[n]).__name__ for n in ("0", "1", "2", "3")] == ["Affine", "LIF", "Affine", "LIF"]
    x = torch.rand(4, 40, 5) * 1.5
    utils.reset(net)
    hidden = []
    h = net[1].register_forward_hook(lambda m, i, o: hidden.append(o))
    theirs = run_stepwise(lambda xt, s: (net(xt)[0], None), x)
    h.remove()
    ours, rec = simulate(g, x, record=True)
    assert torch.equal(ours, theirs) and torch.equal(rec["1"], torch.stack(hidden))
    assert 0 < float(ours.mean()) < 1 and 0 < float(rec["1"].mean()) < 1


def test_snntorch_errors_name_the_layer():
    import snntorch as snn

    net = torch.nn.Sequential(torch.nn.Linear(2, 3), snn.Leaky(beta=0.9, init_hidden=True, reset_mechanism="zero"))
    g = to_nir(net, sample_data=torch.zeros(1, 2))  # scalar beta/threshold: broadcast to the layer (nir#176)
    assert g.nodes["1"].tau.shape == (3,) and np.allclose(g.nodes["1"].v_threshold, 1.0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), snn.Leaky(beta=torch.full((3,), 0.9), threshold=torch.ones(3),
                                                                init_hidden=True))
    with pytest.raises(UnsupportedError, match=r"snnTorch layer '1' \(Leaky\): reset_mechanism='subtract'"):
        to_nir(net, sample_data=torch.zeros(1, 2))
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(),
                              snn.Leaky(beta=torch.full((3,), 0.9), threshold=torch.ones(3), init_hidden=True,
                                        reset_mechanism="zero"))
    with pytest.raises(UnsupportedError, match=r"snnTorch model layer '1' \(torch.nn.modules.activation.ReLU\) is not supported; supported: torch.nn.Linear"):
        to_nir(net, sample_data=torch.zeros(1, 2))
    with pytest.raises(BadInputError, match="needs sample_data"):
        to_nir(net)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), snn.Synaptic(alpha=torch.full((3,), 0.5), beta=torch.full((3,), 0.9),
                                                                  threshold=torch.ones(3), init_hidden=True, reset_mechanism="zero"))
    with pytest.raises(UnsupportedError, match=r"snnTorch layer '1' \(Synaptic\): reset_delay=True makes the zero reset act one step late"):
        to_nir(net, sample_data=torch.zeros(1, 2))


def test_norse_module_import_is_exact_despite_norse_411():
    import norse.torch as nt

    torch.manual_seed(1)
    net = nt.SequentialState(
        torch.nn.Linear(4, 6),
        nt.LIFBoxCell(nt.LIFBoxParameters(tau_mem_inv=torch.tensor(500.0), v_th=torch.tensor(0.5))),
        torch.nn.Linear(6, 3),
        nt.LIFBoxCell(nt.LIFBoxParameters(tau_mem_inv=torch.tensor(200.0), v_th=torch.tensor(0.3))),
    )
    net[2].weight.data *= 4
    g = to_nir(net, sample_data=torch.zeros(1, 4))
    lif = g.nodes["1"]
    # Norse 1.1.0 writes tau = dt / tau_mem_inv = 2e-6; the exact per-step constant is 1/(1e-3*500) = 2 steps
    assert lif.tau.shape == (6,) and np.allclose(lif.tau, 2e-4) and np.all(lif.v_threshold == np.float32(0.5))
    x = torch.rand(2, 60, 4) * 20
    hidden = []
    h = net[1].register_forward_hook(lambda m, i, o: hidden.append(o[0]))
    theirs = run_stepwise(net, x)
    h.remove()
    ours, rec = simulate(g, x, record=True)
    assert torch.equal(ours, theirs) and torch.equal(rec["1"], torch.stack(hidden))
    assert 0 < float(ours.mean()) < 1 and 0 < float(rec["1"].mean()) < 1


def test_norse_iaf_and_li_import():
    import norse.torch as nt

    torch.manual_seed(0)
    net = nt.SequentialState(torch.nn.Linear(4, 6), nt.IAFCell(nt.IAFParameters(v_th=torch.tensor(0.7))),
                             torch.nn.Linear(6, 3), nt.LIBoxCell())
    g = to_nir(net, sample_data=torch.zeros(1, 4))
    assert [type(g.nodes[n]).__name__ for n in ("1", "3")] == ["IF", "LI"]
    x = torch.rand(2, 30, 4)
    hidden = []
    h = net[1].register_forward_hook(lambda m, i, o: hidden.append(o[0]))
    theirs = run_stepwise(net, x)
    h.remove()
    ours, rec = simulate(g, x, record=True)
    assert torch.equal(rec["1"], torch.stack(hidden)) and 0 < float(rec["1"].mean()) < 1
    assert float((ours - theirs).abs().max()) < 1e-6  # LI membrane: dt*tau_inv*(...) vs (...)/k rounding


def test_norse_errors_name_the_layer():
    import norse.torch as nt

    net = nt.SequentialState(torch.nn.Linear(2, 3), nt.LIFCell())
    with pytest.raises(UnsupportedError, match=r"Norse layer '1' \(LIFCell\): .*previous step's synaptic current"):
        to_nir(net, sample_data=torch.zeros(1, 2))
    net = nt.SequentialState(torch.nn.Linear(2, 3), torch.nn.Tanh(), nt.LIFBoxCell())
    with pytest.raises(UnsupportedError, match=r"Norse model layer '1' \(torch.nn.modules.activation.Tanh\) is not supported"):
        to_nir(net, sample_data=torch.zeros(1, 2))


def test_imported_graph_round_trips_through_a_file(tmp_path):
    g = to_nir(CNN)
    back = read_graph(write_graph(g, tmp_path / "model.nir"))
    x = (torch.rand(1, 5, 2, 34, 34) < 0.2).float()
    assert torch.equal(simulate(g, x), simulate(back, x))
    assert back.metadata["neurodeploy.arch"] == "nir-file"
