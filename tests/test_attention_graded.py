"""Attention from Lava's own processes (ProdNeuron, GradedVec, graded Sparse): the lowering pass, our engine
and Lava agree bit for bit, and equal the attention process op shifted by the 3-step stage latency; the
product-neuron counts of the published Spikingformers are counted on the built records."""
import numpy as np
import pytest

from neurodeploy.errors import BadInputError, UnsupportedError
from neurodeploy.lower.attention_graded import STAGE_LATENCY, attention_to_graded, choose_order
from neurodeploy.lower.network import Attention, LoweredNetwork, Population, Synapse
from neurodeploy.lower.network_file import load_network, save_network
from neurodeploy.sim import simulate

#: (name, heads, head dim, tokens, weight, forced order): both orders, several H, N, dh, weights
OPS = [("a1", 2, 3, 5, 1, "ktv"), ("a2", 1, 4, 3, 3, "qkt"), ("a3", 3, 2, 4, -2, "auto"),
       ("a4", 2, 5, 2, 600, "auto"), ("a5", 4, 2, 6, 7, "qkt")]


def _ops_net(seed=0):
    """Spike inputs q/k/v per op straight into one attention op each, into a LIF (membrane memory, so u and
    v carry every value it received)."""
    rng = np.random.default_rng(seed)
    pops, att = [], []
    for name, H, dh, N, w, _ in OPS:
        D = H * dh
        for r in "qkv":
            pops.append(Population(f"{name}.{r}", (D, N), kind="input", input_kind="spikes"))
        pops.append(Population(f"{name}.out", (D, N), du=int(rng.integers(0, 4095)), dv=int(rng.integers(1, 4096)),
                               vth=int(rng.integers(1, 40))))
        att.append(Attention(name, f"{name}.q", f"{name}.k", f"{name}.v", f"{name}.out", heads=H, dim=D, tokens=N,
                             weight=w))
    # one sink joins the ops into one connected graph (Lava compiles what the anchor process reaches)
    pops.append(Population("sink", (1,), du=4095, dv=4096, vth=1000))
    syn = [Synapse(f"{o[0]}->sink", f"{o[0]}.out", "sink", "dense", np.ones((1, o[1] * o[2] * o[3]), np.int64))
           for o in OPS]
    return LoweredNetwork(populations=pops, synapses=syn, attention=att, outputs=[f"{o[0]}.out" for o in OPS])


def _inputs(net, T, B, seed=1):
    rng = np.random.default_rng(seed)
    return {p.name: (rng.random((T, B) + p.shape) < rng.uniform(0.2, 0.8)).astype(np.int64) for p in net.inputs}


def _graded(net):
    return attention_to_graded(net, order={o[0]: o[5] for o in OPS})


def test_pass_records_orders_counts_and_latency():
    g = _graded(_ops_net())
    rec = {r["name"]: r for r in g.metadata["attention_graded"]}
    for name, H, dh, N, w, order in OPS:
        want = order if order != "auto" else ("ktv" if dh <= N else "qkt")
        assert rec[name]["order"] == want
        built = sum(p.size for p in g.populations if p.kind == "prod" and p.name.startswith(f"{name}."))
        assert built == rec[name]["product_neurons"] == (2 * H * N * dh * dh if want == "ktv" else 2 * H * N * N * dh)
        counts = g.pop(f"{name}.counts").size
        assert counts == (H * dh * dh if want == "ktv" else H * N * N)
    assert g.metadata["attention_latency_added"] == STAGE_LATENCY == 3
    assert g.metadata["attention_lowering"] == "graded" and not g.attention
    # the operand that skips stage 1 waits 2 steps in a DelaySparse; nothing else is delayed
    delayed = {s.name: s.balance_delay for s in g.synapses if s.balance_delay}
    assert delayed == {f"{o[0]}.p2<-in1": 2 for o in OPS}
    # structured records only: one weight per group, never a matrix over product neurons
    assert all(np.asarray(s.weights).size == 1 for s in g.synapses if s.kind == "einsum")
    assert sum(s.kind == "einsum" for s in g.synapses) == 6 * len(OPS)
    assert (rec["a3"]["order"], rec["a4"]["order"]) == ("ktv", "qkt")     # dh 2 <= N 4; dh 5 > N 2
    assert choose_order(Attention("x", "q", "k", "v", "o", 1, 4, 4)) == "ktv"          # tie: ktv
    w4 = next(s for s in g.synapses if s.name == "a4.out<-a4.p2")
    assert (int(w4.weights[0]), w4.weight_exp) == (150, 2)        # 600 = 150 * 2**2 (8-bit mantissa)


def test_engine_equals_process_form_shifted_by_the_stage_latency():
    proc = _ops_net()
    g = _graded(proc)
    T, B = 12, 3
    x = _inputs(proc, T, B)
    steps = T + STAGE_LATENCY + 2
    xs = {k: np.concatenate([v, np.zeros((steps - T,) + v.shape[1:], np.int64)]) for k, v in x.items()}
    a = simulate(proc, xs, steps, record=proc.outputs)
    b = simulate(g, xs, steps, record=proc.outputs)
    for name in proc.outputs:
        for key in "suv":
            assert np.array_equal(a[name][key][:steps - STAGE_LATENCY], b[name][key][STAGE_LATENCY:]), (name, key)
            assert not b[name][key][:STAGE_LATENCY + 1].any()
        assert a[name]["u"].any()
    # the float32 path (CPU) and float64 (GPU rule) give the same integers
    from neurodeploy.sim import Engine
    Engine._products_f64 = True
    try:
        c = simulate(g, xs, steps, record="all")
    finally:
        Engine._products_f64 = False
    d = simulate(g, xs, steps, record="all")
    for name in d:
        for key in d[name]:
            assert np.array_equal(c[name][key], d[name][key]), (name, key)


@pytest.mark.lava
def test_lava_equals_engine_every_population_and_the_process_form():
    from neurodeploy.lava.run import run_lava
    proc = _ops_net(seed=3)
    g = _graded(proc)
    T = 8
    steps = T + STAGE_LATENCY + 1
    x = _inputs(proc, T, 1, seed=4)
    ours = simulate(g, x, steps, record="all")
    lava = run_lava(g, x, steps, record="all")
    assert set(lava) == set(ours) == {p.name for p in g.populations}
    for name in ours:
        for key in ours[name]:
            bad = np.argwhere(ours[name][key] != lava[name][key])
            assert bad.size == 0, f"{name}.{key} differs first at {bad[0].tolist()}"
    assert any(np.abs(ours[f"{o[0]}.counts"]["s"]).max() > 1 for o in OPS)    # graded counts, not spikes
    ref = simulate(proc, x, steps, record=proc.outputs)
    for name in proc.outputs:
        for key in "suv":
            assert np.array_equal(ref[name][key][:steps - STAGE_LATENCY], lava[name][key][STAGE_LATENCY:])


def test_save_load_roundtrip_and_validation(tmp_path):
    g = _graded(_ops_net())
    save_network(g, str(tmp_path / "n.npz"))
    h = load_network(str(tmp_path / "n.npz"))
    assert [(s.kind, s.einsum, s.axes, s.port, s.graded) for s in h.synapses] == \
        [(s.kind, s.einsum, s.axes, s.port, s.graded) for s in g.synapses]
    assert [(p.kind, p.vth, p.exp) for p in h.populations] == [(p.kind, p.vth, p.exp) for p in g.populations]
    x = _inputs(g, 5, 2)
    r1, r2 = simulate(g, x, 9, record="all"), simulate(h, x, 9, record="all")
    assert all(np.array_equal(r1[n][k], r2[n][k]) for n in r1 for k in r1[n])
    bad = _graded(_ops_net())
    s = next(s for s in bad.synapses if s.kind == "einsum")
    s.axes = dict(s.axes, h=s.axes["h"] + 1)
    with pytest.raises(BadInputError, match=f"synapse '{s.name}': einsum"):
        bad.validate()
    bad = _graded(_ops_net())
    next(s for s in bad.synapses if s.port == 2).port = 0
    with pytest.raises(BadInputError, match="port 0"):
        bad.validate()
    big = LoweredNetwork(populations=[Population(n, (64, 512), kind="input", input_kind="spikes") for n in "qkv"]
                         + [Population("o", (64, 512))],
                         attention=[Attention("big", "q", "k", "v", "o", heads=1, dim=64, tokens=512, weight=510)])
    with pytest.raises(UnsupportedError, match="attention 'big'.*24-bit"):
        attention_to_graded(big)


def _config_net(arch):
    """The attention ops of a published Spikingformer, from its config: q, k, v, out populations [D, N]."""
    from neurodeploy.models.registry import SPIKINGFORMER_CONFIGS
    cfg = SPIKINGFORMER_CONFIGS[arch]()
    D, H, N = cfg.embed_dim, cfg.num_heads, cfg.tokens_side ** 2
    pops, att = [], []
    for b in range(cfg.depth):
        for r in "qkv":
            pops.append(Population(f"b{b}.{r}", (D, N), kind="input", input_kind="spikes"))
        pops.append(Population(f"b{b}.out", (D, N)))
        att.append(Attention(f"b{b}", f"b{b}.q", f"b{b}.k", f"b{b}.v", f"b{b}.out", heads=H, dim=D, tokens=N))
    return LoweredNetwork(populations=pops, attention=att), cfg


@pytest.mark.parametrize("arch,order,per_op", [
    ("spikingformer-cifar10-4-384", "ktv", 2 * 12 * 64 * 32 * 32),
    ("spikingformer-imagenet-8-768", "ktv", 2 * 8 * 196 * 96 * 96),
    ("spikingformer-gesture-2-256", "ktv", 2 * 16 * 64 * 16 * 16)])
def test_product_neurons_of_published_models_counted_on_built_records(arch, order, per_op):
    from neurodeploy.deploy.loihi2 import summarize
    net, cfg = _config_net(arch)
    g = attention_to_graded(net)
    s = summarize(g)
    assert len(s["attention"]) == cfg.depth
    for op in s["attention"]:
        built = sum(p.size for p in g.populations if p.kind == "prod" and p.name.startswith(op["name"] + "."))
        assert op["order"] == order and op["product_neurons"] == built == per_op
    assert s["product_neurons"] == cfg.depth * per_op
    assert s["attention_latency_added_steps"] == 3


def test_process_classes_of_the_default_digits_deployment_are_standard_library_only():
    from neurodeploy.exporters import to_nir
    from neurodeploy.lava.processes_used import lava_process_classes, standard_library_only
    from neurodeploy.lower.loihi2 import lower_graph
    from neurodeploy.models import build_model
    g = to_nir(build_model("spikingformer-digits"))
    net, _ = lower_graph(g)
    classes = lava_process_classes(net)
    assert standard_library_only(net)
    names = {d["class"] for d in classes}
    assert {"ProdNeuron", "GradedVec", "Sparse", "DelaySparse"} <= names and "SpikingAttention" not in names
    assert {d["class"]: d["count"] for d in classes}["ProdNeuron"] == 2
    proc, _ = lower_graph(g, attention="process")
    custom = [d for d in lava_process_classes(proc) if d["origin"] == "neurodeploy custom"]
    assert custom == [{"class": "SpikingAttention", "module": "neurodeploy.lava.processes.attention",
                       "origin": "neurodeploy custom", "count": 1}]
    assert not standard_library_only(proc)


@pytest.mark.lava
def test_process_class_list_matches_a_built_lava_graph():
    from neurodeploy.lava.processes_used import lava_process_classes
    from neurodeploy.lava.run import LavaNetwork
    from testnets import random_inputs, residual_attention_net
    net = residual_attention_net()
    net.metadata["time_steps"] = 4
    for n in (net, attention_to_graded(net)):
        ln = LavaNetwork(n, random_inputs(n, 4), 4, record=[])
        try:
            built = {}
            for p in ln.procs.values():
                built[(type(p).__name__, type(p).__module__)] = built.get((type(p).__name__, type(p).__module__), 0) + 1
        finally:
            import shutil
            shutil.rmtree(ln.tmpdir, ignore_errors=True)
        assert built == {(d["class"], d["module"]): d["count"] for d in lava_process_classes(n)}


def test_worked_example_of_the_docs():
    # docs/lowering.md: 1 head, dh 2, N 2, weight 3 -> a = [[6, 3], [9, 3]] delivered 4 steps after the spikes
    Q, K, V = (np.array(m) for m in ([[1, 0], [1, 1]], [[1, 1], [0, 1]], [[0, 1], [1, 1]]))
    pops = [Population(n, (2, 2), kind="input", input_kind="spikes") for n in "qkv"]
    pops.append(Population("o", (2, 2), du=4095, dv=0, vth=100000))        # integrates, never spikes
    net = LoweredNetwork(populations=pops, attention=[Attention("att", "q", "k", "v", "o", 1, 2, 2, weight=3)])
    g = attention_to_graded(net)
    assert g.metadata["attention_graded"][0]["order"] == "ktv" and sum(
        p.size for p in g.populations if p.kind == "prod") == 16
    x = {n: np.stack([m[None], np.zeros((1, 2, 2), np.int64)]) for n, m in zip("qkv", (Q, K, V))}   # [2, 1, 2, 2]
    r = simulate(g, x, 5, record=["o", "att.counts"])
    assert r["att.counts"]["s"][2, 0].reshape(2, 2).tolist() == [[1, 2], [1, 1]]
    v = r["o"]["v"][:, 0] // 64                  # a_in << 6 accumulates in v (dv 0)
    assert v[3].tolist() == [0, 0, 0, 0] and v[4].reshape(2, 2).tolist() == [[6, 3], [9, 3]]


def _digits(ckpt):
    from neurodeploy.commands.simulate import load_graph
    from neurodeploy.lower.loihi2 import lower_graph
    from neurodeploy.training import digits_split
    g = load_graph(str(ckpt))
    _, _, x, y = digits_split()
    x, y = x.numpy(), y.numpy()
    rng = (float(x.min()), float(x.max()))
    return g, lower_graph(g, input_range=rng)[0], lower_graph(g, input_range=rng, attention="process")[0], x, y


@pytest.mark.lava
@pytest.mark.slow
def test_trained_digits_graded_in_lava_equals_engine_20_samples(trained_digits_checkpoint):
    from neurodeploy.lava.run import run_lava_chained
    from neurodeploy.sim.chained import simulate_chained
    _, net, _, x, _ = _digits(trained_digits_checkpoint)
    assert net.metadata["attention_lowering"] == "graded" and not net.attention
    N = 20
    P = net.metadata["time_steps"] + net.metadata["latency"]
    inputs = {k: v.numpy() for k, v in net.encode_inputs(x[:N]).items()}
    chained, lava, timing = run_lava_chained(net, inputs, record="all", chunk=5 * P)
    _, ours = simulate_chained(net, inputs, record="all", conv_as_sparse=True)
    assert set(lava) == set(ours) == {p.name for p in chained.populations}
    assert {p.kind for p in chained.populations} >= {"prod", "graded_vec"}
    for name in ours:
        for key in ours[name]:
            assert lava[name][key].shape == (N * P, 1, chained.pop(name).size)
            bad = np.argwhere(ours[name][key] != lava[name][key])
            assert bad.size == 0, f"{name}.{key} differs first at {bad[0].tolist()}"
    assert int(np.abs(lava["block.0.attn.attention.counts"]["s"]).max()) > 1
    print(f"\nLava chained (graded attention), {N} digits: steady {timing['rest_steps'] / timing['rest_s']:.1f} steps/s")


@pytest.mark.slow
def test_trained_digits_graded_accuracy_equals_process_form_all_360(trained_digits_checkpoint, capsys):
    from neurodeploy.sim import Engine
    _, net, proc, x, y = _digits(trained_digits_checkpoint)
    preds = {}
    for key, n in (("graded", net), ("process", proc)):
        steps = n.metadata["time_steps"] + n.metadata["latency"]
        eng = Engine(n, threads=1)
        v = np.concatenate([eng.run(n.encode_inputs(x[i:i + 120]), steps, record=["readout"])["readout"]["v"][-1]
                            .numpy() for i in range(0, len(x), 120)])
        preds[key] = v.argmax(1)
    assert net.metadata["latency"] == proc.metadata["latency"] + 3
    acc = {k: float((p == y).mean()) for k, p in preds.items()}
    with capsys.disabled():
        print(f"\nengine, 360 digits: graded attention {100 * acc['graded']:.2f} %, process form "
              f"{100 * acc['process']:.2f} %")
    assert len(y) == 360 and np.array_equal(preds["graded"], preds["process"]) and acc["graded"] > 0.9
