"""Attention schedules (``lower_graph(..., attention_schedule=...)``): the packed form equals the parallel form
(and the process op) shifted by its stated latency on our engine, Lava equals our engine on it, and the
resource functions the budget search reads equal what is built (docs/lowering.md, "Attention schedules")."""
import numpy as np
import pytest

from neurodeploy.errors import BadInputError
from neurodeploy.lower.attention_graded import (ATTENTION_SCHEDULES, PACKED_LATENCY, REPACKED_LATENCY,
                                                 STAGE_LATENCY, attention_to_graded, packing, schedule_cost)
from neurodeploy.lower.network import Attention, LoweredNetwork, Population, Synapse
from neurodeploy.lower.network_file import load_network, save_network
from neurodeploy.sim import simulate
from simresults import assert_records_equal

#: (name, heads, head dim, tokens, weight): all pack (digits of 4-7 bits, 2-5 per word, 1-2 j-chunks)
OPS = [("b1", 2, 3, 5, 1), ("b2", 1, 8, 6, 3), ("b3", 2, 6, 7, -2), ("b4", 1, 4, 30, 600), ("b5", 3, 8, 9, 7)]
#: ops the repacked schedule repacks: stage 1 4 digits of 5 bits per word, stage 2 2 (r1: 9-bit digits) or 3
#: (r2: 4-channel chunks, 7-bit digits); b4 too (4 -> 2)
RE_OPS = [("r1", 2, 4, 16, 5), ("r2", 1, 12, 30, -3)]


def _ops_net(seed=0, ops=OPS):
    rng = np.random.default_rng(seed)
    pops, att = [], []
    for name, H, dh, N, w in ops:
        D = H * dh
        for r in "qkv":
            pops.append(Population(f"{name}.{r}", (D, N), kind="input", input_kind="spikes"))
        pops.append(Population(f"{name}.out", (D, N), du=int(rng.integers(0, 4095)), dv=int(rng.integers(1, 4096)),
                               vth=int(rng.integers(1, 40))))
        att.append(Attention(name, f"{name}.q", f"{name}.k", f"{name}.v", f"{name}.out", heads=H, dim=D, tokens=N,
                             weight=w))
    pops.append(Population("sink", (1,), du=4095, dv=4096, vth=1000))
    syn = [Synapse(f"{o[0]}->sink", f"{o[0]}.out", "sink", "dense", np.ones((1, o[1] * o[2] * o[3]), np.int64))
           for o in ops]
    return LoweredNetwork(populations=pops, synapses=syn, attention=att, outputs=[f"{o[0]}.out" for o in ops])


def _inputs(net, T, B, seed=1, dense=False):
    rng = np.random.default_rng(seed)
    return {p.name: (rng.random((T, B) + p.shape) < (1.0 if dense else rng.uniform(0.2, 0.8))).astype(np.int64)
            for p in net.inputs}


def _padded(x, steps):
    return {k: np.concatenate([v, np.zeros((steps - v.shape[0],) + v.shape[1:], np.int64)]) for k, v in x.items()}


def test_schedule_names_and_costs_equal_the_built_records():
    # the token-tiled ones (tiled-8 .. serial): tests/test_token_tiles.py
    assert ATTENTION_SCHEDULES == ("parallel", "packed", "repacked", "tiled-8", "tiled-4", "tiled-2", "serial")
    net = _ops_net(ops=OPS + RE_OPS)
    latency = {"parallel": STAGE_LATENCY, "packed": PACKED_LATENCY, "repacked": REPACKED_LATENCY}
    for sched in latency:
        g = attention_to_graded(net, schedule=sched)
        assert g.metadata["attention_schedule"] == sched
        for rec, (name, H, dh, N, w) in zip(g.metadata["attention_graded"], OPS + RE_OPS):
            c = schedule_cost(sched, H, N, H * dh)
            built = {k: sum(p.size for p in g.populations if p.kind == k and p.name.startswith(name + "."))
                     for k in ("prod", "graded_vec")}
            assert rec["schedule"] == sched
            assert (built["prod"], built["graded_vec"]) == (c["product_neurons"], c["graded_vec_neurons"])
            # repacked: only the ops whose stage 1 carries more digits per word (b4, r1, r2) are repacked
            want = latency[sched] if sched != "repacked" or name in ("b4", "r1", "r2") else PACKED_LATENCY
            assert rec["stage_latency_steps"] == c["latency_added_steps"] == want, (sched, name)
        assert g.metadata["attention_latency_added"] == latency[sched]
    with pytest.raises(BadInputError, match="attention_schedule 'diagonal'"):
        attention_to_graded(net, schedule="diagonal")
    # b4: a chunk of 4 channels x 30 tokens sums to <= 120: 7-bit digits, 3 fit in 23 bits, so 2 words of 2
    assert {k: packing(1, 30, 4)[k] for k in ("digit_bits", "digits_per_word", "words", "j_chunk")} == \
        {"digit_bits": 7, "digits_per_word": 2, "words": 2, "j_chunk": 4}
    # nothing to gain (dh 1): the packed schedule builds the parallel form and says so
    assert packing(2, 4, 2) is None and schedule_cost("packed", 2, 4, 2)["packed"] is False


@pytest.mark.parametrize("dense", [False, True])
def test_packed_equals_parallel_and_process_form_shifted_by_its_latency(dense):
    # dense: every spike on, so every digit reaches its bound (no carry into the next digit)
    proc = _ops_net()
    par = attention_to_graded(proc)
    pk = attention_to_graded(proc, schedule="packed")
    T, B = 10, 2
    steps = T + PACKED_LATENCY + 2
    x = _padded(_inputs(proc, T, B, dense=dense), steps)
    a = simulate(proc, x, steps, record=proc.outputs)
    b = simulate(par, x, steps, record=proc.outputs)
    c = simulate(pk, x, steps, record="all")
    d = PACKED_LATENCY - STAGE_LATENCY
    for name in proc.outputs:
        for key in "suv":
            assert np.array_equal(a[name][key][:steps - PACKED_LATENCY], c[name][key][PACKED_LATENCY:]), (name, key)
            assert np.array_equal(b[name][key][:steps - d], c[name][key][d:]), (name, key)
            assert not c[name][key][:PACKED_LATENCY + 1].any()
        assert a[name]["u"].any()
    # words really hold several digits (graded payloads beyond one digit's range)
    for name, H, dh, N, w in OPS:
        pk_ = packing(H, N, H * dh)
        assert int(c[f"{name}.words"]["s"].max()) >= 1 << pk_["digit_bits"]
    if dense:       # b4: 4 channels x 30 tokens, all on: every digit is 120 = its bound
        assert int(c["b4.digits"]["s"].max()) == 120


def _lava_chained_equals_engine(net, inputs, chunk) -> dict:
    """Run ``net``'s samples chained in one Lava run and in our engine, every population recorded; assert s,
    u, v equal; Lava's records."""
    from neurodeploy.lava.run import run_lava_chained
    from neurodeploy.sim.chained import simulate_chained
    chained, lava, _ = run_lava_chained(net, inputs, record="all", chunk=chunk)
    _, ours = simulate_chained(net, inputs, record="all", conv_as_sparse=True)
    assert_records_equal(ours, lava, {p.name for p in chained.populations})
    return lava


def _lava_equals_engine(g, x, steps) -> dict:
    """Run ``g`` in Lava and in our engine, every population recorded; assert s, u, v equal; our run."""
    from neurodeploy.lava.run import run_lava
    ours = simulate(g, x, steps, record="all")
    lava = run_lava(g, x, steps, record="all")
    assert_records_equal(ours, lava, {p.name for p in g.populations})
    return ours


@pytest.mark.lava
def test_lava_equals_engine_on_the_packed_form_every_population():
    proc = _ops_net(seed=3, ops=OPS[:3])
    g = attention_to_graded(proc, schedule="packed")
    T = 6
    steps = T + PACKED_LATENCY + 1
    x = _inputs(proc, T, 1, seed=4)
    ours = _lava_equals_engine(g, x, steps)
    assert max(int(ours[f"{o[0]}.words"]["s"].max()) for o in OPS[:3]) > 16      # multi-digit words in Lava


def test_worked_example_of_the_docs():
    # docs/lowering.md "Attention schedules": 1 head, dh 3, N 3, weight 3; digits of 4 bits (a chunk of all 3
    # channels sums to <= 9 < 16), 3 digits in 1 word: 18 product neurons (parallel: 54)
    Q, K, V = (np.array(m) for m in ([[1, 1, 0], [0, 1, 1], [1, 0, 0]], [[1, 0, 1], [0, 1, 1], [1, 1, 0]],
                                     [[1, 1, 0], [0, 1, 1], [1, 0, 1]]))
    pops = [Population(n, (3, 3), kind="input", input_kind="spikes") for n in "qkv"]
    pops.append(Population("o", (3, 3), du=4095, dv=0, vth=100000))        # integrates, never spikes
    net = LoweredNetwork(populations=pops, attention=[Attention("att", "q", "k", "v", "o", 1, 3, 3, weight=3)])
    g = attention_to_graded(net, schedule="packed")
    rec = g.metadata["attention_graded"][0]
    assert (rec["digit_bits"], rec["digits_per_word"], rec["words"], rec["j_chunk"]) == (4, 3, 1, 3)
    assert sum(p.size for p in g.populations if p.kind == "prod") == 18 == rec["product_neurons"]
    assert schedule_cost("parallel", 1, 3, 3)["product_neurons"] == 54
    x = {n: np.stack([m[None], np.zeros((1, 3, 3), np.int64)]) for n, m in zip("qkv", (Q, K, V))}
    names = ["att.vpack", "att.counts", "att.words", "att.shift1", "att.shift2", "att.digits"]
    r = simulate(g, x, 9, record=["o"] + names)
    got = {n: r[n]["s"][i, 0].tolist() for i, n in zip((1, 3, 5, 6, 6, 7), names)}
    assert got == {"att.vpack": [257, 17, 272],          # V columns as base-16 words: 1 + 256, 1 + 16, 16 + 256
                   "att.counts": [529, 289, 274],        # C = K V^T rows (1,1,2), (1,2,1), (2,1,1)
                   "att.words": [803, 818, 289],         # Q columns pick rows (0,2), (0,1), (1)
                   "att.shift1": [50, 51, 18], "att.shift2": [3, 3, 1],
                   "att.digits": [3, 2, 1, 2, 3, 2, 3, 3, 1]}       # [c, n]: 803 - 16 * 50 = 3, 50 - 16 * 3 = 2, 3
    v = r["o"]["v"][:, 0] // 64                          # a_in << 6 accumulates in v (dv 0)
    assert not v[7].any() and v[8].reshape(3, 3).tolist() == [[9, 6, 3], [6, 9, 6], [9, 9, 3]]
    assert np.array_equal(v[8].reshape(3, 3), 3 * (K @ V.T).T @ Q)      # the op itself: weight x (Q^T (K V^T))^T


def _digits_nets(ckpt):
    from neurodeploy.commands.simulate import load_graph
    from neurodeploy.lower.loihi2 import lower_graph
    from neurodeploy.training import digits_split
    g = load_graph(str(ckpt))
    _, _, x, y = digits_split()
    x, y = x.numpy(), y.numpy()
    rng = (float(x.min()), float(x.max()))
    return {s: lower_graph(g, input_range=rng, attention_schedule=s)[0] for s in ATTENTION_SCHEDULES}, x, y


@pytest.mark.slow
def test_trained_digits_every_schedule_same_readout_all_360(trained_digits_checkpoint, capsys):
    from neurodeploy.sim import Engine
    nets, x, y = _digits_nets(trained_digits_checkpoint)
    assert nets["packed"].metadata["attention_graded"][0]["schedule"] == "packed"
    assert nets["packed"].metadata["latency"] == nets["parallel"].metadata["latency"] + PACKED_LATENCY - STAGE_LATENCY
    final, att = {}, {}
    for s, n in nets.items():
        T = n.metadata["time_steps"]
        steps = T + n.metadata["latency"]
        eng = Engine(n, threads=1)
        vs, ss = [], []
        lat = n.latency()["block.0.attn.attn_lif"]
        for i in range(0, len(x), 120):
            # the attention LIF in its own window (a tiled schedule's LIF sees other steps' tiles outside it)
            r = eng.run(n.encode_inputs(x[i:i + 120]), steps, record=["readout", "block.0.attn.attn_lif"],
                        windows={"block.0.attn.attn_lif": (lat, lat + T)})
            vs.append(r["readout"]["v"][-1].numpy())
            ss.append(r["block.0.attn.attn_lif"]["s"].numpy())
        final[s], att[s] = np.concatenate(vs), np.concatenate(ss, axis=1)
    # the same integers, later by the stated latency: the readout's final v and the attention LIF's spikes
    for sched in final:
        assert np.array_equal(final[sched], final["parallel"]), sched
        assert np.array_equal(att[sched], att["parallel"]) and att["parallel"].any(), sched
    acc = {s: float((v.argmax(1) == y).mean()) for s, v in final.items()}
    with capsys.disabled():
        print(f"\nengine, 360 digits: " + ", ".join(f"{s} {100 * a:.2f} %" for s, a in acc.items()))
    assert len(y) == 360 and acc["packed"] == acc["parallel"] == acc["serial"] > 0.9


@pytest.mark.lava
@pytest.mark.slow
def test_trained_digits_packed_in_lava_equals_engine(trained_digits_checkpoint):
    nets, x, _ = _digits_nets(trained_digits_checkpoint)
    net = nets["packed"]
    N = 4
    P = net.metadata["time_steps"] + net.metadata["latency"]
    inputs = {k: v.numpy() for k, v in net.encode_inputs(x[:N]).items()}
    lava = _lava_chained_equals_engine(net, inputs, chunk=2 * P)
    assert int(lava["block.0.attn.attention.words"]["s"].max()) >= 1 << 7      # multi-digit words (7-bit digits)


def test_export_option_recorded_and_simulate_reproduces_it(tmp_path, capsys):
    """``export --attention-schedule packed``: the artifact records the schedule, simulate OUT reproduces the
    export's fidelity, and asking a folder for another schedule is refused (exit 2)."""
    import json

    from neurodeploy.cli import main
    from neurodeploy.exporters import to_nir
    from neurodeploy.graph import write_graph
    from testmodels import tiny_spikingformer
    nir = tmp_path / "tiny.nir"
    write_graph(to_nir(tiny_spikingformer(), arch="spikingformer-digits"), nir)
    out = tmp_path / "out"
    assert main(["export", str(nir), "-o", str(out), "--target", "loihi2", "--attention-schedule", "packed"]) == 0
    s = json.loads((out / "loihi2" / "summary.json").read_text())
    assert s["attention_schedule"] == "packed" and [op["schedule"] for op in s["attention"]] == ["packed"]
    assert s["product_neurons"] == schedule_cost("packed", 2, 16, 16)["product_neurons"] < \
        schedule_cost("parallel", 2, 16, 16)["product_neurons"]
    assert s["attention_latency_added_steps"] == PACKED_LATENCY
    rep = json.loads((out / "report.json").read_text())
    capsys.readouterr()
    assert main(["simulate", str(out), "--limit", "32", "--json", "--attention-schedule", "packed"]) == 0
    assert json.loads(capsys.readouterr().out)["prediction_agreement"] == rep["lowering"]["fidelity"]
    assert main(["simulate", str(out), "--limit", "4", "--attention-schedule", "parallel"]) == 2
    assert "lowered with 'packed'" in capsys.readouterr().err
    assert main(["export", str(nir), "-o", str(tmp_path / "bad"), "--attention-schedule", "diagonal"]) == 2
    assert "--attention-schedule: invalid choice: 'diagonal'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_packed_network_saves_and_loads_with_its_bounds(tmp_path):
    g = attention_to_graded(_ops_net(), schedule="packed")
    assert g.metadata["graded_bounds"]["b4.digits"] == 4 * 30 and g.metadata["graded_bounds"]["b4.words"] == 2 ** 14 - 1
    save_network(g, str(tmp_path / "p.npz"))
    h = load_network(str(tmp_path / "p.npz"))
    assert h.metadata["graded_bounds"] == g.metadata["graded_bounds"]
    assert [(s.kind, s.weight_exp, s.sign_mode, s.graded) for s in h.synapses] == \
        [(s.kind, s.weight_exp, s.sign_mode, s.graded) for s in g.synapses]
    x = _inputs(g, 5, 2)
    r1, r2 = simulate(g, x, 14, record="all"), simulate(h, x, 14, record="all")
    assert all(np.array_equal(r1[n][k], r2[n][k]) for n in r1 for k in r1[n])


def test_packed_op_with_groups_too_large_to_densify_runs_exactly():
    # H 2, dh 32, N 64 (cifar10-4-384's head shape): the vpack and digits groups are sparse matrices of
    # 2048 x 4096 and 4096 x 8192 elements (> DENSE_VIEW_MAX): the engine's bounds must read them sparse
    from neurodeploy.lower.network import DENSE_VIEW_MAX
    ops = [("c1", 2, 32, 64, 1)]
    proc = _ops_net(seed=5, ops=ops)
    g = attention_to_graded(proc, schedule="packed")
    assert g.metadata["attention_graded"][0]["digits_per_word"] == 2
    assert max(s.weights.shape[0] * s.weights.shape[1] for s in g.synapses if s.kind == "sparse") > DENSE_VIEW_MAX
    T = 3
    steps = T + PACKED_LATENCY + 1
    x = _padded(_inputs(proc, T, 1, seed=6), steps)
    a = simulate(proc, x, steps, record=proc.outputs)
    b = simulate(g, x, steps, record=proc.outputs)
    for key in "suv":
        assert np.array_equal(a["c1.out"][key][:steps - PACKED_LATENCY], b["c1.out"][key][PACKED_LATENCY:]), key
    assert a["c1.out"]["u"].any()


def test_repacked_carries_more_stage_1_digits_and_is_exact():
    """The repacked schedule: stage 1 words carry floor(23 / bit_length(N)) digits (N = 16 or 30: 4 of 5 bits),
    repacked by floor shifts into stage 2's layout (2-3 digits of 7-9 bits); fewer product neurons than packed
    (cifar10-4-384: 786,432 -> 663,552 per op, 3.15 M -> 2.65 M in all), and every op equals the parallel form
    shifted by its own latency (+10 - 3 steps when repacked), sparse and dense spikes (every digit at its bound)."""
    assert schedule_cost("packed", 12, 64, 384)["product_neurons"] == 786_432
    c = schedule_cost("repacked", 12, 64, 384)
    assert (c["product_neurons"], c["stage1_digits_per_word"], c["digits_per_word"]) == (663_552, 3, 2)
    assert 4 * c["product_neurons"] == 2_654_208
    r2 = packing(1, 30, 12, repack=True)
    assert {k: r2[k] for k in ("stage1_digit_bits", "stage1_digits_per_word", "stage1_words", "digit_bits",
                               "digits_per_word", "words", "j_chunk")} == \
        {"stage1_digit_bits": 5, "stage1_digits_per_word": 4, "stage1_words": 3, "digit_bits": 7,
         "digits_per_word": 3, "words": 4, "j_chunk": 4}
    ops = OPS[3:4] + RE_OPS
    proc = _ops_net(ops=ops)
    par = attention_to_graded(proc)
    rp = attention_to_graded(proc, schedule="repacked")
    assert all(o["repacked"] for o in rp.metadata["attention_graded"])
    T, B = 8, 2
    steps = T + REPACKED_LATENCY + 2
    for dense in (False, True):
        x = _padded(_inputs(proc, T, B, seed=5, dense=dense), steps)
        b = simulate(par, x, steps, record=proc.outputs)
        c_ = simulate(rp, x, steps, record="all")
        d = REPACKED_LATENCY - STAGE_LATENCY
        for name in proc.outputs:
            for key in "suv":
                assert np.array_equal(b[name][key][:steps - d], c_[name][key][d:]), (name, key, dense)
            assert b[name]["u"].any()
        for name, H, dh, N, w in ops:
            pk = packing(H, N, H * dh, repack=True)
            assert int(c_[f"{name}.counts1"]["s"].max()) >= 1 << (2 * pk["stage1_digit_bits"])   # >= 3 digits
            if dense:       # every count is N: every clean digit at its bound
                assert int(c_[f"{name}.cdigits"]["s"].max()) == N


@pytest.mark.lava
def test_lava_equals_engine_on_the_repacked_form_every_population():
    proc = _ops_net(seed=6, ops=RE_OPS)
    g = attention_to_graded(proc, schedule="repacked")
    T = 5
    steps = T + REPACKED_LATENCY + 1
    x = _inputs(proc, T, 1, seed=7)
    ours = _lava_equals_engine(g, x, steps)
    assert max(int(ours[f"{o[0]}.counts1"]["s"].max()) for o in RE_OPS) >= 1 << 10      # 3+ digits in Lava
