"""Make Lava (lava-nc 0.10.0, lava-dl 0.6.0) importable on Python >= 3.11.

Lava declares Python <3.11.  The one thing that actually breaks on 3.11 is
``lava/magma/compiler/var_model.py``: three dataclasses (``CoreEncoder``, ``ChipEncoder``,
``AxonEncoder``) use a ``ByteEncoder()`` instance as a field default, which Python 3.11's dataclasses
reject ("mutable default ... is not allowed").  When that one module is loaded through neurodeploy we
rewrite exactly those defaults to ``field(default_factory=ByteEncoder)`` (the same value for every
instance, now built per instance).  Nothing else in Lava is touched.

Call :func:`ensure_lava` before importing anything from ``lava``; every neurodeploy module that uses
Lava does so.  On Python 3.10 the source fix is not needed and not installed.  ``ensure_lava`` also loads
Lava's multiprocessing runtime in a way that tolerates an already-fixed start method (see
``_import_lava_multiprocessing``).
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys

from .errors import UnsupportedError

_TARGET = "lava.magma.compiler.var_model"
# one field line; [ \t] (not \s) so that the match never runs into the line break and the blank lines
# after it: the patched module keeps its line count, so tracebacks point at the right lines
_DEFAULT = re.compile(r"^([ \t]+\w+[ \t]*:[ \t]*ByteEncoder[ \t]*=[ \t]*)ByteEncoder\(\)[ \t]*$", re.MULTILINE)


def patch_var_model_source(source: str) -> str:
    """The var_model source with ``x: ByteEncoder = ByteEncoder()`` defaults made default factories."""
    patched, n = _DEFAULT.subn(r"\1_nd_field(default_factory=ByteEncoder)", source)
    if n == 0:
        return source
    # on the line of the __future__ import (which must stay first), so that no line moves
    marker = "from __future__ import annotations\n"
    line = "from dataclasses import field as _nd_field  # added by neurodeploy.lava_compat\n"
    if marker in patched:
        return patched.replace(marker, marker[:-1] + "; " + line, 1)
    return "from dataclasses import field as _nd_field; " + patched


class _VarModelLoader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname):
        source = self.get_data(self.path).decode("utf-8")
        return compile(patch_var_model_source(source), self.path, "exec", dont_inherit=True)


class _VarModelFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != _TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.origin and spec.origin.endswith(".py"):
                loader = _VarModelLoader(fullname, spec.origin)
                return importlib.util.spec_from_file_location(fullname, spec.origin, loader=loader)
        return None


_FINDER = _VarModelFinder()


_LAVA_MP = "lava.magma.runtime.message_infrastructure.multiprocessing"


def _import_lava_multiprocessing() -> None:
    """Lava's message infrastructure calls ``multiprocessing.set_start_method('fork')`` when imported,
    which raises "context has already been set" once anything (tqdm's lock, a DataLoader) has fixed the
    start method, even when it is already ``fork`` (the Linux default).  We import that module once with
    the request made a no-op when the method already is the one asked for; Lava's code is unchanged."""
    import multiprocessing as mp

    if _LAVA_MP in sys.modules:
        return
    original = mp.set_start_method

    def _set(method, force=False):
        if not force and mp.get_start_method(allow_none=True) == method:
            return
        original(method, force=force)

    mp.set_start_method = _set
    try:
        importlib.import_module(_LAVA_MP)
    finally:
        mp.set_start_method = original


def lava_installed() -> bool:
    """Whether the ``lava`` package can be imported (looked up, not imported)."""
    return importlib.util.find_spec("lava") is not None


def require_lava() -> None:
    """UnsupportedError unless Lava is installed: called before any work that ends in a Lava run."""
    if not lava_installed():
        raise UnsupportedError(
            "Lava is not installed; run 'make install' (installs lava-nc 0.10.0 and lava-dl 0.6.0 "
            "with --no-deps --ignore-requires-python)"
        )


def ensure_lava() -> None:
    """Install the import fix (idempotent), check that Lava is installed and load its runtime."""
    if sys.version_info >= (3, 11) and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    require_lava()
    _import_lava_multiprocessing()
