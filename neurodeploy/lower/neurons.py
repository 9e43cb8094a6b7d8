"""NIR neuron nodes as Loihi 2 CUBA LIF populations (the Loihi 2 lowering, :mod:`.loihi2`; docs/lowering.md,
"Neuron models").

Every neuron node (``LIF``, ``IF``, ``Threshold``, ``CubaLIF``; non-spiking ``LI``, ``I``, ``CubaLI`` as
readouts) becomes one CUBA LIF population.  LIF / IF / LI / I are read as :class:`neurodeploy.lif.LIFParams`
(the one LIF rule of the project): forward Euler ``v += ((v_leak - v) + r x) / k`` with k = tau/dt, so du =
4095 (u holds only this step's input), dv = :func:`~neurodeploy.lif.decay_register` (tau_steps 2 -> 2048
exactly), the gain ``r / k`` (:attr:`~neurodeploy.lif.LIFParams.input_gain`) folded into the weights; IF: dv = 0,
gain r; Threshold: dv = 4096 (no memory).  CubaLIF: du from tau_syn, ``w_in r / (k_syn k_mem)`` folded into the
weights, ``v_leak / k`` as the bias.  Per-neuron thresholds are folded into the weights (rows divided by theta),
so every population compares to 1; ``>=`` (Spikingformer, metadata ``neurodeploy.spike_rule``) is met with vth =
S - 1 by the caller.  ``v_reset != 0`` is held shifted, ``v' = v - v_reset`` (Lava resets to 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedError
from ..graph.core import meta
from ..graph.primitives import primitive_of
from ..graph.simulate import steps_per_tau
from ..lif import LIFParams, decay_register

#: Loihi 2's current decay that keeps no current from one step to the next
DU_NONE = 4095


@dataclass(eq=False)
class NeuronMap:
    """The Loihi 2 CUBA LIF registers of one NIR neuron node: ``gain`` (per neuron, folded into the incoming
    weights before the threshold), ``du``/``dv`` (12-bit decays), ``theta`` (per-neuron threshold, folded into
    the weights), ``leak`` (v_leak / k_mem: a constant per-step input to v, becomes the bias), ``kind`` (``lif``
    or a non-spiking ``readout``), ``memory`` (the steps over which an input is summed: bounds u and v) and
    ``v_reset`` (per neuron, or None)."""
    gain: np.ndarray
    du: int
    dv: int
    theta: np.ndarray
    leak: np.ndarray | None
    kind: str
    memory: float
    v_reset: np.ndarray | None = None


@dataclass(eq=False)
class NeuronPopulation:
    """What the lowering needs of one neuron node: its map, ``rowgain`` (gain / theta per neuron, folded into
    every incoming weight), ``leak`` in threshold units, ``inclusive`` (spike on ``>=``) and ``v0`` (the
    initial v' = -v_reset in threshold units, or None)."""
    map: NeuronMap
    rowgain: np.ndarray
    leak: np.ndarray | None
    inclusive: bool
    v0: np.ndarray | None


def one_tau(name, node, field, dt) -> float:
    """tau / dt of ``field`` (one value per population: Lava has one decay register per process)."""
    k = steps_per_tau(np.asarray(getattr(node, field), dtype=np.float64), dt).reshape(-1)
    if np.any(k != k[0]):
        raise UnsupportedError(f"node '{name}': per-neuron {field} (Lava has one decay per population)")
    k = float(k[0])
    if not k >= 1:
        raise UnsupportedError(f"node '{name}': {field} shorter than one step ({field}/dt = {k:g} with dt "
                               f"{dt:g} s); Loihi 2 decays need tau >= dt (the graph's step: --dt)")
    return k


def neuron_map(name, node, shape, dt, rounding="nearest") -> NeuronMap:
    """The Loihi 2 CUBA LIF registers of NIR neuron node ``name`` (see :class:`NeuronMap`)."""
    t = primitive_of(node, name)
    n = int(np.prod(shape))
    full = lambda a: np.broadcast_to(np.asarray(a, dtype=np.float64), shape).reshape(-1).astype(np.float64)  # noqa: E731
    # v_reset != 0: v is held shifted, v' = v - v_reset (Lava resets to 0): threshold v_th - v_reset,
    # leak towards v_leak - v_reset (the bias), initial v' = -v_reset (applied by neuron_population)
    vr = full(node.v_reset) if t in ("LIF", "IF", "CubaLIF") and getattr(node, "v_reset", None) is not None \
        else np.zeros(n)
    if t == "Threshold":
        return NeuronMap(gain=np.ones(n), du=DU_NONE, dv=4096, theta=full(node.threshold), leak=None, kind="lif",
                         memory=1.0)
    kind = "readout" if t in ("LI", "I", "CubaLI") else "lif"
    theta = full(node.v_threshold) if kind == "lif" else np.ones(n)
    if t in ("LIF", "LI", "IF", "I"):
        k = one_tau(name, node, "tau", dt) if t in ("LIF", "LI") else math.inf
        p = LIFParams(tau_steps=k, r=full(node.r), v_threshold=theta,
                      v_leak=full(node.v_leak) if t in ("LIF", "LI") else 0.0, v_reset=vr)
        return NeuronMap(gain=p.input_gain, du=DU_NONE, dv=decay_register(k, rounding), theta=theta,
                         leak=p.leak_input, kind=kind, memory=k, v_reset=vr)
    if t in ("CubaLIF", "CubaLI"):
        # the current-based neuron: LIFParams has no synaptic current, the decays follow the same register rule
        ks = one_tau(name, node, "tau_syn", dt)
        km = one_tau(name, node, "tau_mem", dt)
        du = decay_register(ks, rounding) - 1
        return NeuronMap(gain=full(node.w_in) * full(node.r) / (ks * km), du=max(du, 0),
                         dv=decay_register(km, rounding), theta=theta, leak=(full(node.v_leak) - vr) / km,
                         kind=kind, memory=ks * km, v_reset=vr)
    raise UnsupportedError(f"node '{name}': NIR type {t} cannot be lowered to Loihi 2")


def neuron_population(name, node, shape, dt, rounding="nearest") -> NeuronPopulation:
    """:func:`neuron_map` with the threshold folded: the Spikingformer ``>=`` threshold from the metadata, the
    shifted threshold ``v_th - v_reset`` (refused when not positive) and the initial v'."""
    nm = neuron_map(name, node, shape, dt, rounding)
    n = int(np.prod(shape))
    theta = nm.theta
    ge = meta(node, "neurodeploy.spike_rule") == ">="
    if ge and meta(node, "neurodeploy.v_threshold") is not None:
        theta = np.full(n, float(meta(node, "neurodeploy.v_threshold")))
    vr = nm.v_reset
    v0 = None
    if vr is not None and np.any(vr != 0):
        theta = theta - vr          # the shifted threshold v_th - v_reset (docs/lowering.md)
        if np.any(theta <= 0):
            raise UnsupportedError(f"node '{name}': {primitive_of(node, name)} field v_reset >= v_threshold cannot "
                                   "be lowered to Loihi 2 (v_threshold - v_reset must be positive)")
        v0 = -vr / theta            # initial v' = -v_reset, in threshold units
    if np.any(theta <= 0):
        raise UnsupportedError(f"node '{name}': non-positive threshold")
    rowgain = nm.gain / theta       # fold gain and per-neuron threshold into the weights
    return NeuronPopulation(nm, rowgain, None if nm.leak is None else nm.leak / theta, ge, v0)
