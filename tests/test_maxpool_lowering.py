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

from export_helpers import lava_equals_engine, random_input, random_model

#: digits-size models configured WITH a max-pool of real BN outputs (the official configs' kind of pool)
POOLED = {
    "sdt": ("sdt-digits", {"pooling_stat": "0011"}, ["patch_embed.maxpool3"]),
    "qkformer": ("qkformer-digits", {"num_stages": 2}, ["patch_embed2.proj4_maxpool"]),
}


#: QKFormer's ImageNet coding max-pools the input layer itself (conv -> BN -> pool -> LIF; the official
#: qkformer-imagenet-10-384's ``patch_embed1.proj_maxpool``): the host encoder computes that pool
HOST_POOLED = ("qkformer-digits", {"coding": "imagenet", "num_stages": 1}, "patch_embed1.proj_maxpool",
               "patch_embed1.proj1_maxpool")


def pooled_model(key: str, seed: int = 0, T: int = 4):
    """A random eval-mode model of POOLED[key] with BN statistics measured on random data (every LIF fires)."""
    arch, cfg, _ = POOLED[key]
    return random_model(arch, 8, T, seed=seed, config=cfg)


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
    from neurodeploy.lower.loihi2 import lower_graph
    model = pooled_model(key)
    net, _ = lower_graph(to_nir(model))
    relus = [p.name for p in net.populations if p.kind == "graded_relu"]
    assert len(relus) == 4 * len(POOLED[key][2])
    if key == "sdt":
        # the head's token mean of the pooled x_feat: a per-channel sum relay (graded ones, one floor shift),
        # read at 1/P per unit of the sum
        into = {s.src: s for s in net.synapses if s.dst == "head_lif"}
        assert "patch_embed.maxpool3.sum" in into and "patch_embed.maxpool3" not in into
        syn = next(s for s in net.synapses if s.dst == "patch_embed.maxpool3.sum")
        assert syn.kind == "sparse" and syn.graded and syn.weight_exp < 0
    x = random_input(model, 8, 4, batch=1).numpy()
    inputs = {k: v.numpy() for k, v in net.encode_inputs(x).items()}
    steps = 4 + net.metadata["latency"]
    ours = lava_equals_engine(net, inputs, steps)
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


def test_host_encoder_pools_the_input_layer(tmp_path):
    """A max-pool of the host-encoded input layer (QKFormer ImageNet's first pool) is computed by the host
    encoder (max_pool2d of its conv, before the rounding): the encoded bias is exactly the model's pooled BN
    output times the LIF's gain, rounded; the later pool stays the chip's graded ReLU tree; the lowered file
    keeps the pool (format version 4); the first LIF's spikes equal the float model's."""
    import json
    import zipfile

    from neurodeploy.lower.loihi2 import lower_graph
    from neurodeploy.lower.network_file import load_network, save_network
    arch, cfg, host, chip = HOST_POOLED
    model = random_model(arch, 8, 4, config=cfg).double()
    net, rep = lower_graph(to_nir(model, dtype=np.float64))
    assert [e.pool for e in net.encoders] == [(3, 3, 2, 2, 1, 1)]
    assert [r["node"] for r in rep["maxpools"]] == [chip]
    assert not any(p.name.startswith(host) for p in net.populations)
    assert sum(p.kind == "graded_relu" for p in net.populations) == 4
    enc = net.encoders[0]
    x = random_input(model, 8, 4, batch=3).double()
    got = {}
    hook = getattr(model.patch_embed1, host.split(".")[1]).register_forward_hook(
        lambda mod, i, o: got.__setitem__("pool", o.detach()))
    with torch.no_grad():
        model(x)
    hook.remove()
    pooled = got["pool"][:3].reshape(3, enc.row_gain.size, -1)          # t = 0 (the input is static)
    ref = torch.round(pooled * torch.as_tensor(enc.row_gain)[None, :, None] * enc.gain).reshape(3, -1)
    mant = net.encode_inputs(x.numpy())[enc.name]
    assert mant.shape == ref.shape and torch.equal(mant.double(), ref)
    assert (ref < 0).any() and (ref > 0).any()
    path = tmp_path / "net.npz"
    save_network(net, str(path))
    with zipfile.ZipFile(path) as zf:
        assert json.loads(np.load(zf.open("__meta__.npy")).tobytes())["version"] == 4
    back = load_network(str(path))
    assert back.encoders[0].pool == enc.pool and torch.equal(back.encode_inputs(x.numpy())[enc.name], mant)
    lif = f"{host.rsplit('.', 1)[0]}.proj_lif"
    steps = 4 + net.metadata["latency"]
    ours = simulate(net, {k: v.numpy() for k, v in net.encode_inputs(x.numpy()).items()}, steps, record=[lif])
    from export_helpers import lif_outputs
    _, spikes = lif_outputs(model, x)
    d = net.metadata["population_latency"][lif]
    fixed = np.asarray(ours[lif]["s"])[d:d + 4].reshape(4, 3, -1)
    assert np.array_equal(fixed != 0, spikes[lif].reshape(4, 3, -1).numpy() != 0)


@pytest.mark.lava
@pytest.mark.slow
def test_host_pooled_input_layer_in_lava_equals_engine():
    from neurodeploy.lower.loihi2 import lower_graph
    arch, cfg, host, _ = HOST_POOLED
    model = random_model(arch, 8, 4, config=cfg)
    net, _ = lower_graph(to_nir(model))
    x = random_input(model, 8, 4, batch=1).numpy()
    inputs = {k: v.numpy() for k, v in net.encode_inputs(x).items()}
    ours = lava_equals_engine(net, inputs, 4 + net.metadata["latency"])
    assert 0 < np.asarray(ours[f"{host.rsplit('.', 1)[0]}.proj_lif"]["s"]).mean() < 1
