"""read_graph / write_graph errors and atomicity; the attention extension through nir.write / nir.read."""
from __future__ import annotations

from conftest import NIR_PAPER
import h5py
import nir
import nirtorch
import numpy as np
import pytest
import torch

from neurodeploy.errors import BadInputError
from neurodeploy.graph import attention_spec, make_attention_node, read_graph, simulate, write_graph

CNN = str(NIR_PAPER / "02_cnn" / "cnn_sinabs.nir")


def test_read_errors_are_one_line_and_name_the_file(tmp_path):
    with pytest.raises(BadInputError, match=r"missing\.nir: no such file"):
        read_graph(tmp_path / "missing.nir")
    with pytest.raises(BadInputError, match="is a directory"):
        read_graph(tmp_path)
    junk = tmp_path / "junk.nir"
    junk.write_bytes(b"not hdf5 at all" * 20)
    with pytest.raises(BadInputError, match=r"junk\.nir: not a NIR file \(cannot open as HDF5"):
        read_graph(junk)
    other = tmp_path / "other.nir"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(BadInputError, match="without a 'node' group"):
        read_graph(other)
    # a truncated copy of a real file
    cut = tmp_path / "cut.nir"
    cut.write_bytes(open(CNN, "rb").read()[:50_000])
    with pytest.raises(BadInputError) as info:
        read_graph(cut)
    assert "cut.nir" in str(info.value) and "\n" not in str(info.value)
    # a node type nir does not know: nir.read fails with a bare AssertionError; we name the file
    bad = tmp_path / "custom.nir"
    with h5py.File(bad, "w") as f:
        f["version"] = "1.0.8"
        g = f.create_group("node")
        g["type"] = "NIRGraph"
        g["edges"] = np.array([[b"input", b"x"]], dtype=object)
        n = g.create_group("nodes")
        n.create_group("x")["type"] = "MaxPool2d"
    with pytest.raises(BadInputError, match=r"custom\.nir: not a readable NIR graph"):
        read_graph(bad)


def test_write_is_atomic(tmp_path):
    g = read_graph(CNN)
    target = tmp_path / "out" / "model.nir"
    write_graph(g, target)
    before = target.read_bytes()
    g.nodes["0"].metadata = {"bad": object()}  # not serializable: nir.write fails midway
    with pytest.raises(Exception):
        write_graph(g, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.nir"]


def _attention_graph():
    D, N = 8, 5
    att = make_attention_node(D, 2, N, 0.125, source="block.0.attn")
    return nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3 * D, N])}), "block.0.attn.attention": att,
                               "output": nir.Output(output_type={"output": np.array([D, N])})},
                        edges=[("input", "block.0.attn.attention"), ("block.0.attn.attention", "output")],
                        metadata={"neurodeploy.dt": 1e-4})


def test_attention_extension_round_trips_losslessly_and_plain_nir_read_opens_it(tmp_path):
    g = _attention_graph()
    path = write_graph(g, tmp_path / "att.nir")
    back = nir.read(path)  # plain nir.read, default type check
    node = back.nodes["block.0.attn.attention"]
    assert isinstance(node, nir.NIRGraph)
    orig = g.nodes["block.0.attn.attention"]
    assert {k: (v.item() if hasattr(v, "item") else v) for k, v in node.metadata.items()} == orig.metadata
    assert attention_spec(node) == attention_spec(orig)
    assert sorted(node.nodes) == ["input", "output", "unsupported"]
    assert np.isnan(node.nodes["unsupported"].weight).all()
    assert list(node.input_type["input"]) == [24, 5] and list(node.output_type["output"]) == [8, 5]
    # our simulator computes the attention exactly
    x = (torch.rand(2, 24, 5) < 0.5).float()
    out = simulate(back, x, T=1)[0]
    q, k, v = x[:, :8].reshape(2, 2, 4, 5), x[:, 8:16].reshape(2, 2, 4, 5), x[:, 16:].reshape(2, 2, 4, 5)
    ref = (q.transpose(-1, -2) @ (k @ v.transpose(-1, -2))).transpose(-1, -2).reshape(2, 8, 5) * 0.125
    assert torch.equal(out, ref)


def test_a_tool_that_ignores_the_extension_computes_nan(tmp_path):
    back = nir.read(write_graph(_attention_graph(), tmp_path / "att.nir"))
    module = nirtorch.nir_to_torch(back, {})
    out, _ = module(torch.ones(1, 24, 5))
    assert torch.isnan(out).all()


def _assert_same_graph(a, b):
    assert list(map(tuple, a.edges)) == list(map(tuple, b.edges))
    assert {k: str(v) for k, v in a.metadata.items()} == {k: str(v) for k, v in b.metadata.items()}
    assert set(a.nodes) == set(b.nodes)
    for name in a.nodes:
        na, nb = a.nodes[name], b.nodes[name]
        assert type(na) is type(nb), name
        if isinstance(na, nir.NIRGraph):
            _assert_same_graph(na, nb)
            continue
        da, db = na.to_dict(), nb.to_dict()
        assert da.keys() == db.keys(), name
        for key, va in da.items():
            if isinstance(va, np.ndarray):
                assert va.dtype == db[key].dtype and np.array_equal(va, db[key], equal_nan=va.dtype.kind == "f"), (name, key)
            elif key == "metadata":
                assert {k: str(v) for k, v in va.items()} == {k: str(v) for k, v in db[key].items()}
            else:
                assert str(va) == str(db[key]), (name, key)


def test_streaming_writer_produces_nir_writes_layout(tmp_path):
    from neurodeploy.exporters import to_nir

    from export_helpers import random_model

    for g in (to_nir(random_model("spikingformer-digits")), read_graph(CNN)):
        ours = nir.read(write_graph(g, tmp_path / "ours.nir"))
        nir.write(tmp_path / "theirs.nir", g)
        theirs = nir.read(tmp_path / "theirs.nir")
        _assert_same_graph(ours, theirs)
        with h5py.File(tmp_path / "ours.nir") as fa, h5py.File(tmp_path / "theirs.nir") as fb:
            names_a, names_b = [], []
            fa.visit(names_a.append)
            fb.visit(names_b.append)
            assert names_a == names_b
