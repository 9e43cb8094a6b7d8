"""Delay balancing of a lowered network (a lowering pass shared by :mod:`neurodeploy.lower.from_nir`,
:mod:`neurodeploy.lower.attention_graded` and :mod:`neurodeploy.lower.testmodels`; its own module so
that none of them imports another in a circle)."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from .network import MAX_DELAY, LoweredNetwork, Synapse


def balance_network(net: LoweredNetwork, T=None) -> None:
    """Delay balancing (in place): each population's latency is its longest incoming path (one step per
    synapse group or attention op), every group into it gets ``balance_delay`` (attention ops
    ``balance_delays``) so that all its inputs arrive together; more than 62 -> error naming the node.
    Populations with a bias (and readouts) are reset (LIFReset, period ``T + latency``) at the step their
    first input arrives.  Sets ``metadata["latency"]`` and ``metadata["population_latency"]``."""
    lat = {}
    incoming = {p.name: [] for p in net.populations}
    for s in net.synapses:
        incoming[s.dst].append(s)
    for a in net.attention:
        incoming[a.dst].append(a)
    order = net.topological_order()
    for name in order:
        arr = []
        for c in incoming[name]:
            if isinstance(c, Synapse):
                if c.src != name:           # a population feeding itself: one step, no balance delay
                    arr.append(lat[c.src] + 1)
            else:
                arr += [lat[c.q] + 1, lat[c.k] + 1, lat[c.v] + 1]
        lat[name] = max(arr) if arr else 0
        for c in incoming[name]:
            if isinstance(c, Synapse):
                c.balance_delay = 0 if c.src == name else lat[name] - lat[c.src] - 1
                if c.balance_delay > MAX_DELAY:
                    raise UnsupportedError(
                        f"node '{net.pop(name).source}': path from '{c.src}' needs a delay of {c.balance_delay} "
                        f"steps, more than the Loihi 2 maximum {MAX_DELAY}")
            else:
                c.balance_delays = tuple(lat[name] - lat[s] - 1 for s in (c.q, c.k, c.v))
    Lmax = max(lat.values()) if lat else 0
    period = (int(T) + Lmax) if T else 0
    for p in net.populations:
        if p.kind == "input" or lat[p.name] == 0:
            continue
        if np.any(np.asarray(p.bias_mant) != 0) or p.kind == "readout":
            # zero u and v when the first input arrives (bias must not act while the pipeline fills)
            p.reset_interval = period if period else 1 << 20
            p.reset_offset = (lat[p.name] + 1) % p.reset_interval
    net.metadata["latency"] = int(Lmax)
    net.metadata["population_latency"] = {k: int(v) for k, v in lat.items()}
