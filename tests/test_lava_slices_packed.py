"""Lava == our engine at full depth for packed attention with the residual stream built once (issue 28):
full-depth spikingformer-cifar10-4-384 (random weights, BatchNorm weights x8 so that every block is active) at
16x16 input (N = 16 tokens: the smallest input at which the packed schedule packs, 3 digits of 7 bits per
word, j-chunks of 4 channels), ``attention_schedule="packed"``, one random image, all T + latency steps.

As in ``tests/test_lava_slices.py`` (the argument is in neurodeploy/lower/slices.py): the network is cut into
slices fed with the messages their outside sources sent in our engine's run of the WHOLE network.  The cut is
exact on every slice of the partition (engine); Lava runs the slices that hold the packed constructs of all
four blocks (vpack, the two ProdNeuron stages, counts, words, floor shifts, digits and the attention LIF that
reads them) and must give that whole-network run's s, u, v bit for bit.  (The stream relays, convs and LIFs
around them are the constructs ``tests/test_lava_slices.py`` checks in Lava at full depth; a Lava run of every
slice of this network takes minutes on 2 cores.)"""
import pytest
import torch

from neurodeploy.lower.loihi2 import lower_graph
from neurodeploy.lower.slices import cut_network, partition, replay_inputs
from neurodeploy.sim import simulate

from simresults import assert_same

PACKED = ("vpack", "p1", "counts", "p2", "words", "shift1", "shift2", "digits")


@pytest.fixture(scope="module")
def cifar16_packed():
    from neurodeploy.exporters import to_nir
    from testmodels import active_cifar10
    model = active_cifar10(16)
    net, _ = lower_graph(to_nir(model), input_range=(-1.0, 1.0), attention_schedule="packed")
    x = (torch.rand(1, 3, 16, 16) * 2 - 1).numpy()
    inputs = {k: v.numpy() for k, v in net.encode_inputs(x).items()}
    steps = int(net.metadata["time_steps"]) + int(net.metadata["latency"])
    ref = simulate(net, inputs, steps, record="all")
    return net, inputs, steps, ref


def _attention_slices(net):
    """Per block: the packed populations of its attention op and the attention LIF that reads the digits."""
    out = []
    for b in range(4):
        op = f"block.{b}.attn.attention"
        out.append([f"{op}.{x}" for x in PACKED] + [f"block.{b}.attn.attn_lif"])
    names = {p.name for p in net.populations}
    assert all(n in names for s in out for n in s)
    return out


@pytest.mark.slow
def test_packed_at_full_depth_is_active_and_every_cut_is_exact(cifar16_packed):
    net, inputs, steps, ref = cifar16_packed
    ops = net.metadata["attention_graded"]
    assert [(o["schedule"], o["digit_bits"], o["digits_per_word"], o["j_chunk"], o["tokens"]) for o in ops] == \
        [("packed", 7, 3, 4, 16)] * 4
    assert sum(p.name.endswith(".stream") for p in net.populations) == 8
    # T 4 + latency 65: 4 blocks x PACKED_LATENCY 7 added; the head's token sums take two steps (runs of tokens, then their sums)
    assert steps == 69 and net.metadata["attention_latency_added"] == 28
    # every block's packed words carry several nonzero digits, and every attention LIF spikes
    for b in range(4):
        words = ref[f"block.{b}.attn.attention.words"]["s"]
        assert (words >> 7).max() > 0 and (words & 127).max() > 0, b
        assert ref[f"block.{b}.attn.attn_lif"]["s"].sum() > 0, b
    slices = partition(net, 40)
    assert sorted(n for s in slices for n in s) == sorted(p.name for p in net.populations)
    for s in slices + _attention_slices(net):
        piece = cut_network(net, s)
        rec = [m for m in s if net.pop(m).input_kind != "bias"]
        got = simulate(piece, replay_inputs(piece, ref, inputs), steps, record=rec)
        assert_same(got, {name: ref[name] for name in rec})


@pytest.mark.slow
@pytest.mark.lava
def test_lava_equals_engine_on_packed_attention_at_full_depth(cifar16_packed):
    from neurodeploy.lava.slices import check_slices
    net, inputs, steps, ref = cifar16_packed
    reps = check_slices(net, inputs, steps, ref, _attention_slices(net))
    bad = [(r["members"][0], r["mismatch"]) for r in reps if r["mismatch"]]
    assert not bad, bad
