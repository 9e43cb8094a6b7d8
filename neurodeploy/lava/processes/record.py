"""Recorder processes: what Lava's Monitor records (an OutPort's payload at each step, Vars read after
each step), but written to a ``.npy`` file by the recorder's own OS process after the last step.

Lava's ``Monitor.get_data`` reads its buffer through ``Var.get``, which sends the array one element at a
time through the runtime channel (about 10-50 us per element on 2 cores): a chained run of the digits
model, 13,834 neurons x 3 variables x several hundred steps, would take many minutes just to read back.
``SpikeRecorder`` (port payload only) and ``StateRecorder`` (payload plus the ``u`` and ``v`` Vars of the
population through RefPorts, read in the post-management phase like Monitor does) hold ``steps`` x ``n``
int64 arrays and save them with :func:`numpy.save` at ``time_step == steps`` (``path`` + ``.s.npy``,
``.u.npy``, ``.v.npy``).  The models live in this module so that Lava's compiler finds them.
"""
from __future__ import annotations

from neurodeploy.lava_compat import ensure_lava

ensure_lava()

import os  # noqa: E402

import numpy as np  # noqa: E402
from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyRefPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, RefPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402


class SpikeRecorder(AbstractProcess):
    def __init__(self, *, n: int, steps: int, path: str, name: str | None = None):
        super().__init__(n=n, steps=steps, path=path, name=name)
        self.s_in = InPort(shape=(n,))


class StateRecorder(AbstractProcess):
    def __init__(self, *, n: int, steps: int, path: str, name: str | None = None):
        super().__init__(n=n, steps=steps, path=path, name=name)
        self.s_in = InPort(shape=(n,))
        self.u_ref = RefPort(shape=(n,))
        self.v_ref = RefPort(shape=(n,))


def _save(path: str, key: str, arr: np.ndarray) -> None:
    tmp = f"{path}.{key}.tmp.npy"
    np.save(tmp, arr)
    os.replace(tmp, f"{path}.{key}.npy")


def load_recording(path: str, state: bool) -> dict:
    keys = ("s", "u", "v") if state else ("s",)
    return {k: np.load(f"{path}.{k}.npy") for k in keys}


class _RecorderBase(PyLoihiProcessModel):
    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.n = int(proc_params["n"])
        self.steps = int(proc_params["steps"])
        self.path = str(proc_params["path"])
        self.buf = {"s": np.zeros((self.steps, self.n), dtype=np.int32)}

    def run_spk(self):
        t = self.time_step
        s = np.asarray(self.s_in.recv())
        if t <= self.steps:
            self.buf["s"][t - 1] = s
        if t == self.steps and not self.has_state:
            _save(self.path, "s", self.buf["s"])


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeRecorderModel(_RecorderBase):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    has_state = False


@implements(proc=StateRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyStateRecorderModel(_RecorderBase):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    u_ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32, precision=24)
    v_ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32, precision=24)
    has_state = True

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.buf["u"] = np.zeros((self.steps, self.n), dtype=np.int32)
        self.buf["v"] = np.zeros((self.steps, self.n), dtype=np.int32)

    def post_guard(self):
        return True

    def run_post_mgmt(self):
        t = self.time_step
        if t <= self.steps:
            self.buf["u"][t - 1] = np.asarray(self.u_ref.read())
            self.buf["v"][t - 1] = np.asarray(self.v_ref.read())
        if t == self.steps:
            for k, a in self.buf.items():
                _save(self.path, k, a)
