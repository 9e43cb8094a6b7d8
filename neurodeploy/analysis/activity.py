"""Dynamic check: run the graph on sample data and record what reaches every synaptic node.

* The input of a synaptic node is the sum of its predecessors' recorded outputs (NIR fan-in).  A value
  outside the domain the static analysis proved (a 2 where it proved binary, a value outside a proven
  integer range) is an *internal error* of the analysis, reported and, with ``strict``, raised.
* Firing rates: for every spiking node (LIF, IF, CubaLIF, Threshold) the mean output per neuron and
  step; for every synaptic node the input rate (share of non-zero input elements per step) and the mean
  input value (spikes per input per step for binary input).  The report stage uses them for energy.

Sample data comes through the front door (:func:`neurodeploy.front_door.resolve_data`).
"""
from __future__ import annotations

import math

import nir
import torch

from ..errors import NeurodeployError
from .domains import DomainAnalysis, analyze, is_attention
from ..graph.primitives import kind_of
from ..graph.simulate import simulate

_INT_TOL = 1e-4  # float32 sums of integers are exact below 2^24; allow rounding from scaled values


class _Stats:
    __slots__ = ("count", "nonzero", "total", "lo", "hi", "nonint")

    def __init__(self):
        self.count = 0
        self.nonzero = 0
        self.total = 0.0
        self.lo = math.inf
        self.hi = -math.inf
        self.nonint = False

    def add(self, v: torch.Tensor):
        v = v.detach().double()
        self.count += v.numel()
        self.nonzero += int((v != 0).sum())
        self.total += float(v.sum())
        if v.numel():
            self.lo = min(self.lo, float(v.min()))
            self.hi = max(self.hi, float(v.max()))

    def observe_int(self, v: torch.Tensor, scale: float):
        if not self.nonint:
            q = v.detach().double() / scale
            self.nonint = bool((q - q.round()).abs().max() > _INT_TOL) if q.numel() else False


class ActivityCounter:
    """The dynamic check's statistics, fed one batch's float-simulator records at a time (:meth:`add`), so the
    one float reference run of a deployment (:mod:`neurodeploy.analysis.reference`) can feed it."""

    def __init__(self, graph: nir.NIRGraph, analysis: DomainAnalysis | None = None):
        self.res = analysis if analysis is not None else analyze(graph)
        self.preds = {n: [] for n in graph.nodes}
        for s, d in graph.edges:
            self.preds[d].append(s)
        kinds = {n: kind_of(v, n) for n, v in graph.nodes.items()}
        self.synaptic = sorted(n for n, v in graph.nodes.items()
                               if kinds[n] in ("synaptic", "elementwise") or is_attention(v))
        self.spiking = sorted(n for n in graph.nodes if kinds[n] == "spiking")
        self.syn_stats = {n: _Stats() for n in self.synaptic}
        self.spk_stats = {n: _Stats() for n in self.spiking}
        self.steps = None
        self.samples = 0

    def add(self, rec: dict, batch: int) -> None:
        """One batch's records (``simulate(..., record=True)``) of ``batch`` samples."""
        self.samples += int(batch)
        res = self.res
        for n in self.synaptic:
            vals = [rec[p] for p in self.preds[n] if p in rec]
            if not vals:
                continue
            v = vals[0] if len(vals) == 1 else torch.stack(vals, 0).sum(0)
            self.steps = v.shape[0]
            self.syn_stats[n].add(v)
            d = res.inp.get(n)
            if d is not None and not d.is_real:
                self.syn_stats[n].observe_int(v, d.scale)
        for n in self.spiking:
            if n in rec:
                self.spk_stats[n].add(rec[n])

    def result(self, T: int | None = None, strict: bool = False) -> dict:
        errors = []
        for n in self.synaptic:
            st, d = self.syn_stats[n], self.res.inp.get(n)
            if d is None or d.is_real or st.count == 0:
                continue
            lo, hi = d.lo * d.scale, d.hi * d.scale
            if d.scale < 0:
                lo, hi = hi, lo
            out_of_range = st.lo < lo - _INT_TOL * max(1.0, abs(lo)) or st.hi > hi + _INT_TOL * max(1.0, abs(hi))
            if out_of_range or st.nonint:
                seen = f"values in [{st.lo:g}, {st.hi:g}]" + (", not all integers" if st.nonint else "")
                errors.append(f"internal error: the analysis proved the input of {n!r} {d.text()}, "
                              f"but the simulation saw {seen}")
        if errors and strict:
            raise NeurodeployError(errors[0])
        syn, spk = self.syn_stats, self.spk_stats
        return {
            "samples": int(self.samples),
            "time_steps": int(self.steps) if self.steps is not None else int(T or 0),
            "firing_rates": {n: (s.total / s.count if s.count else 0.0) for n, s in spk.items()},
            "input_rates": {n: (s.nonzero / s.count if s.count else 0.0) for n, s in syn.items()},
            "input_mean": {n: (s.total / s.count if s.count else 0.0) for n, s in syn.items()},
            "input_range": {n: ([s.lo, s.hi] if s.count else None) for n, s in syn.items()},
            "internal_errors": errors,
        }


def record_activity(graph: nir.NIRGraph, x, T: int | None = None, analysis: DomainAnalysis | None = None,
                    batch_size: int = 32, strict: bool = False) -> dict:
    """Run ``graph`` on samples ``x`` and return a plain dict::

        {"samples", "time_steps", "firing_rates": {spiking node: rate}, "input_rates": {synaptic node:
         share of non-zero inputs}, "input_mean": {...}, "input_range": {node: [min, max]},
         "internal_errors": [message, ...]}

    ``strict``: raise NeurodeployError on the first internal error."""
    counter = ActivityCounter(graph, analysis)
    x = torch.as_tensor(x, dtype=torch.float32)
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        _, rec = simulate(graph, xb, T, record=True)
        counter.add(rec, len(xb))
        del rec
    return counter.result(T, strict)
