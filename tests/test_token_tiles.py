"""Token-tiled attention at a lower sample rate (``attention_schedule`` tiled-8 / tiled-4 / tiled-2 / serial;
docs/lowering.md, "Token tiles"): one bank of product neurons serves the M = N / G token tiles of every model step
at steps k T apart, the Q / K / V spikes gated to the sample's T steps by a sample clock built from LIFs.  The
attention LIF gets the parallel form's integers in its own window (s, u, v), whatever the network does outside
it; samples chained one period apart do not meet; Lava equals our engine on every population."""
import numpy as np
import pytest

from neurodeploy.errors import UnsupportedError
from neurodeploy.lower.attention_graded import (CLOCK_BIAS, TILE_TOKENS, attention_to_graded, schedule_cost,
                                                 tiled_cost, tiled_latency)
from neurodeploy.lower.chain import chain_network
from neurodeploy.lower.network import Attention, LoweredNetwork, Population
from neurodeploy.lower.network_file import load_network, save_network
from neurodeploy.sim import Engine, simulate

from test_attention_schedules import OPS, RE_OPS, _inputs, _lava_chained_equals_engine, _lava_equals_engine, _ops_net

TILED = tuple(TILE_TOKENS)
#: ops whose token count is not a multiple of every tile (30 = 3 x 8 + 6; 7 tokens: 7 serial tiles, not a power of 2)
ODD = [("o1", 2, 3, 7, 2), ("o2", 1, 4, 6, -3)]


def _tiled(schedule, ops=OPS + RE_OPS, T=3, seed=0):
    proc = _ops_net(seed=seed, ops=ops)
    proc.metadata["time_steps"] = T
    return proc, attention_to_graded(proc), attention_to_graded(proc, schedule=schedule)


def _window(res, net, name, T):
    lat = net.latency()[name]
    return {k: res[name][k][lat:lat + T] for k in "suv"}


@pytest.mark.parametrize("schedule", TILED)
def test_tiled_equals_parallel_in_the_window_whatever_comes_after(schedule):
    # the inputs go on after the sample's T steps (like a biased LIF or a held image): the clock's gates keep
    # those spikes out of the bank, so every tile meets only its own model step
    T = 3
    proc, par, tl = _tiled(schedule, ops=OPS + RE_OPS + ODD, T=T)
    P = tl.metadata["sample_clock"]["period"]
    assert P == T + tl.metadata["latency"]
    x = _inputs(proc, P, 2, seed=5)
    a = simulate(par, x, T + par.metadata["latency"], record=proc.outputs)
    c = simulate(tl, x, P, record=proc.outputs)
    spikes = 0
    for name in proc.outputs:
        want, got = _window(a, par, name, T), _window(c, tl, name, T)
        for k in "suv":
            assert np.array_equal(want[k], got[k]), (schedule, name, k)
        assert want["u"].any()
        spikes += int(want["s"].sum())
    assert spikes > 20
    # outside the window the tiled LIF does see other tiles: the window is what is compared, not the run
    assert any(not np.array_equal(a[n]["v"][-1], c[n]["v"][-1]) for n in proc.outputs)


def test_tiled_costs_and_latency_equal_the_built_records():
    for schedule in TILED:
        for op in OPS + RE_OPS + ODD:
            name, H, dh, N, w = op
            proc, par, tl = _tiled(schedule, ops=[op], T=4)
            G = min(TILE_TOKENS[schedule], N)
            c = tiled_cost(H, N, H * dh, G, 4)
            assert c == {k: v for k, v in schedule_cost(schedule, H, N, H * dh, T=4).items() if k != "schedule"}
            mine = [p for p in tl.populations if p.name.startswith(name + ".") and p.name != f"{name}.out"]
            built = {k: sum(p.size for p in mine if p.kind == k) for k in ("prod", "graded_vec", "lif")}
            assert built == {"prod": c["product_neurons"], "graded_vec": c["graded_vec_neurons"],
                             "lif": c["gate_neurons"]}, (schedule, name)
            # the op's own added steps, what the balancing pass made of it: from the gates (one hop, as the
            # process op's) to the attention LIF (here the gates wait one step for the clock's window: Q, K, V
            # are inputs; in a model they are deeper than the window)
            lat = tl.latency()
            assert lat[f"{name}.out"] - lat[f"{name}.gate_q"] == c["latency_added_steps"] == \
                tiled_latency(N, G, 4), (schedule, name)
            assert c["tiles"] == -(-N // G)
    # cifar10-4-384's shapes (12 heads, 64 tokens, 384 channels): the bank shrinks with the tile
    par = schedule_cost("parallel", 12, 64, 384)["product_neurons"]
    assert par == 2 * 12 * 64 * 32 * 32
    # one moving count (no count gate, no doubling sums): P2's bank is the only ProdNeuron population
    assert schedule_cost("tiled-4", 12, 64, 384, T=4)["product_neurons"] == 12 * 32 * 32 * 4
    assert schedule_cost("tiled-4", 12, 64, 384, T=4)["graded_vec_neurons"] == 2 * 12 * 32 * 32 + 12 * 32 * 4
    assert schedule_cost("tiled-4", 12, 64, 384, T=4)["latency_added_steps"] == 7 + 2 * 15 * 4
    # T = 64: the loop would need a delay of 63: the count gate and two doubling sums of log2 16 = 4 stages
    assert schedule_cost("tiled-4", 12, 64, 384, T=64)["product_neurons"] == 12 * 32 * 32 * 4 + 12 * 32 * 32
    assert schedule_cost("tiled-4", 12, 64, 384, T=64)["graded_vec_neurons"] == 9 * 12 * 32 * 32 + 12 * 32 * 4
    assert schedule_cost("tiled-4", 12, 64, 384, T=64)["latency_added_steps"] == 7 + 2 * 4 + 2 * 15 * 64


@pytest.mark.parametrize("schedule", ["tiled-2", "serial"])
def test_long_windows_keep_the_doubling_sums_and_equal_parallel(schedule):
    # T = 64: the moving count's loop (delay T - 1 = 63) does not fit a synapse; the count gate and the two
    # doubling sums (with delay relays) give the same integers in the window
    T = 64
    proc, par, tl = _tiled(schedule, ops=ODD, T=T)
    names = {p.name for p in tl.populations}
    assert {"o1.cgate", "o1.chold.s1", "o2.cgate"} <= names and not any(s.src == s.dst for s in tl.synapses)
    c = tiled_cost(2, 7, 6, TILE_TOKENS[schedule], T)
    assert sum(tl.pop(n).size for n in names if n.startswith("o1.") and tl.pop(n).kind == "graded_vec") == \
        c["graded_vec_neurons"]
    P = tl.metadata["sample_clock"]["period"]
    x = _inputs(proc, P, 1, seed=6)
    a = simulate(par, x, T + par.metadata["latency"], record=proc.outputs)
    got = simulate(tl, x, P, record=proc.outputs)
    for name in proc.outputs:
        for k in "suv":
            assert np.array_equal(_window(a, par, name, T)[k], _window(got, tl, name, T)[k]), (name, k)
    assert all(_window(a, par, n, T)["u"].any() for n in proc.outputs)
    assert sum(int(_window(a, par, n, T)["s"].sum()) for n in proc.outputs) > 0


def test_sample_clock_spikes_once_a_period_and_opens_T_steps():
    T = 3
    _, _, tl = _tiled("tiled-4", ops=OPS[:1], T=T)
    P = tl.metadata["sample_clock"]["period"]
    pulse = tl.pop("clock.pulse")
    # v starts one step short of the threshold (P - 1) x 64 and gains 64 a step: a spike every P steps
    assert (pulse.vth, int(pulse.v_init), int(pulse.bias_mant), pulse.reset_interval) == \
        (P - 1, CLOCK_BIAS * (P - 1), CLOCK_BIAS, 0)
    x = _inputs(tl, 2 * P + 2, 1, seed=2)
    r = simulate(tl, x, 2 * P + 2, record=["clock.pulse", "clock.window"])
    assert np.flatnonzero(r["clock.pulse"]["s"][:, 0, 0]).tolist() == [0, P, 2 * P]
    assert np.flatnonzero(r["clock.window"]["s"][:, 0, 0]).tolist() == \
        list(range(1, T + 1)) + list(range(P + 1, P + T + 1)) + [2 * P + 1]


@pytest.mark.parametrize("schedule", ["tiled-2", "serial"])
def test_chained_samples_one_period_apart_equal_fresh_runs(schedule):
    # the deployment runs samples back to back, one every period (LIFReset at each window): sample 2's tiles
    # must not meet sample 1's, and the clock must open at sample 2's steps
    T = 3
    proc, _, tl = _tiled(schedule, ops=ODD, T=T)
    P = tl.metadata["sample_clock"]["period"]
    x1, x2 = _inputs(proc, P, 1, seed=7), _inputs(proc, P, 1, seed=8)
    chained = chain_network(tl, P)
    both = simulate(chained, {k: np.concatenate([x1[k], x2[k]]) for k in x1}, 2 * P, record=proc.outputs)
    for k, x in enumerate((x1, x2)):
        fresh = simulate(tl, x, P, record=proc.outputs)
        for name in proc.outputs:
            lat = tl.latency()[name]
            for key in "suv":
                assert np.array_equal(both[name][key][k * P + lat:k * P + lat + T], fresh[name][key][lat:lat + T]), \
                    (k, name, key)


def test_the_moving_count_is_the_one_loop_and_chains_only_when_the_period_covers_it():
    from dataclasses import replace
    from neurodeploy.lower.chain import carries_tail
    _, _, tl = _tiled("serial", ops=ODD, T=3)
    loops = [s for s in tl.synapses if s.src == s.dst]
    # one loop per op, T steps round (delay T - 1); o1: 7 tiles, each tile count leaves (2 x 7 - 1) x 3 = 39 later
    assert sorted(s.name for s in loops) == ["o1.counts<-o1.counts", "o2.counts<-o2.counts"]
    assert {s.balance_delay for s in loops} == {2}
    assert tl.metadata["finite_loops"] == {"o1.counts<-o1.counts": 39, "o2.counts<-o2.counts": 33}
    o1 = next(s for s in loops if s.src == "o1.counts")
    assert not carries_tail(tl, o1, 39) and carries_tail(tl, o1, 38)
    # a loop the lowering did not prove finite always carries a tail
    assert carries_tail(tl, replace(o1, name="another"), 10 ** 6)


def test_the_query_serializer_waits_without_a_relay():
    # cifar10's shape of the wait: 64 tokens, tiles of 4, T = 4: P2 reads the counts (M - 1) T = 60 steps late,
    # 63 steps after the serializers fire; Q's serializer is placed one step later (its tiles' skews, <= 60,
    # leave room), so no group needs more than 62 and no relay of it is built; exact as before
    T = 4
    proc, par, tl = _tiled("tiled-4", ops=[("o3", 1, 2, 64, 1)], T=T, seed=2)
    lat = tl.latency()
    assert tl.metadata["relay_free_populations"] == ["o3.ser_q"]
    assert lat["o3.ser_q"] == lat["o3.ser_k"] + 1 and lat["o3.p2"] - lat["o3.ser_q"] - 1 == 62
    assert not [p.name for p in tl.populations if p.name.startswith("o3.ser_q.delay")]
    assert max(s.balance_delay for s in tl.synapses if s.dst == "o3.ser_q") == 61
    P = tl.metadata["sample_clock"]["period"]
    x = _inputs(proc, P, 1, seed=9)
    a = simulate(par, x, T + par.metadata["latency"], record=["o3.out"])
    got = simulate(tl, x, P, record=["o3.out"])
    for k in "suv":
        assert np.array_equal(_window(a, par, "o3.out", T)[k], _window(got, tl, "o3.out", T)[k]), k
    assert _window(a, par, "o3.out", T)["u"].any()


def test_a_tiled_network_refuses_the_layer_synchronous_model_and_streaming():
    _, _, tl = _tiled("tiled-4", ops=OPS[:1])
    with pytest.raises(UnsupportedError, match="layer-synchronous model .* cannot run a token-tiled"):
        Engine(tl, pipelined=False).run(_inputs(tl, 3, 1), 3)
    assert "sample clock" in Engine(tl).stream_refusal()


def test_tiled_network_saves_and_loads_with_its_skews(tmp_path):
    _, _, tl = _tiled("tiled-2", ops=ODD)
    save_network(tl, tmp_path / "n.npz")
    back = load_network(tmp_path / "n.npz")
    assert [s.skew for s in back.synapses] == [s.skew for s in tl.synapses] and any(s.skew for s in tl.synapses)
    assert back.latency() == tl.latency()
    x = _inputs(tl, 40, 1, seed=3)
    a, b = simulate(tl, x, 40, record="all"), simulate(back, x, 40, record="all")
    assert all(np.array_equal(a[n][k], b[n][k]) for n in a for k in a[n])


def test_a_tiled_schedule_needs_the_time_steps():
    proc = _ops_net(ops=OPS[:1])
    with pytest.raises(UnsupportedError, match="needs the number of time steps .* give --steps N"):
        attention_to_graded(proc, schedule="tiled-4")


def test_worked_example_of_the_docs():
    # docs/lowering.md "Token tiles": 1 head, dh 2, N 2, serial (G 1, M 2), T 1, weight 3
    Q, K, V = (np.array(m) for m in ([[1, 0], [1, 1]], [[1, 1], [0, 1]], [[0, 1], [1, 1]]))
    pops = [Population(n, (2, 2), kind="input", input_kind="spikes") for n in "qkv"]
    pops.append(Population("o", (2, 2), du=4095, dv=0, vth=100000))        # integrates, never spikes
    net = LoweredNetwork(populations=pops, attention=[Attention("att", "q", "k", "v", "o", 1, 2, 2, weight=3)],
                         metadata={"time_steps": 1})
    g = attention_to_graded(net, schedule="serial")
    lat = g.latency()
    P = g.metadata["sample_clock"]["period"]
    assert (P, lat["att.gate_q"], lat["att.ser_k"], lat["att.p1"], lat["att.pc"], lat["att.counts"],
            lat["att.p2"], lat["att.tsum"], lat["o"]) == (12, 2, 3, 4, 5, 6, 8, 9, 11)
    assert not any(p.name.startswith(("att.cgate", "att.chold")) for p in g.populations)
    # the moving count: its loop 1 step, each tile count leaving it (2M - 1) T = 3 steps after it came
    loop = {s.name: s for s in g.synapses if s.dst == "att.counts"}
    assert (loop["att.counts<-att.counts"].balance_delay, loop["att.counts<-pc.out"].balance_delay,
            loop["att.counts<-pc.out"].weights.tolist()) == (0, 3, [-1])
    assert g.metadata["finite_loops"] == {"att.counts<-att.counts": 3}
    x = {"q": Q[None, None], "k": K[None, None], "v": V[None, None]}
    r = simulate(g, x, P, record="all")
    s = {n: r[n]["s"][:, 0] for n in r}
    # the serializers: token 0 at their step 3, token 1 one period of T = 1 later
    assert s["att.ser_k"][3].tolist() == [1, 0] and s["att.ser_k"][4].tolist() == [1, 1]      # K[:, 0], K[:, 1]
    # tile counts K[:, m] V[:, m]^T at steps 5, 6; the moving count adds them (6, 7), holds C = K V^T while no
    # tile comes or goes (8), drops tile 0 three steps after it came (9) and tile 1 the step after (10: empty)
    assert s["att.pc"][5].tolist() == [0, 1, 0, 0] and s["att.pc"][6].tolist() == [1, 1, 1, 1]
    assert [s["att.counts"][t].tolist() for t in range(6, 11)] == \
        [[0, 1, 0, 0], [1, 2, 1, 1], [1, 2, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]]
    assert (K @ V.T).reshape(-1).tolist() == [1, 2, 1, 1] and not s["att.counts"][11:].any()
    # P2 reads the count (M - 1) T = 1 step late: C at both query tiles (steps 8, 9 -> tsum 9, 10):
    # sum_j Q[j, n] C[j, c]
    assert s["att.tsum"][9].tolist() == (Q[:, 0] @ (K @ V.T)).tolist() == [2, 3]
    assert s["att.tsum"][10].tolist() == (Q[:, 1] @ (K @ V.T)).tolist() == [1, 1]
    # the attention LIF: reset at its step 0 (11), when tile 0 (delayed 1) and tile 1 arrive together; the step
    # before, tile 1's select brought it tile 0's sums (the pipeline fill: the reset discards it)
    v = r["o"]["v"][:, 0] // 64
    assert v[10].tolist() == [0, 6, 0, 9]
    assert v[11].reshape(2, 2).tolist() == (3 * (K @ V.T).T @ Q).tolist() == [[6, 3], [9, 3]]


@pytest.mark.lava
def test_lava_equals_engine_on_the_tiled_form_every_population():
    # serial on 7 and 6 tokens: 7 and 6 tiles (moving counts: a loop of T = 3 steps, tile counts leaving
    # 39 and 33 steps after they came), relays for delays > 62
    proc, _, tl = _tiled("serial", ops=ODD, T=3, seed=3)
    steps = tl.metadata["sample_clock"]["period"] + 3        # into the next period: the clock fires again
    x = _inputs(proc, steps, 1, seed=4)
    ours = _lava_equals_engine(tl, x, steps)
    assert ours["clock.pulse"]["s"].sum() == 2 and ours["o1.tsum"]["s"].max() > 1
    assert ours["o1.counts"]["s"].max() > 1         # the moving count holds several tiles' counts


@pytest.fixture(scope="module")
def cifar8_serial():
    """As ``tests/test_lava_slices.py``'s fixture (full-depth cifar10-4-384, random weights, BatchNorm weights
    x8, 8x8 input: 4 tokens), lowered with the serial schedule (4 tiles of one token a block); one image; our
    engine's run of one whole period with every population recorded."""
    import torch
    from neurodeploy.exporters import to_nir
    from neurodeploy.lower.loihi2 import lower_graph
    from testmodels import active_cifar10
    graph = to_nir(active_cifar10(8))
    par, _ = lower_graph(graph, input_range=(-1.0, 1.0))
    net, _ = lower_graph(graph, input_range=(-1.0, 1.0), attention_schedule="serial")
    x = (torch.rand(1, 3, 8, 8) * 2 - 1).numpy()
    inputs = {k: v.numpy() for k, v in net.encode_inputs(x).items()}
    steps = int(net.metadata["sample_clock"]["period"])
    ref = simulate(net, inputs, steps, record="all")
    return par, net, inputs, steps, ref


def test_full_depth_serial_equals_parallel_and_its_slices_are_exact(cifar8_serial):
    from neurodeploy.lower.slices import cut_network, partition, replay_inputs
    par, net, inputs, steps, ref = cifar8_serial
    T = int(net.metadata["time_steps"])
    # every LIF of the model (not the gates, serializers and clock) spikes as in the parallel form, in its window
    pref = simulate(par, inputs, T + int(par.metadata["latency"]), record="all")
    lp, lt = par.latency(), net.latency()
    model_lifs = [p.name for p in par.populations if p.kind in ("lif", "readout")]
    for name in model_lifs:
        for k in "suv":
            assert np.array_equal(pref[name][k][lp[name]:lp[name] + T], ref[name][k][lt[name]:lt[name] + T]), (name, k)
    assert sum(int(ref[n]["s"][lt[n]:lt[n] + T].sum()) for n in model_lifs) > 1000
    assert int(ref["block.3.attn.attn_lif"]["s"].sum()) > 0
    slices = partition(net, 40)
    for s in slices:
        piece = cut_network(net, s)
        rec = [m for m in s if net.pop(m).input_kind != "bias"]
        got = simulate(piece, replay_inputs(piece, ref, inputs), steps, record=rec)
        for name in rec:
            for key in ref[name]:
                assert np.array_equal(got[name][key], ref[name][key]), (name, key)


@pytest.mark.slow
@pytest.mark.lava
def test_lava_equals_engine_slice_by_slice_at_full_depth_serial(cifar8_serial):
    from neurodeploy.lava.slices import check_slices
    from neurodeploy.lower.slices import partition
    _, net, inputs, steps, ref = cifar8_serial
    # every new construct, as built in the first block (the clock, its delay relays, the gates, serializers,
    # banks, the moving count, the tile sums into the attention LIF) and the last attention LIF's slice; the
    # other blocks repeat them (the engine test above checks every slice; Lava 3.5 min for all of them here)
    new = [s for s in partition(net, 40) if any(m.startswith(("clock.", "block.0.attn.attention"))
                                                or m == "block.3.attn.attn_lif" for m in s)]
    assert {"clock.pulse", "clock.window", "block.0.attn.attention.counts", "block.3.attn.attn_lif"} <= \
        {m for s in new for m in s}
    assert any(s.src == s.dst == "block.0.attn.attention.counts" for s in net.synapses)
    reps = check_slices(net, inputs, steps, ref, new, conv_as_sparse=True)
    bad = [(r["members"][0], r["mismatch"]) for r in reps if r["mismatch"]]
    assert not bad, bad
    assert sum(len(r["members"]) for r in reps) >= 20


@pytest.mark.lava
@pytest.mark.slow
def test_trained_digits_tiled_in_lava_equals_engine(trained_digits_checkpoint):
    """The trained digits model with ``tiled-4`` (16 tokens: 4 tiles), two test images chained one period apart
    in one Lava run: every population's s, u, v equal our engine's (the clock, the off neuron that holds Q, K, V
    silent outside their window, serializers, banks, the moving count and the model's own LIFs)."""
    from neurodeploy.commands.simulate import load_graph
    from neurodeploy.lower.loihi2 import lower_graph
    from neurodeploy.training import digits_split
    _, _, x, _ = digits_split()
    x = x.numpy()
    net, _ = lower_graph(load_graph(str(trained_digits_checkpoint)), input_range=(float(x.min()), float(x.max())),
                         attention_schedule="tiled-4")
    P = net.metadata["sample_clock"]["period"]
    # the trained Q, K, V meet the operand gate's conditions: inhibited by the clock, no AND gates
    assert [o["gate"] for o in net.metadata["attention_graded"]] == ["inhibition"]
    assert not [p.name for p in net.populations if ".gate_" in p.name]
    inputs = {k: v.numpy() for k, v in net.encode_inputs(x[:2]).items()}
    lava = _lava_chained_equals_engine(net, inputs, chunk=P)
    assert lava["clock.pulse"]["s"].sum() == 2 and lava["block.0.attn.attention.tsum"]["s"].max() > 1
    # the moving count: a loop of T steps, less each tile count (2M - 1) T = 28 steps later (one group: no relay)
    cnt = "block.0.attn.attention.counts"
    loop = [s for s in net.synapses if s.src == s.dst == cnt]
    assert len(loop) == 1 and loop[0].balance_delay == int(net.metadata["time_steps"]) - 1
    assert net.metadata["finite_loops"] == {loop[0].name: 7 * int(net.metadata["time_steps"])}
    assert lava[cnt]["s"].max() > lava["block.0.attn.attention.pc"]["s"].max()     # more than one tile held
    off = lava["block.0.attn.attention.off"]["s"].reshape(-1)
    assert 0 < off.sum() < off.size      # silent in the windows, spiking around them


def _lif_operand_net(seed=0, ops=ODD, T=3, bias=200, du=4095):
    """``ops`` with Q, K, V as biased LIFs (du 4095) that read spike inputs through mixed-sign dense weights, one
    input per operand: they spike while the pipeline fills and after the sample's T steps (bias, inputs held),
    which the token tiles must not see.  Balanced, T model steps."""
    from neurodeploy.lower.balance import balance_network
    from neurodeploy.lower.network import Synapse
    rng = np.random.default_rng(seed)
    proc = _ops_net(seed=seed, ops=ops)
    pops, syns = [], list(proc.synapses)
    for p in proc.populations:
        if p.kind != "input":
            pops.append(p)
            continue
        D, N = p.shape
        pops.append(Population(f"{p.name}.in", (D, N), kind="input", input_kind="spikes"))
        pops.append(Population(p.name, (D, N), du=du, dv=int(rng.integers(0, 4096)), vth=4,
                               bias_mant=rng.integers(0, bias, size=(D, N)), source=p.name))
        w = rng.integers(-6, 9, size=(D * N, D * N)) * (rng.random((D * N, D * N)) < 0.3)
        syns.append(Synapse(f"{p.name}.syn", f"{p.name}.in", p.name, "dense", w.astype(np.int64)))
    net = LoweredNetwork(populations=pops, synapses=syns, attention=proc.attention, outputs=proc.outputs,
                         metadata={"time_steps": T})
    balance_network(net, T)
    return net


def test_operands_held_silent_by_the_clock_instead_of_and_gates():
    # docs/lowering.md "Token tiles", operand gate: one off neuron (NOT window) per op inhibits its Q, K, V LIFs
    # outside their window through one group each; no gate_x populations; in the window every population equals
    # the parallel form (s, u, v), outside it Q, K, V never spike (the parallel form's do: bias, held inputs)
    from neurodeploy.lower.fixed_point import lava_effective_weights
    from neurodeploy.lower.operand_gate import plan
    T = 3
    net = _lif_operand_net(T=T)
    par = attention_to_graded(net)
    for schedule in ("tiled-2", "serial"):
        tl = attention_to_graded(net, schedule=schedule)
        assert {r["gate"] for r in tl.metadata["attention_graded"]} == {"inhibition"}
        assert not [p.name for p in tl.populations if ".gate_" in p.name]
        assert tl.metadata["late_populations"] == ["o1.off", "o2.off"]
        lat, P = tl.latency(), tl.metadata["sample_clock"]["period"]
        syn = {g.name: g for g in tl.synapses}
        for name, H, dh, N, _ in ODD:
            # off sits one step before Q, K, V: its group has no delay (nothing waits in an empty delay line)
            assert lat[f"{name}.off"] == lat[f"{name}.q"] - 1
            for x in "qkv":
                g = syn[f"{name}.{x}<-{name}.off"]
                assert g.balance_delay == 0 and g.sign_mode == 3
                pl = plan(net, f"{name}.{x}")
                assert int(g.weights.toarray().min()) == -pl["m"] and g.weight_exp == pl["e"]
            # the inhibition covers the largest drive: the row's positive weights (as Lava uses them: mixed-sign
            # 8-bit weights lose their LSB) plus the bias
            g = syn[f"{name}.q.syn"]
            w = np.clip(lava_effective_weights(g.weights, g.sign_mode, g.num_weight_bits), 0, None).sum(1)
            need = (w + np.asarray(net.pop(f"{name}.q").bias_mant).reshape(-1) / 64.0).max()
            assert tl.metadata["operand_gates"][f"{name}.q"]["inhibition"] >= need
            c = tiled_cost(H, N, H * dh, min(TILE_TOKENS[schedule], N), T, inhibited=True)
            mine = [p for p in tl.populations if p.name.startswith(name + ".") and p.name != f"{name}.out"
                    and p.name[len(name) + 1:] not in "qkv" and not p.name.endswith(".in")]
            assert sum(p.size for p in mine if p.kind == "lif") == c["gate_neurons"]
            # (the process op itself is one hop from Q to the attention LIF)
            assert lat[f"{name}.out"] - lat[f"{name}.q"] - 1 == c["latency_added_steps"] == \
                tiled_latency(N, min(TILE_TOKENS[schedule], N), T, inhibited=True)
        x = _inputs(net, 2 * P, 2, seed=5)
        a = simulate(par, x, 2 * P, record="all")
        c = simulate(tl, x, 2 * P, record="all")
        lp = par.latency()
        outside = 0
        for p in par.populations:
            if p.kind != "lif" or p.name == "sink":
                continue
            for k in "suv":
                assert np.array_equal(a[p.name][k][lp[p.name]:lp[p.name] + T], c[p.name][k][lat[p.name]:lat[p.name] + T]), \
                    (schedule, p.name, k)
            if p.name.endswith((".q", ".k", ".v")):
                s = c[p.name]["s"].reshape(2 * P, -1).sum(1)
                win = np.zeros(2 * P, bool)
                win[lat[p.name]:lat[p.name] + T] = win[P + lat[p.name]:P + lat[p.name] + T] = True   # every period's
                assert s[win].sum() > 0 and s[~win].sum() == 0, (schedule, p.name)
                outside += int(a[p.name]["s"].reshape(2 * P, -1).sum(1)[lp[p.name] + T:P].sum())
        assert outside > 100        # the parallel form's operands do spike after the window


def test_operands_that_the_argument_does_not_cover_keep_their_and_gates():
    # du < 4095: u keeps part of the last window step's input, the bound of one step no longer holds
    net = _lif_operand_net(du=4000)
    tl = attention_to_graded(net, schedule="tiled-2")
    assert {r["gate"] for r in tl.metadata["attention_graded"]} == {"and"}
    assert {p.name for p in tl.populations if ".gate_" in p.name} == {f"{o}.gate_{x}" for o in ("o1", "o2")
                                                                       for x in "qkv"}
    assert "late_populations" not in tl.metadata


@pytest.mark.lava
def test_lava_equals_engine_with_operands_held_silent_by_the_clock():
    net = _lif_operand_net(seed=2)
    tl = attention_to_graded(net, schedule="serial")
    steps = tl.metadata["sample_clock"]["period"] + 6
    x = _inputs(net, steps, 1, seed=4)
    ours = _lava_equals_engine(tl, x, steps)
    assert ours["o1.off"]["s"].sum() > 0 and ours["o1.q"]["s"].sum() > 0
