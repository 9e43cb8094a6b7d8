"""Shared fixtures.

``trained_digits_model`` trains the digits demo Spikingformer once (the same recipe as ``make demo``:
``neurodeploy.training.train`` with its defaults, about a minute on 2 cores) and caches the checkpoint in
pytest's cache folder, keyed by a hash of the sources that determine the result, so that a fresh clone (CI)
trains it once and a developer's later runs reuse it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the public NIR paper files (neuromorphs/NIR paper/, BSD-3-Clause, see LICENSE-NIR there), copied from
#: shared/data/nir-paper so that the suite is self-contained
NIR_PAPER = REPO / "tests" / "data" / "nir-paper"

_TRAINING_SOURCES = ["neurodeploy/models/neuron.py", "neurodeploy/training.py", "neurodeploy/checkpoint.py",
                     "neurodeploy/models/spikingformer.py", "neurodeploy/models/registry.py"]


def _training_key() -> str:
    h = hashlib.sha256()
    for rel in _TRAINING_SOURCES:
        h.update((REPO / rel).read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def trained_digits_checkpoint(request) -> Path:
    """Path of a trained ``spikingformer-digits`` checkpoint (our format)."""
    from neurodeploy.training import train

    folder = Path(request.config.cache.mkdir("neurodeploy-digits"))
    path = folder / f"spikingformer-digits-{_training_key()}.pt"
    if not path.exists():
        train("spikingformer-digits", path, progress=False)
    return path


@pytest.fixture(scope="session")
def trained_digits_model(trained_digits_checkpoint):
    """The trained digits demo model, eval mode (shared: do not modify it in a test)."""
    from neurodeploy import load_model

    return load_model(trained_digits_checkpoint)


@pytest.fixture(scope="session")
def nir_paper() -> Path:
    """The public NIR paper files (tests/data/nir-paper)."""
    return NIR_PAPER
