"""A Lava process for Spikingformer's spiking self-attention, with a fixed_pt Python model.

``SpikingAttention`` takes the binary spike maps Q, K, V (each [D, N] flattened in C order, D channels
split into ``heads`` heads) and sends, one step later like Lava's synapse processes,
``a_out = weight * Q_h (K_h^T V_h)`` per head: exact integers.  ``delays`` (3 ints) hold the q, k and v
inputs back by that many extra steps (delay balancing).  The model lives in this module so that Lava's
compiler finds it next to the process.
"""
from __future__ import annotations

from neurodeploy.lava_compat import ensure_lava

ensure_lava()

import numpy as np  # noqa: E402
from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402


class SpikingAttention(AbstractProcess):
    def __init__(self, *, heads: int, dim: int, tokens: int, weight: int = 1, delays=(0, 0, 0),
                 name: str | None = None):
        super().__init__(heads=heads, dim=dim, tokens=tokens, weight=weight, delays=tuple(delays),
                         name=name)
        n = dim * tokens
        self.q_in = InPort(shape=(n,))
        self.k_in = InPort(shape=(n,))
        self.v_in = InPort(shape=(n,))
        self.a_out = OutPort(shape=(n,))
        self.a_buff = Var(shape=(n,), init=0)


def attention_numpy(q, k, v, heads: int, dim: int, tokens: int, weight: int) -> np.ndarray:
    dh = dim // heads
    qh, kh, vh = (np.asarray(x, dtype=np.int64).reshape(heads, dh, tokens) for x in (q, k, v))
    ktv = kh @ vh.transpose(0, 2, 1)
    y = qh.transpose(0, 2, 1) @ ktv            # [H, N, dh]
    return (y.transpose(0, 2, 1).reshape(-1) * int(weight)).astype(np.int32)


@implements(proc=SpikingAttention, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikingAttentionFixed(PyLoihiProcessModel):
    q_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    k_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    v_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.heads = int(proc_params["heads"])
        self.dim = int(proc_params["dim"])
        self.tokens = int(proc_params["tokens"])
        self.weight = int(proc_params["weight"])
        self.delays = tuple(int(d) for d in proc_params["delays"])
        n = self.dim * self.tokens
        self.hist = [[np.zeros(n, dtype=np.int64)] * (d + 1) for d in self.delays]

    def run_spk(self):
        self.a_out.send(self.a_buff)
        xs = []
        for i, port in enumerate((self.q_in, self.k_in, self.v_in)):
            self.hist[i] = self.hist[i][1:] + [port.recv().astype(np.int64)]
            xs.append(self.hist[i][0])
        self.a_buff = attention_numpy(*xs, self.heads, self.dim, self.tokens, self.weight)
