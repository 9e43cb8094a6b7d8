"""Hand-built NIR graphs that follow docs/nir.md, for the purity tests (not a test module).

Small Spikingformer-, Spikformer- and SEW-like graphs with random float weights: node names are the
torch module paths, roles and the attention extension as the exporter writes them.
"""
from __future__ import annotations

import nir
import numpy as np

from neurodeploy.graph import make_attention_node

DT = 1e-4


class Builder:
    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.nodes: dict[str, nir.NIRNode] = {}
        self.edges: list[tuple[str, str]] = []

    def add(self, name, node, *srcs, role=None):
        md = {"neurodeploy.source": name}
        if role:
            md["neurodeploy.role"] = role
        node.metadata = {**md, **(node.metadata or {})} if not isinstance(node, nir.NIRGraph) else {**md, **node.metadata}
        self.nodes[name] = node
        for s in srcs:
            self.edges.append((s, name))
        return name

    def w(self, *shape, scale=1.0):
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def conv2d(self, name, c_in, c_out, side, *srcs, role=None, bias=False):
        b = self.w(c_out, scale=0.1) if bias else np.zeros(c_out, np.float32)
        return self.add(name, nir.Conv2d(input_shape=(side, side), weight=self.w(c_out, c_in, 3, 3, scale=0.6),
                                         stride=1, padding=1, dilation=1, groups=1, bias=b), *srcs, role=role)

    def conv1d(self, name, c_in, c_out, tokens, *srcs, role=None, weight=None, gain=1.0):
        w = self.w(c_out, c_in, 1, scale=gain / np.sqrt(c_in)) if weight is None else weight
        return self.add(name, nir.Conv1d(input_shape=tokens, weight=w, stride=1, padding=0, dilation=1, groups=1,
                                         bias=self.w(c_out, scale=0.1) if weight is None else np.zeros(c_out, np.float32)),
                        *srcs, role=role)

    def lif(self, name, shape, *srcs, th=1.0):
        shape = tuple(shape)
        thp = np.nextafter(np.float32(th), np.float32(-np.inf))
        node = nir.LIF(tau=np.full(shape, 2 * DT, np.float32), r=np.ones(shape, np.float32),
                       v_leak=np.zeros(shape, np.float32), v_reset=np.zeros(shape, np.float32),
                       v_threshold=np.full(shape, thp, np.float32),
                       metadata={"neurodeploy.v_threshold": float(th), "neurodeploy.spike_rule": ">="})
        return self.add(name, node, *srcs)

    def maxpool(self, name, shape, *srcs):
        c, h, w = shape
        s = self.add(name + ".sum", nir.SumPool2d(kernel_size=np.array([3, 3]), stride=np.array([2, 2]),
                                                  padding=np.array([1, 1])), *srcs)
        ho = (h + 2 - 3) // 2 + 1
        return self.add(name + ".or", nir.Threshold(threshold=np.full((c, ho, ho), 0.5, np.float32)), s), ho

    def graph(self, metadata):
        return nir.NIRGraph(nodes=self.nodes, edges=self.edges, metadata=metadata)


def _meta(arch, T=4, input_domain="real"):
    return {"neurodeploy.format_version": 1, "neurodeploy.arch": arch, "neurodeploy.dt": DT,
            "neurodeploy.time_steps": T, "neurodeploy.input_encoding": "direct",
            "neurodeploy.input_domain": input_domain, "neurodeploy.readout_reduction": "mean_over_time"}


def _head(b: Builder, D, N, classes, stream):
    b.add("head.flatten", nir.Flatten(input_type={"input": np.array([D, N])}, start_dim=0, end_dim=-1), *stream)
    w = b.w(classes, D, scale=0.5)
    b.add("head", nir.Affine(weight=(np.repeat(w, N, axis=1) / N).astype(np.float32), bias=b.w(classes, scale=0.1)),
          "head.flatten", role="readout")
    b.add("output", nir.Output(output_type={"output": np.array([classes])}), "head")


def _attention(b: Builder, p, D, heads, N, src_q, src_k, src_v, scale=0.125):
    for i, (n, src) in enumerate((("q", src_q), ("k", src_k), ("v", src_v))):
        w = np.zeros((3 * D, D, 1), np.float32)
        w[i * D + np.arange(D), np.arange(D), 0] = 1.0
        b.conv1d(f"{p}.stack_{n}", D, 3 * D, N, src, role="routing", weight=w)
    b.add(f"{p}.attention", make_attention_node(D, heads, N, scale, source=f"{p}.attention"),
          f"{p}.stack_q", f"{p}.stack_k", f"{p}.stack_v")
    return f"{p}.attention"


def spikingformer_like(depth=2, D=8, heads=2, side=8, classes=3, in_ch=1, seed=0) -> nir.NIRGraph:
    """ConvBN (encoder) -> LIF -> MaxPool -> ConvBN tokenizer, ``depth`` pre-activation blocks, Affine head."""
    b = Builder(seed)
    b.add("input", nir.Input(input_type={"input": np.array([in_ch, side, side])}))
    b.conv2d("patch_embed.block0_conv", in_ch, D // 2, side, "input", role="encoder")
    b.lif("patch_embed.block1_lif", (D // 2, side, side), "patch_embed.block0_conv")
    pooled, s2 = b.maxpool("patch_embed.block1_mp", (D // 2, side, side), "patch_embed.block1_lif")
    b.conv2d("patch_embed.block1_conv", D // 2, D, s2, pooled)
    N = s2 * s2
    b.add("patch_embed.flatten", nir.Flatten(input_type={"input": np.array([D, s2, s2])}, start_dim=1, end_dim=-1),
          "patch_embed.block1_conv")
    stream = ["patch_embed.flatten"]
    for i in range(depth):
        p = f"block.{i}.attn"
        b.lif(f"{p}.proj_lif", (D, N), *stream)
        for n in "qkv":
            b.conv1d(f"{p}.{n}_conv", D, D, N, f"{p}.proj_lif", gain=3.0)
            b.lif(f"{p}.{n}_lif", (D, N), f"{p}.{n}_conv")
        att = _attention(b, p, D, heads, N, f"{p}.q_lif", f"{p}.k_lif", f"{p}.v_lif")
        b.lif(f"{p}.attn_lif", (D, N), att, th=0.5)
        b.conv1d(f"{p}.proj_conv", D, D, N, f"{p}.attn_lif", gain=2.0)
        stream.append(f"{p}.proj_conv")
        m = f"block.{i}.mlp"
        b.lif(f"{m}.mlp1_lif", (D, N), *stream)
        b.conv1d(f"{m}.mlp1_conv", D, 4 * D, N, f"{m}.mlp1_lif", gain=3.0)
        b.lif(f"{m}.mlp2_lif", (4 * D, N), f"{m}.mlp1_conv")
        b.conv1d(f"{m}.mlp2_conv", 4 * D, D, N, f"{m}.mlp2_lif", gain=2.0)
        stream.append(f"{m}.mlp2_conv")
    _head(b, D, N, classes, stream)
    return b.graph(_meta("spikingformer-like"))


def spikformer_like(depth=2, D=8, heads=2, side=8, classes=3, seed=0) -> nir.NIRGraph:
    """SPS with the RPE sum (spikes + spikes), post-activation blocks whose outputs are spikes added to
    the stream: q/k/v and fc1 read integers."""
    b = Builder(seed)
    b.add("input", nir.Input(input_type={"input": np.array([1, side, side])}))
    b.conv2d("patch_embed.proj_conv", 1, D, side, "input", role="encoder")
    b.lif("patch_embed.proj_lif", (D, side, side), "patch_embed.proj_conv")
    x_feat, s2 = b.maxpool("patch_embed.maxpool", (D, side, side), "patch_embed.proj_lif")
    b.conv2d("patch_embed.rpe_conv", D, D, s2, x_feat)
    b.lif("patch_embed.rpe_lif", (D, s2, s2), "patch_embed.rpe_conv")
    N = s2 * s2
    b.add("patch_embed.flatten", nir.Flatten(input_type={"input": np.array([D, s2, s2])}, start_dim=1, end_dim=-1),
          "patch_embed.rpe_lif", x_feat)  # the RPE sum: spikes + spikes
    stream = ["patch_embed.flatten"]
    for i in range(depth):
        p = f"block.{i}.attn"
        for n in "qkv":
            b.conv1d(f"{p}.{n}_conv", D, D, N, *stream, gain=3.0)
            b.lif(f"{p}.{n}_lif", (D, N), f"{p}.{n}_conv")
        att = _attention(b, p, D, heads, N, f"{p}.q_lif", f"{p}.k_lif", f"{p}.v_lif")
        b.lif(f"{p}.attn_lif", (D, N), att, th=0.5)
        b.conv1d(f"{p}.proj_conv", D, D, N, f"{p}.attn_lif", gain=3.0)
        b.lif(f"{p}.proj_lif", (D, N), f"{p}.proj_conv")
        stream.append(f"{p}.proj_lif")
        m = f"block.{i}.mlp"
        b.conv1d(f"{m}.fc1_conv", D, 4 * D, N, *stream, gain=3.0)
        b.lif(f"{m}.fc1_lif", (4 * D, N), f"{m}.fc1_conv")
        b.conv1d(f"{m}.fc2_conv", 4 * D, D, N, f"{m}.fc1_lif", gain=3.0)
        b.lif(f"{m}.fc2_lif", (D, N), f"{m}.fc2_conv")
        stream.append(f"{m}.fc2_lif")
    _head(b, D, N, classes, stream)
    return b.graph(_meta("spikformer-like"))


def sew_like(connect_f="ADD", blocks=2, C=4, side=6, classes=3, seed=0) -> nir.NIRGraph:
    """Stem conv-SN, SEW blocks joined by ADD (fan-in sum), AND (Threshold(1.5) of the sum) or IAND
    (Threshold(0.5) of identity - out, the minus as Scale(-1))."""
    b = Builder(seed)
    b.add("input", nir.Input(input_type={"input": np.array([1, side, side])}))
    b.conv2d("conv", 1, C, side, "input", role="encoder")
    b.lif("sn", (C, side, side), "conv")
    x = ["sn"]
    for i in range(blocks):
        p = f"layer.{i}"
        b.conv2d(f"{p}.conv1", C, C, side, *x)
        b.lif(f"{p}.sn1", (C, side, side), f"{p}.conv1")
        b.conv2d(f"{p}.conv2", C, C, side, f"{p}.sn1")
        b.lif(f"{p}.sn2", (C, side, side), f"{p}.conv2")
        if connect_f == "ADD":
            x = x + [f"{p}.sn2"]
        elif connect_f == "AND":
            b.add(f"{p}.and", nir.Threshold(threshold=np.full((C, side, side), 1.5, np.float32)), *x, f"{p}.sn2")
            x = [f"{p}.and"]
        else:
            b.add(f"{p}.not", nir.Scale(scale=np.full((C, side, side), -1.0, np.float32)), f"{p}.sn2")
            b.add(f"{p}.iand", nir.Threshold(threshold=np.full((C, side, side), 0.5, np.float32)), *x, f"{p}.not")
            x = [f"{p}.iand"]
    N = side * side
    b.add("fc.flatten", nir.Flatten(input_type={"input": np.array([C, side, side])}, start_dim=0, end_dim=-1), *x)
    w = b.w(classes, C)
    b.add("fc", nir.Affine(weight=(np.repeat(w, N, axis=1) / N).astype(np.float32), bias=b.w(classes, scale=0.1)),
          "fc.flatten", role="readout")
    b.add("output", nir.Output(output_type={"output": np.array([classes])}), "fc")
    return b.graph(_meta(f"sew-{connect_f.lower()}-like"))
