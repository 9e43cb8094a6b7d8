"""The engine's fast paths give the integers of its int64 reference update (and therefore Lava's):
float32/float64 LIF state, channels-last neuron order, silent-source skipping, float64-only products (as
on a GPU) and the torch.compile fused LIF kernel."""
import numpy as np
import pytest
import torch

import testnets
from simresults import assert_same as _same
from neurodeploy.sim import Engine
from neurodeploy.sim import models as engine_mod

NETS = [testnets.conv_dense_net, testnets.residual_attention_net, testnets.extremes_net]


def _run(eng, x, T):
    r = eng.run(x, T, record="all")
    return {n: {k: t.cpu().numpy() for k, t in v.items()} for n, v in r.items()}


def _reference(net, x, T):
    """Every population on the int64 reference update (lif_step), natural neuron order."""
    eng = Engine(net)
    eng.safe = {n: False for n in eng.safe}
    assert not any(eng.safe.values())
    return _run(eng, x, T)


@pytest.mark.parametrize("make", NETS)
def test_fast_state_equals_int64_reference(make):
    net = make()
    T = 14
    x = testnets.random_inputs(net, T, batch=3, seed=11)
    eng = Engine(net)
    assert any(eng.safe.values())              # the float fast path is really exercised
    fast = _run(eng, x, T)
    _same(fast, _reference(net, x, T))
    assert sum(int(fast[n]["s"].sum()) for n in fast) > 20


class _F64Engine(Engine):
    _products_f64 = True


@pytest.mark.parametrize("make", NETS)
def test_float64_products_as_on_gpu_equal_reference(make):
    net = make()
    T = 10
    x = testnets.random_inputs(net, T, batch=2, seed=4)
    eng = _F64Engine(net)
    assert all(d == torch.float64 for d in eng.ring_dtype.values())
    _same(_run(eng, x, T), _reference(net, x, T))


def test_channels_last_layout_and_float32_state_on_a_conv_chain():
    """Conv -> conv -> dense with 3-D populations held channels-last; results in (C, H, W) order."""
    from neurodeploy.lower import LoweredNetwork, Population, Synapse
    rng = np.random.default_rng(7)
    net = LoweredNetwork(
        populations=[Population("in", (3, 9, 11), kind="input", input_kind="spikes"),
                     Population("a", (5, 5, 6), du=4095, dv=1024, vth=9, bias_mant=rng.integers(-90, 90, (5, 5, 6)), bias_exp=2),
                     Population("b", (4, 3, 5), du=3000, dv=0, vth=7),
                     Population("c", (4, 3, 5), du=4095, dv=4096, vth=3),
                     Population("ro", (3,), kind="readout", du=4095, dv=0, vth=(1 << 17) - 1)],
        synapses=[Synapse("s1", "in", "a", "conv", rng.integers(-60, 80, (5, 3, 3, 3)), stride=(2, 2), padding=(1, 1)),
                  Synapse("s2", "a", "b", "conv", rng.integers(-60, 80, (4, 5, 3, 2)), stride=(2, 1), padding=(1, 0)),
                  Synapse("s3", "b", "c", "conv", rng.integers(-30, 80, (4, 4, 1, 1))),
                  Synapse("s4", "c", "ro", "dense", rng.integers(-128, 127, (3, 60)) * 2, weight_exp=-1),
                  Synapse("s5", "a", "ro", "dense", rng.integers(-128, 127, (3, 150)), balance_delay=1)],
        outputs=["ro"])
    eng = Engine(net)
    assert eng.hwc["a"] and eng.hwc["b"] and eng.hwc["c"]
    T = 12
    x = testnets.random_inputs(net, T, batch=2, seed=1, rate=0.5)
    fast = _run(eng, x, T)
    _same(fast, _reference(net, x, T))
    assert int(fast["c"]["s"].sum()) > 10


def test_compiled_lif_kernel_equals_eager(monkeypatch):
    """torch.compile'd LIF gives the same integers as the eager ops.  The compiled kernel must really run
    (the engine keeps ``compile`` on only when no compile failure made it fall back)."""
    monkeypatch.setattr(engine_mod, "COMPILE_MIN", 0)
    net = testnets.conv_dense_net()
    T = 10
    x = testnets.random_inputs(net, T, batch=3, seed=2)
    eng = Engine(net, compile=True)
    comp = _run(eng, x, T)
    assert eng.compile, "torch.compile fell back to eager here: the compiled kernel was not tested"
    _same(comp, _run(Engine(net), x, T))


def test_compile_failure_falls_back_to_the_same_integers(monkeypatch):
    monkeypatch.setattr(engine_mod, "COMPILE_MIN", 0)

    def broken(_no_current_memory):
        def k(*a):
            raise RuntimeError("no compiler")
        return k

    monkeypatch.setattr(engine_mod, "kernel", broken)
    net = testnets.conv_dense_net()
    x = testnets.random_inputs(net, 6, batch=2, seed=5)
    eng = Engine(net, compile=True)
    with pytest.warns(UserWarning, match="torch.compile unavailable"):
        got = _run(eng, x, 6)
    assert not eng.compile
    _same(got, _run(Engine(net), x, 6))


def test_spike_inputs_must_be_binary():
    from neurodeploy.errors import BadInputError
    net = testnets.conv_dense_net()
    x = testnets.random_inputs(net, 3)
    x["in"] = x["in"] * 2
    with pytest.raises(BadInputError, match="'in'.*0 or 1"):
        Engine(net).run(x, 3)
