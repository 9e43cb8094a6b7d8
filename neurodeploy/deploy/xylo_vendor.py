"""Optional access to SynSense's own Xylo tools (rockpool 3.1 + xylosim), without samna.

``rockpool.devices.xylo`` (the package ``__init__``) imports samna unguarded through the Audio 3 subpackage, and
no samna build exists for Python 3.11.  The modules we need (the three mappers, ``XyloSim``) import no samna
themselves, so :func:`vendor_module` loads exactly those files: it registers the *package* objects
``rockpool.devices.xylo[.synsNNNNN]`` with their real ``__path__`` but without running their ``__init__``, then
imports the wanted submodule normally (``importlib``).  Only ``rockpool.devices.xylo`` and ``syns65302`` (Audio 3) are
entered that way; the Audio 2 and IMU subpackages guard their own samna imports and are imported as usual.  Nothing is faked: no samna module is created, and a
module that does need samna still fails with its own ImportError.

Out of reach without samna: ``config_from_specification`` (the chip configuration and its validation),
``XyloSim.from_config``, the power / cycle models and everything that talks to a dev kit.

The main package never needs rockpool: only ``simulate --backend xylosim`` and the tests call this module.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

from ..errors import UnsupportedError

#: chip name -> rockpool device subpackage (SynSense part numbers)
ROCKPOOL_CHIPS = {"xylo-audio2": "syns61201", "xylo-imu": "syns63300", "xylo-audio3": "syns65302"}


def _need_rockpool():
    if importlib.util.find_spec("rockpool") is None or importlib.util.find_spec("xylosim") is None:
        raise UnsupportedError("the xylosim backend needs rockpool and xylosim (pip install 'neurodeploy[vendors]'; "
                               "use --backend fast for neurodeploy's own Xylo engine)")


def _package_without_init(name: str) -> None:
    """Register package ``name`` (a rockpool subpackage) with its real path, its ``__init__`` not executed."""
    if name in sys.modules:
        return
    parent, _, leaf = name.rpartition(".")
    spec = importlib.util.find_spec(parent) if parent not in sys.modules else None
    base = Path(sys.modules[parent].__path__[0] if parent in sys.modules else spec.submodule_search_locations[0])
    pkg = types.ModuleType(name)
    pkg.__path__ = [str(base / leaf)]
    pkg.__package__ = name
    sys.modules[name] = pkg
    setattr(sys.modules[parent], leaf, pkg)


def vendor_module(chip: str, module: str):
    """``rockpool.devices.xylo.<chip subpackage>.<module>`` (e.g. ``xylo_mapper``, ``xylo_sim``), samna-free."""
    _need_rockpool()
    sub = ROCKPOOL_CHIPS.get(chip)
    if sub is None:
        raise UnsupportedError(f"no rockpool module for target '{chip}' (known: {', '.join(ROCKPOOL_CHIPS)})")
    importlib.import_module("rockpool.devices")
    _package_without_init("rockpool.devices.xylo")
    if sub == "syns65302":
        # Audio 3's __init__ imports samna unguarded (afe_samna_pdm); its mapper does not.  Its XyloSim is the
        # IMU's (rockpool re-exports it).  The Audio 2 and IMU __init__s guard their samna imports: run them.
        if module == "xylo_sim":
            sub = "syns63300"
        else:
            _package_without_init("rockpool.devices.xylo.syns65302")
    return importlib.import_module(f"rockpool.devices.xylo.{sub}.{module}")


def xylosim_class(chip: str):
    """rockpool's ``XyloSim`` for ``chip`` (Audio 2: xylosim v2 core; IMU and Audio 3: the IMU class)."""
    return vendor_module(chip, "xylo_sim").XyloSim


def run_xylosim(chip: str, spec: dict, raster, record: bool = True) -> dict:
    """Run ``XyloSim.from_specification(**spec)`` on one integer input raster [T, Nin]; returns integer arrays
    ``spikes`` [T, Nhid], ``vmem`` [T, Nhid], ``isyn`` [T, Nhid], ``vmem_out`` [T, Nout], ``out`` [T, Nout]."""
    import inspect

    import numpy as np

    cls = xylosim_class(chip)
    names = set(inspect.signature(cls.from_specification).parameters)
    sim = cls.from_specification(**{k: v for k, v in spec.items() if k in names})
    out, _, rec = sim.evolve(np.asarray(raster).astype(int), record=record)
    res = {"out": np.asarray(out, dtype=np.int64)}
    if record:
        res.update(spikes=np.asarray(rec["Spikes"], dtype=np.int64), vmem=np.asarray(rec["Vmem"], dtype=np.int64),
                   isyn=np.asarray(rec["Isyn"], dtype=np.int64), vmem_out=np.asarray(rec["Vmem_out"], dtype=np.int64),
                   isyn_out=np.asarray(rec["Isyn_out"], dtype=np.int64))
    return res
