"""Fan-in splitting (a lowering pass): a neuron that reads more source neurons through dense/sparse/conv
groups than one Loihi 2 core can give it (``max_fan_in``, default :data:`MAX_FAN_IN`) reads partial sums
instead.  Destinations: ``lif``, ``readout`` and graded ``relay`` populations (the residual stream's relays:
ImageNet's first stream value reads a 3x3 conv over 768 channels, 6,912 inputs per neuron).

The dense/sparse groups into such a population are cut column-wise into chunks of at most ``bin_fan_in``
source neurons (default :data:`BIN_FAN_IN`), conv groups of at most that fan-in (C_in / groups x kernel) move
whole, all packed first-fit into bins; each bin is a graded relay population (Lava GradedVec, vth 0:
payload = a_in) of the destination's shape whose groups are the chunks (same weights, same weight_exp), and
the destination reads every bin through a one-to-one graded group of weight 1.  A conv group whose own
fan-in is larger is cut by input channels: P channel slices (the fewest that divide C_in / groups and fit
``bin_fan_in``) become one Lava Conv with P x groups groups into a relay of P x C_out channels (slice p of
group g gives channels (g P + p) C_out / groups ...), and the destination reads the P slices of each of its
neurons through one graded sparse group of weight 1 (P connections per neuron).  The destination's input is
then the sum of the partial sums: the unsplit sum exactly, except for the floor of a negative weight_exp,
which is taken per dense/sparse chunk (at most one unit of a_in per extra chunk; conv groups have no
weight_exp, so a conv split is exact).  A relay forwards its integer a_in unchanged (24-bit payload; a
partial sum is bounded by the whole row's absolute sum, as the destination's input is).  Adds one step of
latency on that path (the balancing pass re-runs).  The Spikingformers need it: the CIFAR head reads 9
sources of 384-24,576 neurons each, the expanded residual stream's late LIFs read every earlier block, and
ImageNet's first stream relay reads 6,912 inputs per neuron."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from .balance import balance_network, path_latency_of
from .fixed_point import lava_sign_mode
from .fixed_point import EXCITATORY
from .network import MAX_DELAY, LoweredNetwork, Population, Synapse, conv_out_shape, identity_csr

#: Source neurons one destination neuron may read: a Loihi 2 core's synapse memory (12,000 units in
#: hardware_profiles/loihi2.toml's core model) at 2 units per input axon for a single destination neuron (1 unit
#: of 4 synapses + 1 header unit per axon)
MAX_FAN_IN = 6000
#: inputs per partial-sum relay once a neuron is split: below MAX_FAN_IN, so that the chip fit can place up to
#: four relay neurons per core (2 units per input axon up to 4 destinations) with room to spare (ImageNet's
#: 1,000-neuron readout partials at 6,000 inputs overfilled cores by up to 4 %)
BIN_FAN_IN = 5000


def _fan_in(s: Synapse) -> int:
    """Source neurons one destination neuron reads through group ``s`` (conv: C_in / groups x kernel)."""
    if s.kind in ("dense", "sparse"):
        return int(s.weights.shape[1])
    if s.kind == "conv":
        w = np.shape(s.weights)
        return int(w[1] * w[2] * w[3])
    return 0


def _row_fan_in(s: Synapse) -> int:
    """Source neurons the busiest destination neuron of group ``s`` reads (a sparse group: its longest row,
    e.g. 1 for a one-to-one relay group; others as :func:`_fan_in`)."""
    if s.kind == "sparse":
        ptr = np.asarray(s.weights.indptr)
        return int(np.diff(ptr).max(initial=0))
    return _fan_in(s)


def _channel_slices(s: Synapse, cap: int) -> int:
    """P: the fewest input-channel slices of conv group ``s`` (P dividing C_in / groups) with at most ``cap``
    inputs per neuron each (1 when the whole kernel fits)."""
    cin_g, taps = int(np.shape(s.weights)[1]), int(np.shape(s.weights)[2] * np.shape(s.weights)[3])
    need = -(-cin_g * taps // max(cap, 1))
    return next((P for P in range(max(need, 1), cin_g + 1) if cin_g % P == 0), cin_g)


def _split_conv(net: LoweredNetwork, s: Synapse, dst: Population, pname: str, P: int) -> None:
    """Conv group ``s`` into ``dst`` cut into ``P`` input-channel slices: one conv with P x groups groups into a
    new relay ``pname`` of P x C_out channels, and a graded sparse group (weight 1, P connections per neuron)
    from it into ``dst`` (appended to ``net``; ``s`` itself is removed by the caller)."""
    w = np.asarray(s.weights)
    c_out, cin_g, kh, kw = w.shape
    G = int(s.groups)
    cpo, c = c_out // G, cin_g // P
    # new output channel (g P + p) cpo + o  <-  old channel g cpo + o over input slice p of group g
    wp = w.reshape(G, cpo, P, c, kh, kw).transpose(0, 2, 1, 3, 4, 5).reshape(G * P * cpo, c, kh, kw)
    _, ho, wo = conv_out_shape(tuple(net.pop(s.src).shape), s)
    net.populations.append(Population(pname, (G * P * cpo, ho, wo), kind="relay", source=dst.source))
    net.synapses.append(replace(s, dst=pname, weights=wp, groups=G * P))
    hw = ho * wo
    d = np.arange(dst.size, dtype=np.int64)
    ch, pos = d // hw, d % hw
    g, o = ch // cpo, ch % cpo
    cols = (((g * P)[:, None] + np.arange(P)[None, :]) * cpo + o[:, None]) * hw + pos[:, None]
    m = sp.csr_matrix((np.ones(dst.size * P, dtype=np.int64), cols.ravel(), np.arange(0, dst.size * P + 1, P)),
                      shape=(dst.size, G * P * cpo * hw))
    net.synapses.append(Synapse(f"{dst.name}<-{pname}", pname, dst.name, "sparse", m, sign_mode=EXCITATORY,
                                graded=True, source=f"{P} input-channel slices of {s.name} into {dst.name}"))


def _carry_chain(last: list) -> list:
    """For bins whose latest source is at ``last[i]`` (in order): the bin each one reads as its carry (None: none).

    A bin reads the carry (the previous bin, which holds every earlier partial sum) when that keeps it within the
    destination's latency: the carry at most at the latest source (a bin is one step after its sources, the
    destination one after its bins).  Then the early partial sums travel as one chain of the destination's size
    (the delay relays of a long gap hold one partial sum, not one per bin: the CIFAR Spikingformer's head reads
    the patch embedding 440 steps before its last block with the tiled attention), and only the bins that end a
    chain feed the destination.  Bins whose sources all share the latest latency stay parallel (no step added)."""
    final = max(last, default=0)
    out, carry, carry_lat = [], None, None
    for i, at in enumerate(last):
        if carry is not None and carry_lat <= final:
            out.append(carry)
            here = max(at, carry_lat) + 1
        else:
            out.append(None)
            here = at + 1
        carry, carry_lat = i, here
    return out


def split_fan_in(net: LoweredNetwork, max_fan_in: int = MAX_FAN_IN, T: int | None = None,
                 bin_fan_in: int | None = None, balance: bool = True) -> LoweredNetwork:
    """Split the fan-in of every population above ``max_fan_in`` into partial sums of at most ``bin_fan_in``
    inputs each (default :data:`BIN_FAN_IN`, at most ``max_fan_in``) (in place; returns ``net``), re-balanced
    unless ``balance`` is false (the pass flow of :mod:`neurodeploy.lower.passes` balances once, last).
    Records ``metadata["fan_in_splits"]``: destination -> its partial-sum relays."""
    cap = min(max_fan_in, bin_fan_in or BIN_FAN_IN)
    splits = {}
    for dst in [p for p in net.populations if p.kind in ("lif", "readout", "relay")]:
        groups = [s for s in net.synapses if s.dst == dst.name and s.kind in ("dense", "sparse", "conv")
                  and s.delays is None and s.port == 0 and s.src != s.dst]     # a self-loop keeps its one step
        if sum(_row_fan_in(s) for s in groups) <= max_fan_in:
            continue
        # chunks: (group, first column, last column) of at most cap columns, packed first-fit; into a readout in
        # the order of their sources' latency and only into bins whose first source is at most MAX_DELAY steps
        # earlier (so no chunk waits in a delay relay; the bins then form a chain, _carry_chain); a conv group
        # above cap is cut by input channels instead (its own relay).  A readout only: its bins are small; a
        # LIF's bins are each as large as the LIF, and the more of them the windows make cost more than its
        # sources' delay relays save (imagenet-8-768's expanded stream: 96,112 -> 99,754 cores when windowed)
        chain = dst.kind == "readout"
        if chain:
            lat = path_latency_of(net)
            groups = sorted(groups, key=lambda g: lat[g.src])
        bins, room, first, last, wide = [], [], [], [], []
        for s in groups:
            n_in = _fan_in(s)
            if s.kind == "conv" and n_in > cap:
                wide.append(s)
                continue
            step = cap if s.kind != "conv" else max(n_in, 1)       # a conv group moves whole
            at = lat[s.src] if chain else 0
            for a in range(0, n_in, step):
                b = min(n_in, a + step)
                for i, r in enumerate(room):
                    if r >= b - a and (not chain or at - first[i] <= MAX_DELAY):
                        bins[i].append((s, a, b))
                        room[i] -= b - a
                        last[i] = max(last[i], at)
                        break
                else:
                    bins.append([(s, a, b)])
                    room.append(cap - (b - a))
                    first.append(at)
                    last.append(at)
        carried = _carry_chain(last) if chain else [None] * len(bins)
        names = []
        csr = {id(s): (s.weights.tocsr() if sp.issparse(s.weights) else sp.csr_matrix(np.asarray(s.weights)))
               for s in groups if s.kind != "conv"}       # one CSR per group, sliced per chunk
        for i, chunks in enumerate(bins):
            pname = f"{dst.name}.partial{i}"
            net.populations.append(Population(pname, tuple(dst.shape), kind="relay", source=dst.source))
            for s, a, b in chunks:
                if s.kind == "conv":
                    net.synapses.append(replace(s, dst=pname))
                    continue
                w = csr[id(s)]
                cols = sp.csr_matrix(w[:, a:b])
                part = sp.csr_matrix((cols.data, cols.indices + a, cols.indptr), shape=w.shape)
                whole = (a, b) == (0, _fan_in(s))
                net.synapses.append(Synapse(s.name if whole else f"{s.name}[{a}:{b}]", s.src, pname, "sparse", part,
                                            weight_exp=s.weight_exp, num_weight_bits=s.num_weight_bits,
                                            sign_mode=lava_sign_mode(w.data, s.sign_mode), graded=s.graded,
                                            source=s.source))
            if carried[i] is not None:
                prev = f"{dst.name}.partial{carried[i]}"
                net.synapses.append(Synapse(f"{pname}<-{prev}", prev, pname, "sparse", identity_csr(dst.size),
                                            sign_mode=EXCITATORY, graded=True,
                                            source=f"partial sums up to {carried[i]} of {dst.name}, carried"))
            if i not in carried:
                net.synapses.append(Synapse(f"{dst.name}<-{pname}", pname, dst.name, "sparse",
                                            identity_csr(dst.size), sign_mode=EXCITATORY, graded=True,
                                            source=f"partial sums {i} of {dst.name}"))
            names.append(pname)
        for s in wide:
            pname = f"{dst.name}.partial{len(names)}"
            _split_conv(net, s, dst, pname, _channel_slices(s, cap))
            names.append(pname)
        net.synapses = [s for s in net.synapses if not any(s is g for g in groups)]
        splits[dst.name] = names
    if splits:
        net.metadata["fan_in_splits"] = splits
    if splits and balance:
        balance_network(net, T if T is not None else (int(net.metadata.get("time_steps", 0) or 0) or None))
    return net
