"""Partial-sum relays (lowering pass ``split_fan_in``, issue 11): a neuron that reads more source neurons than
one Loihi 2 core gives it reads partial sums instead.  With weight_exp >= 0 the readout's input is exactly the
unsplit one, one step later; Lava equals our engine on the split network; the CIFAR Spikingformer's readout is
split (test_lower_scale.py) and its chip fit is found (no neuron above the core limit)."""
import copy

import numpy as np
import pytest

from neurodeploy.lower.balance import balance_network
from neurodeploy.lower.fan_in import split_fan_in
from neurodeploy.lower.network import LoweredNetwork, Population, Synapse
from neurodeploy.sim import simulate

SIZES = (50, 30, 20)


def _net(weight_exp=0, seed=0):
    rng = np.random.default_rng(seed)
    pops = [Population(f"in{i}", (n,), kind="input", input_kind="spikes") for i, n in enumerate(SIZES)]
    pops.append(Population("readout", (4,), kind="readout", du=4095, dv=0, vth=1 << 17))
    syn = [Synapse(f"readout<-in{i}", f"in{i}", "readout", "dense" if i != 1 else "sparse",
                   rng.integers(-255, 255, size=(4, n)) * (rng.random((4, n)) < (1 if i != 1 else 0.8)),
                   weight_exp=weight_exp) for i, n in enumerate(SIZES)]
    net = LoweredNetwork(populations=pops, synapses=syn, outputs=["readout"])
    balance_network(net, None)
    return net


def _x(T=10, B=3, seed=1):
    rng = np.random.default_rng(seed)
    return {f"in{i}": (rng.random((T, B, n)) < 0.5).astype(np.int64) for i, n in enumerate(SIZES)}


def test_bins_hold_at_most_max_fan_in_and_record_the_split():
    net = split_fan_in(_net(), max_fan_in=40)
    net.validate()
    parts = net.metadata["fan_in_splits"]["readout"]
    # 50 -> 40 + 10, 30, 20: first fit gives [40], [10, 30], [20]
    assert parts == ["readout.partial0", "readout.partial1", "readout.partial2"]
    cols = {p: sorted((s.src, int(s.weights.indices.min()), int(s.weights.indices.max())) for s in net.synapses
                      if s.dst == p) for p in parts}
    assert cols == {"readout.partial0": [("in0", 0, 39)], "readout.partial1": [("in0", 40, 49), ("in1", 0, 29)],
                    "readout.partial2": [("in2", 0, 19)]}
    assert {s.src for s in net.synapses if s.dst == "readout"} == set(parts)
    assert net.metadata["latency"] == 2
    # under the limit: nothing changes
    small = split_fan_in(_net(), max_fan_in=100)
    assert "fan_in_splits" not in small.metadata and len(small.synapses) == 3


def test_split_readout_equals_unsplit_one_step_later():
    x = _x()
    a = simulate(_net(), x, 11, record=["readout"])["readout"]
    b = simulate(split_fan_in(_net(), max_fan_in=40), x, 11, record=["readout"])["readout"]
    assert np.abs(a["v"]).max() > 1000
    assert np.array_equal(a["v"][:-1], b["v"][1:]) and np.array_equal(a["u"][:-1], b["u"][1:])


def test_negative_weight_exp_floors_per_chunk_at_most_one_unit_each():
    x = _x()
    a = simulate(_net(weight_exp=-3), x, 11, record=["readout"])["readout"]
    b = simulate(split_fan_in(_net(weight_exp=-3), max_fan_in=40), x, 11, record=["readout"])["readout"]
    # u = a_in << 6 each step (du 4095): 4 chunks where there were 3 groups -> at most 1 unit of a_in per step
    du = (b["u"][1:] - a["u"][:-1]) >> 6
    assert du.max() <= 1 and du.min() >= -1 and np.abs(a["u"]).max() > 1000


def _lava_equals_engine(net, x, steps=11):
    from neurodeploy.lava.run import run_lava
    x = {k: v[:, :1] for k, v in x.items()}
    ours = simulate(net, x, steps, record="all")
    lava = run_lava(net, x, steps, record="all")
    for name in ours:
        for key in ours[name]:
            assert np.array_equal(ours[name][key], lava[name][key]), (name, key)


@pytest.mark.lava
def test_lava_equals_engine_on_a_split_network():
    _lava_equals_engine(split_fan_in(_net(weight_exp=-2), max_fan_in=40), _x())


def _conv_net(seed=0):
    """Three conv sources (2 of them 3x3 over 4 channels: fan-in 36; one 1x1: 4) into one LIF."""
    rng = np.random.default_rng(seed)
    shape = (4, 6, 6)
    pops = [Population(f"c{i}", shape, kind="input", input_kind="spikes") for i in range(3)]
    pops.append(Population("lif", shape, du=3000, dv=1500, vth=40))
    syn = [Synapse("lif<-c0", "c0", "lif", "conv", rng.integers(-9, 12, (4, 4, 3, 3)), padding=(1, 1)),
           Synapse("lif<-c1", "c1", "lif", "conv", rng.integers(-9, 12, (4, 4, 3, 3)), padding=(1, 1)),
           Synapse("lif<-c2", "c2", "lif", "conv", rng.integers(-9, 12, (4, 4, 1, 1)))]
    net = LoweredNetwork(populations=pops, synapses=syn, outputs=["lif"])
    balance_network(net, None)
    return net


def _cx(T=10, B=2, seed=3):
    rng = np.random.default_rng(seed)
    return {f"c{i}": (rng.random((T, B, 4, 6, 6)) < 0.4).astype(np.int64) for i in range(3)}


def test_conv_groups_move_whole_and_stay_exact():
    net = split_fan_in(_conv_net(), max_fan_in=40)
    net.validate()
    parts = net.metadata["fan_in_splits"]["lif"]
    # 36 + 36 + 4: first fit gives [c0, c2], [c1]
    assert {p: sorted(s.name for s in net.synapses if s.dst == p) for p in parts} == {
        "lif.partial0": ["lif<-c0", "lif<-c2"], "lif.partial1": ["lif<-c1"]}
    assert all(s.kind == "conv" for s in net.synapses if s.dst in parts)
    x = _cx()
    a = simulate(_conv_net(), x, 11, record=["lif"])["lif"]
    b = simulate(net, x, 11, record=["lif"])["lif"]
    assert int(a["s"].sum()) > 50
    for key in "suv":
        assert np.array_equal(a[key][:-1], b[key][1:]), key


@pytest.mark.lava
def test_lava_equals_engine_on_split_conv_groups():
    _lava_equals_engine(split_fan_in(_conv_net(), max_fan_in=40), _cx())


@pytest.mark.lava
def test_split_signs_with_a_split_fan_in_stays_sign_pure_and_lava_equals_engine():
    """lower_graph(split_signs=True) on a neuron that reads more than a core gives it (7,000 inputs, mixed
    signs): the sign split comes first, the fan-in split then cuts the excitatory and the inhibitory group
    into partial sums; every group stays one-signed, and Lava equals the engine."""
    import nir

    from neurodeploy.lower.loihi2 import lower_graph
    rng = np.random.default_rng(4)
    n_in, n = 7000, 3
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([n_in])}),
                            "fc": nir.Affine(weight=rng.normal(0, 1, (n, n_in)).astype(np.float32),
                                             bias=np.zeros(n, np.float32)),
                            "lif": nir.LIF(tau=np.full(n, 4e-4, np.float32), r=np.ones(n, np.float32),
                                           v_leak=np.zeros(n, np.float32), v_threshold=np.full(n, 20.0, np.float32)),
                            "output": nir.Output(output_type={"output": np.array([n])})},
                     edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
                     metadata={"neurodeploy.input_domain": "binary", "neurodeploy.time_steps": 6})
    plain, _ = lower_graph(g)
    split, _ = lower_graph(g, split_signs=True)
    assert plain.metadata.get("fan_in_splits") and split.metadata.get("fan_in_splits")
    chip = [s for s in split.synapses if s.kind in ("dense", "sparse")]
    assert len(chip) > len([s for s in plain.synapses if s.kind in ("dense", "sparse")])
    for s in chip:
        w = s.weights.toarray() if hasattr(s.weights, "toarray") else np.asarray(s.weights)
        assert not ((w > 0).any() and (w < 0).any()), s.name
    inp = next(p for p in split.populations if p.kind == "input")
    x = {inp.name: (rng.random((6, 1, n_in)) < 0.3).astype(np.int64)}
    steps = 6 + split.metadata["latency"]
    ours = simulate(split, x, steps, record="all")
    assert ours["lif"]["s"].any()
    _lava_equals_engine(split, x, steps)


def _wide_conv_net(groups=1, seed=5):
    """A 3x3 conv over 8 channels (fan-in 72, or 36 with 2 groups; stride 2, padding 1) into a graded stream
    relay, a 1x1 conv into the same relay, and a LIF that reads the relay one-to-one (as the residual stream's
    readers do)."""
    rng = np.random.default_rng(seed)
    pops = [Population("x", (8, 7, 7), kind="input", input_kind="spikes"),
            Population("y", (6, 4, 4), kind="input", input_kind="spikes"),
            Population("stream", (6, 4, 4), kind="relay"),
            Population("lif", (6, 4, 4), du=2000, dv=3000, vth=30)]
    syn = [Synapse("stream<-x", "x", "stream", "conv", rng.integers(-20, 21, (6, 8 // groups, 3, 3)),
                   stride=(2, 2), padding=(1, 1), groups=groups),
           Synapse("stream<-y", "y", "stream", "conv", rng.integers(-20, 21, (6, 6, 1, 1))),
           Synapse("lif<-stream", "stream", "lif", "sparse", np.eye(96, dtype=np.int64), graded=True)]
    net = LoweredNetwork(populations=pops, synapses=syn, outputs=["lif"])
    balance_network(net, None)
    return net


def _wx(T=10, B=2, seed=6):
    rng = np.random.default_rng(seed)
    return {"x": (rng.random((T, B, 8, 7, 7)) < 0.4).astype(np.int64),
            "y": (rng.random((T, B, 6, 4, 4)) < 0.4).astype(np.int64)}


@pytest.mark.parametrize("groups,cap,P", [(1, 40, 2), (1, 20, 4), (2, 20, 2)])
def test_a_wide_conv_into_a_relay_is_cut_by_input_channels_exactly(groups, cap, P):
    """The stream relay's conv reads more inputs per neuron than the cap: it becomes one conv with P x groups
    groups into a relay of P x 6 channels (each neuron reads 72 / P or 36 / P inputs), summed into the stream
    relay by a graded group of P connections per neuron; the stream relay and its LIF reader get exactly the
    unsplit integers one step later."""
    net = split_fan_in(_wide_conv_net(groups), max_fan_in=cap)
    net.validate()
    parts = net.metadata["fan_in_splits"]["stream"]
    assert parts == ["stream.partial0", "stream.partial1"]      # the 1x1 conv in a bin, the 3x3 cut
    wide = next(s for s in net.synapses if s.dst == "stream.partial1")
    assert wide.kind == "conv" and wide.groups == groups * P and np.shape(wide.weights) == (6 * P, 8 // groups // P, 3, 3)
    assert net.pop("stream.partial1").shape == (6 * P, 4, 4)
    summ = next(s for s in net.synapses if s.src == "stream.partial1")
    assert summ.graded and np.all(np.diff(summ.weights.indptr) == P) and set(summ.weights.data) == {1}
    if (groups, P) == (1, 2):       # the hand example of docs/lowering.md
        w = np.asarray(_wide_conv_net().synapses[0].weights)
        assert np.array_equal(np.asarray(wide.weights)[7], w[1, 4:8])
        assert [summ.weights.getrow(1 * 16 + s_).indices.tolist() for s_ in (0, 5)] == [[16, 7 * 16], [21, 7 * 16 + 5]]
    x = _wx()
    a = simulate(_wide_conv_net(groups), x, 12, record=["stream", "lif"])
    b = simulate(net, x, 12, record=["stream", "lif"])
    assert int(a["lif"]["s"].sum()) > 50 and np.abs(a["stream"]["s"]).max() > 100
    for pop in ("stream", "lif"):
        for key in a[pop]:
            assert np.array_equal(a[pop][key][:-1], b[pop][key][1:]), (pop, key)


@pytest.mark.lava
@pytest.mark.parametrize("groups", [1, 2])
def test_lava_equals_engine_on_a_conv_cut_by_input_channels(groups):
    _lava_equals_engine(split_fan_in(_wide_conv_net(groups), max_fan_in=20), _wx(), steps=12)


def test_partial_sums_of_sources_far_apart_travel_as_one_chain(monkeypatch):
    """Sources at latencies 0 .. 8 with the delay limit lowered to 2 steps: the bins are packed in the order of
    their sources' latency, each within one delay of its first source, and each bin reads the previous one
    (the carry) when that keeps it within the readout's latency; the readout reads the chain's end only.  The
    delay relays then hold one partial sum across each gap instead of one copy per bin or source, the
    readout's latency is the parallel bins', and its integers are theirs (Lava equal, too: lava test below)."""
    from neurodeploy.lower import balance, fan_in
    from neurodeploy.lower.passes import run_passes
    from test_delay_relays import _inputs, _net as _deep

    monkeypatch.setattr(balance, "MAX_DELAY", 2)
    monkeypatch.setattr(fan_in, "MAX_DELAY", 2)
    chained = run_passes(_deep(), ["split_fan_in", "balance_delays"], max_fan_in=40, bin_fan_in=20)
    monkeypatch.setattr(fan_in, "_carry_chain", lambda last: [None] * len(last))
    parallel = run_passes(_deep(), ["split_fan_in", "balance_delays"], max_fan_in=40, bin_fan_in=20)
    parts = chained.metadata["fan_in_splits"]["out"]
    lat = chained.latency()
    into = {p: sorted(s.src for s in chained.synapses if s.dst == p and ".partial" in s.src) for p in parts + ["out"]}
    # every bin after the first reads the one before it (through its delay relays where the gap is long)
    carried = [p for p in parts if into[p]]
    assert len(carried) >= 2 and all(src.startswith(f"out.partial{int(p[-1]) - 1}") for p in carried
                                      for src in into[p])
    assert len(into["out"]) < len(parts)
    for p in parts:     # no chunk waits in a delay relay: each bin is within one delay of its sources
        assert all(".delay" not in s.src for s in chained.synapses if s.dst == p and ".partial" not in s.src)
    assert chained.metadata["latency"] == parallel.metadata["latency"] == lat["out"]

    def relay_neurons(net):
        return sum(net.pop(r).size for c in net.metadata.get("delay_relays", {}).values() for r in c)
    assert relay_neurons(chained) < relay_neurons(parallel)
    x = _inputs(T=14)
    a = simulate(chained, x, 14, record=["out"])["out"]
    b = simulate(parallel, x, 14, record=["out"])["out"]
    assert np.abs(a["v"]).max() > 100
    for k in "suv":
        assert np.array_equal(a[k], b[k]), k


@pytest.mark.lava
def test_lava_equals_engine_on_a_chain_of_partial_sums(monkeypatch):
    from neurodeploy.lower import balance, fan_in
    from neurodeploy.lower.passes import run_passes
    from test_delay_relays import _inputs, _net as _deep

    monkeypatch.setattr(balance, "MAX_DELAY", 2)
    monkeypatch.setattr(fan_in, "MAX_DELAY", 2)
    net = run_passes(_deep(), ["split_fan_in", "balance_delays"], max_fan_in=40, bin_fan_in=20)
    assert any(s.src.startswith("out.partial") and s.dst.startswith("out.partial") for s in net.synapses) or \
        any(".partial" in s.src and ".delay" in s.src and s.dst.startswith("out.partial") for s in net.synapses)
    _lava_equals_engine(net, _inputs(T=14), 14)
