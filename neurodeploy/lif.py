"""One LIF parameter record and its two reference step functions (float and Loihi 2 fixed point).

Four implementations run LIF neurons: the training neuron (:mod:`neurodeploy.models.neuron`), the NIR reference
simulator (:mod:`neurodeploy.graph.simulate`), the Loihi 2 lowering (:mod:`neurodeploy.lower.neurons` builds
its neuron maps on :class:`LIFParams` and :func:`decay_register`) and our fixed-point engine
(:mod:`neurodeploy.sim.engine`).  Each is tested against the functions here (``tests/test_lif_record.py``), so
the semantics are written down once:

* :class:`LIFParams` - float form, per time step (forward Euler, NIR's convention, docs/nir.md):
  ``v = v + ((v_leak - v) + r x) / k`` with ``k = tau / dt`` (``k = inf``: IF, ``v = v + r x``), spike iff
  ``v > v_threshold`` (``v >= v_threshold`` when ``inclusive``: Spikingformer / SpikingJelly), then
  ``v = v_reset``.  :meth:`LIFParams.step` is the float reference step.
* :class:`LIFFixed` - the Loihi 2 CUBA LIF registers the lowering derives from it for an integer scale S
  (units of a_in per unit of threshold): ``du = 4095`` (the current holds one step's input), ``dv =
  round(4096 / k)``, the input gain ``r / k`` folded into the weights, ``vth = S - 1`` for ``>=`` (on the
  2**6 grid ``v > 64 (S - 1)`` is ``v >= 64 S`` for integer inputs) else ``S``.  :func:`fixed_step` is Lava's
  ``PyLifModelBitAcc`` step on int64 arrays (lava-nc 0.10.0), written independently of the engine.  The
  engine's LIF step models (:mod:`neurodeploy.sim.models`) hold a population's registers as a ``LIFFixed``
  and take the decay factors and the threshold from it (``u_keep``, ``v_keep``, ``threshold``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import UnsupportedError

DECAY_ONE = 4096


def _leakless(tau_steps) -> bool:
    """k = inf (IF, I): no leak.  A per-neuron k (an array or tensor) always leaks."""
    return isinstance(tau_steps, (int, float)) and math.isinf(tau_steps)


@dataclass(frozen=True)
class LIFParams:
    tau_steps: float                # k = tau / dt; math.inf for IF (no leak)
    r: float = 1.0
    v_threshold: float = 1.0
    v_leak: float = 0.0
    v_reset: float = 0.0
    inclusive: bool = False         # spike on v >= threshold (Spikingformer) rather than NIR's v > threshold

    def step(self, v: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One float step: returns (v after reset, spikes)."""
        h = self.integrate(np.asarray(v, dtype=np.float64), np.asarray(x, dtype=np.float64))
        s = self.fires(h)
        return np.where(s, self.v_reset, h), s

    def integrate(self, v, x):
        """v after one step's input x, before the threshold: ``v + ((v_leak - v) + r x) / k`` (IF: ``v + r x``).
        The fields and arguments may be numpy arrays or torch tensors alike (the float simulator,
        :mod:`neurodeploy.graph.simulate`, holds tensors of its dtype)."""
        if _leakless(self.tau_steps):
            return v + self.r * x
        return v + ((self.v_leak - v) + self.r * x) / self.tau_steps

    def fires(self, h):
        """The spikes of membrane ``h``: ``h >= v_threshold`` when ``inclusive``, else NIR's ``h > v_threshold``."""
        return h >= self.v_threshold if self.inclusive else h > self.v_threshold

    @property
    def input_gain(self) -> float:
        """The factor on x per step (folded into the incoming weights by the lowering)."""
        return self.r if _leakless(self.tau_steps) else self.r / self.tau_steps

    @property
    def leak_input(self):
        """The constant input to v per step when v is held shifted by ``v_reset`` (``v' = v - v_reset``, so that
        a reset is to 0 as on Loihi 2): ``(v_leak - v_reset) / k``; None for IF (no leak)."""
        return None if _leakless(self.tau_steps) else (self.v_leak - self.v_reset) / self.tau_steps

    def fixed_point(self, scale: int, rounding: str = "nearest") -> "LIFFixed":
        """The Loihi 2 registers for integer scale ``scale`` (see the module docstring)."""
        if self.v_leak != 0 or self.v_reset != 0:
            raise UnsupportedError("LIF with v_leak or v_reset != 0 has no bias-free Loihi 2 form")
        if not _leakless(self.tau_steps) and self.tau_steps < 1:
            raise UnsupportedError(f"tau shorter than one step (tau/dt = {self.tau_steps:g})")
        s = int(scale)
        dv = decay_register(self.tau_steps, rounding)
        return LIFFixed(du=DECAY_ONE - 1, dv=dv, vth=s - 1 if self.inclusive else s, scale=s,
                        weight_gain=self.input_gain / self.v_threshold)


def decay_register(tau_steps: float, rounding: str = "nearest") -> int:
    """The 12-bit decay register of a leak with ``k = tau_steps``: ``4096 / k`` rounded to nearest (half to even)
    or truncated (``floor``, as the NIR paper's Lava conversion); 0 for k = inf (no leak)."""
    if math.isinf(tau_steps):
        return 0
    q = DECAY_ONE / tau_steps
    return int(np.trunc(q) if rounding == "floor" else np.round(q))


@dataclass(frozen=True)
class LIFFixed:
    du: int                         # current decay register (4095: no current memory)
    dv: int                         # voltage decay register (4096 / k)
    vth: int                        # threshold mantissa (compared as v > vth << 6)
    scale: int = 0                  # integer units of a_in per unit of threshold (0: registers read back)
    weight_gain: float = 1.0        # float factor folded into incoming weights (before x scale)

    # the factors of fixed_step, named once (our engine's step models read them from here)
    @property
    def u_keep(self) -> int:
        """u is multiplied by u_keep / 4096 (rounded toward zero) each step; 0: no current memory."""
        return DECAY_ONE - (self.du + 1)

    @property
    def v_keep(self) -> int:
        """v is multiplied by v_keep / 4096 (rounded toward zero) each step; 4096: no leak."""
        return DECAY_ONE - self.dv

    @property
    def threshold(self) -> int:
        """A neuron spikes iff v > threshold (vth on the 2**6 grid of a_in << 6)."""
        return self.vth << 6


def _trunc_div4096(p: np.ndarray) -> np.ndarray:
    """p / 4096 rounded toward zero."""
    return np.sign(p) * (np.abs(p) >> 12)


def fixed_step(u: np.ndarray, v: np.ndarray, a_in: np.ndarray, p: LIFFixed, bias: int = 0):
    """Lava ``PyLifModelBitAcc`` (fixed_pt) for one step on int64 arrays: returns (u, v, spikes).

    ``u = trunc(u (4096 - (du + 1)) / 4096) + (a_in << 6)`` wrapped into 24 bits; ``v = trunc(v (4096 - dv)
    / 4096) + u + bias`` saturated to +-(2**23 - 1); spike iff ``v > vth << 6``; then v = 0."""
    u = np.asarray(u, dtype=np.int64)
    v = np.asarray(v, dtype=np.int64)
    a = np.asarray(a_in, dtype=np.int64)
    u = _trunc_div4096(u * p.u_keep) + (a << 6)
    u = np.where(u > (1 << 23), u - (1 << 24), np.where(u <= -(1 << 23), u + (1 << 24), u))
    v = _trunc_div4096(v * p.v_keep) + u + int(bias)
    v = np.clip(v, -((1 << 23) - 1), (1 << 23) - 1)
    s = v > p.threshold
    return u, np.where(s, 0, v), s
