"""Delay balancing of a lowered network: the ``balance_delays`` pass, run once, last, in the Loihi 2 pass flow
(:mod:`neurodeploy.lower.passes`), and by the test models; its own module so that no pass imports another."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from .fixed_point import EXCITATORY
from .network import GRADED_KINDS, MAX_DELAY, LoweredNetwork, Population, Synapse, identity_csr

#: synapse kinds whose source can be moved to a delay relay unchanged (weights, geometry and delays kept)
_RELAYABLE = ("dense", "sparse", "conv", "einsum")


def balance_network(net: LoweredNetwork, T=None) -> None:
    """Delay balancing (in place): each population's latency is its longest incoming path (one step per
    synapse group or attention op), every group into it gets ``balance_delay`` (attention ops
    ``balance_delays``) so that all its inputs arrive together; more than 62 -> error naming the node.
    Every stateful population (``lif``, ``readout``) is reset (LIFReset, period ``T + latency``) at the step its
    first input arrives: a bias or an initial v must not act while the pipeline fills, and a population that has
    neither must not keep what an upstream population sent during the fill (a biased LIF can spike before its
    own first input; its successor would integrate that).  Sets ``metadata["latency"]`` and ``metadata["population_latency"]``."""
    _remove_delay_relays(net)       # a re-balance (after a pass that adds latency) places them anew
    lat, incoming = _longest_paths(net)
    for name in lat:
        for c in incoming[name]:
            if isinstance(c, Synapse):
                # a population feeding itself: a loop of max(1, skew) steps (skew > 1: the token tiles'
                # moving count, lower/attention_graded.py), delivering its own output of that many steps before
                c.balance_delay = max(0, int(c.skew) - 1) if c.src == name else lat[name] - lat[c.src] - 1 + int(c.skew)
                if c.balance_delay > MAX_DELAY and c.kind not in _RELAYABLE:
                    raise UnsupportedError(
                        f"node '{net.pop(name).source}': path from '{c.src}' needs a delay of {c.balance_delay} "
                        f"steps, more than the Loihi 2 maximum {MAX_DELAY}")
            else:
                c.balance_delays = tuple(lat[name] - lat[s] - 1 for s in (c.q, c.k, c.v))
    _insert_delay_relays(net, lat)
    Lmax = max(lat.values()) if lat else 0
    period = (int(T) + Lmax) if T else 0
    for p in net.populations:
        if p.kind == "input" or lat[p.name] == 0:
            continue
        if p.kind in ("lif", "readout"):
            # zero u and set v to v_init when the first input arrives (the fill leaves nothing behind)
            p.reset_interval = period if period else 1 << 20
            p.reset_offset = (lat[p.name] + 1) % p.reset_interval
    clock = net.metadata.get("sample_clock")
    if clock:
        if not period:
            raise UnsupportedError("a network with a sample clock (tiled attention) needs its time steps")
        # the pulse spikes at the first step of every period: v starts one step short of the threshold
        pulse = net.pop(clock["pulse"])
        pulse.vth = period - 1
        pulse.v_init = int(clock["bias"]) * (period - 1)
        net.metadata["sample_clock"] = dict(clock, period=int(period))
    net.metadata["latency"] = int(Lmax)
    net.metadata["population_latency"] = {k: int(v) for k, v in lat.items()}


def _longest_paths(net: LoweredNetwork) -> tuple[dict, dict]:
    """Each population's latency as its longest incoming path (one step per synapse group or attention op; a
    population feeding itself adds none), in topological order, and its incoming groups and ops."""
    lat = {}
    incoming = {p.name: [] for p in net.populations}
    for s in net.synapses:
        incoming[s.dst].append(s)
    for a in net.attention:
        incoming[a.dst].append(a)
    for name in net.topological_order():
        arr = []
        for c in incoming[name]:
            if isinstance(c, Synapse):
                if c.src != name:           # a population feeding itself: one step, no balance delay
                    # a skewed group (token tiles) delivers its data ``skew`` steps after the aligned arrival
                    arr.append(lat[c.src] + 1 - int(c.skew))
            else:
                arr += [lat[c.q] + 1, lat[c.k] + 1, lat[c.v] + 1]
        lat[name] = max(arr) if arr else 0
    # populations placed as late as their readers allow (one step before the earliest; an operand gate's off
    # neuron, lower/operand_gate.py): their groups out have no delay, so nothing they send waits in a delay
    # line that starts empty; their own inputs take the delay instead
    late = set(net.metadata.get("late_populations", ()) or ())
    if late:
        for name in reversed(net.topological_order()):
            if name in late:
                outs = [lat[s.dst] - 1 + int(s.skew) for s in net.synapses if s.src == name and s.dst != name]
                if outs:
                    lat[name] = max(lat[name], min(outs))
    # populations moved later only as far as keeps their groups out within one synapse delay, when their
    # groups in stay within one too (the token tiles' query serializer, which waits (M - 1) T for the counts:
    # a delay relay of it saved)
    for name in net.metadata.get("relay_free_populations", ()) or ():
        # the latest latency each group out allows (no delay below 0) and each group in (no delay above 62)
        outs = [lat[s.dst] - 1 + int(s.skew) for s in net.synapses if s.src == name and s.dst != name]
        ins = [lat[c.src] + 1 - int(c.skew) + MAX_DELAY for c in incoming[name]
               if isinstance(c, Synapse) and c.src != name]
        want = max(outs, default=lat[name]) - MAX_DELAY
        if lat[name] < want <= min(ins + outs, default=want):
            lat[name] = want
    return lat, incoming


def path_latency_of(net: LoweredNetwork) -> dict:
    """Each population's latency as the balancing pass would give it now (``net`` balanced or not)."""
    return _longest_paths(net)[0]


def path_latency(net: LoweredNetwork) -> int:
    """The pipeline depth the balancing pass will give ``net`` (balanced or not): its longest path."""
    return int(max(_longest_paths(net)[0].values(), default=0))


def _insert_delay_relays(net: LoweredNetwork, lat: dict) -> None:
    """Paths longer than one Loihi 2 synapse delay (``MAX_DELAY``): a source whose group needs a delay
    d > 62 gets a chain of delay relays, graded copies of it (Lava GradedVec with vth 0: s = a_in, no
    state).  Relay k sits 63*k steps after the source (identity weights 1, delay 62 from the previous
    one), and the group reads the deepest relay that is not too late, with the remaining delay (0..62).
    Weights times the relayed payload (the source's own 0/1 spike or graded value) are unchanged, so the
    result is exact; no population's latency changes.  Costs one neuron per source neuron per relay (a
    relay chain is built once per source and shared by all its long groups)."""
    chains: dict = {}
    moved: dict = {}                # group name -> its own graded flag (restored by _remove_delay_relays)
    for s in list(net.synapses):
        if s.balance_delay <= MAX_DELAY:
            continue
        src = net.pop(s.src)
        k = -(-(s.balance_delay - MAX_DELAY) // (MAX_DELAY + 1))      # relays needed: ceil((d - 62) / 63)
        chain = chains.setdefault(s.src, [])
        while len(chain) < k:
            prev = net.pop(chain[-1]) if chain else src
            graded = prev.kind in GRADED_KINDS + ("relay",) or (prev.kind == "input" and prev.input_kind == "graded")
            rname = f"{s.src}.delay{len(chain) + 1}"
            net.populations.append(Population(rname, tuple(src.shape), kind="relay", source=src.source or s.src))
            net.synapses.append(Synapse(f"{rname}.syn", prev.name, rname, "sparse", identity_csr(src.size), sign_mode=EXCITATORY,
                                        balance_delay=MAX_DELAY, graded=graded,
                                        source=f"delay relay of {s.src} ({MAX_DELAY} + 1 steps)"))
            lat[rname] = lat[prev.name] + MAX_DELAY + 1
            chain.append(rname)
        moved[s.name] = bool(s.graded)
        s.src = chain[k - 1]
        s.graded = True
        s.balance_delay = lat[s.dst] - lat[s.src] - 1 + int(s.skew)
        assert 0 <= s.balance_delay <= MAX_DELAY, (s.name, s.balance_delay)
    if chains:
        net.metadata["delay_relays"] = {src: list(c) for src, c in chains.items()}
        net.metadata["delay_relay_groups"] = moved
        # a relay sends what its source sends: the source's proved bound (1 for spikes) goes with it
        proved = dict(net.metadata.get("graded_bounds", {}) or {})
        for src, c in chains.items():
            p = net.pop(src)
            b = proved.get(src, 1 if p.kind in ("lif", "readout") or (p.kind == "input" and p.input_kind == "spikes")
                           else None)
            if b is not None:
                proved.update({r: b for r in c})
        if proved:
            net.metadata["graded_bounds"] = proved


def _remove_delay_relays(net: LoweredNetwork) -> None:
    """Undo :func:`_insert_delay_relays`: groups read their original source again."""
    chains = net.metadata.pop("delay_relays", None)
    moved = net.metadata.pop("delay_relay_groups", {})
    if not chains:
        return
    root = {r: src for src, c in chains.items() for r in c}
    if net.metadata.get("graded_bounds"):
        net.metadata["graded_bounds"] = {k: v for k, v in net.metadata["graded_bounds"].items() if k not in root}
    net.synapses = [s for s in net.synapses if s.dst not in root]
    for s in net.synapses:
        if s.src in root:
            s.src = root[s.src]
            s.graded = bool(moved.get(s.name, s.graded))
    net.populations = [p for p in net.populations if p.name not in root]


def check_loops(net: LoweredNetwork) -> None:
    """Recurrence: a population feeding itself (directly or through linear nodes) gets a synapse group with no
    balance delay, which delivers the spikes of step t at step t + 1 exactly as NIR's back edge.  A loop through
    two or more populations cannot: every synapse group adds one step on Loihi 2, so the loop would take k steps
    where NIR's takes one; it is refused naming the node."""
    deps = {p.name: set() for p in net.populations}
    for s_ in net.synapses:
        if s_.src != s_.dst:
            deps[s_.dst].add(s_.src)
    done, left = set(), dict(deps)
    while True:
        ready = [n for n, d in left.items() if d <= done]
        if not ready:
            break
        for n in ready:
            done.add(n)
            del left[n]
    if left:
        loop = sorted(left)
        raise UnsupportedError(
            f"node '{net.pop(loop[0]).source or loop[0]}': recurrent loop through populations {loop} cannot be "
            f"lowered to Loihi 2 (each synapse group adds one step there, so the loop takes {len(loop)} steps "
            "where NIR's back edge takes one; only a population feeding itself, directly or through linear "
            "nodes, is lowered)")
