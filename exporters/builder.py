"""Small helper that accumulates NIR nodes and edges with neurodeploy's metadata conventions."""
from __future__ import annotations

import nir
import numpy as np
import torch
from torch import nn

from neurodeploy.errors import UnsupportedError
from neurodeploy.graph.core import DT_DEFAULT, FORMAT_VERSION
from neurodeploy.graph.maxpool import make_maxpool_node


def module_desc(mod) -> str:
    return f"{type(mod).__module__}.{type(mod).__name__}"


class GraphBuilder:
    def __init__(self, dtype=np.float32, dt: float = DT_DEFAULT):
        self.dtype = np.dtype(dtype)
        self.dt = float(dt)
        self.nodes: dict[str, nir.NIRNode] = {}
        self.edges: list[tuple[str, str]] = []
        self.used_modules: set[str] = set()

    # -- plumbing -----------------------------------------------------------------------------
    def add(self, name: str, node: nir.NIRNode, inputs, source: str | None = None, role: str | None = None,
            **metadata) -> str:
        if name in self.nodes:
            raise ValueError(f"duplicate node name {name!r}")
        md = dict(node.metadata or {})
        if source is not None:
            md["neurodeploy.source"] = source
        if role is not None:
            md["neurodeploy.role"] = role
        md.update({f"neurodeploy.{k}": v for k, v in metadata.items()})
        node.metadata = md
        self.nodes[name] = node
        for src in ([inputs] if isinstance(inputs, str) else list(inputs)):
            self.edges.append((src, name))
        return name

    def use(self, *paths: str) -> None:
        self.used_modules.update(paths)

    def arr(self, value) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(value, dtype=self.dtype))

    def graph(self, metadata: dict) -> nir.NIRGraph:
        md = {"neurodeploy.format_version": FORMAT_VERSION, "neurodeploy.dt": self.dt}
        md.update(metadata)
        return nir.NIRGraph(nodes=self.nodes, edges=self.edges, metadata=md)

    # -- typed nodes ----------------------------------------------------------------------------
    def lif(self, name: str, mod, shape, inputs) -> str:
        """Spikingformer LIF (H = V + (X - V)/tau, spike at H >= v_th, hard reset 0) as an exact NIR LIF."""
        expect(mod, name, ("MultiStepLIF",))
        if float(getattr(mod, "v_reset", 0.0) or 0.0) != 0.0 or not getattr(mod, "decay_input", True):
            raise UnsupportedError(f"module {name!r}: LIF with v_reset != 0 or decay_input=False is not supported")
        shape = tuple(int(s) for s in shape)
        th = self.dtype.type(mod.v_threshold)
        th_strict = np.nextafter(th, self.dtype.type(-np.inf))
        node = nir.LIF(
            tau=np.full(shape, float(mod.tau) * self.dt, dtype=self.dtype),
            r=np.ones(shape, dtype=self.dtype),
            v_leak=np.zeros(shape, dtype=self.dtype),
            v_threshold=np.full(shape, th_strict, dtype=self.dtype),
            v_reset=np.zeros(shape, dtype=self.dtype),
        )
        self.use(name)
        return self.add(name, node, inputs, source=name, v_threshold=float(mod.v_threshold), spike_rule=">=",
                        tau_steps=float(mod.tau))

    def conv_bn(self, name: str, conv, bn, bn_name: str | None, in_shape, inputs, dims: int, role=None) -> tuple[str, tuple]:
        """conv (+ BN folded with eval statistics) as nir.Conv2d (dims=2) or a token-wise nir.Conv1d
        (dims=1; a 1x1 Conv2d on [C, H, W] is the same map on the flattened [C, N], and so is a Linear
        applied to every token of a [N, C] stream)."""
        expect(conv, name, ("Conv1d", "Conv2d") if dims == 2 else ("Conv1d", "Conv2d", "Linear"))
        if isinstance(conv, nn.Linear):
            conv = _linear_as_conv1d(conv)
        if conv.groups != 1 or getattr(conv, "padding_mode", "zeros") != "zeros":
            raise UnsupportedError(f"module {name!r}: grouped or non-zero-padded convolution is not supported")
        w = conv.weight.detach().to(torch.float64)
        b = conv.bias.detach().to(torch.float64) if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        if bn is not None:
            expect(bn, bn_name, ("BatchNorm1d", "BatchNorm2d"))
            if bn.running_mean is None:
                raise UnsupportedError(f"module {bn_name!r}: BatchNorm without running statistics cannot be folded")
            g = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(b)
            beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(b)
            s = g / torch.sqrt(bn.running_var.detach().double() + bn.eps)
            w = w * s.reshape(-1, *([1] * (w.dim() - 1)))
            b = (b - bn.running_mean.detach().double()) * s + beta
            self.use(bn_name)
        self.use(name)
        md = {"folded_bn": bn_name} if bn is not None else {}
        if dims == 2 and w.dim() == 3 and tuple(conv.kernel_size) == (1,) and tuple(conv.stride) == (1,) \
                and tuple(conv.padding) in ((0,), 0):
            w = w.unsqueeze(-1)     # a token-wise Conv1d is the same map as a 1x1 Conv2d on the token grid
            conv = nn.Conv2d(conv.in_channels, conv.out_channels, 1, device="meta")
        if dims == 2:
            if w.dim() != 4:
                raise UnsupportedError(f"module {name!r}: expected a Conv2d")
            C, H, W = in_shape
            node = nir.Conv2d(input_shape=(int(H), int(W)), weight=self.arr(w.numpy()), stride=tuple(conv.stride),
                              padding=tuple(conv.padding) if not isinstance(conv.padding, str) else conv.padding,
                              dilation=tuple(conv.dilation), groups=1, bias=self.arr(b.numpy()))
        else:
            k = conv.kernel_size
            if any(int(v) != 1 for v in k) or any(int(v) != 1 for v in conv.stride) or any(
                    int(v) != 0 for v in (conv.padding if not isinstance(conv.padding, str) else (0,))):
                raise UnsupportedError(f"module {name!r}: token-wise layer must be a 1x1 convolution with stride 1, no padding")
            w1 = w.reshape(w.shape[0], w.shape[1], 1)
            C, N = in_shape
            node = nir.Conv1d(input_shape=int(N), weight=self.arr(w1.numpy()), stride=1, padding=0, dilation=1,
                              groups=1, bias=self.arr(b.numpy()))
        self.add(name, node, inputs, source=name, role=role, **md)
        out = tuple(int(v) for v in node.output_type["output"])
        return name, out

    def conv_folded(self, name: str, weight, bias, stride, padding, in_shape, inputs, modules: list[str],
                    role=None, **metadata) -> tuple[str, tuple]:
        """A nir.Conv2d from a weight [O, I, kh, kw] and bias [O] that the caller computed (float64) by folding
        several modules (``modules``: their paths, all marked as exported)."""
        C, H, W = in_shape
        w = np.asarray(weight, dtype=np.float64)
        if w.ndim != 4 or w.shape[1] != int(C):
            raise UnsupportedError(f"module {name!r}: folded kernel {list(w.shape)} does not read {int(C)} channels")
        node = nir.Conv2d(input_shape=(int(H), int(W)), weight=self.arr(w), stride=_pair(stride),
                          padding=_pair(padding), dilation=(1, 1), groups=1, bias=self.arr(bias))
        self.use(*modules)
        self.add(name, node, inputs, source=name, role=role, folded=",".join(modules), **metadata)
        return name, tuple(int(v) for v in node.output_type["output"])

    def maxpool(self, name: str, mod, shape, inputs) -> tuple[str, tuple]:
        """MaxPool2d on binary spikes = OR of the window = SumPool2d (zero padding) then Threshold(0.5)."""
        expect(mod, name, ("MaxPool2d",))
        k, s, p, d = (_pair(getattr(mod, a)) for a in ("kernel_size", "stride", "padding", "dilation"))
        if d != (1, 1) or mod.ceil_mode:
            raise UnsupportedError(f"module {name!r}: MaxPool2d with dilation or ceil_mode is not supported")
        pool = nir.SumPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p))
        C, H, W = shape
        out = (C, (H + 2 * p[0] - k[0]) // s[0] + 1, (W + 2 * p[1] - k[1]) // s[1] + 1)
        self.use(name)
        self.add(f"{name}.sum", pool, inputs, source=name)
        self.add(f"{name}.or", nir.Threshold(threshold=np.full(out, 0.5, dtype=self.dtype)), f"{name}.sum", source=name)
        return f"{name}.or", out

    def maxpool_values(self, name: str, mod, shape, inputs) -> tuple[str, tuple]:
        """MaxPool2d on real values (a BN output, before its LIF): the ``neurodeploy.max_pool2d`` extension
        node (graph/maxpool.py; no NIR primitive computes a max of reals)."""
        expect(mod, name, ("MaxPool2d",))
        k, s, p, d = (_pair(getattr(mod, a)) for a in ("kernel_size", "stride", "padding", "dilation"))
        if d != (1, 1) or mod.ceil_mode:
            raise UnsupportedError(f"module {name!r}: MaxPool2d with dilation or ceil_mode is not supported")
        C, H, W = (int(v) for v in shape)
        node = make_maxpool_node(C, (H, W), k, s, p, source=name, dtype=self.dtype)
        self.use(name)
        self.add(name, node, inputs, source=name)
        return name, (C,) + tuple(int(v) for v in node.nodes["output"].output_type["output"][1:])

    def readout(self, name: str, lin, stream, shape) -> str:
        """mean over tokens then Linear = one Affine on the flattened stream (W / N repeated N times);
        the mean over time is the graph's readout reduction."""
        expect(lin, name, ("Linear",))
        D = int(shape[0])
        N = int(np.prod(shape[1:]))
        if lin.in_features != D:
            raise UnsupportedError(f"module {name!r}: Linear expects {lin.in_features} features, the stream has {D}")
        flat = self.add(f"{name}.flatten", nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0),
                        stream, source=name, role="readout")
        w = lin.weight.detach().to(torch.float64).numpy() / N
        w = np.repeat(w.astype(self.dtype), N, axis=1)
        b = lin.bias.detach().to(torch.float64).numpy() if lin.bias is not None else np.zeros(lin.out_features)
        self.use(name)
        return self.add(name, nir.Affine(weight=w, bias=self.arr(b)), flat, source=name, role="readout")


def _linear_as_conv1d(lin: nn.Linear) -> nn.Conv1d:
    """A token-wise Linear [out, in] as the equivalent 1x1 Conv1d (weights viewed, not copied)."""
    conv = nn.Conv1d(lin.in_features, lin.out_features, 1, bias=lin.bias is not None, device="meta")
    conv.weight = nn.Parameter(lin.weight.detach().unsqueeze(-1), requires_grad=False)
    if lin.bias is not None:
        conv.bias = nn.Parameter(lin.bias.detach(), requires_grad=False)
    return conv


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def expect(mod, path: str, kinds: tuple[str, ...]) -> None:
    if mod is None or type(mod).__name__ not in kinds:
        got = "nothing" if mod is None else module_desc(mod)
        raise UnsupportedError(f"module {path!r} is {got}; expected {' or '.join(kinds)} at this place")


def check_coverage(model: nn.Module, used: set[str], ignored: set[str], family: str, supported: str) -> None:
    """Every leaf module must have been exported (or be a known-unused one): never a dropped layer."""
    for path, mod in model.named_modules():
        if path == "" or any(True for _ in mod.children()):
            continue
        if path in used or path.split(".")[-1] in ignored:
            continue
        raise UnsupportedError(
            f"module {path!r} ({module_desc(mod)}) is not part of the {family} structure the exporter knows; "
            f"supported: {supported}"
        )
