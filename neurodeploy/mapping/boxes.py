"""Boxes of neurons and what they load: a population is (C, H, W), a box ``(c0, c1, h0, h1, w0, w1)`` is the
part of it that one core holds.  For a box: its size, the source neurons a conv group reads into it (its
receptive box), and the input axons and synapses each synapse group brings into it (:func:`group_load`)."""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from .network import MapNetwork, MapPopulation, MapSynapses

Box = tuple  # (c0, c1, h0, h1, w0, w1)

def box_size(box: Box) -> int:
    c0, c1, h0, h1, w0, w1 = box
    return (c1 - c0) * (h1 - h0) * (w1 - w0)


def receptive_box(syn: MapSynapses, src_shape: tuple, box: Box) -> Box:
    """Source neurons a dst box of a conv group reads (clipped to the source)."""
    if syn.dst_view:  # conv output (C, H, W) flattened into tokens (C, 1, H*W): token range -> rows
        Wv = syn.dst_view[2]
        r0, r1 = box[4] // Wv, -(-box[5] // Wv)
        cols = (box[4] % Wv, (box[5] - 1) % Wv + 1) if r1 - r0 == 1 else (0, Wv)
        box = (box[0], box[1], r0, r1, cols[0], cols[1])
    c0, c1, h0, h1, w0, w1 = box
    C, H, W = src_shape
    kh, kw = syn.kernel
    sh, sw = syn.stride
    ph, pw = syn.padding
    ha, hb = max(0, h0 * sh - ph), min(H, (h1 - 1) * sh - ph + kh)
    wa, wb = max(0, w0 * sw - pw), min(W, (w1 - 1) * sw - pw + kw)
    if syn.groups > 1:
        cpg_out = max(1, dst_channels(syn) // syn.groups)
        cpg_in = C // syn.groups
        ca, cb = (c0 // cpg_out) * cpg_in, ((c1 - 1) // cpg_out + 1) * cpg_in
    else:
        ca, cb = 0, C
    return (ca, cb, ha, max(ha, hb), wa, max(wa, wb))


def dst_channels(syn):
    return getattr(syn, "_dst_c", 0) or syn.groups


def _flat_rows(shape: tuple, box: Box) -> np.ndarray:
    C, H, W = shape
    c0, c1, h0, h1, w0, w1 = box
    return ((np.arange(c0, c1) * (H * W))[:, None, None] + (np.arange(h0, h1) * W)[None, :, None]
            + np.arange(w0, w1)[None, None, :]).ravel()


def _sparse_axon_counts(w: sp.csr_matrix, rows: np.ndarray) -> tuple[int, int, np.ndarray]:
    """(axons, synapses, synapses per axon in axon order) of the nonzero connections of CSR ``w``'s ``rows``.

    Read straight from indptr / indices / data: O(connections of the rows) per box, where scipy's fancy row
    slicing costs a new matrix and its checks per call (the fit calls this once per tile and group: ~10^5 times
    on the ImageNet models), and a source-sized bincount per box made the fit grow with tiles x source size."""
    starts = w.indptr[rows]
    lengths = w.indptr[rows + 1] - starts
    total = int(lengths.sum())
    at = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(total)
    cols = w.indices[at][w.data[at] != 0]   # stored zeros are not connections
    per_axon = np.unique(cols, return_counts=True)[1]
    return int(per_axon.size), int(per_axon.sum()), per_axon


def group_load(net: MapNetwork, syn: MapSynapses, dst: MapPopulation, box: Box) -> tuple[int, int, list]:
    """(input axons, synapses, synapses per axon list or None) of group ``syn`` into ``box`` of ``dst``."""
    src = net.pop(syn.src)
    n = box_size(box)
    if syn.kind == "dense":
        if syn.weights is not None:
            rows = _flat_rows(dst.shape, box)
            if sp.issparse(syn.weights):   # a lowered sparse group: count its stored connections per axon
                return _sparse_axon_counts(syn.weights.tocsr(), rows)  # tocsr: no copy when CSR already
            w = np.asarray(syn.weights)
            per_axon = np.count_nonzero(w.reshape(w.shape[0], -1)[rows], axis=0)
            per_axon = per_axon[per_axon > 0]
            return int(per_axon.size), int(per_axon.sum()), per_axon
        return src.size, src.size * n, None
    if syn.kind == "conv":
        rb = receptive_box(syn, src.shape, box)
        axons = box_size(rb)
        k = syn.kernel[0] * syn.kernel[1] * (src.shape[0] // max(1, syn.groups))
        return axons, n * k, None
    # structured (attention products)
    synapses = n * syn.fan_in
    axons = min(src.size, math.ceil(synapses / max(1, syn.targets_per_axon)))
    return axons, synapses, None


def overlap(a: Box, b: Box) -> int:
    n = 1
    for i in (0, 2, 4):
        lo, hi = max(a[i], b[i]), min(a[i + 1], b[i + 1])
        if hi <= lo:
            return 0
        n *= hi - lo
    return n
