"""``LIFResetInit``: Lava's ``LIFReset`` whose periodic reset sets v to its initial value instead of 0.

Why: a NIR neuron with ``v_reset != 0`` is lowered with its membrane shifted, ``v' = v - v_reset``, so that
Lava's spike reset (v := 0) is NIR's (v := v_reset); NIR's initial v = 0 is then v' = -v_reset.  Lava's
``LIF(v=...)`` takes that initial value, but ``LIFReset`` (used to start every sample window: the lowering's
bias reset and chained mode) zeroes u and v, which would start the next sample from NIR's v = v_reset.
This model is Lava's own fixed_pt ``PyLifResetModelBitAcc`` with one addition: on a reset step, after Lava
zeroed u and v, v is set to ``v_init`` (before the step's dynamics, where Lava's reset acts).  With
``v_init`` = 0 it is ``LIFReset``.  Our engine does the same (``neurodeploy.sim.engine``).  Not a Lava
standard-library process: it has no chip implementation in lava-nc 0.10.0.
"""
from __future__ import annotations

from neurodeploy.lava_compat import ensure_lava

ensure_lava()

import numpy as np  # noqa: E402
from lava.magma.core.decorator import implements  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402
from lava.proc.lif.models import PyLifResetModelBitAcc  # noqa: E402
from lava.proc.lif.process import LIFReset  # noqa: E402


class LIFResetInit(LIFReset):
    """``LIFReset`` (same arguments) whose reset sets v to the initial ``v`` (a Var ``v_init``)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        v = kwargs.get("v", 0)
        self.v_init = Var(shape=self.v.shape, init=np.broadcast_to(np.asarray(v), self.v.shape).copy())


@implements(proc=LIFResetInit, protocol=LoihiProtocol)
class PyLifResetInitModelBitAcc(PyLifResetModelBitAcc):
    """Lava's bit-accurate LIFReset model (tags fixed_pt, bit_accurate_loihi and CPU inherited); only the
    value v takes at a reset differs."""
    implements_process = None       # let @implements bind this subclass to LIFResetInit (Lava's guard)
    v_init: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def subthr_dynamics(self, activation_in: np.ndarray):
        # Lava's run_spk zeroed u and v on a reset step just before calling this
        if (self.time_step % self.reset_interval) == self.reset_offset:
            self.v[:] = self.v_init
        super().subthr_dynamics(activation_in)
