"""The engine's native kernels (``native.c``: a fused float32 LIF step that lists its spikes, and
convolutions / dense products summed over the listed inputs only), built once per machine with the system
C compiler and loaded with ctypes.

Why our own C: no library fuses a LIF step with the list of its spikes or sums a convolution over the
active 0/1 inputs only (torch's CPU convolutions are dense; torch.compile takes minutes on a busy
machine and a C++ torch extension compiles torch's headers).  Plain C against raw float32 buffers compiles
in about a second.

:func:`lib` returns the loaded library, or None where it cannot be built (no compiler, not Linux/macOS,
``NEURODEPLOY_NATIVE=0``): the engine then runs its torch / numpy ops, which give the same integers.
The build lands in ``$NEURODEPLOY_CACHE`` (default ``~/.cache/neurodeploy``), keyed by the source, the
compiler flags and the CPU's instruction-set flags (the build uses ``-march=native``).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

SRC = Path(__file__).with_name("native.c")
FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-shared", "-fPIC"]

_LIB = None
_TRIED = False


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _cache_dir() -> Path:
    return Path(os.environ.get("NEURODEPLOY_CACHE") or Path.home() / ".cache" / "neurodeploy") / "native"


def _build() -> Path | None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc or platform.system() not in ("Linux", "Darwin"):
        return None
    src = SRC.read_bytes()
    key = hashlib.sha256(src + " ".join([cc] + FLAGS).encode() + _cpu_flags().encode()
                         + platform.machine().encode()).hexdigest()[:16]
    out = _cache_dir() / f"neurodeploy_native_{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        r = subprocess.run([cc, *FLAGS, "-o", tmp, str(SRC), "-lm"], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            warnings.warn(f"neurodeploy.sim: native kernels not built ({cc}: {r.stderr.strip()[:200]}); "
                          f"using torch ops")
            return None
        os.replace(tmp, out)      # atomic: concurrent builders never load a half-written file
        return out
    except (OSError, subprocess.SubprocessError) as e:
        warnings.warn(f"neurodeploy.sim: native kernels not built ({type(e).__name__}); using torch ops")
        return None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def lib():
    """The loaded native library (ctypes), or None where it cannot be built or is switched off."""
    global _LIB, _TRIED
    if _TRIED:
        return _LIB
    _TRIED = True
    if os.environ.get("NEURODEPLOY_NATIVE", "1") == "0":
        return None
    path = _build()
    if path is None:
        return None
    try:
        so = ctypes.CDLL(str(path))
    except OSError as e:
        warnings.warn(f"neurodeploy.sim: native kernels not loaded ({e}); using torch ops")
        return None
    P, I, F = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
    so.nd_lif_f32.restype = ctypes.c_int64
    so.nd_lif_f32.argtypes = [P, P, P, P, I, I, I, F, F, F, ctypes.c_int, F, P, P, P, P]
    so.nd_conv_events_f32.restype = None
    so.nd_conv_events_f32.argtypes = [P, P, P, P, P, I, I, I, I, I, P, P, P, P, I, ctypes.c_int]
    so.nd_rows_events_f32.restype = None
    so.nd_rows_events_f32.argtypes = [P, P, P, P, P, I, I, I, ctypes.c_int, F, P]
    _LIB = so
    return so


def raw(name: str, restype=None):
    """A second handle on the native function ``name`` without argument types: the engine calls it many
    times a step with ctypes objects it converted once (``c_void_p`` / ``c_int64`` / ``c_float`` /
    ``c_int``, in native.c's order; pointers it changes are ``c_void_p`` objects whose ``value`` it sets),
    about 0.4 us a call against 1-2 us converting every argument."""
    so = lib()
    f = type(getattr(so, name))((name, so))
    f.restype = restype
    return f
