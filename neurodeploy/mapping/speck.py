"""Chip fit of a Speck integer network: sinabs' memory accounting and layer -> core assignment.

* Memory per layer (sinabs ``DynapcnnLayer.memory_summary``, lava_loihi.md 5.1):
  kernel = C_in * 2^(ceil(log2(k*k)) + ceil(log2(C_out))), neuron = C_out * 2^(ceil(log2 H) + ceil(log2 W))
  of the conv output, bias = C_out when the layer has a bias (else 0).
* A layer fits a core when all three are within the core's kernel / neuron / bias memory (the profile's
  per-core lists, from sinabs ``chips/dynapcnn.py``).
* The assignment is a maximum flow source -> layers -> cores -> sink (capacity 1 per edge), solved by
  ``scipy.sparse.csgraph.maximum_flow(method="edmonds_karp")``; with the edges listed in layer order and
  core order it returns the same assignment as sinabs' own Edmonds-Karp (``get_valid_mapping``;
  tests/test_speck.py compares them on thousands of candidate sets).  Fewer matched layers than layers is
  sinabs' "No valid mapping found" refusal.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import maximum_flow

from .records import Core, FitResult, Piece, Violation


def layer_memory(layer) -> dict:
    """``{"kernel", "neuron", "bias"}`` entries of one :class:`~neurodeploy.lower.speck.SpeckLayer`."""
    c_out, c_in, kh, kw = (int(v) for v in layer.weight.shape)
    _, h, w = layer.neuron_shape
    return {"kernel": c_in * 2 ** (math.ceil(math.log2(kh * kw)) + math.ceil(math.log2(c_out))),
            "neuron": c_out * 2 ** (math.ceil(math.log2(h)) + math.ceil(math.log2(w))),
            "bias": c_out if layer.bias is not None else 0}


def memory_summary(net) -> dict:
    """Per-layer memory keyed like sinabs' ``DynapcnnNetwork.memory_summary()`` (layer index -> entries)."""
    out: dict = {"kernel": {}, "neuron": {}, "bias": {}}
    for i, L in enumerate(net.layers):
        for k, v in layer_memory(L).items():
            out[k][i] = v
    return out


def candidate_cores(mem: dict, kernel_memory, neuron_memory, bias_memory: int) -> list[int]:
    return [c for c in range(len(kernel_memory))
            if 0 <= mem["kernel"] <= kernel_memory[c] and 0 <= mem["neuron"] <= neuron_memory[c]
            and 0 <= mem["bias"] <= bias_memory]


def assign_cores(candidates: list[list[int]], n_cores: int) -> list[int] | None:
    """Layer i -> core, a maximum matching of layers to their candidate cores; None when some layer stays
    unmatched."""
    n = len(candidates)
    if n == 0:
        return []
    V = n + n_cores + 2
    rows, cols = [], []
    for i, cs in enumerate(candidates):
        rows.append(0)
        cols.append(1 + i)
        for c in cs:
            rows.append(1 + i)
            cols.append(1 + n + c)
    for c in range(n_cores):
        rows.append(1 + n + c)
        cols.append(V - 1)
    cap = sp.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(V, V))
    res = maximum_flow(cap, 0, V - 1, method="edmonds_karp")
    if res.flow_value < n:
        return None
    flow = res.flow.tocsr()
    out = []
    for i in range(n):
        row = flow.getrow(1 + i)
        out.append(int(next(c - 1 - n for c, f in zip(row.indices, row.data) if f == 1)))
    return out


def fit(net, profile) -> FitResult:
    """The fit verdict, memory per layer and the core of each layer."""
    kmem = [int(v) for v in profile.core_limit("kernel_memory")]
    nmem = [int(v) for v in profile.core_limit("neuron_memory")]
    bmem = int(profile.core_limit("bias_memory"))
    res = FitResult(target=profile.name, title=profile.title, fits=True, violations=[], warnings=[])
    res.limits = {"kernel_memory": max(kmem), "neuron_memory": max(nmem), "bias_memory": bmem}
    mems = [layer_memory(L) for L in net.layers]
    cands = [candidate_cores(m, kmem, nmem, bmem) for m in mems]
    for L, m, cs in zip(net.layers, mems, cands):
        if not cs:
            res.violations.append(Violation("limit", L.name, f"no core holds this layer: kernel memory {m['kernel']} "
                                                             f"entries (largest core {max(kmem)}), neuron memory "
                                                             f"{m['neuron']} (largest {max(nmem)}), bias {m['bias']} "
                                                             f"(limit {bmem})"))
    assignment = assign_cores(cands, len(kmem))
    if assignment is None:
        res.fits = False
        if not res.violations:
            res.violations.append(Violation("mapping", net.layers[-1].name if net.layers else "",
                                            f"no valid mapping found: {len(net.layers)} layers on {len(kmem)} cores "
                                            "(one layer per core, each within the core's memory)"))
        assignment = [-1] * len(net.layers)
    cores = []
    for L, m, c in zip(net.layers, mems, assignment):
        usage = {"kernel_memory": m["kernel"], "neuron_memory": m["neuron"], "bias_memory": m["bias"]}
        lim = ({"kernel_memory": kmem[c], "neuron_memory": nmem[c], "bias_memory": bmem} if c >= 0 else res.limits)
        shape = L.neuron_shape
        cores.append(Core(c, 0, [Piece(L.name, L.name, (0, shape[0], 0, shape[1], 0, shape[2]),
                                       {**usage, "limits": lim})], usage))
    res.cores = sorted(cores, key=lambda c: c.index) if res.fits else cores
    res.n_cores = len(net.layers)
    res.n_chips = 1 if res.fits else 0
    res.system = None
    # event-driven: in sinabs' model (and ours) an event crosses every layer within its time step
    res.pipeline_depth = 0
    res.latency_steps = int(net.metadata.get("time_steps", 0) or 0)
    keys = ["kernel_memory", "neuron_memory", "bias_memory"]
    res.totals = {r: sum(c.usage[r] for c in cores) for r in keys}
    peak = {r: max((c.usage[r] / (c.pieces[0].usage["limits"][r] or 1) for c in cores), default=0.0) for r in keys}
    if cores:
        r = max(keys, key=lambda r: peak[r])
        res.bottleneck = {"resource": r, "peak_core_pct": 100.0 * peak[r],
                          "mean_pct": 100.0 * np.mean([c.usage[r] / (c.pieces[0].usage["limits"][r] or 1) for c in cores])}
    res.per_layer = [{"layer": L.name, "cores": 1, "chips": [0] if res.fits else [], "core": c,
                      "neurons": int(np.prod(L.neuron_shape)), "kernel_memory": m["kernel"],
                      "neuron_memory": m["neuron"], "bias_memory": m["bias"]}
                     for L, m, c in zip(net.layers, mems, assignment)]
    res.notes.append("no per-layer step delay: an input event reaches the output in the same time step")
    res.notes.append("memory by sinabs' accounting (power-of-two rounding); cores matched by maximum flow as "
                     "sinabs' get_valid_mapping")
    return res
