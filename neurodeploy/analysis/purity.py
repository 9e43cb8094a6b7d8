"""Spike purity: classify every synaptic node of a NIR graph and give a verdict.

Classes (``SynapticOp.op_class``):

* ``AC``: the input is binary (or ternary) spikes, so every synaptic event only adds (or subtracts) a
  weight.  Attention on binary Q, K, V is AC too (AND + popcount, then integer x binary = accumulate).
* ``INTxFLOAT``: the input is an integer range (counts, sums of spikes): an integer times a float weight.
* ``MAC``: real input, a float multiply-accumulate.
* ``SHIFT`` / ``FOLDED``: a constant Scale that is a power of two (a shift), or that folds into the
  threshold of the LIF it feeds (v_reset 0 and a linear charge: dividing the threshold by the scale is
  exact), is not a multiply.
* ``ROUTING``: a ``neurodeploy.role = routing`` node whose weights are a 0/1 placement (data movement).
* ``MAX``: the ``max_pool2d`` extension on non-spike values (a max-pool of real BN outputs, as the
  Spike-driven Transformer and QKFormer tokenizers do): compare-select, no multiplies, but not spike-driven:
  the values are membrane potentials, not events.  (A max of spikes is an OR: ``AC``.)

A graph is spike-pure when every synaptic node is AC / SHIFT / FOLDED / ROUTING, apart from the nodes
the user allows: by role (``encoder``, ``readout``: ``neurodeploy.role`` metadata, or inferred for
graphs without roles) or by node name / source module path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import nir
import numpy as np

from ..errors import BadInputError
from ..graph.primitives import is_graph, kind_of, primitive_of
from ..graph.roles import infer_roles
from .domains import (Domain, DomainAnalysis, analyze, attention_params, is_attention, is_maxpool,
                      node_metadata, placement_scale, role_of, source_of)
from ..version import __version__

SCHEMA_VERSION = 1
PURE_CLASSES = ("AC", "SHIFT", "FOLDED", "ROUTING")
ALL_CLASSES = ("AC", "INTxFLOAT", "MAC", "SHIFT", "FOLDED", "ROUTING", "MAX")
ROLES = ("encoder", "readout")


@dataclass
class SynapticOp:
    """One synaptic node and its class."""

    node: str
    source: str
    op: str
    role: str | None
    op_class: str
    input_domain: Domain
    detail: str
    origin: str = ""
    role_inferred: bool = False
    allowed: bool = False
    why: str = ""
    hint: str = ""

    @property
    def pure(self) -> bool:
        return self.op_class in PURE_CLASSES

    @property
    def violation(self) -> bool:
        return not self.pure and not self.allowed

    def to_dict(self) -> dict:
        d = {
            "node": self.node, "source": self.source, "op": self.op, "role": self.role,
            "role_inferred": self.role_inferred, "class": self.op_class,
            "input_domain": self.input_domain.to_dict(), "detail": self.detail, "origin": self.origin,
            "allowed": self.allowed,
        }
        if not self.pure:
            d["why"] = self.why
            d["hint"] = self.hint
        return d


@dataclass
class PurityReport:
    """Verdict and per-node classes.  ``pure`` is the verdict with the allowed exceptions applied."""

    analysis: DomainAnalysis
    ops: list[SynapticOp]
    allow: list[str]
    extra: dict = field(default_factory=dict)  # model info, folding, dynamic check (set by callers)
    graph: nir.NIRGraph | None = None  # the graph that was checked (the folded one with --fold-readout)

    @property
    def violations(self) -> list[SynapticOp]:
        return [o for o in self.ops if o.violation]

    @property
    def exceptions(self) -> list[SynapticOp]:
        return [o for o in self.ops if not o.pure and o.allowed]

    @property
    def pure(self) -> bool:
        return not self.violations

    def op(self, name: str) -> SynapticOp:
        for o in self.ops:
            if o.node == name:
                return o
        raise KeyError(name)

    def integer_sums(self) -> list[dict]:
        """Where the integers that reach violating nodes start: fan-in sums of spikes (the RPE sum of
        Spikformer, SEW ADD joins, residual adds of spikes), with the violations they feed."""
        out = []
        for at, edges in self.analysis.sums.items():
            feeds = [v.node for v in self.violations if f"fan-in sum of {len(edges)} edges into {at}:" in v.origin]
            if feeds:
                out.append({"at": at, "source": source_of(at, self.analysis.nodes[at]), "edges": list(edges),
                            "domain": self.analysis.inp[at].text(), "feeds": feeds})
        return out

    def summary(self) -> dict:
        counts = {c: sum(1 for o in self.ops if o.op_class == c) for c in ALL_CLASSES}
        return {"synaptic_nodes": len(self.ops), "classes": counts, "violations": len(self.violations),
                "allowed_exceptions": len(self.exceptions)}

    def to_dict(self) -> dict:
        d = {
            "schema": "neurodeploy.purity",
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "neurodeploy", "version": __version__},
            "model": dict(self.extra.get("model", {})),
            "input_domain": self.analysis.input_domain,
            "allow": list(self.allow),
            "pure": self.pure,
            "verdict": "spike-pure" if self.pure else "not spike-pure",
            "summary": self.summary(),
            "violations": [o.to_dict() for o in self.violations],
            "exceptions": [o.to_dict() for o in self.exceptions],
            "integer_sums": self.integer_sums(),
            "nodes": [o.to_dict() for o in self.ops],
            "domains": self.analysis.table(),
        }
        for key in ("folding", "dynamic"):
            if key in self.extra:
                d[key] = self.extra[key]
        return d


# --------------------------------------------------------------------------------------------- helpers
def _power_of_two(s: float) -> int | None:
    if s <= 0 or not math.isfinite(s):
        return None
    m, e = math.frexp(s)
    return e - 1 if m == 0.5 else None


def _successors(res: DomainAnalysis) -> dict[str, list[str]]:
    succ: dict[str, list[str]] = {n: [] for n in res.nodes}
    for n, ps in res.preds.items():
        for p in ps:
            succ.setdefault(p, []).append(n)
    return succ


def _fold_target(res: DomainAnalysis, succ, f: str, scale: float):
    """The LIF/IF that a positive constant scale at ``f`` folds into, with its old and new threshold."""
    if scale <= 0:
        return None
    nxt = succ.get(f, [])
    if len(nxt) != 1:
        return None
    t = nxt[0]
    node = res.nodes[t]
    prim = primitive_of(node, t)
    if prim not in ("LIF", "IF"):
        return None
    for p in res.preds.get(t, []):  # every input of the neuron must carry the same factor
        if p == f:
            continue
        pn = res.nodes[p]
        if is_attention(pn):
            if float(attention_params(p, pn)["scale"]) != scale:
                return None
        elif placement_scale(pn) != scale:
            return None
    if np.any(np.asarray(node.v_reset) != 0):
        return None
    if prim == "LIF" and np.any(np.asarray(node.v_leak) != 0):
        return None
    md = node_metadata(node)
    th = md.get("neurodeploy.v_threshold")
    if th is None:
        th = float(np.max(np.asarray(node.v_threshold)))
    th = float(th)
    return t, th, th / scale


def _scale_note(res, succ, f, scale: float) -> tuple[str | None, str]:
    """(class SHIFT / FOLDED or None, explanation) for a constant scale."""
    fold = _fold_target(res, succ, f, scale)
    p2 = _power_of_two(abs(scale))
    parts = []
    if fold is not None:
        t, th, new = fold
        parts.append(f"foldable into the threshold of {t} (v_reset 0, linear charge): threshold "
                     f"{th:g} -> {new:g}")
    if p2 is not None:
        parts.append(f"a power of two (2^{p2}: a shift)")
    if not parts:
        return None, f"scale {scale:g} is a float multiply (not a power of two, not foldable)"
    cls = "FOLDED" if fold is not None else "SHIFT"
    return cls, f"scale {scale:g} is not a multiply: " + "; ".join(parts)


def _infer_roles(res: DomainAnalysis, synaptic: list[str]) -> dict[str, str]:
    """Roles for graphs without any ``neurodeploy.role`` (graph.roles: the one rule every stage uses)."""
    return infer_roles(res.order, res.preds, res.nodes, synaptic)


def _hint(op: SynapticOp) -> str:
    o, d = op.origin, op.input_domain
    if op.role == "encoder" or o.startswith("graph input"):
        if d.is_real:
            return ("this layer reads the real-valued input (the encoder): allow it with --allow encoder, "
                    "or feed binary events and declare --input-domain binary")
        return ("the input carries event counts that can exceed 1: bin the events so that each input fires at "
                "most once per time step (then --input-domain binary), or allow it with --allow encoder")
    if op.role == "readout":
        return ("non-spiking readout: rewrite it exactly with --fold-readout (accumulates of spikes into a "
                "non-spiking integrator), allow it with --allow readout, or put a LIF before the head "
                "(SN-FC-AvgPool)")
    if "fan-in sum" in o:
        return ("the input is a sum of spike tensors (a residual add of spikes, as in Spikformer or SEW ADD): "
                "move the LIF before the conv so that every branch starts with a spiking neuron (the "
                "pre-activation / membrane-shortcut residual of Spikingformer: x = x + ConvBN(LIF(x))), or "
                "join the branches with AND / IAND")
    if "sum-pool" in o:
        return "sum pooling gives counts: use max pooling of spikes (SumPool + Threshold(0.5), an OR) instead"
    if op.op_class == "MAX":
        return ("max-pool the spikes after the LIF instead (a max of spikes is an OR: SumPool + Threshold(0.5)), or "
                "downsample with a strided conv; neurodeploy lowers this max exactly to Loihi 2 graded ReLU neurons "
                "(max(a, b) = b + relu(a - b)), so --allow NODE accepts it for a Loihi 2 deployment")
    if "attention" in o:
        return "feed the attention output through a LIF (attn_lif) before the next synaptic layer"
    return ("the input comes from a synaptic layer or a non-spiking neuron without a spiking neuron in "
            "between: insert a LIF before this layer")


def _why(op: SynapticOp) -> str:
    d = op.input_domain
    src = f" ({op.origin})" if op.origin else ""
    if op.op_class == "MAC":
        return f"input is real{src}: every synaptic event is a float x float multiply-accumulate"
    if op.op_class == "MAX":
        return (f"input is {d.text()}{src}: a max of membrane values is a compare-select on real numbers (no "
                "multiplies), not an event: no spike form (a max of spikes is an OR, a max of reals needs comparators)")
    if op.op == "Attention":
        return f"attention operands are {d.text()}{src}: the products need multipliers"
    return f"input is {d.text()}{src}: every synaptic event is an integer x float multiply, not an accumulate"


# --------------------------------------------------------------------------------------------- main
def classify(res: DomainAnalysis) -> list[SynapticOp]:
    """One :class:`SynapticOp` per synaptic node (graph order)."""
    succ = _successors(res)
    synaptic = [n for n in res.order if kind_of(res.nodes[n], n) in ("synaptic", "elementwise")
                or is_attention(res.nodes[n]) or is_maxpool(res.nodes[n])]
    inferred = _infer_roles(res, synaptic)
    ops = []
    for f in synaptic:
        node = res.nodes[f]
        d = res.inp.get(f)
        if d is None:  # unreachable node (no input): nothing reaches it
            d = Domain.binary()
        role = role_of(node) or inferred.get(f)
        op = SynapticOp(node=f, source=source_of(f, node),
                        op="Attention" if is_attention(node) else "MaxPool2d" if is_maxpool(node) else primitive_of(node, f),
                        role=role, role_inferred=f in inferred, op_class="AC", input_domain=d, detail="",
                        origin=res.in_note.get(f, ""))
        if is_attention(node):
            p = attention_params(f, node)
            if d.is_spike:
                cls_s, scale_txt = _scale_note(res, succ, f, p["scale"])
                op.op_class = "AC"
                op.detail = (f"binary Q, K, V ({p['heads']} heads, d={p['head_dim']}, N={p['tokens']}): Q K^T and "
                             f"K^T V are binary x binary = AND + popcount; the second product is integer x binary "
                             f"= accumulate (integers up to N*d = {p['tokens'] * p['head_dim']}); {scale_txt}")
                if cls_s is None:
                    op.detail += " (the scale multiply remains: neither a power of two nor foldable)"
            else:
                op.op_class = "MAC"
                op.detail = f"attention on {d.text()} operands: products of non-binary activations"
        elif is_maxpool(node):
            if d.is_spike:
                op.op_class, op.detail = "AC", "max of spikes: an OR of the window (no arithmetic)"
            else:
                op.op_class = "MAX"
                op.detail = (f"max of {d.text()} values over pooling windows: compare-select, no multiplies "
                             "(Loihi 2: exact trees of graded ReLU neurons)")
        elif role_of(node) == "routing" and res.routing_ok.get(f):
            op.op_class = "ROUTING"
            op.detail = "0/1 placement (exact data movement, no arithmetic)"
        elif kind_of(node, f) == "elementwise":
            s = np.asarray(node.scale, dtype=np.float64).reshape(-1)
            if d.is_spike:
                op.op_class, op.detail = "AC", "scale of spikes: selects a constant per spike"
            elif np.all(s == s[0]):
                cls_s, txt = _scale_note(res, succ, f, float(s[0]))
                op.op_class = cls_s or ("INTxFLOAT" if d.kind != "real" else "MAC")
                op.detail = txt
            else:
                op.op_class = "INTxFLOAT" if d.kind != "real" else "MAC"
                op.detail = "per-element float scale"
        else:
            note = ""
            if role_of(node) == "routing":
                note = " (declared routing, but the weights are not a 0/1 placement)"
            if d.is_spike:
                op.op_class = "AC"
                op.detail = ("binary spikes in: accumulate only" if d.is_binary
                             else "signed spikes in: add or subtract only") + note
            elif d.kind != "real" and placement_scale(node) is not None:
                c = placement_scale(node)
                base = (f"integer input {d.text()} with weights 0/+-{c:g}: each synapse adds (or subtracts) the "
                        f"integer, an accumulate")
                if c == 1.0:
                    op.op_class, op.detail = "AC", base + note
                else:
                    cls_s, txt = _scale_note(res, succ, f, c)
                    op.op_class = cls_s or "INTxFLOAT"
                    op.detail = base + "; " + txt + note
            elif d.kind != "real" and d.events:
                op.op_class = "AC"
                op.detail = (f"sum-pooled spikes ({d.text()}): each count is a separate binary event re-addressed "
                             f"by the pool, one accumulate per event; exactly a conv on the un-pooled spikes with "
                             f"an up-sampled kernel{note}")
            elif d.kind != "real":
                op.op_class = "INTxFLOAT"
                op.detail = f"integer input {d.text()}{note}"
            else:
                op.op_class = "MAC"
                op.detail = f"real input{note}"
        if not op.pure:
            op.why = _why(op)
            op.hint = _hint(op)
        ops.append(op)
    return ops


def resolve_allow(allow, res: DomainAnalysis) -> list[str]:
    """Validate ``--allow`` items: roles (encoder, readout) or node names / source module paths."""
    if allow is None:
        return []
    if isinstance(allow, str):
        allow = [allow]
    items = []
    for a in allow:
        for part in str(a).split(","):
            part = part.strip()
            if part:
                items.append(part)
    sources = {source_of(n, v) for n, v in res.nodes.items()}
    for item in items:
        if item not in ROLES and item not in res.nodes and item not in sources:
            raise BadInputError(f"--allow {item!r}: not a role ({', '.join(ROLES)}) and not a node name of the graph")
    return items


def check_purity(graph: nir.NIRGraph, input_domain: str | None = None, allow=None,
                 pool_events: bool = True) -> PurityReport:
    """Value domains, synaptic classes and the verdict for ``graph``."""
    if is_graph(graph) and not graph.nodes:
        raise BadInputError("the graph has no nodes: there is nothing to check")
    res = analyze(graph, input_domain=input_domain, pool_events=pool_events)
    ops = classify(res)
    items = resolve_allow(allow, res)
    for op in ops:
        op.allowed = (not op.pure) and (op.role in items or op.node in items or op.source in items)
    return PurityReport(analysis=res, ops=ops, allow=items, graph=graph)
