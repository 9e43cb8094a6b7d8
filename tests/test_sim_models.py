"""The engine's step models (one per population kind, ``neurodeploy.sim.models``) and its event-driven
accumulation (``neurodeploy.sim.groups``): the rows-of-active-inputs sum gives the integers of the full
product and of the int64 reference update, and is really taken; ``simulate --no-events`` changes no
prediction."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

import testnets
from simresults import as_numpy as _np, assert_same as _same
from neurodeploy.lower.network import GRADED_KINDS, LoweredNetwork, Population, Synapse, VTH_MAX
from neurodeploy.sim import Engine
from neurodeploy.sim import engine as engine_mod
from neurodeploy.sim import groups, models


def event_net(seed: int = 0, delays: bool = True) -> LoweredNetwork:
    """Spikes -> dense (256 -> 128) -> LIF -> dense with delays (128 -> 160) -> LIF with bias and current decay
    -> small sparse (160 -> 128) -> LIF -> readout: three groups big enough for the event rule, one not."""
    rng = np.random.default_rng(seed)
    sparse_w = sp.random(128, 160, density=0.3, random_state=seed,
                         data_rvs=lambda k: rng.integers(-128, 128, k)).tocsr()
    pops = [Population("in", (256,), kind="input", input_kind="spikes"),
            Population("h1", (128,), du=4095, dv=1024, vth=30),
            Population("h2", (160,), du=3000, dv=512, vth=25, bias_mant=rng.integers(-20, 40, 160), bias_exp=3),
            Population("h3", (128,), du=4095, dv=2048, vth=20),
            Population("ro", (10,), kind="readout", du=4095, dv=0, vth=VTH_MAX)]
    syn = [Synapse("a", "in", "h1", "dense", rng.integers(-128, 128, (128, 256))),
           Synapse("b", "h1", "h2", "dense", rng.integers(-128, 128, (160, 128)),
                   delays=rng.integers(0, 3, (160, 128)) if delays else None),
           Synapse("c", "h2", "h3", "sparse", sparse_w),
           Synapse("d", "h3", "ro", "dense", rng.integers(-128, 128, (10, 128)))]
    return LoweredNetwork(populations=pops, synapses=syn, outputs=["ro"])


def test_every_population_kind_has_a_step_model():
    kinds = {"input", "lif", "readout", "relay"} | set(GRADED_KINDS)
    assert set(models.MODELS) == kinds
    net = testnets.residual_attention_net()
    eng = Engine(net)
    from neurodeploy.sim.engine import Run
    built = {m.name: type(m) for m in eng._models(Run(eng, 1, eng._inputs(testnets.random_inputs(net, 2), None)[0],
                                                          set(), None, {n: 0 for n in eng.pops}))}
    assert built["img"] is models.InputModel
    assert built["ro"] in (models.LIFModel, models.LIFFloatModel)
    eng.safe = {n: False for n in eng.safe}
    assert all(type(m) is not models.LIFFloatModel for m in
               eng._models(Run(eng, 1, eng._inputs(testnets.random_inputs(net, 2), None)[0], set(), None,
                               {n: 0 for n in eng.pops})))


@pytest.fixture(autouse=True)
def small_event_groups(monkeypatch):
    """The event rule at this file's sizes (its groups are below the real EVENT_MIN_SIZE)."""
    monkeypatch.setattr(groups, "EVENT_MIN_SIZE", 1 << 14)


def test_event_rule():
    x = torch.zeros(2, 64)
    x[0, 3] = x[1, 9] = 1
    assert groups.active_inputs(x).tolist() == [3, 9]        # active in any sample of the batch
    x[:, :9] = 1                                              # 10 of 64 > 1/8: the dense product
    assert groups.active_inputs(x) is None
    eng = Engine(event_net())
    big = {g.syn.name: g.event_driven for gs in eng.out_groups.values() for g in gs}
    assert big == {"a": True, "b": True, "c": True, "d": False}


@pytest.mark.parametrize("batch,rate", [(1, 0.03), (3, 0.02), (2, 0.5)])
def test_event_driven_equals_the_full_product_and_the_reference(monkeypatch, batch, rate):
    net = event_net()
    T = 24
    x = testnets.random_inputs(net, T, batch=batch, seed=batch, rate=rate)
    taken = []
    real = groups.active_inputs

    def counting(s):
        cols = real(s)
        taken.append(cols is not None)
        return cols
    monkeypatch.setattr(engine_mod, "active_inputs", counting)
    got = _np(Engine(net).run(x, T, record="all"))
    if rate < 0.1:
        assert sum(taken) >= 10, "the event-driven sum was not taken"
    else:
        assert not any(taken[:T]), "half the inputs active: the dense product"
    _same(got, _np(Engine(net, event_driven=False).run(x, T, record="all")))
    ref = Engine(net, event_driven=False)
    ref.safe = {n: False for n in ref.safe}            # int64 reference update everywhere
    _same(got, _np(ref.run(x, T, record="all")))
    assert sum(int(got[n]["s"].sum()) for n in ("h1", "h2", "h3")) > 30


def test_pipelined_samples_with_and_without_events():
    net = event_net(delays=False)
    T = 9
    batches = [testnets.random_inputs(net, T, batch=b, seed=10 + b, rate=0.04) for b in (3, 3, 2)]
    on = _np(Engine(net).run_stream(batches, T, record="all"))
    _same(on, _np(Engine(net, event_driven=False).run_stream(batches, T, record="all")))
    _same(on, _np(Engine(net, skip_idle=False, skip_silent=False).run_stream(batches, T, record="all")))
    assert sum(int(on[n]["s"].sum()) for n in on) > 30


def test_simulate_with_and_without_each_speed_up(tmp_path, capsys):
    """`neurodeploy simulate` on the tiny Spikingformer (relay, prod, graded_vec, LIF and readout models):
    --no-pipeline, --no-skip and --no-events each give the default run's predictions."""
    import json
    from neurodeploy.cli import main
    from neurodeploy.exporters import to_nir
    from neurodeploy.graph import write_graph
    from testmodels import tiny_spikingformer
    torch.manual_seed(0)
    write_graph(to_nir(tiny_spikingformer(), arch="spikingformer-digits"), tmp_path / "model.nir")
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "data.npz", x=(rng.random((7, 1, 8, 8)) * 3).astype(np.float32))
    runs = {}
    for opt in ((), ("--no-pipeline",), ("--no-skip",), ("--no-events",)):
        assert main(["simulate", str(tmp_path / "model.nir"), "--data", str(tmp_path / "data.npz"), "--batch", "2",
                     "--json", *opt]) == 0
        runs[opt] = json.loads(capsys.readouterr().out)
    assert runs[()]["pipelined_samples"] and not runs[("--no-pipeline",)]["pipelined_samples"]
    for opt, r in runs.items():
        assert r["predictions"] == runs[()]["predictions"], opt
    assert len(runs[()]["predictions"]) == 7


@pytest.mark.parametrize("make", [testnets.conv_dense_net, testnets.residual_attention_net, testnets.extremes_net])
def test_numpy_and_torch_float_lif_steps_agree(monkeypatch, make):
    """Small float-state LIF populations step in numpy (models.NUMPY_MAX), large ones in torch ops: the same
    integers (s, u, v of every population), both really taken (without the native C step, which takes
    precedence over both: tests/test_sim_native.py)."""
    net = make()
    T = 12
    x = testnets.random_inputs(net, T, batch=2, seed=7)
    eng = Engine(net, native=False)
    got = _np(eng.run(x, T, record="all"))
    monkeypatch.setattr(models, "NUMPY_MAX", -1)
    torch_ops = Engine(net, native=False)
    _same(got, _np(torch_ops.run(x, T, record="all")))
    used = []
    real = models.LIFFloatModel._update_np
    monkeypatch.setattr(models.LIFFloatModel, "_update_np", lambda self, slot: used.append(1) or real(self, slot))
    monkeypatch.setattr(models, "NUMPY_MAX", 1 << 16)
    _same(got, _np(Engine(net, native=False).run(x, T, record="all")))
    assert used and any(eng.safe.values())


@pytest.mark.parametrize("top", [3, 40, 5000])
def test_graded_input_bound_from_the_data_keeps_the_integers(monkeypatch, top):
    """A graded input (DVS event counts) has no static bound, so the LIFs it feeds ran the int64 reference
    step; each run now bounds it by its own data and proves them safe when it can (small counts: the float
    step; 5,000 x 127 x 9 x 64 passes 2**23: still the reference step).  The integers are the same."""
    rng = np.random.default_rng(top)
    net = LoweredNetwork(
        populations=[Population("in", (2, 12, 12), kind="input", input_kind="graded"),
                     Population("c", (8, 12, 12), du=4095, dv=2048, vth=200),
                     Population("ro", (10,), kind="readout", du=4095, dv=0, vth=VTH_MAX)],
        synapses=[Synapse("k", "in", "c", "conv", rng.integers(-127, 128, (8, 2, 3, 3)), padding=(1, 1)),
                  Synapse("r", "c", "ro", "dense", rng.integers(-128, 128, (10, 8 * 144)))],
        outputs=["ro"])
    x = {"in": rng.integers(0, top + 1, (6, 2, 2 * 144)) * (rng.random((6, 2, 2 * 144)) < 0.4)}
    x["in"][0, 0, 0] = top
    built = []

    def build(eng, p, run):
        m = models.build(eng, p, run)
        if p.name == "c":
            built.append(type(m))
        return m
    monkeypatch.setattr(engine_mod, "build", build)
    got = Engine(net).run(x, 8, record="all")
    orig = engine_mod.Engine._safe_flags
    monkeypatch.setattr(engine_mod.Engine, "_safe_flags", lambda self, input_max=None: orig(self, None))
    ref = Engine(net).run(x, 8, record="all")
    _same(_np(got), _np(ref))
    assert int(ref["c"]["s"].sum()) > 50
    # "c" ran the float step from the data's bound where it is small, the int64 reference step otherwise
    assert built == [models.LIFFloatModel if top < 1000 else models.LIFModel, models.LIFModel]
