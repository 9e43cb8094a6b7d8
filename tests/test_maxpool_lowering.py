"""The max-pool of real values (the ``max_pool2d`` NIR extension, docs/nir.md) through the pipeline: export,
float simulation, purity class MAX, and the exact Loihi 2 lowering from graded ReLU neurons (docs/lowering.md,
"Max pooling of real values"): our engine equals PyTorch's max_pool2d on the tree's own input, and Lava equals our
engine (s, u, v of every population at every step) on digits-size SDT and QKFormer models with the pool."""
from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import neurodeploy
from neurodeploy.exporters import to_nir
from neurodeploy.graph import read_graph, write_graph
from neurodeploy.graph.maxpool import MaxPoolSpec, maxpool_spec
from neurodeploy.lower.balance import balance_network
from neurodeploy.lower.fixed_point import EXCITATORY
from neurodeploy.lower.maxpool import maxpool_parts
from neurodeploy.lower.network import LoweredNetwork, Population, Synapse, identity_csr
from neurodeploy.sim import simulate

from export_helpers import random_input

#: digits-size models configured WITH a max-pool of real BN outputs (the official configs' kind of pool)
POOLED = {
    "sdt": ("sdt-digits", {"pooling_stat": "0011"}, ["patch_embed.maxpool3"]),
    "qkformer": ("qkformer-digits", {"num_stages": 2}, ["patch_embed2.proj4_maxpool"]),
}


def pooled_model(key: str, seed: int = 0, T: int = 4):
    """A random eval-mode model of POOLED[key] with BN statistics measured on random data (every LIF fires)."""
    arch, cfg, _ = POOLED[key]
    torch.manual_seed(seed)
    model = neurodeploy.build_model(arch, cfg)
    model.T = model.cfg.T = T
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 1.0)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.5 + 1.0)
            m.momentum = None
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(random_input(model, 8, T, batch=4, seed=seed + 2))
    return model.eval()


def tree_network(C, H, W) -> LoweredNetwork:
    """graded input -> input relay -> the max tree (balanced)."""
    spec = MaxPoolSpec((3, 3), (2, 2), (1, 1), C, (H, W))
    net = LoweredNetwork(populations=[Population("x", (C, H, W), kind="input", input_kind="graded"),
                                      Population("mp.in", (C, H, W), kind="relay")],
                         synapses=[Synapse("mp.in.syn", "x", "mp.in", "sparse", identity_csr(C * H * W),
                                           sign_mode=EXCITATORY, graded=True)])
    pops, syns = maxpool_parts("mp", "mp.in", spec, "mp")
    net.populations += pops
    net.synapses += syns
    net.outputs = ["mp"]
    # the payload bounds the lowering declares for its trees (|P| <= 2 max|X|, |M| <= max|X|; here |x| < 2^17)
    net.metadata["graded_bounds"] = {"mp.in": 1 << 17, **{p.name: (1 << 17 if p.kind == "relay" else 1 << 18)
                                                           for p in pops}}
    balance_network(net, T=3)
    return net


@pytest.mark.parametrize("hw", [(4, 4), (5, 7), (1, 3), (8, 8)])
def test_tree_in_our_engine_is_max_pool2d(hw):
    """Every step, 6 steps after the input (input relay + 2 width + 2 height ReLU levels + the sum), the
    pooled relay holds exactly F.max_pool2d(x, 3, 2, 1) (-inf padding) of signed integers up to 2^17."""
    H, W = hw
    C, T = 3, 4
    net = tree_network(C, H, W)
    # ReLU levels per axis: the longest window minus one (n = 3: windows {0, 1}, {1, 2}; n >= 4: a full 3)
    lw, lh = ({1: 0, 2: 1, 3: 1}.get(n, 2) for n in (W, H))
    assert sum(p.kind == "graded_relu" for p in net.populations) == lw + lh
    rng = np.random.default_rng(H * 10 + W)
    x = rng.integers(-(1 << 17), 1 << 17, size=(T, 1, C, H, W))
    lat = net.metadata["population_latency"]["mp"]
    assert lat == 1 + lw + lh + 1
    out = simulate(net, {"x": x}, T + lat, record=["mp"])["mp"]["s"]
    ref = F.max_pool2d(torch.as_tensor(x, dtype=torch.float64).reshape(T, C, H, W), 3, 2, 1)
    assert np.array_equal(np.asarray(out[lat:lat + T]).reshape(ref.shape), ref.numpy().astype(np.int64))
    # every group is one-to-one per (destination, source) with weight +1 or -1
    for s in net.synapses:
        w = s.weights
        assert set(np.unique(w.data).tolist()) <= {1, -1}, s.name


@pytest.mark.parametrize("key", sorted(POOLED))
def test_export_writes_the_extension_and_the_float_simulation_runs_it(key, tmp_path):
    from test_export_roundtrip import compare
    model = pooled_model(key)
    x = random_input(model, 8, 4, batch=2)
    graph = to_nir(model, dtype=np.float64)
    for name in POOLED[key][2]:
        spec = maxpool_spec(graph.nodes[name])
        assert (spec.kernel, spec.stride, spec.padding) == ((3, 3), (2, 2), (1, 1))
    lifs, mismatches, rel = compare(model.double(), graph, x.double(), 4, torch.float64)
    assert sum(mismatches.values()) == 0 and rel < 1e-9
    # the file round-trips through nir's own reader with its type check; a tool ignoring the metadata gets NaN
    back = read_graph(write_graph(to_nir(model), tmp_path / "pooled.nir"))
    node = back.nodes[POOLED[key][2][0]]
    assert isinstance(node, nir.NIRGraph) and np.isnan(node.nodes["unsupported"].scale).all()


@pytest.mark.parametrize("key", sorted(POOLED))
def test_purity_names_the_max_pool_of_real_values(key):
    from neurodeploy.analysis.purity import check_purity
    rep = check_purity(to_nir(pooled_model(key)), allow=["encoder", "readout"])
    maxes = {o.node for o in rep.violations if o.op_class == "MAX"}
    assert maxes == set(POOLED[key][2])
    op = rep.op(POOLED[key][2][0])
    assert op.op == "MaxPool2d" and op.input_domain.is_real and "compare-select" in op.why
    if key == "sdt":        # SDT: the only violation (every block layer reads spikes)
        assert {o.node for o in rep.violations} == maxes


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(POOLED))
def test_max_pool_lowering_in_lava_equals_engine(key):
    from neurodeploy.lava.run import run_lava
    from neurodeploy.lower.loihi2 import lower_graph
    model = pooled_model(key)
    net, _ = lower_graph(to_nir(model))
    relus = [p.name for p in net.populations if p.kind == "graded_relu"]
    assert len(relus) == 4 * len(POOLED[key][2])
    x = random_input(model, 8, 4, batch=1).numpy()
    inputs = {k: v.numpy() for k, v in net.encode_inputs(x).items()}
    steps = 4 + net.metadata["latency"]
    ours = simulate(net, inputs, steps, record="all")
    lava = run_lava(net, inputs, steps, record="all")
    assert set(lava) == set(ours)
    for name in lava:
        for k in lava[name]:
            bad = np.argwhere(ours[name][k] != lava[name][k])
            assert bad.size == 0, f"{name}.{k} differs first at {bad[0].tolist()}"
    lat = net.metadata["population_latency"]
    for mp in POOLED[key][2]:
        # the tree really works on signed values, and its result is max_pool2d of its input relay, 5 steps later
        X = torch.as_tensor(np.asarray(ours[f"{mp}.in"]["s"]), dtype=torch.float64)
        C, H, W = net.pop(f"{mp}.in").shape
        assert (X < 0).any() and (X > 0).any()
        d = lat[mp] - lat[f"{mp}.in"]
        assert d == 5
        ref = F.max_pool2d(X.reshape(-1, C, H, W), 3, 2, 1).reshape(X.shape[0], 1, -1).numpy()
        assert np.array_equal(np.asarray(ours[mp]["s"])[d:], ref[:steps - d])
        for r in (f"{mp}.w1", f"{mp}.h1"):
            assert 0 < (np.asarray(ours[r]["s"]) > 0).mean() < 1, r
