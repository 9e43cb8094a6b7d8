"""Spikingformer (every variant), Spikformer, Spike-driven Transformer V1/V2, QKFormer and SEW-ResNet ->
``nir.NIRGraph`` (docs/nir.md).

Written by hand rather than with ``nirtorch.torch_to_nir``: nirtorch cannot trace the attention
products, MaxPool, the [T, B] reshapes or BatchNorm (reference nir.md section 2.1), so the exporter walks
the known module structure and emits each operation's exact NIR form.
"""
from __future__ import annotations

import nir
import numpy as np
import torch

from neurodeploy.errors import BadInputError, UnsupportedError
from neurodeploy.graph.attention import make_attention_node

from .builder import GraphBuilder, check_coverage, expect

MAX_EXPANSION_WEIGHTS = 30_000_000

SUPPORTED_TORCH = (
    "neurodeploy Spikingformer (Conv2d/Conv1d + BatchNorm, MultiStepLIF, MaxPool2d(3, 2, 1), spiking self-attention, "
    "Linear head), Spikformer, Spike-driven Transformer V1 and V2, QKFormer and SEW-ResNet (ADD/AND/IAND) models; snnTorch and Norse modules through their importers"
)


def _image_shape(cfg, input_shape):
    if input_shape is None:
        return (int(cfg.in_channels), int(cfg.img_size), int(cfg.img_size))
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or shape[0] != cfg.in_channels or min(shape) < 1:
        raise BadInputError(f"input shape {list(shape)}: expected [{cfg.in_channels}, H, W] with H, W >= 1")
    return shape


def _graph_meta(arch: str, T, events: bool) -> dict:
    return {
        "neurodeploy.arch": arch,
        "neurodeploy.time_steps": int(T or 0),
        "neurodeploy.input_encoding": "events" if events else "direct",
        "neurodeploy.input_domain": "counts" if events else "real",
        "neurodeploy.readout_reduction": "mean_over_time",
    }


def _begin(model, input_shape, dtype) -> tuple:
    """``(cfg, builder, input shape)`` with the graph's Input node added."""
    cfg = model.cfg
    b = GraphBuilder(dtype)
    shape = _image_shape(cfg, input_shape)
    b.add("input", nir.Input(input_type={"input": np.array(shape)}), [])
    return cfg, b, shape


def _finish(b: GraphBuilder, model, head: list[str], unused: set, family: str, arch: str, events: bool = False):
    """The Output node after the readout ``head``, the module coverage check, the graph with its metadata."""
    b.add("output", nir.Output(output_type={"output": np.array([model.cfg.num_classes])}), head)
    check_coverage(model, b.used_modules, unused, family, SUPPORTED_TORCH)
    return b.graph(_graph_meta(getattr(model, "arch", arch), model.cfg.T, events))


def _ssa(b: GraphBuilder, p: str, a, inputs: list[str], D: int, N: int, expand: bool, layer=None) -> str:
    """Spiking self-attention on [D, N] tokens: q, k, v = conv + BN -> LIF reading ``inputs``, the attention
    (:func:`_attention`), ``attn_lif``, the projection conv + BN; returns the projection's node.  ``layer(n)``:
    the (name suffix, module) of the q/k/v/proj layer (default ``n_conv``)."""
    layer = layer or (lambda n: (f"{n}_conv", getattr(a, f"{n}_conv")))
    qkv = []
    for n in "qkv":
        suffix, mod = layer(n)
        c, _ = b.conv_bn(f"{p}.{suffix}", mod, getattr(a, f"{n}_bn"), f"{p}.{n}_bn", (D, N), inputs, dims=1)
        qkv.append(b.lif(f"{p}.{n}_lif", getattr(a, f"{n}_lif"), (D, N), [c]))
    att = _attention(b, p, qkv, D, N, a.num_heads, float(a.scale), expand)
    al = b.lif(f"{p}.attn_lif", a.attn_lif, (D, N), att)
    suffix, mod = layer("proj")
    pc, _ = b.conv_bn(f"{p}.{suffix}", mod, a.proj_bn, f"{p}.proj_bn", (D, N), [al], dims=1)
    return pc


def _attention(b: GraphBuilder, prefix: str, qkv: list[str], D: int, N: int, heads: int, scale: float,
               expand: bool) -> list[str]:
    """Nodes computing scale * Q (K^T V); returns the names whose (summed) outputs feed attn_lif."""
    if expand:
        return _expand_attention(b, prefix, qkv, D, N, heads, scale)
    stack = []
    for i, (letter, src) in enumerate(zip("qkv", qkv)):
        w = np.zeros((3 * D, D, 1), dtype=b.dtype)
        w[i * D + np.arange(D), np.arange(D), 0] = 1
        stack.append(b.add(f"{prefix}.stack_{letter}", nir.Conv1d(input_shape=N, weight=w, stride=1, padding=0,
                                                                   dilation=1, groups=1, bias=np.zeros(3 * D, b.dtype)),
                           src, source=prefix, role="routing"))
    node = make_attention_node(D, heads, N, scale, source=prefix, dtype=b.dtype)
    b.add(f"{prefix}.attention", node, stack, source=prefix)
    return [f"{prefix}.attention"]


def _expand_attention(b: GraphBuilder, prefix: str, qkv: list[str], D: int, N: int, heads: int, scale: float) -> list[str]:
    """Exact expansion into standard primitives (docs/nir.md, "Exact expansion"):

    P[(h,i,j), m] = AND(K[hd+i, m], V[hd+j, m])            token-wise Conv1d from K and V + Threshold(1.5)
    for every token shift s in -(N-1)..N-1:
      Qs = Q shifted by s (Conv1d, kernel 2|s|+1)           Qs[c, m] = Q[c, m+s] (0 outside)
      U_s[(h,i,j), m] = AND(Qs[hd+i, m], P[(h,i,j), m])     Conv1d select + identity edge + Threshold(1.5)
      Z_s[(h,j), m] = sum_i U_s                             Conv1d (integer)
      y[hd+j, n] += scale * Z_s[(h,j), n - s]               Conv1d, kernel 2|s|+1 (shift back)
    so y[hd+j, n] = scale * sum_{i,m} Q[hd+i,n] K[hd+i,m] V[hd+j,m] exactly (integers times a power of 2)."""
    d = D // heads
    U = heads * d * d
    weights = 2 * D * D * (2 * N * N - 1) + 2 * (2 * N - 1) * U * D + 2 * U * D
    if weights > MAX_EXPANSION_WEIGHTS:
        raise UnsupportedError(
            f"{prefix}: the exact attention expansion would need {weights / 1e6:.0f}M weights (D={D}, N={N} tokens, "
            f"limit {MAX_EXPANSION_WEIGHTS / 1e6:.0f}M per block); it is meant for small models such as "
            "spikingformer-digits: export without --expand-attention"
        )
    q, k, v = qkv
    dt = b.dtype
    zero = lambda n: np.zeros(n, dtype=dt)  # noqa: E731
    hh, ii, jj = np.meshgrid(np.arange(heads), np.arange(d), np.arange(d), indexing="ij")
    unit = (hh * d * d + ii * d + jj).reshape(-1)
    ch_i = (hh * d + ii).reshape(-1)
    ch_j = (hh * d + jj).reshape(-1)
    ex = f"{prefix}.expand"

    def conv1d(name, w, src, pad=0):
        return b.add(name, nir.Conv1d(input_shape=N, weight=w, stride=1, padding=pad, dilation=1, groups=1,
                                      bias=zero(w.shape[0])), src, source=prefix)

    wk = np.zeros((U, D, 1), dtype=dt)
    wk[unit, ch_i, 0] = 1
    wv = np.zeros((U, D, 1), dtype=dt)
    wv[unit, ch_j, 0] = 1
    conv1d(f"{ex}.kv_k", wk, k)
    conv1d(f"{ex}.kv_v", wv, v)
    p_and = b.add(f"{ex}.kv_and", nir.Threshold(threshold=np.full((U, N), 1.5, dtype=dt)),
                  [f"{ex}.kv_k", f"{ex}.kv_v"], source=prefix)
    wsel = np.zeros((U, D, 1), dtype=dt)
    wsel[unit, ch_i, 0] = 1
    wsum = np.zeros((heads * d, U, 1), dtype=dt)
    wsum[ch_j, unit, 0] = 1
    outs = []
    for s in range(-(N - 1), N):
        tag = f"{'m' if s < 0 else 'p'}{abs(s)}"
        a = abs(s)
        ker = 2 * a + 1
        wshift = np.zeros((D, D, ker), dtype=dt)
        wshift[np.arange(D), np.arange(D), a + s] = 1          # out[c, m] = in[c, m + s]
        qs = conv1d(f"{ex}.q_shift_{tag}", wshift, q, pad=a)
        qsel = conv1d(f"{ex}.q_select_{tag}", wsel, qs)
        u = b.add(f"{ex}.and_{tag}", nir.Threshold(threshold=np.full((U, N), 1.5, dtype=dt)), [qsel, p_and], source=prefix)
        z = conv1d(f"{ex}.sum_{tag}", wsum, u)
        wback = np.zeros((D, D, ker), dtype=dt)
        wback[np.arange(D), np.arange(D), a - s] = scale      # out[c, n] = scale * in[c, n - s]
        outs.append(conv1d(f"{ex}.back_{tag}", wback, z, pad=a))
    return outs


def export_spikingformer(model, input_shape=None, dtype=np.float32, expand_attention: bool = False) -> nir.NIRGraph:
    cfg, b, shape = _begin(model, input_shape, dtype)
    prev = ["input"]
    tok = model.patch_embed
    for i in range(tok.num_stages):
        names = tok.stage_names(i)
        if i > 0:
            path = f"patch_embed.{names['lif']}"
            prev = [b.lif(path, getattr(tok, names["lif"], None), shape, prev)]
            if tok.pools[i - 1]:
                name, shape = b.maxpool(f"patch_embed.{names['pool']}", getattr(tok, names["pool"], None), shape, prev)
                prev = [name]
        cpath, bpath = f"patch_embed.{names['conv']}", f"patch_embed.{names['bn']}"
        name, shape = b.conv_bn(cpath, getattr(tok, names["conv"], None), getattr(tok, names["bn"], None), bpath, shape,
                                prev, dims=2, role="encoder" if i == 0 else None)
        prev = [name]
    D, N = shape[0], shape[1] * shape[2]
    if D != cfg.embed_dim:
        raise UnsupportedError(f"tokenizer outputs {D} channels, embed_dim is {cfg.embed_dim}")
    if N < 1:
        raise BadInputError(f"input shape {list(_image_shape(cfg, input_shape))} leaves no tokens after the tokenizer")
    stream = [b.add("patch_embed.flatten", nir.Flatten(input_type={"input": np.array(shape)}, start_dim=1), prev,
                    source="patch_embed")]
    for j, blk in enumerate(model.block):
        a, p = blk.attn, f"block.{j}.attn"
        x = b.lif(f"{p}.proj_lif", a.proj_lif, (D, N), stream)
        stream.append(_ssa(b, p, a, [x], D, N, expand_attention))
        m, p = blk.mlp, f"block.{j}.mlp"
        l1 = b.lif(f"{p}.mlp1_lif", m.mlp1_lif, (D, N), stream)
        c1, (Hd, _) = b.conv_bn(f"{p}.mlp1_conv", m.mlp1_conv, m.mlp1_bn, f"{p}.mlp1_bn", (D, N), [l1], dims=1)
        l2 = b.lif(f"{p}.mlp2_lif", m.mlp2_lif, (Hd, N), [c1])
        c2, _ = b.conv_bn(f"{p}.mlp2_conv", m.mlp2_conv, m.mlp2_bn, f"{p}.mlp2_bn", (Hd, N), [l2], dims=1)
        stream.append(c2)
    head = b.readout("head", model.head, stream, (D, N))
    return _finish(b, model, head, {"norm1", "norm2"}, "Spikingformer", "spikingformer", cfg.event_input)


def export_spikformer(model, input_shape=None, dtype=np.float32, expand_attention: bool = False) -> nir.NIRGraph:
    """Spikformer: post-activation blocks; the residual stream is a sum of spikes (integers) that q/k/v
    and fc1 read directly (fan-in of every earlier branch output)."""
    cfg, b, shape = _begin(model, input_shape, dtype)
    prev = ["input"]
    sps = model.patch_embed
    for i in range(sps.num_stages):
        sfx = "" if i == 0 else str(i)
        name, shape = b.conv_bn(f"patch_embed.proj_conv{sfx}", getattr(sps, f"proj_conv{sfx}", None),
                                getattr(sps, f"proj_bn{sfx}", None), f"patch_embed.proj_bn{sfx}", shape, prev, dims=2,
                                role="encoder" if i == 0 else None)
        prev = [b.lif(f"patch_embed.proj_lif{sfx}", getattr(sps, f"proj_lif{sfx}", None), shape, [name])]
        if sps.pools[i]:
            name, shape = b.maxpool(f"patch_embed.maxpool{sfx}", getattr(sps, f"maxpool{sfx}", None), shape, prev)
            prev = [name]
    feat = prev[0]
    name, _ = b.conv_bn("patch_embed.rpe_conv", sps.rpe_conv, sps.rpe_bn, "patch_embed.rpe_bn", shape, [feat], dims=2)
    rpe = b.lif("patch_embed.rpe_lif", sps.rpe_lif, shape, [name])
    D, N = shape[0], shape[1] * shape[2]
    stream = [b.add("patch_embed.flatten", nir.Flatten(input_type={"input": np.array(shape)}, start_dim=1), [rpe, feat],
                    source="patch_embed")]
    for j, blk in enumerate(model.block):
        a, p = blk.attn, f"block.{j}.attn"
        pc = _ssa(b, p, a, stream, D, N, expand_attention,
                  layer=lambda n, a=a: (f"{n}_{a.kind}", a.projection_layer(n)))
        stream.append(b.lif(f"{p}.proj_lif", a.proj_lif, (D, N), [pc]))
        m, p = blk.mlp, f"block.{j}.mlp"
        c1, (Hd, _) = b.conv_bn(f"{p}.fc1_{m.kind}", m.layer(1), m.fc1_bn, f"{p}.fc1_bn", (D, N), stream, dims=1)
        l1 = b.lif(f"{p}.fc1_lif", m.fc1_lif, (Hd, N), [c1])
        c2, _ = b.conv_bn(f"{p}.fc2_{m.kind}", m.layer(2), m.fc2_bn, f"{p}.fc2_bn", (Hd, N), [l1], dims=1)
        stream.append(b.lif(f"{p}.fc2_lif", m.fc2_lif, (D, N), [c2]))
    head = b.readout("head", model.head, stream, (D, N))
    return _finish(b, model, head, {"norm1", "norm2"}, "Spikformer", "spikformer")


def export_sew(model, input_shape=None, dtype=np.float32) -> nir.NIRGraph:
    """SEW-ResNet: ADD joins are summed edges (integer stream); AND = Threshold(a + b > 1.5) and
    IAND = Threshold(x - out > 0.5) (out negated by Scale(-1)) are exact for binary a, b, x, out."""
    cfg, b, shape = _begin(model, input_shape, dtype)
    name, shape = b.conv_bn("conv", model.conv, model.bn, "bn", shape, ["input"], dims=2, role="encoder")
    stream = [b.lif("sn", model.sn, shape, [name])]
    for i, blk in enumerate(model.layer):
        p = f"layer.{i}"
        c1, _ = b.conv_bn(f"{p}.conv1", blk.conv1, blk.bn1, f"{p}.bn1", shape, stream, dims=2)
        s1 = b.lif(f"{p}.sn1", blk.sn1, shape, [c1])
        c2, _ = b.conv_bn(f"{p}.conv2", blk.conv2, blk.bn2, f"{p}.bn2", shape, [s1], dims=2)
        out = b.lif(f"{p}.sn2", blk.sn2, shape, [c2])
        if blk.connect_f == "ADD":
            stream = [out] + stream
            continue
        if len(stream) != 1:
            raise UnsupportedError(f"module {p!r}: {blk.connect_f} after an ADD block joins a non-binary stream "
                                   "(the Threshold form is exact only for binary operands)")
        if blk.connect_f == "AND":
            stream = [b.add(f"{p}.connect", nir.Threshold(threshold=np.full(shape, 1.5, dtype=b.dtype)),
                            [out, stream[0]], source=p, connect_f="AND")]
        elif blk.connect_f == "IAND":
            neg = b.add(f"{p}.connect.neg", nir.Scale(scale=np.full(shape, -1.0, dtype=b.dtype)), out, source=p)
            stream = [b.add(f"{p}.connect", nir.Threshold(threshold=np.full(shape, 0.5, dtype=b.dtype)),
                            [stream[0], neg], source=p, connect_f="IAND")]
        else:
            raise UnsupportedError(f"module {p!r}: connect_f {blk.connect_f!r} (supported: ADD, AND, IAND)")
    head = b.readout("fc", model.fc, stream, shape)
    return _finish(b, model, head, set(), "SEW-ResNet", "sew-resnet")


def sdsa_nodes(b: GraphBuilder, p: str, q: str, k: str, v: str, shape, mask_lif) -> str:
    """Spike-driven self-attention (SDT V1) in standard NIR primitives on the [D, H, W] token grid
    (docs/nir.md, "Spike-driven self-attention"); every step is exact for binary Q, K, V:

      kv_and            = Threshold(K + V > 1.5)                                  [D, H, W]  K AND V
      kv_sum            = SumPool2d(kernel (2H-1, 2W-1), stride 1, pad (H-1, W-1)) [D, H, W]  the count over all
                          tokens of the channel, at every token (each window covers the whole grid)
      talking_heads_lif = LIF (V_th 0.5, the model's neuron), one identical copy per token: fires iff the
                          count >= 1 (an OR)
      q_and_mask        = Threshold(talking_heads_lif + Q > 1.5)                  [D, H, W]  Q AND mask
    (SumPool2d is per channel and typed by NIR; a broadcast of a [D, 1, 1] mask would need a grouped conv,
    whose type NIR 1.0.8 infers wrongly on reading the file.)  Returns the name of ``q_and_mask``."""
    dt = b.dtype
    D, H, W = shape
    kv = b.add(f"{p}.kv_and", nir.Threshold(threshold=np.full(shape, 1.5, dtype=dt)), [k, v], source=p)
    cnt = b.add(f"{p}.kv_sum", nir.SumPool2d(kernel_size=np.array([2 * H - 1, 2 * W - 1]), stride=np.array([1, 1]),
                                             padding=np.array([H - 1, W - 1])), kv, source=p)
    mask = b.lif(f"{p}.talking_heads_lif", mask_lif, shape, [cnt])
    return b.add(f"{p}.q_and_mask", nir.Threshold(threshold=np.full(shape, 1.5, dtype=dt)), [mask, q], source=p)


def export_sdt(model, input_shape=None, dtype=np.float32) -> nir.NIRGraph:
    """Spike-driven Transformer V1 on the [D, H, W] token grid (its 1x1 Conv2d layers as nir.Conv2d):
    MS_SPS tokenizer, membrane-shortcut blocks with SDSA (standard NIR, :func:`sdsa_nodes`), head = token
    mean of the stream (AvgPool2d, role readout) -> head_lif -> Linear."""
    cfg, b, shape = _begin(model, input_shape, dtype)
    sps = model.patch_embed
    stat = sps.pooling_stat
    prev = ["input"]
    unused = {"attn_lif", "talking_heads", "rpe_lif"}
    for i in range(3):
        sfx = "" if i == 0 else str(i)
        name, shape = b.conv_bn(f"patch_embed.proj_conv{sfx}", getattr(sps, f"proj_conv{sfx}"),
                                getattr(sps, f"proj_bn{sfx}"), f"patch_embed.proj_bn{sfx}", shape, prev, dims=2,
                                role="encoder" if i == 0 else None)
        prev = [b.lif(f"patch_embed.proj_lif{sfx}", getattr(sps, f"proj_lif{sfx}"), shape, [name])]
        if stat[i] == "1":
            name, shape = b.maxpool(f"patch_embed.maxpool{sfx}", getattr(sps, f"maxpool{sfx}"), shape, prev)
            prev = [name]
        else:
            unused.add(f"maxpool{sfx}")
    feat, shape = b.conv_bn("patch_embed.proj_conv3", sps.proj_conv3, sps.proj_bn3, "patch_embed.proj_bn3", shape,
                            prev, dims=2)
    if stat[3] == "1":      # the official configs: a max of the real BN output (the max_pool2d extension)
        feat, shape = b.maxpool_values("patch_embed.maxpool3", sps.maxpool3, shape, [feat])
    else:
        unused.add("maxpool3")
    l3 = b.lif("patch_embed.proj_lif3", sps.proj_lif3, shape, [feat])
    rpe, _ = b.conv_bn("patch_embed.rpe_conv", sps.rpe_conv, sps.rpe_bn, "patch_embed.rpe_bn", shape, [l3], dims=2)
    if shape[0] != cfg.embed_dim:
        raise UnsupportedError(f"tokenizer outputs {shape[0]} channels, embed_dim is {cfg.embed_dim}")
    stream = [rpe, feat]  # the membrane stream is the sum of these nodes' outputs (summed on the edges)
    for j, blk in enumerate(model.block):
        a, p = blk.attn, f"block.{j}.attn"
        s = b.lif(f"{p}.shortcut_lif", a.shortcut_lif, shape, stream)
        qkv = []
        for n in "qkv":
            c, _ = b.conv_bn(f"{p}.{n}_conv", getattr(a, f"{n}_conv"), getattr(a, f"{n}_bn"), f"{p}.{n}_bn", shape,
                             [s], dims=2)
            qkv.append(b.lif(f"{p}.{n}_lif", getattr(a, f"{n}_lif"), shape, [c]))
        out = sdsa_nodes(b, p, *qkv, shape, a.talking_heads_lif)
        pc, _ = b.conv_bn(f"{p}.proj_conv", a.proj_conv, a.proj_bn, f"{p}.proj_bn", shape, [out], dims=2)
        stream = stream + [pc]
        m, p = blk.mlp, f"block.{j}.mlp"
        l1 = b.lif(f"{p}.fc1_lif", m.fc1_lif, shape, stream)
        c1, hshape = b.conv_bn(f"{p}.fc1_conv", m.fc1_conv, m.fc1_bn, f"{p}.fc1_bn", shape, [l1], dims=2)
        inner = stream + [c1] if m.res else [c1]  # mlp_ratio 1: the official inner shortcut
        l2 = b.lif(f"{p}.fc2_lif", m.fc2_lif, hshape, inner)
        c2, _ = b.conv_bn(f"{p}.fc2_conv", m.fc2_conv, m.fc2_bn, f"{p}.fc2_bn", hshape, [l2], dims=2)
        stream = (inner if m.res else stream) + [c2]
    D, H, W = shape
    mean = b.add("head.token_mean", nir.AvgPool2d(kernel_size=np.array([H, W]), stride=np.array([1, 1]),
                                                  padding=np.array([0, 0])), stream, source="head", role="readout")
    hl = b.lif("head_lif", model.head_lif, (D, 1, 1), [mean])
    head = b.readout("head", model.head, [hl], (D, 1, 1))
    return _finish(b, model, head, unused, "Spike-driven Transformer", "sdt")


def qk_token_attention_nodes(b: GraphBuilder, p: str, q: str, k: str, shape, heads: int, attn_lif) -> str:
    """QKFormer's Q-K token attention in standard NIR primitives on the [D, H, W] token grid (docs/nir.md,
    "Q-K token attention"); exact for binary Q, K:

      head_sum  = Conv2d 1x1 [heads, D], 1 where channel c is in head h   [heads, H, W]  count of Q per head, token
      attn_lif  = LIF (V_th 0.5)                                          [heads, H, W]  fires iff the count >= 1 (OR)
      broadcast = Conv2d 1x1 [D, heads], 1 where channel c is in head h   [D, H, W]      the head's bit on its channels
      k_and     = Threshold(broadcast + K > 1.5)                          [D, H, W]      A AND K
    Returns the name of ``k_and`` (binary)."""
    dt = b.dtype
    D, H, W = shape
    d = D // heads
    member = np.zeros((heads, D, 1, 1), dtype=dt)
    member[np.arange(D) // d, np.arange(D), 0, 0] = 1
    cnt = b.add(f"{p}.head_sum", nir.Conv2d(input_shape=(H, W), weight=member, stride=1, padding=0, dilation=1,
                                            groups=1, bias=np.zeros(heads, dtype=dt)), q, source=p)
    a = b.lif(f"{p}.attn_lif", attn_lif, (heads, H, W), [cnt])
    rep = b.add(f"{p}.head_broadcast", nir.Conv2d(input_shape=(H, W), weight=np.ascontiguousarray(member.transpose(1, 0, 2, 3)),
                                                  stride=1, padding=0, dilation=1, groups=1,
                                                  bias=np.zeros(D, dtype=dt)), a, source=p)
    return b.add(f"{p}.k_and", nir.Threshold(threshold=np.full(shape, 1.5, dtype=dt)), [rep, k], source=p)


def _qk_stage(b: GraphBuilder, model_stage, stage: str, stream: list, shape) -> list:
    """Q-K token-attention blocks (stages 1 and 2) on the [D, H, W] grid with the spike-element-wise stream:
    every branch ends in a LIF whose spikes join the stream (summed on the edges)."""
    for j, blk in enumerate(model_stage):
        a, p = blk.tssa, f"{stage}.{j}.tssa"
        qk = []
        for n in "qk":
            c, _ = b.conv_bn(f"{p}.{n}_conv", getattr(a, f"{n}_conv"), getattr(a, f"{n}_bn"), f"{p}.{n}_bn", shape,
                             stream, dims=2)
            qk.append(b.lif(f"{p}.{n}_lif", getattr(a, f"{n}_lif"), shape, [c]))
        out = qk_token_attention_nodes(b, p, qk[0], qk[1], shape, a.num_heads, a.attn_lif)
        pc, _ = b.conv_bn(f"{p}.proj_conv", a.proj_conv, a.proj_bn, f"{p}.proj_bn", shape, [out], dims=2)
        stream = stream + [b.lif(f"{p}.proj_lif", a.proj_lif, shape, [pc])]
        stream = _mlp(b, blk.mlp, f"{stage}.{j}.mlp", stream, shape, dims=2)
    return stream


def _mlp(b: GraphBuilder, m, p: str, stream: list, shape, dims: int) -> list:
    names = [f"{p}.{m.prefix}{i}" for i in (1, 2)]
    h1, hshape = b.conv_bn(f"{names[0]}_conv", m.layer(1, "conv"), m.layer(1, "bn"), f"{names[0]}_bn", shape, stream,
                           dims=dims)
    l1 = b.lif(f"{names[0]}_lif", m.layer(1, "lif"), hshape, [h1])
    h2, _ = b.conv_bn(f"{names[1]}_conv", m.layer(2, "conv"), m.layer(2, "bn"), f"{names[1]}_bn", hshape, [l1],
                      dims=dims)
    return stream + [b.lif(f"{names[1]}_lif", m.layer(2, "lif"), shape, [h2])]


def _conv_bn_pool_lif(b: GraphBuilder, e, pe: str, name: str, shape, inputs: list, pool: bool) -> tuple:
    """``{pe}.{name}_conv`` -> ``_bn`` -> (``_maxpool`` of the real BN output when ``pool``: the max_pool2d
    extension) -> ``_lif``: the LIF's node name and shape."""
    c, s = b.conv_bn(f"{pe}.{name}_conv", getattr(e, f"{name}_conv"), getattr(e, f"{name}_bn"), f"{pe}.{name}_bn",
                     shape, inputs, dims=2)
    if pool:
        c, s = b.maxpool_values(f"{pe}.{name}_maxpool", getattr(e, f"{name}_maxpool"), s, [c])
    return b.lif(f"{pe}.{name}_lif", getattr(e, f"{name}_lif"), s, [c]), s


def _patch_embed_stage(b: GraphBuilder, e, pe: str, stream: list, shape) -> tuple[list, tuple]:
    """PatchEmbeddingStage: proj3 (3x3) -> LIF -> proj4 (3x3) -> LIF, a max-pool of a real BN output (proj4
    cifar, proj3 imagenet: the max_pool2d extension) before its LIF; the deformed shortcut proj_res (1x1, stride 2)
    -> LIF reads the (integer) stage input; the new stream is the two LIFs' spikes (summed on the edges)."""
    l3, s3 = _conv_bn_pool_lif(b, e, pe, "proj3", shape, stream, e.coding == "imagenet")
    l4, s4 = _conv_bn_pool_lif(b, e, pe, "proj4", s3, [l3], e.coding == "cifar")
    cr, sr = b.conv_bn(f"{pe}.proj_res_conv", e.proj_res_conv, e.proj_res_bn, f"{pe}.proj_res_bn", shape, stream,
                       dims=2)
    if tuple(sr) != tuple(s4):
        raise UnsupportedError(f"module '{pe}': the shortcut gives {list(sr)}, the main path {list(s4)}")
    lr = b.lif(f"{pe}.proj_res_lif", e.proj_res_lif, sr, [cr])
    return [l4, lr], s4


def export_qkformer(model, input_shape=None, dtype=np.float32, expand_attention: bool = False) -> nir.NIRGraph:
    """QKFormer, every stage: PatchEmbedInit and the Q-K token-attention stages 1-2 on the [D, H, W] token grid
    (token-wise Conv1d as 1x1 Conv2d), PatchEmbeddingStage between stages, stage 3's SSA blocks on [D, N] tokens
    (the spiking_attention extension), all with the spike-element-wise (integer) stream.  Every max-pool of a
    real BN output is the max_pool2d extension (docs/nir.md)."""
    cfg, b, shape = _begin(model, input_shape, dtype)
    e, pe = model.patch_embed1, "patch_embed1"
    c0, shape0 = b.conv_bn(f"{pe}.proj_conv", e.proj_conv, e.proj_bn, f"{pe}.proj_bn", shape, ["input"], dims=2,
                           role="encoder")
    if e.coding == "imagenet":          # max-pools of the real BN outputs: the max_pool2d extension
        c0, shape0 = b.maxpool_values(f"{pe}.proj_maxpool", e.proj_maxpool, shape0, [c0])
    s0 = b.lif(f"{pe}.proj_lif", e.proj_lif, shape0, [c0])
    s1, shape1 = _conv_bn_pool_lif(b, e, pe, "proj1", shape0, [s0], e.coding == "imagenet")
    if e.coding == "imagenet":
        s1, shape1 = _conv_bn_pool_lif(b, e, pe, "proj2", shape1, [s1], False)
    cr, shape_r = b.conv_bn(f"{pe}.proj_res_conv", e.proj_res_conv, e.proj_res_bn, f"{pe}.proj_res_bn", shape0, [s0],
                            dims=2)
    sr = b.lif(f"{pe}.proj_res_lif", e.proj_res_lif, shape_r, [cr])
    stream, shape = [s1, sr], tuple(shape1)             # integers 0..2, summed on the edges
    stream = _qk_stage(b, model.stage1, "stage1", stream, shape)
    if cfg.num_stages >= 2:
        stream, shape = _patch_embed_stage(b, model.patch_embed2, "patch_embed2", stream, shape)
        stream = _qk_stage(b, model.stage2, "stage2", stream, shape)
    unused = set()
    if cfg.num_stages >= 3:
        stream, shape = _patch_embed_stage(b, model.patch_embed3, "patch_embed3", stream, shape)
        D, N = shape[0], shape[1] * shape[2]
        stream = [b.add("patch_embed3.flatten", nir.Flatten(input_type={"input": np.array(shape)}, start_dim=1),
                        stream, source="patch_embed3")]
        for j, blk in enumerate(model.stage3):
            a = blk.attention
            p = f"stage3.{j}.{blk.attn_name}"
            pc = _ssa(b, p, a, stream, D, N, expand_attention)
            stream = stream + [b.lif(f"{p}.proj_lif", a.proj_lif, (D, N), [pc])]
            stream = _mlp(b, blk.mlp, f"stage3.{j}.mlp", stream, (D, N), dims=1)
        shape = (D, N)
        unused.add("qkv_mp")        # defined by the official SSA, never called
    head = b.readout("head", model.head, stream, shape)
    return _finish(b, model, head, unused, "QKFormer", "qkformer")


def _bn_affine(bn) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode BatchNorm as (scale, shift) per channel, float64."""
    g = bn.weight.detach().double() if bn.weight is not None else torch.ones(bn.num_features, dtype=torch.float64)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros(bn.num_features, dtype=torch.float64)
    s = g / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    return s.numpy(), (beta - bn.running_mean.detach().double() * s).numpy()


def fold_repconv(seq) -> tuple[np.ndarray, np.ndarray]:
    """SDT V2's ``Sequential(RepConv, BN)`` in eval mode as ONE zero-padded 3x3 conv with bias on its input
    (docs/nir.md, "Spike-driven Transformer V2"): conv1x1 W1, BN a1 x + c1 with a border of BN(0) = c1 (a 1x1
    conv without bias maps the zero border of the input to 0, so the border equals BN of a zero-padded conv1x1
    output), dw3x3 Wd (valid), pw1x1 Wp, BN2, BN3: K[o, i] = s3 s2 sum_c Wp[o, c] Wd[c] a1[c] W1[c, i] and
    bias = s3 (s2 (sum_c Wp[o, c] sum(Wd[c]) c1[c]) + t2) + t3.  Returns (weight [O, I, 3, 3], bias [O]), float64."""
    rep, bn3 = seq[0], seq[1]
    conv1, bnpad, (dw, pw, bn2) = rep.body[0], rep.body[1], rep.body[2]
    for m, kinds, path in ((conv1, ("Conv2d",), "body.0"), (bnpad.bn, ("BatchNorm2d",), "body.1.bn"),
                           (dw, ("Conv2d",), "body.2.0"), (pw, ("Conv2d",), "body.2.1"),
                           (bn2, ("BatchNorm2d",), "body.2.2"), (bn3, ("BatchNorm2d",), "1")):
        expect(m, path, kinds)
    if bnpad.pad_pixels != 1 or tuple(dw.kernel_size) != (3, 3) or dw.groups != dw.in_channels or any(dw.padding) \
            or conv1.bias is not None or dw.bias is not None or pw.bias is not None:
        raise UnsupportedError("RepConv: expected conv1x1 (no bias), a 1-pixel BN pad, dw3x3 valid, pw1x1 (no bias)")
    W1 = conv1.weight.detach().double().numpy()[:, :, 0, 0]         # [C, I]
    a1, c1 = _bn_affine(bnpad.bn)
    Wd = dw.weight.detach().double().numpy()[:, 0]                  # [C, 3, 3]
    Wp = pw.weight.detach().double().numpy()[:, :, 0, 0]            # [O, C]
    s2, t2 = _bn_affine(bn2)
    s3, t3 = _bn_affine(bn3)
    C, I = W1.shape
    kd = Wp[:, :, None] * Wd.reshape(1, C, 9)                          # [O, C, 9]: pw after dw
    K = np.matmul(kd.transpose(0, 2, 1), a1[:, None] * W1)            # [O, 9, I] (BLAS, not a 5-index loop)
    K = np.ascontiguousarray(K.transpose(0, 2, 1)).reshape(Wp.shape[0], I, 3, 3)
    b = Wp @ (Wd.sum((1, 2)) * c1)
    g = s3 * s2
    return K * g[:, None, None, None], s3 * (s2 * b + t2) + t3


def fold_sepconv_tail(sep) -> tuple[np.ndarray, np.ndarray]:
    """SepConv's ``dwconv (7x7 depthwise) -> pwconv2 (1x1) -> bn2`` (no neuron between them: a real x real chain)
    as ONE dense 7x7 conv with bias on lif2's spikes: K[o, c] = s2[o] Wp[o, c] Wd[c], bias t2."""
    dw, pw = sep.dwconv, sep.pwconv2
    if dw.groups != dw.in_channels or dw.bias is not None or pw.bias is not None or tuple(pw.kernel_size) != (1, 1):
        raise UnsupportedError("SepConv: expected a depthwise conv then a 1x1 conv, both without bias")
    Wd = dw.weight.detach().double().numpy()[:, 0]                  # [C, k, k]
    Wp = pw.weight.detach().double().numpy()[:, :, 0, 0]            # [O, C]
    s2, t2 = _bn_affine(sep.bn2)
    return (s2[:, None] * Wp)[:, :, None, None] * Wd[None], t2


def export_sdtv2(model, input_shape=None, dtype=np.float32, expand_attention: bool = False) -> nir.NIRGraph:
    """Spike-driven Transformer V2 (Meta-SpikeFormer) on the [C, H, W] grid of every stage, re-parameterized for
    inference (docs/nir.md, "Spike-driven Transformer V2"): every ``RepConv + BN`` is one 3x3 conv, SepConv's
    ``dw7x7 -> pw1x1 -> BN`` one 7x7 conv, BNs after convs folded; the membrane-shortcut stream is the sum of
    its branch outputs (summed on the edges, entering LIFs only); the attention ``0.125 Q (K^T V)`` is the
    spiking_attention extension on the token grid; head = token mean (AvgPool2d, readout) -> lif -> Linear
    (with ``kd``: the mean of head and head_kd, one Linear)."""
    if expand_attention:
        raise UnsupportedError("Spike-driven Transformer V2: --expand-attention is not available (its attention "
                               "runs on the token grid between 3x3 convs); export without it")
    cfg, b, shape = _begin(model, input_shape, dtype)
    stream = ["input"]
    for name, m in model.stages():
        if name.startswith("downsample"):
            inputs = stream
            if hasattr(m, "encode_lif"):
                inputs = [b.lif(f"{name}.encode_lif", m.encode_lif, shape, stream)]
            c, shape = b.conv_bn(f"{name}.encode_conv", m.encode_conv, m.encode_bn, f"{name}.encode_bn", shape, inputs,
                                 dims=2, role="encoder" if stream == ["input"] else None)
            stream = [c]
        elif name.startswith("ConvBlock"):
            sep, p = m.Conv, f"{name}.Conv"
            l1 = b.lif(f"{p}.lif1", sep.lif1, shape, stream)
            c1, hshape = b.conv_bn(f"{p}.pwconv1", sep.pwconv1, sep.bn1, f"{p}.bn1", shape, [l1], dims=2)
            l2 = b.lif(f"{p}.lif2", sep.lif2, hshape, [c1])
            w, bias = fold_sepconv_tail(sep)
            sc, _ = b.conv_folded(f"{p}.dwconv_pwconv2", w, bias, 1, sep.dwconv.padding, hshape, [l2],
                                  [f"{p}.dwconv", f"{p}.pwconv2", f"{p}.bn2"])
            stream = stream + [sc]
            a1 = b.lif(f"{name}.lif1", m.lif1, shape, stream)
            c1, hshape = b.conv_bn(f"{name}.conv1", m.conv1, m.bn1, f"{name}.bn1", shape, [a1], dims=2)
            a2 = b.lif(f"{name}.lif2", m.lif2, hshape, [c1])
            c2, _ = b.conv_bn(f"{name}.conv2", m.conv2, m.bn2, f"{name}.bn2", hshape, [a2], dims=2)
            stream = stream + [c2]
        else:
            stream = _sdtv2_block(b, m, name, stream, shape)
    D, H, W = shape
    mean = b.add("head.token_mean", nir.AvgPool2d(kernel_size=np.array([H, W]), stride=np.array([1, 1]),
                                                  padding=np.array([0, 0])), stream, source="head", role="readout")
    hl = b.lif("lif", model.lif, (D, 1, 1), [mean])
    lin = model.head
    if getattr(model, "kd", False):  # eval output (head + head_kd) / 2: one Linear with the averaged weights
        lin = torch.nn.Linear(model.head.in_features, model.head.out_features).double()
        with torch.no_grad():
            lin.weight.copy_((model.head.weight.double() + model.head_kd.weight.double()) / 2)
            lin.bias.copy_((model.head.bias.double() + model.head_kd.bias.double()) / 2)
        b.use("head_kd")
    head = b.readout("head", lin, [hl], (D, 1, 1))
    return _finish(b, model, head, set(), "Spike-driven Transformer V2", "sdtv2")


def _sdtv2_block(b: GraphBuilder, blk, name: str, stream: list, shape) -> list:
    """MS_Block: head_lif -> q/k/v (folded RepConv 3x3) -> LIF -> stack routing (1x1 Conv2d) -> attention on the
    grid -> attn_lif (V_th 0.5) -> proj (folded RepConv) joins the stream; MLP fc1_lif -> fc1 -> fc2_lif -> fc2
    (token-wise Conv1d as 1x1 Conv2d) joins the stream."""
    a, p = blk.attn, f"{name}.attn"
    D, H, W = shape
    s = b.lif(f"{p}.head_lif", a.head_lif, shape, stream)
    qkv = []
    for n in "qkv":
        seq = getattr(a, f"{n}_conv")
        w, bias = fold_repconv(seq)
        c, _ = b.conv_folded(f"{p}.{n}_conv", w, bias, 1, 1, shape, [s], _repconv_paths(f"{p}.{n}_conv"))
        qkv.append(b.lif(f"{p}.{n}_lif", getattr(a, f"{n}_lif"), shape, [c]))
    stack = []
    for i, (letter, src) in enumerate(zip("qkv", qkv)):
        wr = np.zeros((3 * D, D, 1, 1), dtype=b.dtype)
        wr[i * D + np.arange(D), np.arange(D), 0, 0] = 1
        stack.append(b.add(f"{p}.stack_{letter}", nir.Conv2d(input_shape=(H, W), weight=wr, stride=1, padding=0,
                                                             dilation=1, groups=1, bias=np.zeros(3 * D, b.dtype)),
                           src, source=p, role="routing"))
    node = make_attention_node(D, a.num_heads, H * W, float(a.scale), source=p, dtype=b.dtype, grid=(H, W))
    b.add(f"{p}.attention", node, stack, source=p)
    al = b.lif(f"{p}.attn_lif", a.attn_lif, shape, [f"{p}.attention"])
    w, bias = fold_repconv(a.proj_conv)
    pc, _ = b.conv_folded(f"{p}.proj_conv", w, bias, 1, 1, shape, [al], _repconv_paths(f"{p}.proj_conv"))
    stream = stream + [pc]
    m, p = blk.mlp, f"{name}.mlp"
    l1 = b.lif(f"{p}.fc1_lif", m.fc1_lif, shape, stream)
    c1, hshape = b.conv_bn(f"{p}.fc1_conv", m.fc1_conv, m.fc1_bn, f"{p}.fc1_bn", shape, [l1], dims=2)
    l2 = b.lif(f"{p}.fc2_lif", m.fc2_lif, hshape, [c1])
    c2, _ = b.conv_bn(f"{p}.fc2_conv", m.fc2_conv, m.fc2_bn, f"{p}.fc2_bn", hshape, [l2], dims=2)
    return stream + [c2]


def _repconv_paths(p: str) -> list[str]:
    return [f"{p}.0.body.0", f"{p}.0.body.1.bn", f"{p}.0.body.2.0", f"{p}.0.body.2.1", f"{p}.0.body.2.2", f"{p}.1"]


def export_torch_model(model, input_shape=None, dtype=np.float32, expand_attention: bool = False) -> nir.NIRGraph:
    family = getattr(model, "arch_family", None)
    if family == "spikingformer":
        return export_spikingformer(model, input_shape, dtype, expand_attention)
    if family == "spikformer":
        return export_spikformer(model, input_shape, dtype, expand_attention)
    if family == "sdt":  # SDSA is standard NIR: the file is the same with or without expand_attention
        return export_sdt(model, input_shape, dtype)
    if family == "qkformer":
        return export_qkformer(model, input_shape, dtype, expand_attention)
    if family == "sdtv2":
        return export_sdtv2(model, input_shape, dtype, expand_attention)
    if family == "sew-resnet":  # no attention: the file is standard NIR with or without expand_attention
        return export_sew(model, input_shape, dtype)
    raise UnsupportedError(f"model of type {type(model).__name__} is not supported; supported: {SUPPORTED_TORCH}")
