"""Channel splitting (the ``split_channels`` lowering pass): a conv-fed population cut by output channels into
several populations (Lava processes), the same neurons with the same inputs, so the chip compiler tiles each
part on its own.

Why: the Loihi 2 compiler tiles a conv population in whole (or halved) channel counts, halved rows and
power-of-two x widths (hardware_profiles/loihi2.toml, ``[synapse_accounting]``; PilotNet tiles 4x32x24,
4x15x36, 8x7x48), and a core holds 4,095 neurons, not 4,096.  A power-of-two population such as
spikingformer-gesture's 32 x 128 x 128 first LIF therefore tiles at 2,048 neurons per core (half a core);
its first 31 channels as one process tile at 31 x 128 = 3,968 (97 %) and the last channel at 2,048.

What it does, exactly: population ``P`` (shape (C, H, W), channel-major flat order) with boundaries
``b_1 < ... < b_k`` becomes parts ``P.c{c0}_{c1}`` of channels [c0, c1) (their flat neurons are the
contiguous range [c0 H W, c1 H W)); bias / initial v arrays are sliced with them.  Every incoming conv group
(groups 1) is cut by output channels (weights[c0:c1]: each neuron keeps its own weights, exact for any
weight_exp); every outgoing conv group (groups 1) is cut by input channels into one group per part, all into
the same destination, whose input is the sum of the parts' (exact: allowed only where ``weight_exp`` is 0, so
no floor is taken per part); a depthwise group (groups = C_in = C_out, the max-pool OR) links two
populations that must be cut at the same boundaries and is cut part to part.  Nothing else changes: the same
synapse hops, so the same latency (the pass runs before delay balancing, which places resets and delays for
the new populations).  A population is only cut when every group in and out of it is one of these, it is no
output, input or attention operand, and its linked populations can be cut too.

``metadata["channel_splits"]``: {original population: [[part, c0, c1], ...]} (the fidelity report rejoins
the parts' spikes in channel order)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .fixed_point import lava_sign_mode
from .network import LoweredNetwork


def _depthwise(s, net) -> bool:
    w = np.shape(s.weights)
    return (s.kind == "conv" and int(s.groups) > 1 and int(s.groups) == w[0] and w[1] == 1
            and net.pop(s.src).shape[0] == net.pop(s.dst).shape[0] == w[0])


def _plain_conv(s) -> bool:
    return s.kind == "conv" and int(s.groups) == 1 and not s.src_view and s.delays is None


def _candidate(net: LoweredNetwork, name: str) -> bool:
    """``name`` may be cut on its own terms: a 3-d lif population fed by plain or depthwise convs only,
    read only by plain convs with weight_exp 0 or depthwise convs, no output / attention operand / bias input."""
    p = net.pop(name)
    if p.kind != "lif" or len(p.shape) != 3 or p.shape[0] < 2 or p.bias_input or name in net.outputs:
        return False
    if any(name in (a.q, a.k, a.v, a.dst) for a in net.attention):
        return False
    ins = [s for s in net.synapses if s.dst == name]
    outs = [s for s in net.synapses if s.src == name]
    if not ins or not outs:
        return False
    for s in ins:
        if not (_plain_conv(s) or _depthwise(s, net)):
            return False
    for s in outs:
        if _depthwise(s, net):
            continue
        if not _plain_conv(s) or int(s.weight_exp) != 0:
            return False
    return True


def split_groups(net: LoweredNetwork) -> list[list[str]]:
    """The populations that can be cut, in groups that must share their boundaries (linked by depthwise convs),
    in network order: e.g. [[proj1_lif, maxpool1.or], ...]."""
    names = [p.name for p in net.populations]
    link: dict = {n: {n} for n in names}
    for s in net.synapses:
        if _depthwise(s, net):
            merged = link[s.src] | link[s.dst]
            for n in merged:
                link[n] = merged
    out, seen = [], set()
    for n in names:
        if n in seen:
            continue
        g = [m for m in names if m in link[n]]
        seen.update(g)
        if all(_candidate(net, m) for m in g):
            out.append(g)
    return out


def _slice_pop_array(v, shape, c0, c1):
    if np.ndim(v) == 0:
        return v
    return np.asarray(v).reshape(shape)[c0:c1].copy()


def split_channels(net: LoweredNetwork, channels=None) -> LoweredNetwork:
    """Cut populations by output channels (in place; see the module docstring).  ``channels``: {population:
    [boundaries]} or a callable ``net -> that dict`` (e.g. a chip's core model choosing where a cut saves
    cores); None or empty: nothing changes.  Every population of a linked group gets the same boundaries; a
    request for a population that cannot be cut is ignored (the caller picks from :func:`split_groups`)."""
    if callable(channels):
        channels = channels(net)
    if not channels:
        return net
    cuts: dict = {}
    for g in split_groups(net):
        b = next((channels[m] for m in g if channels.get(m)), None)
        if not b:
            continue
        C = net.pop(g[0]).shape[0]
        b = sorted({int(x) for x in b if 0 < int(x) < C})
        if b:
            for m in g:
                cuts[m] = [0] + b + [C]
    if not cuts:
        return net
    parts: dict = {}
    new_pops = []
    for p in net.populations:
        if p.name not in cuts:
            new_pops.append(p)
            continue
        e = cuts[p.name]
        parts[p.name] = []
        for c0, c1 in zip(e[:-1], e[1:]):
            q = replace(p, name=f"{p.name}.c{c0}_{c1}", shape=(c1 - c0,) + tuple(p.shape[1:]),
                        bias_mant=_slice_pop_array(p.bias_mant, p.shape, c0, c1),
                        v_init=_slice_pop_array(p.v_init, p.shape, c0, c1))
            new_pops.append(q)
            parts[p.name].append([q.name, c0, c1])
    new_syns = []
    for s in net.synapses:
        src_parts = parts.get(s.src)
        dst_parts = parts.get(s.dst)
        if src_parts is None and dst_parts is None:
            new_syns.append(s)
            continue
        w = np.asarray(s.weights)
        mode = lava_sign_mode(w, s.sign_mode)    # the mode Lava gives the whole group, kept by every part
        if _depthwise(s, net):
            for (sn, c0, c1), (dn, d0, d1) in zip(src_parts, dst_parts):
                assert (c0, c1) == (d0, d1)
                new_syns.append(replace(s, name=f"{s.name}.c{c0}_{c1}", src=sn, dst=dn, weights=w[c0:c1].copy(),
                                        groups=c1 - c0, sign_mode=mode))
            continue
        srcs = src_parts or [[s.src, 0, w.shape[1]]]
        dsts = dst_parts or [[s.dst, 0, w.shape[0]]]
        for sn, c0, c1 in srcs:
            for dn, d0, d1 in dsts:
                tag = "".join(f".{'i' if k == 'src' else 'o'}{a}_{b}" for k, parts_, a, b in
                              (("src", src_parts, c0, c1), ("dst", dst_parts, d0, d1)) if parts_)
                new_syns.append(replace(s, name=s.name + tag, src=sn, dst=dn, weights=w[d0:d1, c0:c1].copy(),
                                        sign_mode=mode))
    net.populations = new_pops
    net.synapses = new_syns
    for cache in ("_pops", "_incoming"):
        net.__dict__.pop(cache, None)
    net.metadata["channel_splits"] = dict(net.metadata.get("channel_splits", {}) or {}, **parts)
    return net
