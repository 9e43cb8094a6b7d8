"""The reference simulator, primitive by primitive, against hand-computed values."""
from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from neurodeploy.errors import BadInputError, UnsupportedError
from neurodeploy.graph import (attention_forward, make_attention_node, attention_spec, order_and_back_edges, read_graph,
                               simulate, steps_per_tau, topological_order, write_graph)
from neurodeploy.models.spikingformer import SpikingSelfAttention


def chain(*nodes, shape):
    names = [f"n{i}" for i in range(len(nodes))]
    all_nodes = {"input": nir.Input(input_type={"input": np.array(shape)}), **dict(zip(names, nodes))}
    out_shape = nodes[-1].output_type["output"]
    all_nodes["output"] = nir.Output(output_type={"output": np.array(out_shape)})
    seq = ["input", *names, "output"]
    return nir.NIRGraph(nodes=all_nodes, edges=list(zip(seq[:-1], seq[1:])), metadata={"neurodeploy.dt": 1e-4})


def f32(*a):
    return np.array(a, dtype=np.float32)


def test_lif_forward_euler_matches_spikingformer_rule_including_equality():
    # tau = 2 dt, r = 1: H = V + (X - V)/2; threshold nextafter(1, -inf) makes H == 1.0 spike (>=)
    th = np.nextafter(np.float32(1.0), np.float32(-np.inf))
    g = chain(nir.LIF(tau=f32(2e-4, 2e-4), r=f32(1, 1), v_leak=f32(0, 0), v_threshold=np.array([th, 1.0], np.float32),
                      v_reset=f32(0, 0)), shape=[2])
    x = torch.tensor([[[2.0, 2.0], [0.5, 0.5], [1.5, 1.5]]])  # [B=1, T=3, 2]
    out, rec = simulate(g, x, record_membrane=True)
    # step 1: H = 1.0 -> spikes only with the nextafter threshold (strict > 1.0 does not fire)
    assert out[:, 0].tolist() == [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
    assert rec["n0:v"][:, 0].tolist() == [[0.0, 1.0], [0.25, 0.75], [0.875, 0.0]]


def test_tau_snapping_gives_exact_step_counts():
    assert steps_per_tau(np.float32(1.5e-4), 1e-4) == 1.5
    assert steps_per_tau(np.float32(0.0025), 1e-4) == 25.0
    k = steps_per_tau(np.float32(1e-4 / (1 - 0.905)), 1e-4)  # not a short decimal: left as is
    assert abs(k - 1 / 0.095) < 1e-5 and k != round(float(k), 4)


def test_if_li_i_threshold_scale():
    g = chain(nir.IF(r=f32(2.0), v_threshold=f32(2.5), v_reset=f32(-1.0)), shape=[1])
    out, rec = simulate(g, torch.ones(1, 4, 1), record_membrane=True)
    assert out[:, 0, 0].tolist() == [0, 1, 0, 1] and rec["n0:v"][:, 0, 0].tolist() == [2, -1, 1, -1]
    g = chain(nir.LI(tau=f32(4e-4), r=f32(2.0), v_leak=f32(1.0)), shape=[1])
    assert simulate(g, torch.ones(1, 2, 1))[:, 0, 0].tolist() == [0.75, 1.3125]  # v += (1 - v + 2)/4
    g = chain(nir.I(r=f32(0.5)), shape=[1])
    assert simulate(g, torch.ones(1, 3, 1))[:, 0, 0].tolist() == [0.5, 1.0, 1.5]
    g = chain(nir.Scale(scale=f32(-2, 3)), nir.Threshold(threshold=f32(0, 0)), shape=[2])
    assert simulate(g, torch.tensor([[1.0, 1.0]]), T=1)[0, 0].tolist() == [0.0, 1.0]


def test_cubalif_uses_updated_current():
    # i = i + (w_in x - i)/k_syn, v = v + (v_leak - v + r i)/k_mem; k_syn = 2, k_mem = 4, w_in = 2, r = 4
    g = chain(nir.CubaLIF(tau_syn=f32(2e-4), tau_mem=f32(4e-4), r=f32(4), v_leak=f32(0), v_threshold=f32(1.5),
                          v_reset=f32(0), w_in=f32(2)), shape=[1])
    out, rec = simulate(g, torch.ones(1, 3, 1), record_membrane=True)
    # t0: i = 1, v = 1; t1: i = 1.5, v = 1 + (6 - 1)/4 = 2.25 -> spike, v = 0; t2: i = 1.75, v = 1.75 -> spike
    assert out[:, 0, 0].tolist() == [0, 1, 1]


def test_affine_linear_conv_flatten_pools():
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    g = chain(nir.Affine(weight=w, bias=f32(1, -1)), shape=[3])
    assert simulate(g, torch.tensor([[1.0, 2.0, 3.0]]), T=1)[0, 0].tolist() == [9.0, 25.0]
    g = chain(nir.Linear(weight=w), shape=[3])
    assert simulate(g, torch.tensor([[1.0, 2.0, 3.0]]), T=1)[0, 0].tolist() == [8.0, 26.0]
    # SumPool2d(3, 2, 1) on a 4x4 ones image: zero padding -> corner windows sum 4, edges 6, centre 9
    pool = nir.SumPool2d(kernel_size=np.array([3, 3]), stride=np.array([2, 2]), padding=np.array([1, 1]))
    avg = nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    for node in (pool, avg):
        node.input_type = {"input": np.array([1, 4, 4])}
    pool.output_type = {"output": np.array([1, 2, 2])}
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1, 4, 4])}), "p": pool,
                            "f": nir.Flatten(input_type={"input": np.array([1, 2, 2])}, start_dim=0),
                            "output": nir.Output(output_type={"output": np.array([4])})},
                     edges=[("input", "p"), ("p", "f"), ("f", "output")])
    assert simulate(g, torch.ones(2, 1, 4, 4), T=1)[0].tolist() == [[4, 6, 6, 9]] * 2
    avg.output_type = {"output": np.array([1, 2, 2])}
    g.nodes["p"] = avg
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert simulate(g, x, T=1)[0, 0].tolist() == [2.5, 4.5, 10.5, 12.5]
    conv = nir.Conv1d(input_shape=3, weight=np.ones((1, 2, 2), np.float32), stride=1, padding=1, dilation=1, groups=1,
                      bias=f32(0.5))
    g = chain(conv, shape=[2, 3])
    x = torch.tensor([[[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]]])
    assert simulate(g, x, T=1)[0, 0].tolist() == [[11.5, 33.5, 55.5, 33.5]]


def test_delay_and_cycle_back_edge_and_nested_subgraph():
    g = chain(nir.Delay(delay=f32(0.0, 2e-4)), shape=[2])
    x = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]])
    assert simulate(g, x)[:, 0].tolist() == [[1, 0], [2, 0], [3, 1]]
    # in -> a -> b -> a (back edge, previous step) -> out; identity weights: 1, 2, 3, 4 (as nirtorch)
    one = lambda: nir.Linear(weight=np.ones((1, 1), np.float32))  # noqa: E731
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1])}), "a": one(), "b": one(),
                            "output": nir.Output(output_type={"output": np.array([1])})},
                     edges=[("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")])
    order, back = order_and_back_edges(g)
    assert back == {("b", "a")} and order.index("a") < order.index("b")
    assert simulate(g, torch.ones(1, 4, 1))[:, 0, 0].tolist() == [1, 2, 3, 4]
    inner = chain(nir.IF(r=f32(1), v_threshold=f32(1.5), v_reset=f32(0)), shape=[1])
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1])}), "sub": inner,
                            "output": nir.Output(output_type={"output": np.array([1])})},
                     edges=[("input", "sub"), ("sub", "output")])
    assert simulate(g, torch.ones(1, 4, 1))[:, 0, 0].tolist() == [0, 1, 0, 1]


def test_topological_order_ignores_node_dict_order(tmp_path):
    # names sort differently from execution order: nir.read returns nodes sorted by name
    w = np.full((1, 1), 2.0, np.float32)
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1])}), "z": nir.Linear(weight=w),
                            "a": nir.Linear(weight=w), "10": nir.Linear(weight=w), "2": nir.Linear(weight=w),
                            "output": nir.Output(output_type={"output": np.array([1])})},
                     edges=[("input", "z"), ("z", "a"), ("a", "10"), ("z", "2"), ("2", "10"), ("10", "output")])
    back = read_graph(write_graph(g, tmp_path / "g.nir"))
    assert list(back.nodes)[:2] != ["input", "z"]
    order = topological_order(back)
    assert order.index("z") < order.index("a") < order.index("10") and order.index("2") < order.index("10")
    assert simulate(back, torch.ones(1, 1), T=1)[0, 0].tolist() == [16.0]  # 2*(2*2*1 + 2*2*1) = 16


def test_attention_extension_equals_the_torch_attention_both_orders():
    torch.manual_seed(0)
    D, heads, N = 16, 4, 6
    q, k, v = ((torch.rand(3, 2, D, N) < 0.5).float() for _ in range(3))
    spec = attention_spec(make_attention_node(D, heads, N, 0.125))
    got = attention_forward(spec, torch.cat([q, k, v], dim=2))
    for order in ("kv_first", "qk_first"):
        ref = SpikingSelfAttention(D, heads, order=order).attention(q, k, v)
        assert torch.equal(got, ref)
    with pytest.raises(BadInputError):
        attention_forward(spec, torch.zeros(1, 3 * D, N + 1))


def test_input_shape_errors_and_unsupported_node():
    g = chain(nir.Threshold(threshold=f32(0, 0)), shape=[2])
    with pytest.raises(BadInputError, match=r"input has shape \[1, 3\]; graph input 'input' expects \[B, 2\]"):
        simulate(g, torch.zeros(1, 3), T=1)
    with pytest.raises(BadInputError, match="needs T"):
        simulate(g, torch.zeros(1, 2))
    g = chain(nir.Affine(weight=np.zeros((2, 2, 2), np.float32), bias=np.zeros((2, 2), np.float32)), shape=[2, 2])
    with pytest.raises(UnsupportedError, match="node 'n0': Affine with a 3-d weight"):
        simulate(g, torch.zeros(1, 2, 2), T=1)
