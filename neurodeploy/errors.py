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
