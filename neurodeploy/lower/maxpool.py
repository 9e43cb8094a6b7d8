"""The ``max_pool2d`` extension (a max of real values, graph/maxpool.py) on Loihi 2, exactly, from Lava's own
processes (docs/lowering.md, "Max pooling of real values").

A max needs no comparator: ``max(a, b) = a + relu(b - a)``, and ``relu`` is Lava's ``GradedReluVec`` (vth 0:
``s = v * (v > 0)``).  A window's present elements e_0 < e_1 < ... (positions outside the input are omitted, as
PyTorch's -inf padding) fold one after the other: ``m_0 = e_0``, ``P_i = relu(e_i - m_{i-1})``, ``m_i = m_{i-1} +
P_i``; so the max is the *linear* combination ``e_0 + P_1 + ... + P_{k-1}``, and each P_i reads a linear
combination of what came before.  A k0 x k1 window is separable (the present set is a product of rows and
columns): a pass along the width (k1 - 1 ReLU populations over every input row), then along the height (k0 - 1
over the pooled columns), where each "element" is already the width pass's combination.  The pooled value M
(a ``relay``, GradedVec vth 0) sums its combination; every group is a one-to-one graded Sparse of weight +1
(excitatory) or -1 (inhibitory), so every payload is an exact integer.

Input: the population ``X`` (a ``relay``) holding the pooled values in integer units (the conv's output at the
relay's scale S, no bias: a per-channel bias commutes with the max and is added by the readers).
Latency: one step per ReLU population plus one for M (3x3: X, 2 width, 2 height, M = 5 steps after X); the
balancing pass (:mod:`.balance`) gives every group its delay, so the inputs of each population meet in step.
Payloads: |P_i| <= 2 max|X| and |M| <= max|X|; the lowering keeps max|X| S within 2^17, far inside 24 bits.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..graph.maxpool import MaxPoolSpec
from .fixed_point import EXCITATORY, INHIBITORY
from .network import Population, Synapse


def _select(spec: MaxPoolSpec, axis: int, grid: tuple) -> tuple:
    """Along ``axis`` (1 width, 0 height) of ``grid`` (C, H, W): the output grid and, per element index i, the
    (n_out x n_in) 0/1 selection of the i-th present element of each window (a zero row where there is none)."""
    C, H, W = grid
    win = spec.windows(axis)
    k = max(len(w) for w in win)
    out = (C, len(win), W) if axis == 0 else (C, H, len(win))
    idx_out = np.arange(int(np.prod(out))).reshape(out)
    idx_in = np.arange(C * H * W).reshape(grid)
    sels = []
    for i in range(k):
        rows, cols = [], []
        for o, w in enumerate(win):
            if i >= len(w):
                continue
            if axis == 1:
                rows.append(idx_out[:, :, o].reshape(-1))
                cols.append(idx_in[:, :, w[i]].reshape(-1))
            else:
                rows.append(idx_out[:, o, :].reshape(-1))
                cols.append(idx_in[:, w[i], :].reshape(-1))
        r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        sels.append(sp.csr_matrix((np.ones(r.size, dtype=np.int64), (r, c)), shape=(idx_out.size, idx_in.size)))
    return out, sels


def _combine(terms: dict, sel) -> dict:
    """``sel`` applied to a linear combination {population: matrix}."""
    return {p: (sel @ m).tocsr() for p, m in terms.items()}


def maxpool_parts(name: str, x_name: str, spec: MaxPoolSpec, source: str) -> tuple[list, list]:
    """``(populations, synapse groups)`` computing the max-pool of relay ``x_name`` into a relay named ``name``
    (balance delays unset: the balancing pass sets them)."""
    C, (H, W) = spec.channels, spec.in_hw
    value = {x_name: sp.identity(C * H * W, dtype=np.int64, format="csr")}
    grid = (C, H, W)
    pops, syns = [], []

    def groups(dst, combo, n):
        for src, m in combo.items():
            m = sp.csr_matrix(m)
            m.eliminate_zeros()
            for tag, mode, keep in (("exc", EXCITATORY, m > 0), ("inh", INHIBITORY, m < 0)):
                part = sp.csr_matrix(m.multiply(keep))
                part.eliminate_zeros()
                if part.nnz == 0:
                    continue
                if np.abs(part.data).max() != 1:
                    raise AssertionError(f"max-pool {name}: weight {part.data.max()} is not +-1")
                syns.append(Synapse(f"{dst}<-{src}.{tag}", src, dst, "sparse", part, sign_mode=mode, graded=True,
                                    source=source))

    for axis, tag in ((1, "w"), (0, "h")):
        out, sels = _select(spec, axis, grid)
        n = int(np.prod(out))
        first = _combine(value, sels[0])
        present = [np.asarray(s.sum(1)).reshape(-1) > 0 for s in sels]
        m = dict(first)
        for i in range(1, len(sels)):
            mask = sp.diags(present[i].astype(np.int64), dtype=np.int64)
            e_i = _combine(value, sels[i])
            diff = {}
            for p in list(e_i) + [q for q in m if q not in e_i]:      # a fixed order (reproducible names)
                if p in e_i and p in m:
                    d = e_i[p] - m[p]
                else:
                    d = e_i[p] if p in e_i else -m[p]
                diff[p] = (mask @ sp.csr_matrix(d)).tocsr()
            pname = f"{name}.{tag}{i}"
            pops.append(Population(pname, out, kind="graded_relu", vth=0, source=source))
            groups(pname, diff, n)
            m[pname] = sp.identity(n, dtype=np.int64, format="csr")
        value, grid = m, out
    pops.append(Population(name, grid, kind="relay", source=source))
    groups(name, value, int(np.prod(grid)))
    return pops, syns
