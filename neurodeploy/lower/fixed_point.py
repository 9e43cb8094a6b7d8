"""Fixed-point helpers shared by the lowering, our engine (:mod:`neurodeploy.sim`) and the Lava builder
(:mod:`neurodeploy.lava`): Lava's weight rules and the sparse form of a conv.  They live here, below the
simulators, so that ``lower/`` imports neither ``sim/`` nor ``lava/``.

* :func:`lava_sign_mode` / :func:`lava_effective_weights`: the integers Lava's fixed-point Dense/Sparse
  really use (lava-nc 0.10.0 ``weightutils``: clip to 8 bits by sign mode, drop ``8 - num_weight_bits +
  mixed`` LSBs); dense arrays and scipy sparse matrices alike (the sparse result keeps its structure).
* :func:`conv_to_sparse`: the ``(n_out, n_in)`` CSR matrix of a PyTorch-layout conv (correlation) on flat
  C-order maps, built from the kernel geometry: memory ``n_out x fan-in``, never ``n_out x n_in``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

MIXED, EXCITATORY, INHIBITORY = 1, 2, 3


def lava_sign_mode(w, sign_mode: int = 0) -> int:
    """Lava's sign mode of weights ``w`` (given, or inferred from the signs as Lava does)."""
    if sign_mode:
        return int(sign_mode)
    if sp.issparse(w):
        vals = w.data
    else:
        vals = np.asarray(w)
    if vals.size == 0 or vals.min() >= 0:
        return EXCITATORY
    if vals.max() <= 0:
        return INHIBITORY
    return MIXED


def _effective_values(w: np.ndarray, mode: int, num_weight_bits: int) -> np.ndarray:
    w = np.asarray(w).astype(np.int64)
    mixed = int(mode == MIXED)
    if mode == INHIBITORY:
        w = -w
    w = np.clip(w, -(1 << 8) * mixed, (1 << 8) - 1)
    n = 8 - int(num_weight_bits) + mixed
    w = (w >> n) << n
    if mode == INHIBITORY:
        w = -w
    return w


def lava_effective_weights(w, sign_mode: int = 0, num_weight_bits: int = 8):
    """The integer weights Lava's fixed-point Dense/Sparse actually use (clip to 8 bits, drop LSBs).
    A scipy sparse ``w`` gives a CSR matrix with the same structure (entries that become 0 are dropped)."""
    mode = lava_sign_mode(w, sign_mode)
    if sp.issparse(w):
        m = sp.csr_matrix(w, copy=True)
        m.data = _effective_values(m.data, mode, num_weight_bits)
        m.eliminate_zeros()
        return m
    return _effective_values(w, mode, num_weight_bits)


def conv_out_hw(hw, kernel, stride, padding, dilation) -> tuple:
    return tuple((int(h) + 2 * int(p) - int(d) * (int(k) - 1) - 1) // int(s) + 1
                 for h, k, s, p, d in zip(hw, kernel, stride, padding, dilation))


#: Lava 0.10.0's Conv process models hold ``groups`` in an int8 Var (``lava/proc/conv/models.py``:
#: ``groups: LavaPyType(np.ndarray, np.int8, precision=8)``): 128 groups or more wrap to a negative count and
#: the Conv sums nothing at all (a depthwise 3x3 max-pool OR over 128 channels stayed silent in Lava)
LAVA_MAX_CONV_GROUPS = 127


def lava_conv_groups(weights, groups: int, max_groups: int = LAVA_MAX_CONV_GROUPS):
    """The same conv with at most ``max_groups`` groups, for Lava's Conv: ``(weights, groups)`` unchanged
    when ``groups <= max_groups``, else G groups merged m at a time into G/m (m the smallest divisor of G
    that gets there), the weights between channels of different original groups 0.  Exact: a zero weight
    adds 0 (Lava's Conv sums the products of every in/out channel pair of a group).  PyTorch layout
    ``[C_out, C_in/G, kH, kW]``; the weights grow m-fold (a depthwise conv over 256 channels: 64 groups of 4)."""
    g = int(groups)
    if g <= max_groups:
        return weights, g
    m = next(m for m in range(2, g + 1) if g % m == 0 and g // m <= max_groups)
    w = np.asarray(weights)
    cout, cin_g, kh, kw = w.shape
    out = np.zeros((cout, m, cin_g, kh, kw), dtype=w.dtype)
    # output channel o belongs to original group o // (cout / g): its inputs sit at that group's place
    # (its index modulo m) inside the merged group
    out[np.arange(cout), (np.arange(cout) // (cout // g)) % m] = w
    return out.reshape(cout, m * cin_g, kh, kw), g // m


def conv_to_sparse(weights, src_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups: int = 1,
                   dtype=np.int64) -> sp.csr_matrix:
    """The ``(n_out, n_in)`` CSR matrix of a PyTorch-layout conv2d (correlation, zero padding) on flat
    C-order (C, H, W) maps.  Built per kernel tap (C_in/groups x kH x kW vectorised passes over the
    output), so memory is the number of connections, never ``n_out x n_in``.  Entries whose weight is 0
    are kept out.  Raises ValueError when ``src_shape`` does not fit the kernel."""
    w = np.asarray(weights)
    cin, h, wd = (int(a) for a in src_shape)
    cout, cin_g, kh, kw = w.shape
    g = int(groups)
    if cin_g * g != cin or cout % g:
        raise ValueError(f"conv kernel {w.shape} with groups {g} does not fit {cin} input channels")
    cout_g = cout // g
    ho, wo = conv_out_hw((h, wd), (kh, kw), stride, padding, dilation)
    if ho <= 0 or wo <= 0:
        raise ValueError(f"conv kernel {w.shape} gives an empty output on {src_shape}")
    oy = np.arange(ho)[:, None]
    ox = np.arange(wo)[None, :]
    rows_l, cols_l, vals_l = [], [], []
    oc = np.arange(cout)
    for ci in range(cin_g):
        ic = (oc // cout_g) * cin_g + ci                       # input channel per output channel
        for ky in range(kh):
            iy = oy * int(stride[0]) - int(padding[0]) + ky * int(dilation[0])      # (ho, 1)
            for kx in range(kw):
                ix = ox * int(stride[1]) - int(padding[1]) + kx * int(dilation[1])  # (1, wo)
                ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < wd)                    # (ho, wo)
                if not ok.any():
                    continue
                val = w[:, ci, ky, kx]
                nzc = np.flatnonzero(val)
                if nzc.size == 0:
                    continue
                pos = np.flatnonzero(ok)                                              # output pixels
                pix_in = (np.broadcast_to(iy, ok.shape).reshape(-1)[pos] * wd
                          + np.broadcast_to(ix, ok.shape).reshape(-1)[pos])
                rows_l.append((nzc[:, None] * (ho * wo) + pos[None, :]).reshape(-1))
                cols_l.append((ic[nzc][:, None] * (h * wd) + pix_in[None, :]).reshape(-1))
                vals_l.append(np.repeat(val[nzc].astype(dtype), pos.size))
    n_out, n_in = cout * ho * wo, cin * h * wd
    if not rows_l:
        return sp.csr_matrix((n_out, n_in), dtype=dtype)
    rows = np.concatenate(rows_l)
    cols = np.concatenate(cols_l)
    vals = np.concatenate(vals_l)
    m = sp.coo_matrix((vals, (rows, cols)), shape=(n_out, n_in)).tocsr()    # duplicates summed
    m.sum_duplicates()
    return m
