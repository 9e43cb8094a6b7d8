"""The one LIF record (neurodeploy.lif) against every implementation: the training neuron, the NIR reference
simulator, the Loihi 2 lowering's registers and our engine's fixed-point step."""
from __future__ import annotations

import math

import nir
import numpy as np
import pytest
import torch

from neurodeploy.lif import LIFFixed, LIFParams, fixed_step


def _float_run(p: LIFParams, x: np.ndarray) -> np.ndarray:
    v = np.zeros(x.shape[1:])
    out = []
    for t in range(x.shape[0]):
        v, s = p.step(v, x[t])
        out.append(s)
    return np.stack(out)


@pytest.mark.parametrize("tau, th", [(2.0, 1.0), (1.5, 0.5), (4.0, 1.0)])
def test_training_neuron_is_the_inclusive_record(tau, th):
    from neurodeploy.models.neuron import lif_multistep

    x = torch.randn(12, 64, 37, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 1.5
    ours = lif_multistep(x, tau=tau, v_threshold=th).numpy().astype(bool)
    ref = _float_run(LIFParams(tau_steps=tau, v_threshold=th, inclusive=True), x.numpy())
    assert np.array_equal(ours, ref) and ref.sum() > 100


@pytest.mark.parametrize("k, r, leak, reset", [(2.0, 1.0, 0.0, 0.0), (5.0, 2.0, 0.3, -0.2), (math.inf, 0.7, 0.0, 0.1)])
def test_nir_reference_simulator_is_the_record(k, r, leak, reset):
    from neurodeploy.graph import simulate

    dt = 1e-3
    n = 29
    if math.isinf(k):
        neuron = nir.IF(r=np.full(n, r), v_threshold=np.ones(n), v_reset=np.full(n, reset))
    else:
        neuron = nir.LIF(tau=np.full(n, k * dt), r=np.full(n, r), v_leak=np.full(n, leak), v_threshold=np.ones(n),
                         v_reset=np.full(n, reset))
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([n])), "lif": neuron,
                            "output": nir.Output(output_type=np.array([n]))},
                     edges=[("input", "lif"), ("lif", "output")], metadata={"neurodeploy.dt": dt})
    x = np.random.default_rng(2).normal(size=(8, 15, n)) * 2          # [B, T, n]
    out = simulate(g, torch.as_tensor(x), dtype=torch.float64).numpy().astype(bool)   # [T, B, n]
    ref = _float_run(LIFParams(tau_steps=k, r=r, v_leak=leak, v_reset=reset), x.transpose(1, 0, 2))
    assert np.array_equal(out, ref) and ref.sum() > 20


def test_lowering_registers_are_the_records_fixed_point_form():
    from neurodeploy.lower.loihi2 import lower_graph

    dt = 1e-4
    rng = np.random.default_rng(0)
    for k, ge in ((2.0, True), (3.0, False)):
        lif = nir.LIF(tau=np.full(5, k * dt), r=np.ones(5), v_leak=np.zeros(5), v_threshold=np.ones(5),
                      v_reset=np.zeros(5))
        if ge:   # Spikingformer's inclusive rule, as the exporter marks it (docs/nir.md)
            lif.metadata = {"neurodeploy.spike_rule": ">="}
        nodes = {"input": nir.Input(input_type=np.array([6])),
                 "fc": nir.Affine(weight=rng.normal(size=(5, 6)), bias=np.zeros(5)),
                 "lif": lif,
                 "out": nir.Affine(weight=rng.normal(size=(2, 5)), bias=np.zeros(2)),
                 "output": nir.Output(output_type=np.array([2]))}
        md = {"neurodeploy.dt": dt, "neurodeploy.time_steps": 4, "neurodeploy.input_domain": "binary"}
        g = nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "lif"), ("lif", "out"), ("out", "output")],
                         metadata=md)
        net, _ = lower_graph(g)
        pop = net.pop("lif")
        want = LIFParams(tau_steps=k, inclusive=ge).fixed_point(int(pop.scale))
        assert (pop.du, pop.dv, pop.vth) == (want.du, want.dv, want.vth)


def test_engine_step_is_the_records_fixed_point_step():
    from neurodeploy.sim.engine import lif_step

    rng = np.random.default_rng(3)
    for du, dv, vth in ((4095, 2048, 253), (0, 0, 1), (1000, 4096, 17), (-1, 7, 131071), (4095, 0, 0)):
        p = LIFFixed(du=du, dv=dv, vth=vth, scale=1, weight_gain=1.0)
        u = v = np.zeros(500, dtype=np.int64)
        tu = tv = torch.zeros(500, dtype=torch.int64)
        bias = int(rng.integers(-5000, 5000))
        for _ in range(30):
            a = rng.integers(-(1 << 15), 1 << 15, size=500)
            u, v, s = fixed_step(u, v, a, p, bias)
            tu, tv, ts = lif_step(tu, tv, torch.as_tensor(a), du, dv, vth, bias)
            assert np.array_equal(u, tu.numpy()) and np.array_equal(v, tv.numpy()) and np.array_equal(s, ts.numpy())


def test_records_refuse_what_loihi2_cannot_express():
    from neurodeploy.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="shorter than one step"):
        LIFParams(tau_steps=0.5).fixed_point(10)
    with pytest.raises(UnsupportedError, match="v_leak"):
        LIFParams(tau_steps=2, v_leak=0.1).fixed_point(10)
