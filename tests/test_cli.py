"""The ``neurodeploy`` command line: help, version, exit codes and one-line errors (run as a subprocess)."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import neurodeploy
from neurodeploy.cli import COMMANDS


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neurodeploy", *args], capture_output=True, text=True, timeout=300
    )


def _built_commands() -> list[str]:
    return [name for name in COMMANDS if importlib.util.find_spec(f"neurodeploy.commands.{name}") is not None]


def _assert_one_line_error(returncode: int, stderr: str, needle: str = "") -> None:
    assert returncode == 2, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr
    assert errors[0].startswith("neurodeploy") and needle in errors[0], errors[0]


def _main_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """``neurodeploy.cli.main`` in this process (cheap: torch is already imported)."""
    from neurodeploy.cli import main

    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse: --help, usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_exactly_the_built_subcommands():
    proc = _run("--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: neurodeploy")
    listed = {m.group(1) for m in re.finditer(r"^ {4}(\w+)\s", proc.stdout, re.MULTILINE)}
    assert listed == set(_built_commands())  # a subcommand that is not built is absent, not a stub


def test_every_built_subcommand_has_help(capsys):
    for name in _built_commands():
        code, out, err = _main_in_process(capsys, name, "--help")
        assert code == 0, (name, err)
        assert out.startswith(f"usage: neurodeploy {name}"), name


def test_version():
    proc = _run("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"neurodeploy {neurodeploy.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", neurodeploy.__version__)


def test_unknown_subcommand_is_a_one_line_error():
    proc = _run("frobnicate")
    _assert_one_line_error(proc.returncode, proc.stderr, "invalid choice: 'frobnicate'")


def test_a_listed_subcommand_without_a_module_is_absent_not_a_stub(capsys, monkeypatch):
    import neurodeploy.cli as cli

    monkeypatch.setattr(cli, "COMMANDS", list(COMMANDS) + ["notbuilt"])
    parser = cli.build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices
    assert set(choices) == set(_built_commands()) and "notbuilt" not in choices
    code, _, err = _main_in_process(capsys, "notbuilt")
    _assert_one_line_error(code, err, "invalid choice: 'notbuilt'")


def test_bad_option_is_a_one_line_error():
    proc = _run("--no-such-option")
    _assert_one_line_error(proc.returncode, proc.stderr, "unrecognized arguments: --no-such-option")


def test_bad_subcommand_usage_is_a_one_line_error(capsys):
    # with its required arguments missing, or an unknown option: exit 2, one line, no traceback
    for name in _built_commands():
        code, _, err = _main_in_process(capsys, name, "--no-such-option")
        _assert_one_line_error(code, err)


def test_no_subcommand_is_one_line_on_stderr_and_exits_2():
    """Issue 26: like every usage error, one line on stderr naming the commands, nothing on stdout."""
    proc = _run()
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("neurodeploy: error: no command given; one of check, export, report, simulate, targets, "
                           "train (neurodeploy COMMAND --help)\n")
