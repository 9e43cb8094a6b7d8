"""A non-editable ``pip install .`` into a fresh venv gives a working ``neurodeploy`` with everything shipped.

To avoid reinstalling torch and friends, the fresh venv reaches this environment's site-packages through a
``.pth`` file (dependencies only: ``.pth`` files inside that folder, such as the editable install's finder,
are not processed), and neurodeploy itself is installed with ``--no-deps --no-build-isolation`` from a copy
of the source tree.  Everything runs from a temporary working directory, and the test checks that the
package is imported from the fresh venv, not from the source tree.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# source folder -> installed package (pyproject.toml [tool.setuptools] package-dir)
SOURCE_PACKAGES = {"neurodeploy": "neurodeploy", "exporters": "neurodeploy/exporters",
                   "hardware_profiles": "neurodeploy/hardware_profiles"}
DATA_SUFFIXES = {".toml", ".json", ".yaml", ".yml"}  # runtime data that must ship with its package


def _expected_files() -> list[str]:
    """Installed paths (relative to site-packages) of every module and data file in the source packages."""
    expected = []
    for src, dest in SOURCE_PACKAGES.items():
        for path in sorted((ROOT / src).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            rel = path.relative_to(ROOT / src)
            if src == "neurodeploy" and rel.parts[0] in ("exporters", "hardware_profiles"):
                continue
            if not (path.parent / "__init__.py").exists():  # not inside a package
                continue
            if path.suffix == ".py" or path.suffix in DATA_SUFFIXES:
                expected.append(f"{dest}/{rel.as_posix()}")
    return expected


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.mark.slow
def test_non_editable_install_into_fresh_venv(tmp_path):
    env = _clean_env()
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "demo-out", "*.egg-info", "__pycache__", ".pytest_cache", ".benchmarks"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=env)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True, env=env).stdout.strip())
    assert site.is_dir() and site.is_relative_to(venv)
    (site / "_neurodeploy_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "cwd"
    work.mkdir()
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--ignore-installed",
         str(src)],
        cwd=work, capture_output=True, text=True, env=env, timeout=600,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert not (site / "__editable___neurodeploy_0_1_0_finder.py").exists()

    exe = venv / "bin" / "neurodeploy"
    version = subprocess.run([str(exe), "--version"], cwd=work, capture_output=True, text=True, env=env)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"neurodeploy {pyproject['project']['version']}"

    help_ = subprocess.run([str(exe), "--help"], cwd=work, capture_output=True, text=True, env=env)
    assert help_.returncode == 0, help_.stderr
    assert help_.stdout.startswith("usage: neurodeploy")

    probe = subprocess.run(
        [str(py), "-c",
         "import json, neurodeploy, neurodeploy.exporters, neurodeploy.hardware_profiles;"
         "print(json.dumps([m.__file__ for m in (neurodeploy, neurodeploy.exporters, neurodeploy.hardware_profiles)]))"],
        cwd=work, capture_output=True, text=True, env=env,
    )
    assert probe.returncode == 0, probe.stderr
    for f in json.loads(probe.stdout):
        assert Path(f).resolve().is_relative_to(site.resolve()), f  # the installed copy, not the source tree

    # every module and data file of the source packages was installed (a subpackage missing from
    # pyproject.toml's `packages`, or a profile missing from package-data, fails here)
    missing = [rel for rel in _expected_files() if not (site / rel).is_file()]
    assert not missing, f"not installed by 'pip install .': {missing}"
