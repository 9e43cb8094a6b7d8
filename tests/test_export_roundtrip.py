"""Round trip: simulating the exported graph reproduces the torch model exactly.

Decision (docs/nir.md, "Exactness"): the exact comparison runs in float64 - the graph exported with
``dtype=float64`` and simulated in float64 against the torch model cast to float64.  Then the only
difference between the two computations (BN folded into the conv vs conv then BN, different summation
order) is at the 1e-16 level, so every spike of every LIF must be identical.  The float32 file is the same
fold rounded to float32; its spikes match the float32 torch model except where a membrane lands within
float32 rounding of the threshold (checked on the digits models, where none does for these seeds).
"""
from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from neurodeploy import arch_names
from neurodeploy.exporters import to_nir
from neurodeploy.graph import read_graph, reduce_output, simulate, write_graph

from export_helpers import lif_outputs, random_input, random_model

# (image side, T): tiny inputs for the big models; DVS models take [B, T, 2, H, W] count frames
SIZES = {
    "spikingformer-cifar10-4-384": (16, 2),
    "spikingformer-cifar100-4-384": (16, 1),
    "spikingformer-imagenet-8-384": (32, 1),
    "spikingformer-imagenet-8-512": (32, 1),
    "spikingformer-imagenet-8-768": (32, 1),
    "spikingformer-cifar10dvs-2-256": (32, 3),
    "spikingformer-gesture-2-256": (32, 2),
    "spikingformer-digits": (8, 4),
    "spikformer-digits": (8, 4),
    "spikformer-cifar10-4-384": (16, 2),
    "spikformer-imagenet-8-384": (32, 1),
    "spikformer-imagenet-8-512": (32, 1),
    "spikformer-imagenet-8-768": (32, 1),
    "sdt-digits": (8, 4),
    "sdtv2-digits": (8, 4),
    "sdtv2-imagenet-8-384": (32, 1),
    "sdtv2-imagenet-8-512-kd": (32, 1),
    "qkformer-digits": (8, 4),
    "sew-resnet-digits-add": (8, 4),
    "sew-resnet-digits-and": (8, 4),
    "sew-resnet-digits-iand": (8, 4),
}


#: full-size variants with max-pools of real BN outputs: their round trip (float64 logits, every stage) is
#: tests/test_families.py::test_official_configs_export_the_max_pool_extension_exactly
REFUSED = {"sdt-cifar10-2-512", "sdt-cifar10-2-256", "sdt-imagenet-8-384", "sdt-imagenet-8-768",
           "qkformer-cifar10-4-384", "qkformer-imagenet-10-384"}


#: the same module structure as a variant in SIZES at other widths (sdtv2-imagenet-8-384 / -8-512-kd)
WIDER = {"sdtv2-imagenet-8-512", "sdtv2-imagenet-8-768"}


def test_every_architecture_is_covered():
    assert not set(SIZES) & REFUSED and not WIDER & (set(SIZES) | REFUSED)
    assert sorted(set(SIZES) | REFUSED | WIDER) == sorted(arch_names())


def compare(model, graph, x, T, dtype):
    logits, lifs = lif_outputs(model, x)
    if getattr(model.cfg, "projection", "conv") == "linear":  # Spikformer's CIFAR code: blocks on [T, B, N, C]
        lifs = {k: (v.transpose(-1, -2) if k.startswith("block.") else v) for k, v in lifs.items()}
    out, rec = simulate(graph, x, T=None if x.dim() == 5 else T, record=True, dtype=dtype)
    sim_logits = reduce_output(graph, out)
    for name, s in list(lifs.items()):  # a LIF the graph holds once per token (SDSA's talking_heads_lif)
        if s.numel() != rec[name].numel():
            r = rec[name]
            lifs[name] = s.reshape(*r.shape[:3], *([1] * (r.dim() - 3))).expand_as(r)
    mismatches = {name: int((s.reshape(rec[name].shape) != rec[name]).sum()) for name, s in lifs.items()}
    rel = float((sim_logits - logits).abs().max() / logits.abs().max())
    return lifs, mismatches, rel


@pytest.mark.parametrize("arch", sorted(SIZES))
def test_round_trip_identical_spikes_float64(arch):
    img, T = SIZES[arch]
    model = random_model(arch, img, T)
    x = random_input(model, img, T, batch=2)
    graph = to_nir(model, input_shape=(model.cfg.in_channels, img, img), dtype=np.float64)
    lifs, mismatches, rel = compare(model.double(), graph, x.double(), T, torch.float64)
    n_lif = sum(isinstance(n, nir.LIF) for n in graph.nodes.values())
    assert n_lif == len(lifs) > 0, (n_lif, len(lifs))
    assert sum(mismatches.values()) == 0, {k: v for k, v in mismatches.items() if v}
    assert rel < 1e-5
    # activity is non-trivial: every LIF fires somewhere and none fires everywhere
    rates = {name: float(s.mean()) for name, s in lifs.items()}
    assert all(0 < r < 1 for r in rates.values()), rates


@pytest.mark.parametrize("arch", ["spikingformer-digits", "spikformer-digits", "sew-resnet-digits-iand"])
def test_float32_file_round_trip(arch, tmp_path):
    img, T = SIZES[arch]
    model = random_model(arch, img, T, seed=1)
    x = random_input(model, img, T, batch=8, seed=1)
    graph = read_graph(write_graph(to_nir(model), tmp_path / "model.nir"))
    _, mismatches, rel = compare(model, graph, x, T, torch.float32)
    assert sum(mismatches.values()) == 0
    assert rel < 1e-5
    # the float32 file is the float64 fold rounded once
    g64 = to_nir(model, dtype=np.float64)
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Conv2d):
            assert np.array_equal(node.weight, g64.nodes[name].weight.astype(np.float32))


@pytest.mark.parametrize("arch", ["spikingformer-digits", "spikformer-digits"])
def test_expanded_attention_is_standard_and_exact(arch, tmp_path):
    img, T = SIZES[arch]
    model = random_model(arch, img, T)
    x = random_input(model, img, T, batch=2)
    graph = to_nir(model, expand_attention=True, dtype=np.float64)
    kinds = {type(n).__name__ for n in graph.nodes.values()}
    assert kinds <= {"Input", "Output", "Conv1d", "Conv2d", "LIF", "SumPool2d", "Threshold", "Flatten", "Affine"}
    assert "NIRGraph" not in kinds
    _, mismatches, rel = compare(model.double(), graph, x.double(), T, torch.float64)
    assert sum(mismatches.values()) == 0 and rel < 1e-5
    # the file reads back with nir's type check
    back = nir.read(write_graph(graph, tmp_path / "expanded.nir"))
    assert len(back.nodes) == len(graph.nodes)


def test_trained_digits_model_round_trip(trained_digits_model):
    """The trained demo model on real digits test images: identical spikes at every LIF (float64 file and
    simulation), logits within 1e-5, and the float32 file predicts the same classes."""
    import copy

    from neurodeploy.training import digits_split

    x = digits_split()[2][:64]
    model = copy.deepcopy(trained_digits_model)  # the fixture is shared: never convert it in place
    graph = to_nir(model, dtype=np.float64)
    lifs, mismatches, rel = compare(model.double(), graph, x.double(), model.T, torch.float64)
    assert sum(mismatches.values()) == 0, {k: v for k, v in mismatches.items() if v}
    assert rel < 1e-5
    assert all(0 < float(s.mean()) < 1 for s in lifs.values())
    out32 = reduce_output(graph, simulate(to_nir(trained_digits_model), x, T=trained_digits_model.T))
    with torch.no_grad():
        assert torch.equal(out32.argmax(1), trained_digits_model(x).argmax(1))
