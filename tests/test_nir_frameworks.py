"""Reference simulator == the source framework, spike for spike, on random binary input: snnTorch 1.0.0
Leaky / Synaptic / RLeaky (scalar and per-neuron parameters) and Norse 1.1.0 LIFBox / IAF models, each
imported through neurodeploy's front end (``to_nir``), written to a .nir file and read back."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from neurodeploy.exporters import to_nir
from neurodeploy.graph import read_graph, simulate, write_graph

T, B = 40, 4


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def binary_input(n_in, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, T, n_in, generator=g) < 0.4).float()


def snntorch_spikes(net, x):
    import snntorch.utils

    snntorch.utils.reset(net)
    outs = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            o = net(x[:, t])
            outs.append(o[0] if isinstance(o, tuple) else o)
    return torch.stack(outs)


def ours(model, x, tmp_path):
    g = to_nir(model, sample_data=torch.zeros(1, x.shape[2]))
    write_graph(g, tmp_path / "m.nir")
    return simulate(to_nir(tmp_path / "m.nir"), x)


def _snn_models():
    import snntorch as snn

    kw = dict(init_hidden=True, reset_mechanism="zero")
    n = 8
    beta = torch.linspace(0.5, 0.95, n)
    return {
        "leaky": lambda: torch.nn.Sequential(torch.nn.Linear(6, n), snn.Leaky(beta=beta, threshold=torch.full((n,), 0.8), **kw)),
        "leaky_scalar_two_layers": lambda: torch.nn.Sequential(torch.nn.Linear(6, n), snn.Leaky(beta=0.8, **kw),
                                                               torch.nn.Linear(n, 3), snn.Leaky(beta=0.6, threshold=0.5, **kw)),
        "synaptic": lambda: torch.nn.Sequential(torch.nn.Linear(6, n), snn.Synaptic(alpha=torch.full((n,), 0.6), beta=beta,
                                                                                  reset_delay=False, **kw)),
        "synaptic_scalar": lambda: torch.nn.Sequential(torch.nn.Linear(6, n), snn.Synaptic(alpha=0.4, beta=0.9, reset_delay=False, **kw)),
        "rleaky": lambda: torch.nn.Sequential(torch.nn.Linear(6, n), snn.RLeaky(beta=beta, linear_features=n, reset_delay=False, **kw)),
        "rleaky_scalar_beta": lambda: torch.nn.Sequential(torch.nn.Linear(6, n), snn.RLeaky(beta=0.7, linear_features=n,
                                                                                          reset_delay=False, **kw),
                                                          torch.nn.Linear(n, 3), snn.Leaky(beta=0.8, **kw)),
    }


@pytest.mark.parametrize("name", list(_snn_models()))
def test_snntorch_spikes_equal_reference_simulator(name, tmp_path):
    torch.manual_seed(3)
    net = _snn_models()[name]()
    with torch.no_grad():  # strong enough weights that every layer spikes
        for m in net.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(3.0)
    x = binary_input(6)
    ref = snntorch_spikes(net, x)
    got = ours(net, x, tmp_path)
    assert ref.sum() > 20, "the test network must spike"
    assert torch.equal(got.reshape(ref.shape), ref)


def test_snntorch_delayed_reset_would_differ_so_it_is_refused():
    """reset_delay=True (snnTorch's default) for Synaptic gives other spikes than NIR's CubaLIF: refused."""
    import snntorch as snn

    from neurodeploy.errors import UnsupportedError

    net = torch.nn.Sequential(torch.nn.Linear(6, 8), snn.Synaptic(alpha=0.5, beta=0.8, init_hidden=True, reset_mechanism="zero"))
    with pytest.raises(UnsupportedError, match=r"layer '1' \(Synaptic\): reset_delay=True"):
        to_nir(net, sample_data=torch.zeros(1, 6))


def norse_spikes(model, x):
    state, outs = None, []
    with torch.no_grad():
        for t in range(x.shape[1]):
            o, state = model(x[:, t], state)
            outs.append(o)
    return torch.stack(outs)


@pytest.mark.parametrize("kind", ["lifbox", "lifbox_two_layers", "iaf"])
def test_norse_spikes_equal_reference_simulator(kind, tmp_path):
    import norse.torch as nt

    torch.manual_seed(5)
    p = nt.LIFBoxParameters(tau_mem_inv=torch.tensor(400.0), v_th=torch.tensor(0.3), v_leak=torch.tensor(0.0))
    if kind == "lifbox":
        model = nt.SequentialState(torch.nn.Linear(6, 8), nt.LIFBoxCell(p))
    elif kind == "lifbox_two_layers":
        model = nt.SequentialState(torch.nn.Linear(6, 8), nt.LIFBoxCell(p), torch.nn.Linear(8, 3), nt.LIFBoxCell(p))
    else:
        model = nt.SequentialState(torch.nn.Linear(6, 8), nt.IAFCell(nt.IAFParameters(v_th=torch.tensor(0.5))))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(3.0)
    x = binary_input(6, seed=1)
    ref = norse_spikes(model, x)
    got = ours(model, x, tmp_path)
    assert ref.sum() > 20
    assert torch.equal(got.reshape(ref.shape), ref)


def test_back_edges_stay_on_the_cycle_whatever_the_edge_order():
    """snnTorch's export lists edges in a set's order (it changes with Python's hash seed): the cycle must be
    cut on the loop (lif <-> w_rec), never on the feed-forward edge out of it (that delayed the next layer by
    one step in some processes)."""
    import random

    import nir

    from neurodeploy.graph.core import order_and_back_edges

    torch.manual_seed(3)
    g = to_nir(_snn_models()["rleaky_scalar_beta"](), sample_data=torch.zeros(1, 6))
    loop = {("1.lif", "1.w_rec"), ("1.w_rec", "1.lif")}
    for seed in range(20):
        edges = list(g.edges)
        random.Random(seed).shuffle(edges)
        order, back = order_and_back_edges(nir.NIRGraph(nodes=g.nodes, edges=edges, type_check=False))
        assert len(back) == 1 and back <= loop, (seed, back)
        assert order.index("1.lif") < order.index("2") < order.index("3")


def test_raw_norse_file_runs_with_the_step_norse_meant(tmp_path, capsys):
    """Norse 1.1's own ``to_nir`` writes tau = dt / tau_mem_inv (norse/norse#411; 1e-5 s for its defaults),
    and a NIR file has no dt.  With our default dt (1e-4 s) such a LIF is shorter than one step and export
    refuses it, naming ``--dt``; ``--dt dt_norse**2`` (1e-6 for Norse's default 1e-3) gives tau/dt =
    1 / (dt_norse * tau_mem_inv), Norse's own decay, and then our reference simulator of the raw file equals
    Norse's spikes and export to Loihi 2 succeeds."""
    import nir
    import norse.torch as nt

    from neurodeploy.cli import main
    from neurodeploy.data import apply_dt

    torch.manual_seed(7)
    p = nt.LIFBoxParameters(tau_mem_inv=torch.tensor(250.0), v_th=torch.tensor(0.3), v_leak=torch.tensor(0.0))
    model = nt.SequentialState(torch.nn.Linear(6, 8), nt.LIFBoxCell(p), torch.nn.Linear(8, 3), nt.LIFBoxCell(p))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(3.0)
    path = tmp_path / "norse_raw.nir"
    g = nt.to_nir(model, torch.zeros(1, 6))                       # Norse's own export, not our front end
    for node in g.nodes.values():
        for k, v in vars(node).items():
            if isinstance(v, torch.Tensor):
                setattr(node, k, v.detach().numpy())
    nir.write(str(path), g, compression=None)       # as Norse users write it (0-d parameters: no gzip)
    x = binary_input(6, seed=2)
    ref = norse_spikes(model, x)
    g = to_nir(path)                                 # our reader (Norse's batch dimension in Input)
    apply_dt(g, 1e-6)
    got = simulate(g, x)
    assert ref.sum() > 20
    assert torch.equal(got.reshape(ref.shape), ref)

    common = [str(path), "--target", "loihi2", "--input-domain", "binary", "-T", "10"]
    capsys.readouterr()
    assert main(["export", *common, "-o", str(tmp_path / "refused")]) == 2
    assert "tau shorter than one step (tau/dt = 0.04 with dt 0.0001 s)" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    assert main(["export", *common, "-o", str(tmp_path / "out"), "--dt", "1e-6"]) == 0
    assert read_graph(tmp_path / "out" / "model.nir").metadata["neurodeploy.dt"] == 1e-6
    assert (tmp_path / "out" / "loihi2").is_dir()
