"""Make Lava (lava-nc 0.10.0, lava-dl 0.6.0) importable on Python >= 3.11.

Lava declares Python <3.11.  The one thing that actually breaks on 3.11 is
``lava/magma/compiler/var_model.py``: three dataclasses (``CoreEncoder``, ``ChipEncoder``,
``AxonEncoder``) use a ``ByteEncoder()`` instance as a field default, which Python 3.11's dataclasses
reject ("mutable default ... is not allowed").  When that one module is loaded through neurodeploy we
rewrite exactly those defaults to ``field(default_factory=ByteEncoder)`` (the same value for every
instance, now built per instance).  Nothing else in Lava is touched.

Call :func:`ensure_lava` before importing anything from ``lava``; every neurodeploy module that uses
Lava does so.  On Python 3.10 it does nothing.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys

from .errors import UnsupportedError

_TARGET = "lava.magma.compiler.var_model"
_DEFAULT = re.compile(r"^(\s+\w+\s*:\s*ByteEncoder\s*=\s*)ByteEncoder\(\)\s*$", re.MULTILINE)


def patch_var_model_source(source: str) -> str:
    """The var_model source with ``x: ByteEncoder = ByteEncoder()`` defaults made default factories."""
    patched, n = _DEFAULT.subn(r"\1_nd_field(default_factory=ByteEncoder)", source)
    if n == 0:
        return source
    # after the __future__ import (which must stay first)
    marker = "from __future__ import annotations\n"
    line = "from dataclasses import field as _nd_field  # added by neurodeploy.lava_compat\n"
    if marker in patched:
        return patched.replace(marker, marker + line, 1)
    return line + patched


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


def ensure_lava() -> None:
    """Install the import fix (idempotent) and check that Lava is importable."""
    if sys.version_info >= (3, 11) and _FINDER not in sys.meta_path:
        if _TARGET in sys.modules:  # imported before us without the fix: it would have failed
            pass
        sys.meta_path.insert(0, _FINDER)
    if importlib.util.find_spec("lava") is None:
        raise UnsupportedError(
            "Lava is not installed; run 'make install' (installs lava-nc 0.10.0 and lava-dl 0.6.0 "
            "with --no-deps --ignore-requires-python)"
        )


def lava_available() -> bool:
    try:
        ensure_lava()
        import lava.magma.core.run_configs  # noqa: F401
    except Exception:  # noqa: BLE001 - any import problem means "not available"
        return False
    return True
