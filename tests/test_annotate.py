"""The one annotated graph (analysis/annotate.py): built once per deployment, read by purity, the op count,
the chip fit of a graph and the Loihi 2 lowering; attention operands found by weights, never by names."""
from __future__ import annotations

import nir
import numpy as np
import pytest

from neurodeploy.analysis import annotate as annotate_mod
from neurodeploy.analysis.annotate import annotate
from neurodeploy.deploy import Deployment
from neurodeploy.energy import ops_from_graph
from neurodeploy.exporters import to_nir
from neurodeploy.lower.loihi2 import lower_graph
from testmodels import tiny_spikingformer
from neurodeploy.mapping import from_graph


@pytest.fixture(scope="module")
def graph():
    return to_nir(tiny_spikingformer(), arch="spikingformer-digits")


def _renamed(g: nir.NIRGraph) -> tuple[nir.NIRGraph, dict]:
    """The same graph with every node renamed to an opaque name (other tools choose names freely)."""
    names = {n: (n if isinstance(v, (nir.Input, nir.Output)) else f"n{i:03d}") for i, (n, v) in enumerate(g.nodes.items())}
    return nir.NIRGraph(nodes={names[n]: v for n, v in g.nodes.items()},
                        edges=[(names[a], names[b]) for a, b in g.edges], metadata=dict(g.metadata)), names


def test_attention_operands_roles_sources_and_ops(graph):
    ann = annotate(graph)
    [att] = ann.attention_nodes()
    roles = ann[att].attention
    assert [roles[t] for t in "qkv"] == [f"block.0.attn.{t}_lif" for t in "qkv"]
    for t in "qkv":
        assert ann[roles[t]].operand_of == (att, t)
        assert ann[roles[f"{t}_route"]].role == "routing"
        assert ann[roles[f"{t}_route"]].spiking_source == roles[t]
    # attention ops: 2 * heads * N * d^2 (the paper's Q (K^T V) count); 16 channels, 2 heads, 16 tokens
    spec = ann[att].ops
    assert (spec.heads, spec.tokens, spec.dim) == (2, 16, 16)
    assert spec.dense_ops == 2 * 2 * 16 * 8 * 8
    lowering = {info.lowering for info in ann.nodes.values()}
    assert lowering == {"input", "output", "neuron", "linear", "attention"}
    assert ann["block.0.attn.q_lif"].kind == "spiking" and ann["block.0.attn.q_lif"].neurons == 16 * 16
    # the readout head: declared role, applied once per inference after the mean over the 16 tokens
    heads = [n for n, i in ann.nodes.items() if i.role == "readout" and i.ops is not None]
    assert len(heads) == 1 and ann[heads[0]].ops.per_inference and not ann[heads[0]].role_inferred


def test_renamed_graph_gives_the_same_annotation_and_the_same_results(graph):
    """Nothing is found by node name: an opaque renaming gives the same operands, op table, chip-fit network
    and lowered integers."""
    g2, names = _renamed(graph)
    a1, a2 = annotate(graph), annotate(g2)
    [att1], [att2] = a1.attention_nodes(), a2.attention_nodes()
    assert {t: names[a1[att1].attention[t]] for t in "qkv"} == {t: a2[att2].attention[t] for t in "qkv"}
    o1, o2 = ops_from_graph(a1), ops_from_graph(a2)
    assert [(names[L.name], L.dense_ops, L.repeats, names.get(L.input) if L.input else None) for L in o1.layers] == \
        [(L.name, L.dense_ops, L.repeats, L.input) for L in o2.layers]
    m1, m2 = from_graph(a1), from_graph(a2)
    assert sorted(p.size for p in m1.populations) == sorted(p.size for p in m2.populations)
    assert len(m1.synapses) == len(m2.synapses)
    n1, _ = lower_graph(a1, T=4)
    n2, _ = lower_graph(a2, T=4)
    assert [np.asarray(s.weights).sum() if s.kind != "sparse" else s.weights.sum() for s in n1.synapses] == \
        [np.asarray(s.weights).sum() if s.kind != "sparse" else s.weights.sum() for s in n2.synapses]


def test_a_deployment_annotates_its_graph_once(graph, monkeypatch):
    """Purity, op counts, the profile-only chip fit and the Loihi 2 lowering all read one annotation."""
    calls = {"annotate": 0, "purity": 0}
    real_ops, real_purity = annotate_mod._ops, annotate_mod.check_purity

    def counting_ops(ann):
        calls["annotate"] += 1
        return real_ops(ann)

    def counting_purity(*a, **k):
        calls["purity"] += 1
        return real_purity(*a, **k)

    monkeypatch.setattr(annotate_mod, "_ops", counting_ops)
    monkeypatch.setattr(annotate_mod, "check_purity", counting_purity)
    dep = Deployment.build(graph, targets=["loihi2", "truenorth"], data=None, samples=None)
    dep.run(fidelity=False)
    assert calls == {"annotate": 1, "purity": 1}
    assert all(t.deployable for t in dep.targets) and dep.purity is dep.annotated.purity
    assert dep.ops.layers and all(t.fit is not None for t in dep.targets)


def test_a_bad_attention_routing_is_named_by_each_stage(graph):
    """A stack routing conv whose weights are not the extension's identity blocks: every stage that needs the
    operands refuses, naming the attention node."""
    g2 = nir.NIRGraph(nodes=dict(graph.nodes), edges=list(graph.edges), metadata=dict(graph.metadata))
    ann = annotate(graph)
    [att] = ann.attention_nodes()
    route = ann[att].attention["q_route"]
    w = np.array(g2.nodes[route].weight, copy=True)
    w[0, 0, 0] = 0.0                      # one connection missing: not a placement of q
    old = g2.nodes[route]
    g2.nodes[route] = nir.Conv1d(input_shape=old.input_shape, weight=w, stride=old.stride, padding=old.padding,
                                 dilation=old.dilation, groups=old.groups, bias=old.bias)
    g2.nodes[route].metadata = dict(old.metadata or {})
    bad = annotate(g2)
    assert bad[att].attention is None and "no stack routing for q" in bad[att].attention_error
    from neurodeploy.errors import BadInputError, UnsupportedError
    with pytest.raises(BadInputError, match=f"node '{att}'"):
        ops_from_graph(bad)
    with pytest.raises(UnsupportedError, match=f"node '{att}': could not identify the Q, K, V"):
        lower_graph(bad, T=4)
