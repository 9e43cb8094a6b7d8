"""Which Lava process classes a deployed (lowered) network is built from: what a user needs to know before
asking for time on Loihi 2 hardware (only Lava's standard library has chip implementations).

:func:`lava_process_classes` follows the same rules as :class:`neurodeploy.lava.run.LavaNetwork` (one class
per population and synapse group; tests check it against a built process graph), without importing Lava.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..lower.network import LoweredNetwork

STANDARD = "Lava standard library"
CUSTOM = "neurodeploy custom"

#: class -> (module, origin)
MODULES = {
    "RingBuffer": ("lava.proc.io.source", STANDARD),
    "LIF": ("lava.proc.lif.process", STANDARD),
    "LIFReset": ("lava.proc.lif.process", STANDARD),
    "ProdNeuron": ("lava.proc.prodneuron.process", STANDARD),
    "GradedVec": ("lava.proc.graded.process", STANDARD),
    "GradedReluVec": ("lava.proc.graded.process", STANDARD),
    "Dense": ("lava.proc.dense.process", STANDARD),
    "DelayDense": ("lava.proc.dense.process", STANDARD),
    "Sparse": ("lava.proc.sparse.process", STANDARD),
    "DelaySparse": ("lava.proc.sparse.process", STANDARD),
    "Conv": ("lava.proc.conv.process", STANDARD),
    "SpikingAttention": ("neurodeploy.lava.processes.attention", CUSTOM),
    "LIFResetInit": ("neurodeploy.lava.processes.lif_reset", CUSTOM),
    "SpikeRecorder": ("neurodeploy.lava.processes.record", CUSTOM),
    "StateRecorder": ("neurodeploy.lava.processes.record", CUSTOM),
}
RECORDERS = ("SpikeRecorder", "StateRecorder")


def _classes(net: LoweredNetwork):
    for p in net.populations:
        if p.kind == "input":
            if p.input_kind != "bias":
                yield "RingBuffer"
        elif p.kind == "prod":
            yield "ProdNeuron"
        elif p.kind in ("graded_vec", "relay"):      # relay: a graded relay (GradedVec, vth 0)
            yield "GradedVec"
        elif p.kind == "graded_relu":
            yield "GradedReluVec"
        else:
            if p.reset_interval and np.any(np.asarray(p.v_init) != 0):
                yield "LIFResetInit"            # reset to v_init (v_reset != 0): neurodeploy's subclass
            else:
                yield "LIFReset" if p.reset_interval else "LIF"
    for s in net.synapses:
        if s.kind == "identity":
            continue
        delayed = s.delays is not None or s.balance_delay > 0
        if s.kind == "conv":                    # a Conv, behind an identity delay line when delayed
            yield "Conv"
            if s.balance_delay == 1:
                yield "Sparse"
            elif s.balance_delay > 1:
                yield "DelaySparse"
        elif s.kind == "dense":
            yield "DelayDense" if delayed else "Dense"
        else:                                   # sparse, einsum
            yield "DelaySparse" if delayed else "Sparse"
    for _ in net.attention:
        yield "SpikingAttention"


def lava_process_classes(net: LoweredNetwork) -> list:
    """``[{"class", "module", "origin", "count"}]`` for every Lava process class ``net`` is built from
    (``origin``: "Lava standard library" or "neurodeploy custom"), sorted by origin then class.  The
    recorders a simulation adds (:mod:`neurodeploy.lava.processes.record`, neurodeploy custom, host side)
    are no part of the deployed network and are not listed."""
    counts = Counter(_classes(net))
    out = [{"class": c, "module": MODULES[c][0], "origin": MODULES[c][1], "count": int(n)}
           for c, n in counts.items()]
    return sorted(out, key=lambda d: (d["origin"] != STANDARD, d["class"]))


def standard_library_only(net: LoweredNetwork) -> bool:
    """True when every process of the deployed network (recorders aside) is from Lava's standard library."""
    return all(d["origin"] == STANDARD for d in lava_process_classes(net))
