"""Where a channel cut saves cores (for the lowering's ``split_channels`` pass, :mod:`neurodeploy.lower.channels`):
each population group that can be cut is tiled by the profile's core model (:mod:`.tiling`) whole and cut after
C - r channels (r = 1, 2, 3, 4, 8), and the cut with the fewest cores is kept where it has fewer than the whole.
The chip fit of the network that is built decides the reported count; this only chooses the cut."""
from __future__ import annotations

import math

import numpy as np

from ..lower.channels import split_groups
from .costs import TILED_MODELS
from .network import MapNetwork, MapPopulation, MapSynapses, cxhw
from .tiling import tile_population

#: channels cut off the end of a population (the rest keeps the tiling of a non-power-of-two channel count)
CUT_SIZES = (1, 2, 3, 4, 8)


def _part_cores(cost, lowered, name: str, c: int) -> int | None:
    """Cores the core model gives ``c`` channels of population ``name`` with its incoming conv groups."""
    p = lowered.pop(name)
    shape = (c,) + tuple(int(x) for x in p.shape[1:])
    net = MapNetwork(name="probe")
    dst = net.add_pop(MapPopulation("dst", cxhw(shape), name))
    for i, s in enumerate(x for x in lowered.synapses if x.dst == name):
        src = lowered.pop(s.src)
        kshape = np.shape(s.weights)
        groups = int(s.groups)
        sshape = tuple(int(x) for x in src.shape)
        if groups > 1:                              # depthwise: the source part has the same channels
            sshape, groups = (c,) + sshape[1:], c
        net.add_pop(MapPopulation(f"src{i}", cxhw(sshape), s.src))
        net.add_syn(MapSynapses(f"s{i}", f"src{i}", "dst", "conv", kernel=tuple(kshape[2:4]), stride=tuple(s.stride),
                                padding=tuple(s.padding), groups=groups))
    tiles, bad = tile_population(cost, net, dst)
    if tiles is None:
        return None
    C, H, W = dst.shape
    tc, th, tw = tiles
    return math.ceil(C / tc) * math.ceil(H / th) * math.ceil(W / tw)


def choose_channel_splits(profile):
    """A chooser for ``lower_graph(channel_splits=...)``: ``net -> {population: [boundary]}`` on ``profile``'s
    core model (None where the profile has no tiled core model)."""
    cm = getattr(profile, "cost_model", None)
    if cm not in TILED_MODELS:
        return None
    cost = TILED_MODELS[cm](profile)

    def choose(lowered) -> dict:
        out = {}
        for group in split_groups(lowered):
            C = int(lowered.pop(group[0]).shape[0])
            H, W = (int(x) for x in lowered.pop(group[0]).shape[1:])
            lim = cost.limits.get("neurons") or 0
            if C * H * W <= lim:
                continue                            # one core already: nothing to save
            whole = [_part_cores(cost, lowered, n, C) for n in group]
            if any(x is None for x in whole):
                continue
            best, best_cores = None, sum(whole)
            for r in CUT_SIZES:
                if r >= C:
                    break
                cores = 0
                for n in group:
                    a, b = _part_cores(cost, lowered, n, C - r), _part_cores(cost, lowered, n, r)
                    if a is None or b is None:
                        cores = None
                        break
                    cores += a + b
                if cores is not None and cores < best_cores:
                    best, best_cores = [C - r], cores
            if best:
                out[group[0]] = best
        return out

    return choose
