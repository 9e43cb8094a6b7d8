"""The ``neurodeploy`` command: parses arguments, calls the stages, prints.

Each subcommand lives in ``neurodeploy/commands/<name>.py`` and provides ``add_parser(subparsers)``
(which sets ``func``) and a ``run(args) -> int``.  Only subcommands that are built are listed in
``COMMANDS``; a missing one is absent, not a stub.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import math
import sys

from . import __version__
from . import limits
from .errors import EXIT_BAD_INPUT, BadInputError, NeurodeployError, ResourceLimitError
from .fileio import check_output_path, disk_full, is_stdout, protect_inputs

COMMANDS = ["train", "export", "check", "report", "simulate", "targets"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors (top level and every subcommand): one line, exit 2
        where = self.prog[len("neurodeploy "):] if self.prog.startswith("neurodeploy ") else ""
        message = " ".join(str(message).split())
        # a type= validator's message names its option already (commands/common.py): not twice
        head, sep, rest = message.partition(": ")
        if head.startswith("argument -") and sep and rest.startswith("-"):
            message = rest
        sys.stderr.write(f"neurodeploy: error: {where + ': ' if where else ''}{message}\n")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="neurodeploy",
        description="Deploy spiking neural networks (Spikingformer first) to neuromorphic hardware.",
    )
    parser.add_argument("--version", action="version", version=f"neurodeploy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"neurodeploy.commands.{name}")
        except ModuleNotFoundError as exc:  # not built yet: leave it out
            if exc.name == f"neurodeploy.commands.{name}":
                continue
            raise
        module.add_parser(sub)
    parser.commands = sorted(sub.choices)  # the built ones (named when none is given)
    return parser


#: options whose values are input files: ``-o`` may never write over one of them
INPUT_OPTIONS = ("model", "data", "profile", "firing_rates")


def _error(message: str, code: int = EXIT_BAD_INPUT) -> int:
    sys.stderr.write("neurodeploy: error: " + " ".join(str(message).split()) + "\n")
    return code


#: options counted in time steps: capped (limits.MAX_TIME_STEPS)
TIME_STEP_OPTIONS = ("steps", "time_steps")


def check_option_values(args: argparse.Namespace) -> None:
    """Options of every command: numbers finite, integers within int64, time steps capped."""
    for key, value in vars(args).items():
        opt = "--" + key.replace("_", "-")
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, float) and not math.isfinite(v):
                raise BadInputError(f"{opt} must be a finite number, got {v}")
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**62:
                raise ResourceLimitError(f"{opt} {v} is out of range")
            if key in TIME_STEP_OPTIONS and isinstance(v, int) and v > limits.MAX_TIME_STEPS:
                raise ResourceLimitError(f"{opt} {v:,} exceeds the limit of {limits.MAX_TIME_STEPS:,} time steps")
            if isinstance(v, str) and "\0" in v:
                raise BadInputError(f"{opt}: a NUL character in the value")


def _quiet_unraisable(u, _default=sys.unraisablehook):
    """A file object left open by a failed write (full disk) and closed by the garbage collector raises
    again in ``__del__``: the one error line is already printed, so that echo is not shown."""
    if isinstance(u.exc_value, (OSError, ValueError)) and "closed file" in str(u.exc_value) or disk_full(u.exc_value):
        return
    _default(u)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (argparse's usage errors and option values refused by the
    ``type=`` validators included: 2, one line on stderr; ``--help``/``--version``: 0)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    if not getattr(args, "func", None):  # one line on stderr, nothing on stdout (as every usage error)
        return _error("no command given; one of " + ", ".join(parser.commands)
                      + " (neurodeploy COMMAND --help)")
    inputs = []
    for opt in INPUT_OPTIONS:
        value = getattr(args, opt, None)
        inputs += value if isinstance(value, list) else [value] if isinstance(value, str) else []
    sys.unraisablehook = _quiet_unraisable
    try:
        with protect_inputs(inputs):
            check_option_values(args)
            if isinstance(getattr(args, "output", None), str):  # -o FILE: refused before any work
                check_output_path(args.output)
                if is_stdout(args.output):  # -o - and -o /dev/stdout: the command's own stdout output
                    args.output = None
            return int(args.func(args) or 0)
    except NeurodeployError as exc:
        return _error(str(exc), exc.exit_code)
    except RecursionError:  # a structure nested beyond what the readers' checks catch
        return _error("input nested too deeply")
    except MemoryError:
        return _error("not enough memory for this input (see the limits in docs/reliability.md)")
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return _error(f"{exc.filename or 'output'}: {exc.strerror} (nothing written)")
        if exc.errno is not None and exc.strerror:  # a path too long, a permission, an I/O error: named
            name = str(exc.filename or "")
            return _error(f"{name[:120] + '...' if len(name) > 120 else name or 'file'}: {exc.strerror}")
        raise
    except KeyboardInterrupt:
        sys.stderr.write("neurodeploy: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
