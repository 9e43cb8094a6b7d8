"""Value-domain analysis and purity classes on hand-built NIR graphs (docs/nir.md conventions) and on the
public cnn_sinabs.nir of the NIR paper."""
import math

import nir
import numpy as np
import pytest

from neurodeploy.analysis import Domain, analyze, check_purity
from neurodeploy.errors import BadInputError, UnsupportedError

import purity_graphs as pg


# ------------------------------------------------------------------------------------------ domains
def test_domain_normalisation_and_arithmetic():
    assert Domain.integer(0, 1).kind == "binary"
    assert Domain.integer(-1, 0).kind == "ternary"
    assert Domain.integer(0, 2).text() == "integer [0, 2]"
    b = Domain.binary()
    assert b.add(b).text() == "integer [0, 2]"
    assert b.add(b).add(b) == Domain.integer(0, 3)
    assert b.join(b) == b
    assert Domain.declared("counts").text() == "integer [0, inf)"
    assert Domain.integer(0, 5, 0.125).text() == "integer [0, 5] x 0.125"
    assert Domain.integer(0, 5, 0.125).add(b).is_real  # different scales: nothing proven
    assert b.add(Domain.real()).is_real
    assert Domain.declared("counts").to_dict()["hi"] is None
    with pytest.raises(BadInputError):
        Domain.declared("spikes")


def _tiny(nodes, edges, input_domain="real"):
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"neurodeploy.input_domain": input_domain})


def _lif(shape, v_leak=0.0, v_reset=0.0, th=1.0):
    return nir.LIF(tau=np.full(shape, 2e-4), r=np.ones(shape), v_leak=np.full(shape, v_leak),
                   v_reset=np.full(shape, v_reset), v_threshold=np.full(shape, th))


def test_integer_weights_on_integer_input_give_a_proven_range():
    w_int = np.array([[1.0, 2.0, -1.0], [0.0, 3.0, 1.0]])
    g = _tiny({"input": nir.Input(input_type={"input": np.array([3])}),
               "a": nir.Affine(weight=w_int, bias=np.array([1.0, 0.0])),
               "f": nir.Affine(weight=w_int * 0.5, bias=np.zeros(2)),
               "output": nir.Output(output_type={"output": np.array([2])})},
              [("input", "a"), ("input", "f"), ("a", "output"), ("f", "output")], "binary")
    res = analyze(g)
    # row 0: 1*x0 + 2*x1 - x2 + 1 on binary x -> [0, 4]; row 1: 3*x1 + x2 -> [0, 4]
    assert res.out["a"] == Domain.integer(0, 4)
    assert res.out["f"] == Domain.integer(-1, 4, 0.5)  # half-integer weights: integers times 0.5
    r = check_purity(g)
    assert {o.node: o.op_class for o in r.ops} == {"a": "AC", "f": "AC"}
    g.nodes["f"].weight = np.array([[0.3, 0.7, -1.1], [0.2, 0.0, 1.0]])
    assert analyze(g).out["f"].is_real  # float weights: nothing proven


def test_integer_input_through_unit_weights_is_an_accumulate():
    # integers (a sum of spikes) through a 0/1 selection are added as they are; through 0/0.125 the
    # factor folds into the next LIF's threshold (both orders of the attention expansion do this)
    sel = np.array([[1.0, 0.0], [0.0, 1.0]])
    nodes = {"input": nir.Input(input_type={"input": np.array([2])}),
             "sum": nir.Affine(weight=np.ones((2, 2)), bias=np.zeros(2)),
             "pick": nir.Linear(weight=sel), "scaled": nir.Linear(weight=sel * 0.125),
             "lif": _lif((2,), th=0.5), "output": nir.Output(output_type={"output": np.array([2])})}
    g = _tiny(nodes, [("input", "sum"), ("sum", "pick"), ("sum", "scaled"), ("scaled", "lif"), ("pick", "output"),
                      ("lif", "output")], "binary")
    r = check_purity(g)
    assert r.analysis.out["sum"] == Domain.integer(0, 2)
    assert r.op("pick").op_class == "AC" and "an accumulate" in r.op("pick").detail
    assert r.op("scaled").op_class == "FOLDED" and "threshold 0.5 -> 4" in r.op("scaled").detail
    assert r.analysis.out["scaled"] == Domain.integer(0, 2, 0.125)
    g.nodes["scaled"].weight = np.array([[0.3, 0.0], [0.0, 0.2]])
    assert check_purity(g).op("scaled").op_class == "INTxFLOAT"


def test_sumpool_of_binary_and_fan_in_sums():
    g = nir.read(str(pg_sinabs()))
    res = analyze(g, input_domain="binary")
    assert res.out["4"] == Domain.integer(0, 4)  # SumPool2d 2x2 of IF spikes
    assert res.out["8"] == res.out["7"]  # Flatten keeps the domain
    assert res.out["1"].is_binary and res.out["12"].is_binary
    assert res.out["0"].is_real  # float conv weights


def pg_sinabs():
    from conftest import NIR_PAPER
    return NIR_PAPER / "02_cnn" / "cnn_sinabs.nir"


# ------------------------------------------------------------------------------------------ cnn_sinabs
def test_cnn_sinabs_pure_with_binary_input():
    r = check_purity(nir.read(str(pg_sinabs())), input_domain="binary")
    assert r.pure
    assert [o.node for o in r.ops] == ["0", "2", "5", "9", "11"]
    assert all(o.op_class == "AC" for o in r.ops)
    assert r.op("0").role == "encoder" and r.op("0").role_inferred  # no roles in the file: inferred
    assert "sum-pooled" in r.op("5").detail and r.op("5").input_domain == Domain.integer(0, 4)


def test_cnn_sinabs_counts_flagged_at_first_conv_only():
    r = check_purity(nir.read(str(pg_sinabs())), input_domain="counts")
    assert not r.pure
    assert [v.node for v in r.violations] == ["0"]
    v = r.violations[0]
    assert v.op_class == "INTxFLOAT" and v.input_domain.text() == "integer [0, inf)"
    assert "graph input declared counts" in v.why and "--input-domain binary" in v.hint
    # the encoder exception covers it (role inferred: the conv that reads the graph input)
    assert check_purity(nir.read(str(pg_sinabs())), input_domain="counts", allow="encoder").pure
    real = check_purity(nir.read(str(pg_sinabs())), input_domain="real")
    assert [(v.node, v.op_class) for v in real.violations] == [("0", "MAC")]


def test_sum_pool_counts_are_integers_when_not_treated_as_events():
    r = check_purity(nir.read(str(pg_sinabs())), input_domain="binary", pool_events=False)
    assert [(v.node, v.op_class, v.input_domain.text()) for v in r.violations] == [
        ("5", "INTxFLOAT", "integer [0, 4]"), ("9", "INTxFLOAT", "integer [0, 4]")]
    assert "max pooling" in r.violations[0].hint


# ------------------------------------------------------------------------------------------ Spikingformer-like
def test_spikingformer_like_pure_apart_from_encoder_and_head():
    g = pg.spikingformer_like(depth=2)
    r = check_purity(g)
    assert [(v.node, v.op_class, v.role) for v in r.violations] == [
        ("patch_embed.block0_conv", "MAC", "encoder"), ("head", "MAC", "readout")]
    r2 = check_purity(g, allow=["encoder", "readout"])
    assert r2.pure and [e.node for e in r2.exceptions] == ["patch_embed.block0_conv", "head"]
    assert not check_purity(g, allow="encoder").pure
    # every conv in the blocks reads binary spikes; the stacking convs are routing
    classes = {o.node: o.op_class for o in r.ops}
    for i in range(2):
        for n in ("attn.q_conv", "attn.k_conv", "attn.v_conv", "attn.proj_conv", "mlp.mlp1_conv", "mlp.mlp2_conv"):
            assert classes[f"block.{i}.{n}"] == "AC"
        for n in "qkv":
            assert classes[f"block.{i}.attn.stack_{n}"] == "ROUTING"


def test_attention_extension_is_accumulate_with_foldable_power_of_two_scale():
    r = check_purity(pg.spikingformer_like(depth=1, D=8, heads=2, side=8))
    op = r.op("block.0.attn.attention")
    assert op.op_class == "AC" and op.input_domain.is_binary
    assert "disjoint placement" in op.origin
    assert "AND + popcount" in op.detail and "integer x binary = accumulate" in op.detail
    assert "threshold 0.5 -> 4" in op.detail and "block.0.attn.attn_lif" in op.detail
    assert "2^-3" in op.detail
    # output: 0.125 * [0, N*d] with N = 16 tokens, d = 4
    assert r.analysis.out["block.0.attn.attention"] == Domain.integer(0, 64, 0.125)


def test_routing_role_is_checked_not_trusted():
    g = pg.spikingformer_like(depth=1)
    g.nodes["block.0.attn.stack_k"].weight[0, 0, 0] = 1.0  # K also lands on Q's channel 0: not disjoint
    r = check_purity(g)
    assert r.analysis.inp["block.0.attn.attention"] == Domain.integer(0, 3)  # plain sum of 3 binary edges
    assert r.op("block.0.attn.attention").op_class == "MAC"
    g.nodes["block.0.attn.stack_k"].weight[0, 0, 0] = 0.5  # not a 0/1 placement at all
    r = check_purity(g)
    op = r.op("block.0.attn.stack_k")
    assert op.op_class == "AC" and "not a 0/1 placement" in op.detail


# ------------------------------------------------------------------------------------------ Spikformer-like
def test_spikformer_like_integer_range_grows_with_depth():
    depth = 3
    r = check_purity(pg.spikformer_like(depth=depth), allow="encoder,readout")
    flagged = {v.node: v for v in r.violations}
    expected = set()
    for l in range(depth):
        for n in "qkv":
            name = f"block.{l}.attn.{n}_conv"
            expected.add(name)
            assert flagged[name].op_class == "INTxFLOAT"
            assert flagged[name].input_domain == Domain.integer(0, 2 + 2 * l)
        fc1 = f"block.{l}.mlp.fc1_conv"
        expected.add(fc1)
        assert flagged[fc1].input_domain == Domain.integer(0, 3 + 2 * l)
        assert "move the LIF before the conv" in flagged[fc1].hint
    assert set(flagged) == expected
    # the RPE sum: spikes + spikes at the tokenizer output, named in the origin of block 0's q/k/v
    origin = flagged["block.0.attn.q_conv"].origin
    assert "fan-in sum of 2 edges into patch_embed.flatten" in origin and "patch_embed.rpe_lif" in origin
    assert r.analysis.out["patch_embed.flatten"] == Domain.integer(0, 2)
    rpe = [sm for sm in r.integer_sums() if sm["at"] == "patch_embed.flatten"]
    assert len(rpe) == 1 and "patch_embed.rpe_lif" in rpe[0]["edges"] and len(rpe[0]["feeds"]) == 3
    # SEW AND sums spikes too, but into a Threshold (an AND): no integer reaches a synapse
    assert check_purity(pg.sew_like("AND")).integer_sums() == []


# ------------------------------------------------------------------------------------------ SEW
@pytest.mark.parametrize("mode,flagged", [("ADD", ["layer.1.conv1", "layer.2.conv1"]), ("AND", []), ("IAND", [])])
def test_sew_connect_functions(mode, flagged):
    r = check_purity(pg.sew_like(mode, blocks=3), allow="encoder,readout")
    assert [v.node for v in r.violations] == flagged
    if mode == "ADD":
        assert r.op("layer.2.conv1").input_domain == Domain.integer(0, 3)
    else:
        assert r.op("fc").op_class == "AC"  # the head reads binary AND/IAND outputs


# ------------------------------------------------------------------------------------------ Scale, allow, cycles
def _scale_graph(scale, v_leak=0.0, second_consumer=False):
    nodes = {"input": nir.Input(input_type={"input": np.array([4])}),
             "s": nir.Scale(scale=np.full(4, scale)), "lif": _lif((4,), v_leak=v_leak, th=0.5),
             "output": nir.Output(output_type={"output": np.array([4])})}
    edges = [("input", "s"), ("s", "lif"), ("lif", "output")]
    if second_consumer:
        nodes["lif2"] = _lif((4,))
        edges += [("s", "lif2"), ("lif2", "output")]
    return _tiny(nodes, edges, "real")


def test_scale_classes():
    op = check_purity(_scale_graph(0.3)).op("s")
    assert op.op_class == "FOLDED" and "threshold 0.5 -> 1.66667" in op.detail
    op = check_purity(_scale_graph(0.25, second_consumer=True)).op("s")
    assert op.op_class == "SHIFT" and "2^-2" in op.detail
    op = check_purity(_scale_graph(0.3, v_leak=0.1)).op("s")
    assert op.op_class == "MAC" and "not a power of two, not foldable" in op.detail
    assert not check_purity(_scale_graph(0.3, v_leak=0.1)).pure


def test_allow_by_node_name_and_unknown_names():
    g = pg.sew_like("ADD", blocks=2)
    assert check_purity(g, allow=["encoder", "readout", "layer.1.conv1"]).pure
    with pytest.raises(BadInputError, match="no_such_layer"):
        check_purity(g, allow="encoder,no_such_layer")


def test_recurrent_graph_reaches_a_fixed_point():
    g = _tiny({"input": nir.Input(input_type={"input": np.array([3])}),
               "w": nir.Affine(weight=np.eye(3), bias=np.zeros(3)),
               "acc": nir.Affine(weight=np.eye(3), bias=np.zeros(3)),
               "lif": _lif((3,)), "output": nir.Output(output_type={"output": np.array([3])})},
              [("input", "w"), ("w", "lif"), ("lif", "acc"), ("acc", "acc"), ("acc", "output")], "binary")
    res = analyze(g)
    assert res.out["lif"].is_binary
    assert res.out["acc"].kind == "integer" and res.out["acc"].hi == math.inf  # widened, sound
    assert check_purity(g).op("acc").op_class == "AC"  # identity weights: adds the integer
    g.nodes["acc"].weight = np.eye(3) * 0.3
    assert check_purity(g).op("acc").op_class == "MAC"  # 0.3 x a growing real state


def test_bad_graphs_are_reported_with_the_node():
    g = _tiny({"input": nir.Input(input_type={"input": np.array([3])}),
               "output": nir.Output(output_type={"output": np.array([3])})}, [("input", "output")])
    g.edges.append(("input", "ghost"))
    with pytest.raises(BadInputError, match="ghost"):
        analyze(g)
    att = pg.spikingformer_like(depth=1)
    att.nodes["block.0.attn.attention"].metadata["neurodeploy.extension_version"] = 2
    # the one attention reader (graph/attention.py) refuses unknown versions, and a missing one (issue 10)
    with pytest.raises(BadInputError, match="block.0.attn.attention: spiking_attention extension version 2"):
        analyze(att)
    del att.nodes["block.0.attn.attention"].metadata["neurodeploy.extension_version"]
    with pytest.raises(BadInputError, match="extension version None"):
        analyze(att)
    att.nodes["block.0.attn.attention"].metadata["neurodeploy.extension_version"] = 1
    with pytest.raises(BadInputError, match="input domain"):
        analyze(att, input_domain="spikes")


def test_nested_subgraph_nodes_are_analysed_and_reported_once():
    import nir
    import numpy as np

    from neurodeploy.analysis import analyze, check_purity

    f = np.float32
    sub = nir.NIRGraph(nodes={"i": nir.Input(input_type={"input": np.array([3])}),
                              "fc": nir.Affine(weight=np.ones((2, 3), f), bias=np.zeros(2, f)),
                              "o": nir.Output(output_type={"output": np.array([2])})},
                       edges=[("i", "fc"), ("fc", "o")])
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}),
                            "lif": nir.LIF(tau=np.full(3, 2e-4, f), r=np.ones(3, f), v_leak=np.zeros(3, f),
                                           v_threshold=np.ones(3, f)),
                            "sub": sub, "output": nir.Output(output_type={"output": np.array([2])})},
                     edges=[("input", "lif"), ("lif", "sub"), ("sub", "output")])
    order = analyze(g).order
    assert sorted(order) == sorted(set(order)) and "sub.fc" in order
    ops = check_purity(g).ops
    assert [(o.node, o.op_class) for o in ops] == [("sub.fc", "AC")]
