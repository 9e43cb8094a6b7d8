"""Lava builder for the graded-spike parts of a lowered network (:mod:`neurodeploy.lower.attention_graded`):
only Lava's own processes.

* ``prod`` population -> ``lava.proc.prodneuron.process.ProdNeuron`` (vth, exp as lowered);
* ``graded_vec`` population -> ``lava.proc.graded.process.GradedVec``;
* ``graded_relu`` population -> ``lava.proc.graded.process.GradedReluVec`` (the max-pool trees);
* ``einsum`` synapse group -> ``lava.proc.sparse.process.Sparse`` (``DelaySparse`` when it has a balance
  delay) with one connection per (destination neuron, summed index), ``num_message_bits`` 24 when the source
  sends graded spikes, connected to the destination's ``a_in`` or ``a_in1`` / ``a_in2`` (``port``).

:func:`einsum_matrix` is the only place the structured record becomes a matrix (a scipy CSR, as Lava's Sparse
needs it): ``n_dst x fan-in`` entries, linear in the connections that exist.
"""
from __future__ import annotations

import numpy as np

from ..lower.network import einsum_sides


def einsum_matrix(s):
    """The (n_dst, n_src) CSR connection matrix of an einsum group (every entry the group's one weight)."""
    from scipy.sparse import csr_matrix
    src, dst = einsum_sides(s)
    summed = [a for a in src if a not in dst]
    letters = list(dst) + summed
    sizes = [int(s.axes[a]) for a in letters]
    idx = dict(zip(letters, np.indices(sizes).reshape(len(sizes), -1)))
    rows = np.ravel_multi_index([idx[a] for a in dst], [int(s.axes[a]) for a in dst])
    cols = np.ravel_multi_index([idx[a] for a in src], [int(s.axes[a]) for a in src])
    n_dst = int(np.prod([int(s.axes[a]) for a in dst]))
    n_src = int(np.prod([int(s.axes[a]) for a in src]))
    w = np.full(rows.shape, int(np.asarray(s.weights).reshape(-1)[0]), dtype=np.int32)
    return csr_matrix((w, (rows, cols)), shape=(n_dst, n_src))


def graded_population(p):
    """The Lava process of a ``prod`` / ``graded_vec`` / ``graded_relu`` population."""
    from lava.proc.graded.process import GradedReluVec, GradedVec
    from lava.proc.prodneuron.process import ProdNeuron
    if p.kind == "prod":
        return ProdNeuron(shape=(p.size,), vth=int(p.vth), exp=int(p.exp))
    if p.kind == "graded_relu":     # the max-pool trees (neurodeploy.lower.maxpool)
        return GradedReluVec(shape=(p.size,), vth=int(p.vth), exp=int(p.exp))
    return GradedVec(shape=(p.size,), vth=int(p.vth), exp=int(p.exp))


def einsum_process(s, graded_source: bool, src_port, dst_proc):
    """Build the Sparse / DelaySparse of einsum group ``s``, connect ``src_port`` -> it -> the destination."""
    from lava.proc.sparse.process import DelaySparse, Sparse
    from lava.utils.weightutils import SignMode
    from scipy.sparse import csr_matrix
    w = einsum_matrix(s)
    common = dict(num_message_bits=24 if (graded_source or s.graded) else 0, weight_exp=int(s.weight_exp),
                  num_weight_bits=int(s.num_weight_bits), name=s.name)
    if s.sign_mode:
        common["sign_mode"] = SignMode(int(s.sign_mode))
    if s.balance_delay:
        d = csr_matrix((np.full(w.nnz, int(s.balance_delay), dtype=int), w.indices.copy(), w.indptr.copy()), shape=w.shape)
        proc = DelaySparse(weights=w, delays=d, max_delay=int(s.balance_delay), **common)
    else:
        proc = Sparse(weights=w, **common)
    src_port.connect(proc.s_in)
    port = {0: "a_in", 1: "a_in1", 2: "a_in2"}[int(s.port)]
    proc.a_out.connect(getattr(dst_proc, port))
    return proc
