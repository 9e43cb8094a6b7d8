"""The ``neurodeploy`` command: parses arguments, calls the stages, prints.

Each subcommand lives in ``neurodeploy/commands/<name>.py`` and provides ``add_parser(subparsers)``
(which sets ``func``) and a ``run(args) -> int``.  Only subcommands that are built are listed in
``COMMANDS``; a missing one is absent, not a stub.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import EXIT_BAD_INPUT, NeurodeployError

COMMANDS = ["train", "export", "check", "report", "simulate", "targets"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, exit 2
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args) or 0)
    except NeurodeployError as exc:
        sys.stderr.write(f"neurodeploy: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("neurodeploy: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
