"""Cut a lowered network into slices that can be checked one at a time (issue 11: Lava == our engine at full
depth without one giant Lava run).

A lowered network is deterministic and its populations talk only through the messages they send (0/1
spikes, or integer graded payloads from relays / ``prod`` / ``graded_vec`` populations / graded inputs).
:func:`cut_network` keeps a set of populations with all their parameters (bias, bias input, reset schedule,
neuron model), every synapse group and attention op INTO them exactly as it is (weights, delays, balance
delays, views, ports, graded flag), and turns every source population outside the set into an ``input``
population of the same name and shape (``input_kind`` ``spikes`` for a spiking source, ``graded`` for a
graded one).  Fed with the messages those sources sent in a run of the whole network
(:func:`replay_inputs`), the slice computes exactly what its populations computed in that run.  So if
every slice, in topological order, gives the same spikes / u / v in Lava as in our engine's run of the
whole network, the whole network in Lava equals our engine (induction over the slices: each slice's
inputs are the outputs of earlier slices, already shown equal).

Timing: an input population's message of step t enters its synapse groups exactly like a neuron's spike
of step t (our engine: both are written to the destination's ring at ``t + 1 + delay``; Lava: a
``RingBuffer`` and a ``LIF`` both send on ``s_out`` in the spiking phase of step t, and the synapse
process delivers it one step later), so the recorded messages are replayed unshifted: step t of the
recording is step t of the input.

The slice is not delay-balanced on its own (its inputs all sit at depth 0): ``latency()`` of a slice is
meaningless and the pipelined runs (our engine's default, Lava) do not use it.  Reset schedules count
time from step 1 of the run, as in the whole network, so every slice runs all the steps from step 1.

Our engine bounds graded payloads from the network (``neurodeploy.sim.graded.value_bounds``) and cannot
bound a graded input, so a ``prod`` / ``graded_vec`` population must stay in the slice of its graded
sources: :func:`partition` keeps them together and :func:`cut_network` refuses otherwise.
"""
from __future__ import annotations

import copy

import numpy as np

from ..errors import BadInputError, UnsupportedError
from .network import GRADED_KINDS, Attention, LoweredNetwork, Population

#: population kinds whose output messages are graded payloads (integers), not 0/1 spikes
_GRADED_OUT = GRADED_KINDS + ("relay",)


def sends_graded(p: Population) -> bool:
    """Whether population ``p`` sends integer payloads (relay, prod, graded_vec, graded input)."""
    return p.kind in _GRADED_OUT or (p.kind == "input" and p.input_kind == "graded")


def _sources(net: LoweredNetwork, name: str) -> list:
    """The populations that send into ``name`` (synapse groups and attention ops: ``net.incoming``)."""
    return [src for g in net.incoming(name) for src in ((g.q, g.k, g.v) if isinstance(g, Attention) else (g.src,))]


def cut_network(net: LoweredNetwork, members) -> LoweredNetwork:
    """The slice of ``net`` holding the populations ``members`` (see the module doc).

    Kept: the members (copies, all fields), the ``bias`` input populations and encoders they read, every
    synapse group and attention op whose destination is a member.  Every other source of those groups
    becomes an input population of its own name and shape (``spikes`` or ``graded``).  ``metadata`` is
    copied with ``slice`` = the member names (in the network's order) and ``slice_inputs`` = the replaced
    sources."""
    byname = {p.name: p for p in net.populations}
    members = list(dict.fromkeys(members))
    unknown = [m for m in members if m not in byname]
    if unknown:
        raise BadInputError(f"slice: no population named '{unknown[0]}'")
    keep = set(members)
    for m in members:
        if byname[m].bias_input:
            keep.add(byname[m].bias_input)
    syns = [copy.deepcopy(s) for s in net.synapses if s.dst in keep]
    atts = [copy.deepcopy(a) for a in net.attention if a.dst in keep]
    outside = []
    for s in syns:
        if s.src not in keep and s.src not in outside:
            outside.append(s.src)
    for a in atts:
        for src in (a.q, a.k, a.v):
            if src not in keep and src not in outside:
                outside.append(src)
    for m in members:
        if byname[m].kind in GRADED_KINDS:
            proved = net.metadata.get("graded_bounds") or {}     # a proved bound goes with the replayed input
            cut = [s for s in _sources(net, m) if s not in keep and sends_graded(byname[s]) and s not in proved]
            if cut:
                raise UnsupportedError(f"slice: {byname[m].kind} population '{m}' needs its graded source "
                                       f"'{cut[0]}' in the same slice (our engine bounds graded payloads "
                                       "from the network)")
    pops = []
    for p in net.populations:           # the network's order (a topological order stays one)
        if p.name in keep:
            pops.append(copy.deepcopy(p))
        elif p.name in outside:
            kind = "graded" if sends_graded(p) else "spikes"
            if p.kind == "input" and p.input_kind == "bias":
                raise BadInputError(f"slice: bias input '{p.name}' feeds no synapse group")
            pops.append(Population(name=p.name, shape=tuple(p.shape), kind="input", input_kind=kind,
                                   source=p.source, scale=p.scale))
    encs = [copy.deepcopy(e) for e in net.encoders if e.name in keep]
    meta = copy.deepcopy(net.metadata)
    meta["slice"] = [p.name for p in net.populations if p.name in set(members)]
    meta["slice_inputs"] = list(outside)
    out = LoweredNetwork(populations=pops, synapses=syns, attention=atts, encoders=encs,
                         outputs=[n for n in net.outputs if n in keep], metadata=meta)
    out.validate()
    return out


def replay_inputs(piece: LoweredNetwork, recorded: dict, inputs: dict) -> dict:
    """Inputs of slice ``piece`` for the engine or Lava: every replaced source gets the messages it sent
    in the whole network's run (``recorded[name]["s"]``, ``[steps, B, n]``, step t -> step t: see the
    module doc); the network's own inputs (spike/graded sequences, bias values) are taken from
    ``inputs``."""
    out = {}
    replaced = set(piece.metadata.get("slice_inputs", ()))
    for p in piece.inputs:
        if p.name in replaced:
            if p.name not in recorded or "s" not in recorded[p.name]:
                raise BadInputError(f"slice input '{p.name}': its messages were not recorded")
            out[p.name] = np.asarray(recorded[p.name]["s"]).astype(np.int64)
        else:
            if p.name not in inputs:
                raise BadInputError(f"slice input '{p.name}': no data given")
            out[p.name] = inputs[p.name]
    return out


def lava_process_count(net: LoweredNetwork, members, record: bool = True) -> int:
    """Lava processes (= OS processes) of the slice of ``members``: one per population (inputs: a
    RingBuffer; bias inputs none), synapse group (a conv or sparse group whose only delay is a balance
    delay: two, its delay line and itself, as ``LavaNetwork(..., delay_lines=True)`` builds it), attention op,
    and one recorder per member when ``record``."""
    byname = {p.name: p for p in net.populations}
    keep = set(members)
    n = 0
    srcs = set()
    for m in keep:
        p = byname[m]
        n += 0 if (p.kind == "input" and p.input_kind == "bias") else 1 + int(record)
    for s in net.synapses:
        if s.dst in keep:
            line = s.kind in ("conv", "sparse") and s.delays is None and s.balance_delay > 0
            n += 0 if s.kind == "identity" else 1 + int(line)
            srcs.add(s.src)
    for a in net.attention:
        if a.dst in keep:
            n += 1
            srcs.update((a.q, a.k, a.v))
    return n + len(srcs - keep)


def partition(net: LoweredNetwork, max_processes: int = 40) -> list:
    """Consecutive populations of ``net``'s topological order, grouped into slices of at most
    ``max_processes`` Lava processes (:func:`lava_process_count`; a single population that needs more is
    a slice of its own).  A ``prod`` / ``graded_vec`` population always joins the slice of its graded
    sources, even past the budget.  Every population is in exactly one slice."""
    byname = {p.name: p for p in net.populations}
    slices, cur = [], []
    for name in net.topological_order():
        p = byname[name]
        bound = p.kind in GRADED_KINDS and any(sends_graded(byname[s]) and s in cur for s in _sources(net, name))
        if cur and not bound and lava_process_count(net, cur + [name]) > max_processes:
            slices.append(cur)
            cur = []
        cur.append(name)
    if cur:
        slices.append(cur)
    return slices
