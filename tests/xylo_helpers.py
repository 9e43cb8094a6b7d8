"""Generated Xylo networks for the tests: NIR graphs (ours) and the same layer structure as a rockpool network
(for rockpool's mapper / DRC).  Vendor imports stay here and in the tests (rockpool is an optional extra)."""
from __future__ import annotations

import warnings

import nir
import numpy as np


def nir_net(sizes, rec=(), kind="CubaLIF", dt=1e-3, seed=0, density=1.0, out_rec=False):
    """Input(sizes[0]) -> Linear -> pop1 -> ... -> Linear -> pop_k (output) -> Output; ``rec``: indices (1-based
    over the neuron populations) that get a Linear from the population to itself."""
    rng = np.random.default_rng(seed)
    nodes, edges = {"input": nir.Input(input_type={"input": np.array([sizes[0]])})}, []
    prev = "input"
    k = len(sizes) - 1
    for i in range(1, k + 1):
        n, m = sizes[i], sizes[i - 1]
        w = rng.normal(0, 1.0 / np.sqrt(m), (n, m)) * (rng.random((n, m)) < density)
        nodes[f"w{i}"] = nir.Linear(weight=w)
        tm = dt * 2.0 ** rng.uniform(1.5, 6, n)
        th = np.full(n, 0.1 if kind == "CubaLIF" else 0.3)
        if kind == "CubaLIF":
            ts = dt * 2.0 ** rng.uniform(1.5, 5, n)
            nodes[f"p{i}"] = nir.CubaLIF(tau_syn=ts, tau_mem=tm, r=np.ones(n), v_leak=np.zeros(n), v_threshold=th,
                                         w_in=np.ones(n))
        else:
            nodes[f"p{i}"] = nir.LIF(tau=tm, r=np.ones(n), v_leak=np.zeros(n), v_threshold=th)
        edges += [(prev, f"w{i}"), (f"w{i}", f"p{i}")]
        if i in rec or (out_rec and i == k):
            wr = rng.normal(0, 0.5 / np.sqrt(n), (n, n)) * (rng.random((n, n)) < min(1.0, density * 2))
            nodes[f"r{i}"] = nir.Linear(weight=wr)
            edges += [(f"p{i}", f"r{i}"), (f"r{i}", f"p{i}")]
        prev = f"p{i}"
    nodes["output"] = nir.Output(output_type={"output": np.array([sizes[-1]])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"neurodeploy.dt": dt})


def braille_graph(seed=0):
    """The NIR paper's braille RNN shape: 12 inputs, 38 recurrent CubaLIF, 7 CubaLIF outputs, dt = 1e-4 s
    (random weights: the trained file is not available here)."""
    rng = np.random.default_rng(seed)
    dt = 1e-4
    n_in, n_h, n_o = 12, 38, 7

    def cuba(n):
        return nir.CubaLIF(tau_syn=dt * 2.0 ** rng.uniform(2, 5, n), tau_mem=dt * 2.0 ** rng.uniform(3, 6, n),
                           r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.full(n, 0.05), w_in=np.ones(n))
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}),
             "fc1": nir.Linear(weight=rng.normal(0, 1.0, (n_h, n_in))),
             "lif1": cuba(n_h),
             "fc_rec": nir.Linear(weight=rng.normal(0, 0.3, (n_h, n_h))),
             "fc2": nir.Linear(weight=rng.normal(0, 1.0, (n_o, n_h))),
             "lif2": cuba(n_o),
             "output": nir.Output(output_type={"output": np.array([n_o])})}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc_rec"), ("fc_rec", "lif1"), ("lif1", "fc2"),
             ("fc2", "lif2"), ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"neurodeploy.dt": dt})


def rockpool_verdict(chip, sizes, rec=(), out_rec=False, dt=1e-3):
    """(fits, why) from rockpool's own mapper / DRC for a LinearTorch + LIFTorch stack of the same sizes.
    A DRCError or any exception refuses; rockpool's input-channel DRCWarning counts as a refusal (16 channels)."""
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFTorch, LinearTorch

    from neurodeploy.deploy.xylo_vendor import vendor_module

    mods = []
    k = len(sizes) - 1
    for i in range(1, k + 1):
        n = sizes[i]
        mods.append(LinearTorch((sizes[i - 1], n), has_bias=False))
        mods.append(LIFTorch(n, dt=dt, tau_mem=[0.01] * n, tau_syn=[0.004] * n,
                             has_rec=(i in rec) or (out_rec and i == k)))
    mapper = vendor_module(chip, "xylo_mapper").mapper
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            mapper(Sequential(*mods).as_graph(), weight_dtype="float", threshold_dtype="float", dash_dtype="float")
        except Exception as exc:  # noqa: BLE001 - every refusal of the vendor tool counts
            return False, f"{type(exc).__name__}: {exc} {exc.__cause__ or ''}"
    for w in caught:
        if "input channels" in str(w.message):
            return False, str(w.message)
    return True, ""
