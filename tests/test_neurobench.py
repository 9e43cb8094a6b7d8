"""Our NeuroBench metrics (neurodeploy.analysis.neurobench, computed on our reference simulation of the NIR
graph) against neurobench 2.3.0's own Benchmark on the same snnTorch models (ground truth).

Equal: SynapticOperations (Effective_MACs, Effective_ACs, Dense), MembraneUpdates, ParameterCount,
ConnectionSparsity.  Explained differences, asserted exactly:
* ActivationSparsity: neurobench averages the per-batch sparsities (weighted by batch size), we divide the
  totals; the same fraction up to float rounding (rel 1e-12).
* Footprint: neurobench adds the bytes of snnTorch's neuron parameters and buffers (beta, threshold, the
  hidden membrane...), which a NIR graph does not hold as torch tensors; ours + those bytes == theirs.
The models use snnTorch's ``reset_delay=False`` (reset in the step of the spike, as NIR's LIF): with the
default delayed reset snnTorch's ``mem`` holds the pre-reset value for one step, so neurobench's hook would
see a membrane change on the step after every spike that our (reset) membrane does not show.
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch

from neurodeploy.analysis.neurobench import neurobench_from_graph
from neurodeploy.exporters import to_nir


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


KW = dict(init_hidden=True, reset_mechanism="zero", reset_delay=False)


def _mlp():
    import snntorch as snn

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 32), snn.Leaky(beta=0.9, **KW), torch.nn.Linear(32, 4),
                              snn.Leaky(beta=0.8, output=True, **KW))
    with torch.no_grad():
        net[0].weight[:, :5] = 0            # 160 of 768 weights: ConnectionSparsity 0.2083
        net[0].weight *= 3
    return net, (1, 20)


def _conv():
    import snntorch as snn

    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), snn.Leaky(beta=0.9, **KW),
                              torch.nn.Conv2d(4, 8, 3, stride=2, padding=1), snn.Leaky(beta=0.7, **KW),
                              torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 5), snn.Leaky(beta=0.8, output=True, **KW))
    with torch.no_grad():
        net[2].weight[:, :2] = 0
    return net, (1, 2, 8, 8)


def _neurobench(net, x):
    import snntorch as snn
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
    from neurobench.metrics.workload import ActivationSparsity, MembraneUpdates, SynapticOperations
    from neurobench.models import SNNTorchModel
    from torch.utils.data import DataLoader, TensorDataset

    neuron_bytes = sum(t.numel() * t.element_size() for m in net.modules() if isinstance(m, snn.SpikingNeuron)
                       for t in itertools.chain(m.parameters(), m.buffers()))
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), batch_size=len(x) // 2)
    b = Benchmark(SNNTorchModel(net), loader, [], [], [[Footprint, ConnectionSparsity, ParameterCount],
                                                       [ActivationSparsity, SynapticOperations, MembraneUpdates]])
    return b.run(quiet=True), neuron_bytes


@pytest.mark.parametrize("model, real", [(_mlp, False), (_conv, False), (_conv, True)],
                         ids=["mlp-spikes", "conv-spikes", "conv-real-input"])
def test_equal_to_neurobench(model, real):
    net, sample = model()
    graph = to_nir(net, sample_data=torch.zeros(sample))
    g = torch.Generator().manual_seed(7)
    shape = (8, 25) + sample[1:]
    x = torch.randn(shape, generator=g) if real else (torch.rand(shape, generator=g) < 0.3).float()
    ref, neuron_bytes = _neurobench(net, x)
    ours = neurobench_from_graph(graph, x)
    assert ours["SynapticOperations"] == ref["SynapticOperations"]
    so = ours["SynapticOperations"]
    assert so["Effective_ACs"] > 0 and (so["Effective_MACs"] > 0) == real   # real input: the first layer is MAC
    assert ours["MembraneUpdates"] == ref["MembraneUpdates"]
    assert ours["ParameterCount"] == ref["ParameterCount"]
    assert ours["ConnectionSparsity"] == ref["ConnectionSparsity"] > 0
    assert ours["ActivationSparsity"] == pytest.approx(ref["ActivationSparsity"], rel=1e-12)
    assert 0 < ours["ActivationSparsity"] < 1
    assert ours["Footprint"] + neuron_bytes == ref["Footprint"]
    assert ours["Footprint"] == 4 * ours["ParameterCount"]


def test_mlp_published_dense_and_updates():
    """vendors.md: a 20-32-4 Leaky MLP at T=25 gives Dense 19,200 = 25 x (20x32 + 32x4)."""
    net, sample = _mlp()
    graph = to_nir(net, sample_data=torch.zeros(sample))
    x = (torch.rand((4, 25, 20), generator=torch.Generator().manual_seed(0)) < 0.3).float()
    ours = neurobench_from_graph(graph, x)
    assert ours["SynapticOperations"]["Dense"] == 19200
    assert ours["MembraneUpdates"] <= 25 * 36          # only neurons whose membrane changed


def test_report_gives_measured_metrics_and_says_what_it_counts_more(tmp_path):
    """The report's energy.neurobench is the measured set; on a model with spiking attention it adds the
    attention products apart and says that hook-based tools report 0 for them."""
    from neurodeploy.deploy import Deployment
    from neurodeploy.report import report_document

    net, sample = _mlp()
    graph = to_nir(net, sample_data=torch.zeros(sample))
    x = (torch.rand((8, 25, 20), generator=torch.Generator().manual_seed(3)) < 0.3).float().numpy()
    dep = Deployment.build(graph, targets=["truenorth"], data=(x, np.zeros(8, dtype=int))).run(fidelity=False)
    nb = report_document(dep)["energy"]["neurobench"]
    direct = neurobench_from_graph(graph, x)
    assert nb["SynapticOperations"] == direct["SynapticOperations"] and nb["MembraneUpdates"] == direct["MembraneUpdates"]
    assert nb["source"].startswith("measured on array (8 samples)") and "attention_products" not in nb

    dep = Deployment.build("spikingformer-digits", targets=["truenorth"], samples=8)
    (L,) = [L for L in dep.ops.layers if L.kind == "attention"]
    dep.annotate(firing_rates={L.q: 0.1, L.k: 0.2, L.v: 0.3})     # the digits model's q/k/v hardly fire
    dep.run(fidelity=False)
    nb = report_document(dep)["energy"]["neurobench"]
    att = nb["attention_products"]
    d = L.dim // L.heads
    assert att["Effective_ACs"] == pytest.approx(dep.ops.time_steps * L.heads * L.tokens * d * d * (0.2 + 0.1))
    assert att["Effective_ACs"] > 0 and att["counted_in_SynapticOperations"] is False
    assert any("hook-based tools such as neurobench report 0" in n for n in nb["notes"])
    direct = neurobench_from_graph(dep.graph, dep.samples)
    assert nb["SynapticOperations"] == direct["SynapticOperations"]
