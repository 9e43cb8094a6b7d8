"""Value-domain analysis over a NIR graph.

Every node output gets a :class:`Domain`: binary {0,1}, ternary {-1,0,1}, an integer with a proven range
[lo, hi] (optionally times a constant ``scale``: the values are ``scale * k`` for integer k), or real.
The domain of a node's *input* is the sum of its incoming edges (NIR sums fan-in).

Rules (node semantics, see docs/purity.md):

* spiking neurons (LIF, IF, CubaLIF) and Threshold -> binary;
* non-spiking neurons (LI, I, CubaLI) -> real;
* Flatten, Delay, Output keep the domain; SumPool2d of [lo, hi] -> [min(0, k lo), max(0, k hi)];
  AvgPool2d of integers -> integers times 1/k;
* Affine / Linear / Conv1d / Conv2d -> real, unless the input is an integer range and the weights and
  bias are integers (interval arithmetic per output row);
* nodes with ``neurodeploy.role = routing`` whose weights are a 0/1 placement (each output copies at most
  one input) keep the domain of what they route; routed edges with disjoint channel supports join
  instead of adding (the Q/K/V stacking of the attention extension stays binary);
* Scale: integer input times integer scale -> integer; times one constant -> scaled integer; else real;
* the attention extension (``neurodeploy.extension = spiking_attention``): binary Q, K, V ->
  ``scale * [0, N * d]``;
* a nested ``nir.NIRGraph`` without the extension is analysed recursively;
* graph input: declared ``real``, ``counts`` (integers >= 0, no proven upper bound) or ``binary``.

Recurrent graphs are handled by iterating to a fixed point (ranges that keep growing widen to
unbounded).  Only plain ``nir`` and numpy are used: the analysis never runs the graph.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import nir
import numpy as np

from ..errors import BadInputError, UnsupportedError
from ..graph.attention import attention_spec
from ..graph.maxpool import maxpool_spec
from ..graph.core import _check_edges, input_names, successors, topological_order
from ..graph.core import meta
from ..graph.core import predecessors as _core_predecessors
from ..graph.primitives import CONV, DENSE, is_graph, kind_of, primitive_of

INF = math.inf
INPUT_DOMAINS = ("real", "counts", "binary")
ATTENTION_EXTENSION = "spiking_attention"
MAXPOOL_EXTENSION = "max_pool2d"


# --------------------------------------------------------------------------------------------- domains
@dataclass(frozen=True)
class Domain:
    """A set of values.  ``kind``: binary, ternary, integer or real.

    For the three integer kinds the values are ``scale * k`` with integer ``k`` in ``[lo, hi]`` (bounds
    may be infinite).  ``events``: the integers are counts of binary events delivered by exact address
    routing (sum pooling of one spike population), see :func:`analyze`."""

    kind: str
    lo: float = 0.0
    hi: float = 0.0
    scale: float = 1.0
    events: bool = field(default=False, compare=False)

    # constructors ------------------------------------------------------------------------------
    @staticmethod
    def real() -> "Domain":
        return Domain("real", -INF, INF)

    @staticmethod
    def binary() -> "Domain":
        return Domain("binary", 0, 1)

    @staticmethod
    def integer(lo: float, hi: float, scale: float = 1.0, events: bool = False) -> "Domain":
        """Normalised: unscaled [0,1] is binary, unscaled within [-1,1] is ternary."""
        lo, hi = float(lo), float(hi)
        if math.isnan(lo) or math.isnan(hi) or math.isnan(scale) or math.isinf(scale) or scale == 0:
            return Domain.real()
        if lo > hi:
            lo, hi = hi, lo
        if scale == 1.0 and lo >= 0 and hi <= 1:
            return Domain("binary", 0, 1)
        if scale == 1.0 and lo >= -1 and hi <= 1:
            return Domain("ternary", -1, 1)
        return Domain("integer", lo, hi, float(scale), events)

    @staticmethod
    def declared(name: str) -> "Domain":
        if name == "real":
            return Domain.real()
        if name == "binary":
            return Domain.binary()
        if name == "counts":
            return Domain("integer", 0, INF)
        raise BadInputError(f"unknown input domain {name!r}; expected one of {', '.join(INPUT_DOMAINS)}")

    # predicates ---------------------------------------------------------------------------------
    @property
    def is_real(self) -> bool:
        return self.kind == "real"

    @property
    def is_binary(self) -> bool:
        return self.kind == "binary"

    @property
    def is_spike(self) -> bool:
        """binary or ternary (signed spikes): a synapse on it only adds or subtracts its weight."""
        return self.kind in ("binary", "ternary")

    @property
    def is_integer(self) -> bool:
        """unscaled integers (binary and ternary included)."""
        return self.kind != "real" and self.scale == 1.0

    # arithmetic ---------------------------------------------------------------------------------
    def add(self, other: "Domain") -> "Domain":
        """Domain of the elementwise sum."""
        if self.is_real or other.is_real or self.scale != other.scale:
            return Domain.real()
        return Domain.integer(self.lo + other.lo, self.hi + other.hi, self.scale)

    def join(self, other: "Domain") -> "Domain":
        """Smallest domain holding both (union)."""
        if self.is_real or other.is_real or self.scale != other.scale:
            return Domain.real()
        return Domain.integer(min(self.lo, other.lo), max(self.hi, other.hi), self.scale,
                              self.events and other.events)

    def with_zero(self) -> "Domain":
        if self.is_real:
            return self
        return Domain.integer(min(self.lo, 0), max(self.hi, 0), self.scale, self.events)

    # presentation -------------------------------------------------------------------------------
    def text(self) -> str:
        if self.kind == "real":
            return "real"
        if self.kind == "binary":
            return "binary {0,1}"
        if self.kind == "ternary":
            return "ternary {-1,0,1}"
        lo = "-inf" if self.lo == -INF else str(int(self.lo))
        hi = "inf" if self.hi == INF else str(int(self.hi))
        rng = f"[{lo}, {hi}]" if self.hi != INF else f"[{lo}, inf)"
        s = f"integer {rng}"
        if self.scale != 1.0:
            s += f" x {_fmt(self.scale)}"
        return s

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "text": self.text()}
        if self.kind != "real":
            d["lo"] = None if math.isinf(self.lo) else int(self.lo)
            d["hi"] = None if math.isinf(self.hi) else int(self.hi)
            d["scale"] = self.scale
        return d

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.text()


def _fmt(x: float) -> str:
    return f"{x:g}"


# --------------------------------------------------------------------------------------------- graph
def node_metadata(node) -> dict:
    """Node metadata with plain Python values (``nir.read`` gives bytes and numpy scalars)."""
    md = getattr(node, "metadata", None)
    if not isinstance(md, dict):
        return {}
    return {k: meta(node, k) for k in md}


def role_of(node) -> str | None:
    r = meta(node, "neurodeploy.role")
    return str(r) if r is not None else None


def source_of(name: str, node) -> str:
    return str(meta(node, "neurodeploy.source", name))


def is_attention(node) -> bool:
    return is_graph(node) and meta(node, "neurodeploy.extension") == ATTENTION_EXTENSION


def is_maxpool(node) -> bool:
    """The ``max_pool2d`` extension (graph/maxpool.py): a max of (real) values over pooling windows."""
    return isinstance(node, nir.NIRGraph) and meta(node, "neurodeploy.extension") == MAXPOOL_EXTENSION


# the graph helpers are the graph layer's own (one definition: edge-order predecessors, one cycle rule);
# edges naming unknown nodes are refused by graph.core before any analysis
def predecessors(graph: nir.NIRGraph) -> dict[str, list[str]]:
    _check_edges(graph)
    return _core_predecessors(graph)


def order(graph: nir.NIRGraph) -> list[str]:
    """graph.core's topological order (nodes on cycles after a scheduled predecessor, back edges cut); the
    fixed-point passes below revisit them until their domains settle."""
    return topological_order(graph)


# --------------------------------------------------------------------------------------------- helpers
def _arr(x) -> np.ndarray:
    """As an array of floats (float32 stays float32: no copies of large weights)."""
    a = np.asarray(x)
    return a if a.dtype.kind == "f" else a.astype(np.float64)


_SAMPLE = 4096  # cheap rejection on a prefix before a full pass over large weight arrays


def _int_valued(a: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(a)) and np.all(a == np.round(a)))


def _is_int_array(a) -> bool:
    flat = _arr(a).reshape(-1)
    if flat.size > _SAMPLE and not _int_valued(flat[:_SAMPLE]):
        return False
    return _int_valued(flat)


def _weights(node) -> tuple[np.ndarray, np.ndarray | None]:
    """(weight rows [out, fan-in], bias [out] or None) for Affine / Linear / Conv1d / Conv2d."""
    w = _arr(node.weight)
    w2 = w.reshape(w.shape[0], -1) if w.ndim > 1 else w.reshape(-1, 1)
    b = getattr(node, "bias", None)
    if b is not None:
        b = _arr(b).reshape(-1)
        if b.size == 1 and w2.shape[0] != 1:
            b = np.full(w2.shape[0], float(b[0]))
    return w2, b


def _interval_rows(w2: np.ndarray, lo: float, hi: float, include_zero: bool, bias=None) -> tuple[float, float]:
    """min/max over rows of sum_j w_j x_j for x_j in [lo, hi] (inf-safe)."""
    with np.errstate(invalid="ignore"):
        a = np.where(w2 == 0, 0.0, w2 * lo)
        b = np.where(w2 == 0, 0.0, w2 * hi)
    tmin, tmax = np.minimum(a, b), np.maximum(a, b)
    if include_zero:
        tmin, tmax = np.minimum(tmin, 0.0), np.maximum(tmax, 0.0)
    rmin, rmax = tmin.sum(axis=1), tmax.sum(axis=1)
    if bias is not None:
        rmin, rmax = rmin + bias, rmax + bias
    return float(rmin.min()), float(rmax.max())


def weight_unit(w2: np.ndarray, b=None) -> float | None:
    """The constant c > 0 such that every weight (and bias) is an integer multiple of c: 1.0 for integer
    weights, else the smallest non-zero |weight| when all weights are multiples of it; None otherwise."""
    flat = w2.reshape(-1)
    nzmask = flat != 0
    if not nzmask.any():
        return 1.0 if b is None or _is_int_array(b) else None
    cands = [1.0] if _is_int_array(flat) else []
    if not cands:
        c = float(np.abs(flat[nzmask]).min())
        if not _int_valued(flat[:_SAMPLE] / c):
            return None
        cands.append(c)
    for c in cands:
        if _is_int_array(flat / c if c != 1.0 else flat) and (b is None or _is_int_array(np.asarray(b) / c)):
            return c
    return None


def placement_scale(node) -> float | None:
    """c when every non-zero weight of an Affine/Linear/Conv is +-c and there is no bias: a (signed)
    selection of inputs times one constant; None otherwise."""
    if primitive_of(node) not in DENSE + CONV:
        return None
    w2, b = _weights(node)
    if b is not None and np.any(b != 0):
        return None
    flat = w2.reshape(-1)
    head = np.abs(flat[:_SAMPLE])
    head = head[head != 0]
    if head.size and not np.all(head == head[0]):
        return None
    nz = np.abs(flat[flat != 0])
    if nz.size == 0:
        return None
    c = float(nz.max())
    return c if np.all(nz == c) else None


def placement_support(node) -> np.ndarray | None:
    """For a 0/1 placement (each output row copies at most one input, no bias): the boolean mask of
    output channels that carry data; None if the weights are not a placement."""
    if primitive_of(node) not in DENSE + CONV:
        return None
    w2, b = _weights(node)
    head = w2.reshape(-1)[:_SAMPLE]
    if not np.all((head == 0) | (head == 1)) or not np.all((w2 == 0) | (w2 == 1)):
        return None
    nnz = (w2 != 0).sum(axis=1)
    if np.any(nnz > 1):
        return None
    if b is not None and np.any(b != 0):
        return None
    if primitive_of(node) in CONV:
        if int(np.prod(np.asarray(node.weight).shape[2:])) != 1:
            return None
    return nnz == 1


def attention_params(name: str, node) -> dict:
    attention_spec(node)        # graph/attention.py: the one reader (version and fields checked there)
    md = node_metadata(node)
    try:
        D = int(md["neurodeploy.dim"])
        H = int(md["neurodeploy.heads"])
        N = int(md["neurodeploy.tokens"])
        scale = float(md["neurodeploy.scale"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInputError(f"attention node {name!r}: bad or missing metadata ({exc})") from None
    if D <= 0 or H <= 0 or D % H:
        raise BadInputError(f"attention node {name!r}: dim {D} is not divisible by heads {H}")
    return {"dim": D, "heads": H, "tokens": N, "scale": scale, "head_dim": D // H}


# --------------------------------------------------------------------------------------------- analysis
@dataclass
class DomainAnalysis:
    """Result of :func:`analyze`: output and input domain of every node (nested graphs flattened with
    dotted names ``outer.inner``), with a short note saying where a non-binary value comes from."""

    graph: nir.NIRGraph
    input_domain: str
    out: dict[str, Domain] = field(default_factory=dict)
    inp: dict[str, Domain] = field(default_factory=dict)
    out_note: dict[str, str] = field(default_factory=dict)
    in_note: dict[str, str] = field(default_factory=dict)
    preds: dict[str, list[str]] = field(default_factory=dict)
    nodes: dict[str, object] = field(default_factory=dict)
    routing_ok: dict[str, bool] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    sums: dict[str, list[str]] = field(default_factory=dict)  # node -> edges whose spike sum is an integer

    def table(self) -> dict[str, str]:
        return {n: self.out[n].text() for n in self.order if n in self.out}


def graph_input_domain(graph: nir.NIRGraph, override: str | None = None) -> str:
    """The declared input domain: ``override`` (CLI), else graph metadata, else ``real``."""
    if override is not None:
        if override not in INPUT_DOMAINS:
            raise BadInputError(f"unknown input domain {override!r}; expected one of {', '.join(INPUT_DOMAINS)}")
        return override
    declared = meta(graph, "neurodeploy.input_domain")
    if declared is None:
        return "real"
    if str(declared) not in INPUT_DOMAINS:
        raise BadInputError(f"graph metadata 'neurodeploy.input_domain' = {declared!r}: expected one of "
                            f"{', '.join(INPUT_DOMAINS)}")
    return str(declared)


def analyze(graph: nir.NIRGraph, input_domain: str | None = None, pool_events: bool = True) -> DomainAnalysis:
    """Value domains of every node of ``graph``.

    ``input_domain``: real / counts / binary (default: graph metadata ``neurodeploy.input_domain``, else
    real).  ``pool_events``: a SumPool2d of one binary population is exact address routing of its spikes
    (how sinabs and DYNAP-CNN pool), so its counts are marked as events (see docs/purity.md)."""
    if not is_graph(graph):
        raise BadInputError(f"expected a nir.NIRGraph, got {type(graph).__name__}")
    declared = graph_input_domain(graph, input_domain)
    res = DomainAnalysis(graph=graph, input_domain=declared)
    _analyze_into(res, graph, prefix="", input_dom={n: Domain.declared(declared) for n in input_names(graph)},
                  input_note={n: f"graph input declared {declared}" for n in input_names(graph)},
                  pool_events=pool_events)
    return res


def _sum_edges(res: DomainAnalysis, full: str, preds: list[str], supports: dict[str, np.ndarray]):
    """Domain and note of the sum of the edges into ``full`` (preds are full names)."""
    known = [p for p in preds if p in res.out]
    if not known:
        return None, ""
    # routed edges with pairwise disjoint channel support join (each element gets at most one of them)
    routed = [p for p in known if p in supports]
    joined = False
    dom = None
    if len(routed) > 1:
        masks = [supports[p] for p in routed]
        if len({m.shape for m in masks}) == 1 and int(np.sum([m.astype(int) for m in masks], axis=0).max()) <= 1:
            joined = True
            for p in routed:
                dom = res.out[p] if dom is None else dom.join(res.out[p])
    rest = [p for p in known if p not in routed] if joined else known
    for p in rest:
        dom = res.out[p] if dom is None else dom.add(res.out[p])
    if len(known) == 1:
        return dom, res.out_note.get(known[0], "")
    parts = ", ".join(f"{p} ({res.out[p].text()})" for p in known)
    if dom is not None and dom.kind == "integer" and all(res.out[p].kind != "real" for p in known):
        res.sums[full] = list(known)
    if joined and not rest:
        note = f"disjoint placement of {len(known)} routed edges into {full}: {parts}"
    else:
        note = f"fan-in sum of {len(known)} edges into {full}: {parts}"
    if dom is not None and len(known) > 1 and dom.events:
        dom = Domain.integer(dom.lo, dom.hi, dom.scale, events=False)
    return dom, note


def _analyze_into(res: DomainAnalysis, graph: nir.NIRGraph, prefix: str, input_dom: dict[str, Domain],
                  input_note: dict[str, str], pool_events: bool) -> None:
    local_preds = predecessors(graph)
    succ = successors(graph)
    names = order(graph)
    full = {n: prefix + n for n in names}
    for n in names:
        if full[n] not in res.nodes:  # a nested graph is re-analysed on every fixed-point pass: list it once
            res.order.append(full[n])
        res.nodes[full[n]] = graph.nodes[n]
        res.preds[full[n]] = [full[p] for p in local_preds[n]]
    supports: dict[str, np.ndarray] = {}
    changes: dict[str, int] = {}
    for _ in range(64):  # fixed point (a feed-forward graph settles after one pass; one more confirms it)
        changed = False
        for n in names:
            f = full[n]
            node = graph.nodes[n]
            if primitive_of(node, n) == "Input":
                dom = input_dom.get(n, Domain.real())
                res.inp[f] = dom
                new, note = dom, input_note.get(n, "graph input")
            else:
                dom_in, in_note = _sum_edges(res, f, res.preds[f], supports)
                if dom_in is None:
                    continue  # predecessors not known yet (cycle): next pass
                res.inp[f] = dom_in
                res.in_note[f] = in_note
                new, note = _transfer(res, f, node, dom_in, in_note, succ[n], full, supports, pool_events,
                                      graph, prefix)
            old = res.out.get(f)
            if old != new:
                changes[f] = changes.get(f, 0) + 1
                if changes[f] > 8:  # widening for recurrent growth
                    new = Domain.real() if new.is_real else Domain.integer(-INF, INF, new.scale)
                if old != new:
                    res.out[f] = new
                    changed = True
            res.out_note[f] = note
        if not changed:
            break


def _transfer(res, f, node, d, in_note, succ_local, full, supports, pool_events, graph, prefix):
    """Output domain and note of node ``f`` given its input domain ``d``."""
    tname, kind = primitive_of(node, f), kind_of(node, f)
    if tname == "Output":
        return d, in_note
    if kind == "spiking":
        return Domain.binary(), f"spikes of {f}"
    if kind == "integrator":
        return Domain.real(), f"membrane state of non-spiking {tname} {f}"
    if kind in ("reshape", "delay"):
        return d, in_note
    if tname == "SumPool2d":
        k = int(np.prod(np.atleast_1d(np.asarray(node.kernel_size, dtype=np.int64))))
        if d.is_real:
            return d, in_note
        ev = pool_events and d.is_binary
        out = Domain.integer(min(0.0, k * d.lo), max(0.0, k * d.hi), d.scale, events=ev)
        return out, f"sum-pool of {k} inputs at {f} ({d.text()} in)"
    if tname == "AvgPool2d":
        k = int(np.prod(np.atleast_1d(np.asarray(node.kernel_size, dtype=np.int64))))
        if d.is_real:
            return d, in_note
        return (Domain.integer(min(0.0, k * d.lo), max(0.0, k * d.hi), d.scale / k),
                f"average-pool of {k} inputs at {f}")
    if kind == "subgraph":
        if is_maxpool(node):
            spec = maxpool_spec(node)   # graph/maxpool.py: the one reader (version and fields checked there)
            k = int(np.prod(spec.kernel))
            if d.is_real:
                return d, f"max of up to {k} real values at {f} ({in_note or 'real input'})"
            return d, f"max of up to {k} inputs at {f} ({d.text()} in)"
        if is_attention(node):
            p = attention_params(f, node)
            if d.is_real:
                return Domain.real(), f"attention {f} on real input"
            if d.is_binary:
                return (Domain.integer(0, p["tokens"] * p["head_dim"], p["scale"]),
                        f"attention products at {f} (binary Q, K, V: counts up to N*d = {p['tokens'] * p['head_dim']})")
            m = max(abs(d.lo), abs(d.hi)) ** 3 * p["tokens"] * p["head_dim"]
            lo = 0.0 if d.lo >= 0 else -m
            return Domain.integer(lo, m, p["scale"] * d.scale ** 3), f"attention products at {f} ({d.text()} operands)"
        # a nested plain graph: analyse it with the summed input
        inner_inputs = input_names(node)
        _analyze_into(res, node, prefix=f + ".", input_dom={n: d for n in inner_inputs},
                      input_note={n: in_note for n in inner_inputs}, pool_events=pool_events)
        outs = [f + "." + n for n, v in node.nodes.items() if primitive_of(v, n) == "Output"]
        dom = None
        for o in outs:
            if o in res.out:
                dom = res.out[o] if dom is None else dom.join(res.out[o])
        if dom is None:
            return Domain.real(), f"subgraph {f}"
        return dom, res.out_note.get(outs[0], f"subgraph {f}")
    if kind == "synaptic":
        if role_of(node) == "routing":
            sup = placement_support(node)
            res.routing_ok[f] = sup is not None
            if sup is not None:
                supports[f] = sup
                return d.with_zero(), in_note
        if d.is_real:
            return Domain.real(), f"output of {tname} {f}"
        w2, b = _weights(node)
        c = weight_unit(w2, b)
        if c is None:
            return Domain.real(), f"output of {tname} {f} (float weights)"
        bu = None if b is None else b / (c * d.scale)
        if bu is not None and not _is_int_array(bu):
            return Domain.real(), f"output of {tname} {f} (bias not a multiple of the value unit)"
        include_zero = tname in CONV
        lo, hi = _interval_rows(np.round(w2.astype(np.float64) / c), d.lo, d.hi, include_zero,
                                None if bu is None else np.round(bu.astype(np.float64)))
        unit = "integer" if c == 1.0 else f"{c:g} x integer"
        return Domain.integer(lo, hi, c * d.scale), f"{unit}-weight {tname} {f}"
    if kind == "elementwise":
        s = _arr(node.scale).reshape(-1)
        if d.is_real:
            return Domain.real(), f"scaled real at {f}"
        if _is_int_array(s):
            cand = [d.lo * x for x in (s.min(), s.max()) if not (x == 0)] + [d.hi * x for x in (s.min(), s.max()) if x != 0]
            cand = [c for c in cand if not math.isnan(c)] or [0.0]
            lo, hi = min(cand + ([0.0] if np.any(s == 0) else [])), max(cand + ([0.0] if np.any(s == 0) else []))
            return Domain.integer(lo, hi, d.scale), f"integer scale at {f}"
        if np.all(s == s[0]) and s[0] != 0:
            c = float(s[0])
            lo, hi = (d.lo, d.hi) if c > 0 else (-d.hi, -d.lo)
            return Domain.integer(lo, hi, d.scale * abs(c)), f"constant scale {c:g} at {f}"
        return Domain.real(), f"per-element float scale at {f}"
    raise UnsupportedError(f"node {f!r}: {tname} is not supported by the value-domain analysis")
