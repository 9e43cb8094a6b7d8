"""Errors that carry a place (file, key, node, module path).

The CLI turns a :class:`NeurodeployError` into one line on stderr and an exit code; the Python API
raises them as they are.  Exit codes: 0 success, 1 a check failed, 2 bad usage or bad input.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2


class NeurodeployError(Exception):
    """Base class: bad input or an unsupported model.  CLI exit code 2."""

    exit_code = EXIT_BAD_INPUT


class BadInputError(NeurodeployError):
    """A file, key, shape or argument that neurodeploy cannot use."""


class UnsupportedError(NeurodeployError):
    """A layer, node or operation that a stage cannot handle (named in the message)."""


class CheckFailed(NeurodeployError):
    """A check ran and its verdict is negative (not spike-pure, over budget).  CLI exit code 1."""

    exit_code = EXIT_CHECK_FAILED


class ResourceLimitError(BadInputError):
    """An input asks for more than a declared limit (time steps, shape, size, nesting): refused before
    anything is allocated.  CLI exit code 2."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (or its class name)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


#: raw exceptions that an API boundary turns into one documented class (with the place named)
_RAW = (ZeroDivisionError, TypeError, OverflowError, RecursionError, ValueError, KeyError, IndexError,
        MemoryError)


class boundary:  # noqa: N801 - used as ``with boundary("file.nir"):`` and ``@boundary("load_model")``
    """At an API boundary, turn raw ``ZeroDivisionError``/``TypeError``/``OverflowError``/``RecursionError``/
    ``ValueError``/``KeyError``/``IndexError``/``MemoryError``/``OSError`` into :class:`BadInputError` (one
    line naming ``where``); :class:`NeurodeployError` passes unchanged."""

    def __init__(self, where: str):
        self.where = where

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, NeurodeployError) or not isinstance(exc, (*_RAW, OSError)):
            return False
        if isinstance(exc, RecursionError):
            raise BadInputError(f"{self.where}: input nested too deeply") from None
        if isinstance(exc, MemoryError):
            raise ResourceLimitError(f"{self.where}: not enough memory for this input") from None
        if isinstance(exc, OSError):
            raise BadInputError(f"{self.where}: {exc.strerror or first_line(exc)}") from None
        raise BadInputError(f"{self.where}: {type(exc).__name__}: {first_line(exc)}") from None

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapped(*a, **kw):
            with boundary(self.where):
                return fn(*a, **kw)

        return wrapped
