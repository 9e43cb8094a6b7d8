"""Layer-synchronous float reference simulator for NIR graphs (torch, batched).

Semantics (docs/nir.md, "Reference simulator"):

* Time is discrete with step ``dt`` (graph metadata ``neurodeploy.dt``, default 1e-4 s).  At each step
  every node is evaluated once in topological order; a node's input is the sum of its predecessors'
  outputs of the same step, in edge order.  Edges that close a cycle carry the previous step's value
  (zero at t = 0), as in nirtorch.  Acyclic graphs are run node by node over the whole sequence (same
  numbers, much faster).
* Neurons use forward Euler with ``k = tau / dt`` steps (k snapped to the nearest short decimal when
  within float32 rounding, so tau = 1.5 * dt in a float32 file gives exactly 1.5):
  LIF / LI: ``v = v + ((v_leak - v) + r * x) / k``; IF / I: ``v = v + r * x`` (the per-step gain is r,
  as sinabs and every backend of the NIR paper CNN read it); CubaLIF / CubaLI:
  ``i = i + (w_in * x - i) / k_syn`` then ``v = v + ((v_leak - v) + r * i) / k_mem`` (the updated i).
  Spiking neurons emit ``v > v_threshold`` (strict, as NIR) and then set ``v = v_reset``.
* Delay: ``y[t] = x[t - round(delay / dt)]``.  SumPool2d: zero-padded window sums; AvgPool2d: the
  sum divided by kh * kw (padding counted).  Flatten dims are NIR dims (no batch).
* The ``neurodeploy.spiking_attention`` extension is computed natively; other nested subgraphs are
  simulated recursively (one Input, one Output each).
"""
from __future__ import annotations

import math

import nir
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BadInputError, UnsupportedError
from ..lif import LIFParams
from .attention import attention_forward, attention_spec
from .maxpool import maxpool_forward, maxpool_spec
from .core import graph_dt, input_names, meta, node_shape, order_and_back_edges, output_names, predecessors

SUPPORTED_TYPES = (
    "Input", "Output", "Affine", "Linear", "Scale", "Conv1d", "Conv2d", "Flatten", "SumPool2d", "AvgPool2d",
    "Threshold", "Delay", "LIF", "IF", "LI", "I", "CubaLIF", "CubaLI", "NIRGraph (nested, or the spiking_attention extension)",
)


def steps_per_tau(tau, dt: float) -> np.ndarray:
    """``tau / dt`` in float64, each value snapped to the shortest decimal within float32 rounding."""
    k = np.asarray(tau, dtype=np.float64) / float(dt)
    values, where = np.unique(k, return_inverse=True)  # exporters write one tau per node: snap each value once
    for idx, val in enumerate(values):
        for digits in range(1, 8):
            snapped = float(f"{val:.{digits}g}")
            if abs(snapped - val) <= 4e-7 * abs(val):
                values[idx] = snapped
                break
    return values[where.reshape(-1)].reshape(k.shape)


def int_tuple(value, n: int) -> tuple[int, ...]:
    """A NIR stride/padding/dilation/kernel field as an int tuple of length n (scalars broadcast)."""
    arr = np.asarray(value).reshape(-1)
    vals = tuple(int(v) for v in arr)
    if len(vals) == 1 and n > 1:
        vals = vals * n
    return vals


def padding_arg(value, n: int):
    """A NIR padding field as torch takes it: 'same'/'valid' (as read back from HDF5) or an int tuple."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "SUO":
        value = value.reshape(-1)[0]
        value = value.decode() if isinstance(value, bytes) else str(value)
    if isinstance(value, str):
        return value
    return int_tuple(value, n)


def _merge(x: torch.Tensor, fn) -> torch.Tensor:
    """Apply ``fn`` with time and batch merged: [t, B, ...] -> [t*B, ...] -> back."""
    t, b = x.shape[:2]
    y = fn(x.reshape(t * b, *x.shape[2:]))
    return y.reshape(t, b, *y.shape[1:])


class _Runner:
    stateful = False

    def __call__(self, x, state):  # x: [t, B, *shape]
        raise NotImplementedError


class _Fn(_Runner):
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, x, state):
        return self.fn(x), state


class _Neuron(_Runner):
    stateful = True

    def __init__(self, node, kind: str, dt: float, dtype):
        p = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype)  # noqa: E731
        self.kind = kind
        self.keep_membrane = False
        self.membrane = None
        self.spiking = kind in ("LIF", "IF", "CubaLIF")
        if self.spiking:
            self.th = p(node.v_threshold)
            reset = node.v_reset if getattr(node, "v_reset", None) is not None else np.zeros_like(node.v_threshold)
            self.v_reset = p(reset)
        self.lif = None             # LIF / LI / IF / I: the one LIF rule (neurodeploy.lif.LIFParams)
        if kind in ("LIF", "LI"):
            self.lif = LIFParams(tau_steps=p(steps_per_tau(node.tau, dt)), r=p(node.r), v_leak=p(node.v_leak),
                                 v_threshold=self.th if self.spiking else 1.0)
        elif kind in ("IF", "I"):
            self.lif = LIFParams(tau_steps=math.inf, r=p(node.r), v_threshold=self.th if self.spiking else 1.0)
        else:  # CubaLIF, CubaLI: a synaptic current first (LIFParams has none)
            self.k_syn, self.k_mem = p(steps_per_tau(node.tau_syn, dt)), p(steps_per_tau(node.tau_mem, dt))
            self.r, self.v_leak, self.w_in = p(node.r), p(node.v_leak), p(node.w_in)

    def __call__(self, x, state):
        if state is None:
            state = {"v": torch.zeros_like(x[0])}
            if self.kind.startswith("Cuba"):
                state["i"] = torch.zeros_like(x[0])
        v, cur = state["v"], state.get("i")
        out = torch.empty_like(x)
        vs = torch.empty_like(x) if self.keep_membrane else None
        for t in range(x.shape[0]):
            if self.lif is not None:
                v = self.lif.integrate(v, x[t])
            else:
                cur = cur + (self.w_in * x[t] - cur) / self.k_syn
                v = v + ((self.v_leak - v) + self.r * cur) / self.k_mem
            if self.spiking:
                s = self.lif.fires(v) if self.lif is not None else v > self.th     # NIR's strict v > threshold
                out[t] = s
                v = torch.where(s, self.v_reset.expand_as(v), v)
            else:
                out[t] = v
            if vs is not None:
                vs[t] = v
        self.membrane = vs
        new = {"v": v}
        if cur is not None:
            new["i"] = cur
        return out, new


class _Delay(_Runner):
    stateful = True

    def __init__(self, node, dt, dtype):
        self.d = torch.as_tensor(np.rint(np.asarray(node.delay, dtype=np.float64) / dt).astype(np.int64))
        if (self.d < 0).any():
            raise UnsupportedError("Delay with a negative delay")
        self.max_d = int(self.d.max()) if self.d.numel() else 0

    def __call__(self, x, state):
        if self.max_d == 0:
            return x, state
        hist = state if state is not None else torch.zeros(self.max_d, *x.shape[1:], dtype=x.dtype)
        full = torch.cat([hist, x], 0)
        t = x.shape[0]
        out = torch.zeros_like(x)
        for d in torch.unique(self.d).tolist():
            mask = (self.d == d).to(x.dtype)
            out = out + full[self.max_d - d:self.max_d - d + t] * mask
        return out, full[-self.max_d:]


class _Attention(_Runner):
    def __init__(self, spec):
        self.spec = spec

    def __call__(self, x, state):
        return attention_forward(self.spec, x), state


class _Subgraph(_Runner):
    stateful = True

    def __init__(self, graph, name, dt, dtype):
        self.program = _Program(graph, dt, dtype, where=name)

    def __call__(self, x, state):
        out, state, _ = self.program.run(x, state, record=False)
        return out, state


def _make_runner(name: str, node, dt: float, dtype) -> _Runner:
    kind = type(node).__name__
    P = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype)  # noqa: E731
    if isinstance(node, nir.NIRGraph):
        spec = attention_spec(node)
        if spec is not None:
            return _Attention(spec)
        mp = maxpool_spec(node)
        if mp is not None:
            return _Fn(lambda x, _s=mp: maxpool_forward(_s, x))
        return _Subgraph(node, name, dt, dtype)
    if kind in ("Input", "Output"):
        return _Fn(lambda x: x)
    if kind in ("Affine", "Linear"):
        w = P(node.weight)
        if w.dim() != 2:
            raise UnsupportedError(f"node {name!r}: {kind} with a {w.dim()}-d weight (only 2-d [out, in] is supported)")
        b = P(node.bias) if kind == "Affine" else None
        return _Fn(lambda x: F.linear(x, w, b))
    if kind == "Scale":
        s = P(node.scale)
        return _Fn(lambda x: x * s)
    if kind in ("Conv1d", "Conv2d"):
        n = 1 if kind == "Conv1d" else 2
        w, b = P(node.weight), P(node.bias) if node.bias is not None else None
        stride, dil = int_tuple(node.stride, n), int_tuple(node.dilation, n)
        pad, groups = padding_arg(node.padding, n), int(np.asarray(node.groups).reshape(-1)[0])
        conv = F.conv1d if n == 1 else F.conv2d
        return _Fn(lambda x: _merge(x, lambda y: conv(y, w, b, stride, pad, dil, groups)))
    if kind == "Flatten":
        in_shape = node_shape(node, "input")
        nd = len(in_shape) if in_shape is not None else None
        start, end = int(np.asarray(node.start_dim)), int(np.asarray(node.end_dim))
        if nd is not None:
            start, end = start % nd, end % nd
        if start < 0 or end < 0:
            raise UnsupportedError(f"node {name!r}: Flatten with negative dims and unknown input type")
        return _Fn(lambda x: x.flatten(start + 2, end + 2))
    if kind in ("SumPool2d", "AvgPool2d"):
        k, s, p = int_tuple(node.kernel_size, 2), int_tuple(node.stride, 2), int_tuple(node.padding, 2)
        div = 1 if kind == "SumPool2d" else None
        return _Fn(lambda x: _merge(x, lambda y: F.avg_pool2d(y, k, s, p, count_include_pad=True, divisor_override=div)))
    if kind == "Threshold":
        th = P(node.threshold)
        return _Fn(lambda x: (x > th).to(x.dtype))
    if kind == "Delay":
        return _Delay(node, dt, dtype)
    if kind in ("LIF", "IF", "LI", "I", "CubaLIF", "CubaLI"):
        return _Neuron(node, kind, dt, dtype)
    raise UnsupportedError(
        f"node {name!r}: NIR type {kind} is not supported by the reference simulator; supported: {', '.join(SUPPORTED_TYPES)}"
    )


class _Program:
    def __init__(self, graph: nir.NIRGraph, dt: float, dtype, where: str = "graph"):
        self.graph = graph
        self.order, self.back = order_and_back_edges(graph)
        self.pred = predecessors(graph)
        if self.back:
            # a cyclic graph's edge order is often a set's order (snnTorch, Norse exports), which changes with
            # Python's hash seed; float sums in that order flip spikes at the threshold from run to run. Sum
            # the forward inputs in topological order, then the back edges (snnTorch's input + recurrent)
            pos = {n: i for i, n in enumerate(self.order)}
            self.pred = {n: sorted(srcs, key=lambda s, n=n: ((s, n) in self.back, pos.get(s, len(pos))))
                         for n, srcs in self.pred.items()}
        ins, outs = input_names(graph), output_names(graph)
        if len(ins) != 1 or len(outs) != 1:
            raise UnsupportedError(f"{where}: the simulator needs exactly one Input and one Output node, found inputs {ins} and outputs {outs}")
        self.input, self.output = ins[0], outs[0]
        self.runners = {name: _make_runner(name, graph.nodes[name], dt, dtype) for name in self.order}
        uses: dict[str, int] = {n: 0 for n in graph.nodes}
        for src, _ in graph.edges:
            uses[src] += 1
        self.uses = uses

    def _node_input(self, name, cur, prev, x_in):
        if name == self.input:
            return x_in
        srcs = self.pred[name]
        if not srcs:
            raise BadInputError(f"node {name!r} has no incoming edge")
        acc = None
        for src in srcs:
            val = prev[src] if (src, name) in self.back else cur[src]
            acc = val if acc is None else acc + val
        return acc

    def keep_membranes(self) -> None:
        for r in self.runners.values():
            if isinstance(r, _Neuron):
                r.keep_membrane = True

    def run(self, x, state, record: bool):
        """x: [T, B, *input_shape] -> (output [T, B, *out], new state, records)."""
        state = dict(state or {})
        records: dict[str, torch.Tensor] = {}
        if not self.back:
            cur: dict[str, torch.Tensor] = {}
            left = dict(self.uses)
            for name in self.order:
                inp = self._node_input(name, cur, None, x)
                y, st = self.runners[name](inp, state.get(name))
                if st is not None:
                    state[name] = st
                cur[name] = y
                if record:
                    records[name] = y
                    if getattr(self.runners[name], "membrane", None) is not None:
                        records[name + ":v"] = self.runners[name].membrane
                if name != self.input:
                    for src in self.pred[name]:
                        left[src] -= 1
                        if left[src] == 0 and src != self.output:
                            del cur[src]
            return cur[self.output], state, records
        # cyclic: step by step, back edges read the previous step
        T = x.shape[0]
        prev: dict[str, torch.Tensor] = state.pop("__prev__", {})
        seqs: dict[str, list] = {name: [] for name in self.order}
        for t in range(T):
            cur = {}
            for name in self.order:
                inp = self._node_input(name, cur, _Zeros(prev, self.graph, x.shape[1], x.dtype), x[t:t + 1])
                y, st = self.runners[name](inp, state.get(name))
                if st is not None:
                    state[name] = st
                cur[name] = y
                if record or name == self.output:
                    seqs[name].append(y)
                if record and getattr(self.runners[name], "membrane", None) is not None:
                    seqs.setdefault(name + ":v", []).append(self.runners[name].membrane)
            prev = cur
        state["__prev__"] = prev
        if record:
            records = {n: torch.cat(v, 0) for n, v in seqs.items()}
        return torch.cat(seqs[self.output], 0), state, records


class _Zeros(dict):
    """Previous-step values; a node not yet computed contributes 0 (broadcast)."""

    def __init__(self, prev, graph, batch, dtype):
        super().__init__(prev)
        self.graph, self.batch, self.dtype = graph, batch, dtype

    def __missing__(self, key):
        shape = node_shape(self.graph.nodes[key], "output")
        return torch.zeros((1, self.batch) + shape, dtype=self.dtype) if shape else torch.zeros((), dtype=self.dtype)


#: NIR types whose runner keeps a membrane record (``record_membrane``)
_NEURON_TYPES = ("LIF", "IF", "LI", "I", "CubaLIF", "CubaLI")


def record_bytes(graph: nir.NIRGraph, steps: int, membranes: bool = False) -> int:
    """Bytes per sample of :func:`simulate`'s records over ``steps`` steps (every top-level node's output,
    float32; with ``membranes`` also each neuron node's membrane), from the graph's output shapes: callers
    size their batches by it (equal to what is kept for gesture-2-256: 146.5 MiB a sample at 8 steps with
    membranes; imagenet-8-768 at 4 steps: 887 MiB, 1.2 GiB with membranes)."""
    total = 0
    for node in graph.nodes.values():
        shape = node_shape(node, "output")
        if shape is None:
            continue
        n = math.prod(int(d) for d in shape)
        total += n * (2 if membranes and type(node).__name__ in _NEURON_TYPES else 1)
    return int(total) * int(steps) * 4


def input_sequence(graph: nir.NIRGraph, x, T: int | None = None, dtype=torch.float32) -> torch.Tensor:
    """``x`` as [T, B, *input] for ``graph``; a clear error when its shape does not fit the graph input."""
    in_name = input_names(graph)
    if len(in_name) != 1:
        raise UnsupportedError(f"the simulator needs exactly one Input node, found {in_name}")
    shape = node_shape(graph.nodes[in_name[0]], "output") or node_shape(graph.nodes[in_name[0]], "input")
    x = torch.as_tensor(x).to(dtype)
    if shape is None:
        raise BadInputError(f"graph input {in_name[0]!r} has no shape")
    n = len(shape)
    if x.dim() == n + 1 and tuple(x.shape[1:]) == shape:  # [B, *shape]: the same input at every step
        if T is None:
            T = int(meta(graph, "neurodeploy.time_steps", 0) or 0)
        if not T or T < 1:
            raise BadInputError("input without a time axis needs T (the graph does not fix time_steps)")
        return x.unsqueeze(0).expand(int(T), *x.shape).contiguous()
    if x.dim() == n + 2 and tuple(x.shape[2:]) == shape:  # [B, T, *shape]: one frame per step
        if T is not None and int(T) != x.shape[1]:
            raise BadInputError(f"input has {x.shape[1]} time steps, T={T} was requested")
        return x.transpose(0, 1).contiguous()
    raise BadInputError(
        f"input has shape {list(x.shape)}; graph input {in_name[0]!r} expects [B, {', '.join(map(str, shape))}] "
        f"or [B, T, {', '.join(map(str, shape))}]"
    )


def simulate(graph: nir.NIRGraph, x, T: int | None = None, record: bool = False, dt: float | None = None,
             dtype: torch.dtype = torch.float32, record_membrane: bool = False, time_chunk: int | None = None):
    """Run ``graph`` on ``x`` ([B, *input_shape], repeated over T steps, or [B, T, *input_shape]).

    Returns the output sequence [T, B, *output_shape]; with ``record=True`` returns
    ``(output, records)`` where ``records[name]`` is node ``name``'s output [T, B, *shape]; with
    ``record_membrane=True`` also ``records[name + ":v"]``, the membrane of each top-level neuron node
    after the step (after reset)."""
    dt = graph_dt(graph) if dt is None else float(dt)
    seq = input_sequence(graph, x, T, dtype)
    program = _Program(graph, dt, dtype)
    if record_membrane:
        record = True
        program.keep_membranes()
    if time_chunk and not record and seq.shape[0] > time_chunk:
        # time_chunk steps at a time, state carried over: memory O(chunk x neurons), not O(T x neurons)
        outs, state = [], None
        with torch.no_grad():
            for t0 in range(0, seq.shape[0], int(time_chunk)):
                o, state, _ = program.run(seq[t0:t0 + int(time_chunk)], state, False)
                outs.append(o)
        return torch.cat(outs, 0)
    with torch.no_grad():
        out, _, records = program.run(seq, None, record)
    return (out, records) if record else out


def reduce_output(graph: nir.NIRGraph, out: torch.Tensor) -> torch.Tensor:
    """Apply the graph's readout reduction: ``mean_over_time`` -> [B, ...]; otherwise unchanged."""
    if meta(graph, "neurodeploy.readout_reduction") == "mean_over_time":
        return out.mean(0)
    return out
