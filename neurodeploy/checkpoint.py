"""Checkpoints: our own format and the official Spikingformer containers.

Our format (``.pt``, written with ``torch.save``, read with ``weights_only=True``) is one dict::

    {
      "format": "neurodeploy-checkpoint",
      "format_version": 1,
      "arch": "spikingformer-digits",          # a name from neurodeploy.models.registry
      "config": {...},                          # the architecture's config dataclass as a dict
      "state_dict": {...},                      # torch state_dict of the eval-mode module
      "metrics": {"test_accuracy": 0.95, ...}   # optional
      "neurodeploy_version": "0.1.0",
      "train_state": {...}                      # optional: written by `neurodeploy train` to resume
    }

Official checkpoints: timm ``CheckpointSaver`` files (``.pth.tar``) keep the weights under
``state_dict`` (and an ``argparse.Namespace`` under ``args``, which we allow as the one safe extra
global); the DVS scripts keep them under ``model``.  A bare state_dict is accepted too.
"""
from __future__ import annotations

import argparse
import io
import os
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from .errors import BadInputError, boundary, first_line
from .fileio import atomic_path
from .models.registry import arch_names, build_model, config_from_dict, default_config, model_from_config
from .version import __version__

FORMAT = "neurodeploy-checkpoint"
FORMAT_VERSION = 1


def _torch_load(path: Path):
    if not path.exists():
        raise BadInputError(f"{path}: no such file")
    if path.is_dir():
        raise BadInputError(f"{path}: is a directory, expected a checkpoint file")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = first_line(exc)
        raise BadInputError(f"{path}: not a safe checkpoint (weights_only load refused: {first})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        msg = first_line(exc)
        raise BadInputError(f"{path}: not a readable PyTorch checkpoint ({msg})") from None


def extract_state_dict(obj, path: Path | str = "<checkpoint>") -> dict:
    """The state_dict inside a loaded container: ours, timm's (``state_dict``), DVS (``model``), bare."""
    if isinstance(obj, dict):
        if obj.get("format") == FORMAT:
            sd = obj.get("state_dict")
        elif "state_dict" in obj and isinstance(obj["state_dict"], dict):
            sd = obj["state_dict"]
        elif "model" in obj and isinstance(obj["model"], dict):
            sd = obj["model"]
        else:
            sd = obj
        if isinstance(sd, dict) and sd and all(isinstance(v, torch.Tensor) for v in sd.values()):
            check_tensors(sd, path)
            # DDP-wrapped training saves "module." prefixes
            if all(isinstance(k, str) and k.startswith("module.") for k in sd):
                sd = {k[len("module."):]: v for k, v in sd.items()}
            return sd
    raise BadInputError(f"{path}: no state_dict found (expected keys 'state_dict' or 'model', or a bare state_dict)")


def check_tensors(sd: dict, path: Path | str = "<checkpoint>") -> None:
    """Every entry a real, finite tensor under a string key (NaN/Inf weights or thresholds, complex
    weights are refused: they would give plausible-looking but meaningless results downstream)."""
    for k, v in sd.items():
        if not isinstance(k, str):
            raise BadInputError(f"{path}: state_dict key {k!r} is not a string")
        if v.is_complex():
            raise BadInputError(f"{path}: key '{k}' holds complex values ({v.dtype}); weights must be real")
        if not (v.is_floating_point() or v.dtype in _INT_DTYPES):
            raise BadInputError(f"{path}: key '{k}' has dtype {v.dtype}; expected a real number type")
        if v.is_floating_point() and v.numel() and not bool(torch.isfinite(v).all()):
            raise BadInputError(f"{path}: key '{k}' contains NaN or infinity")


_INT_DTYPES = (torch.bool, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def expected_shapes(config) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the state_dict that a model built from ``config`` holds, from a build on torch's meta
    device (shapes only, no storage): a config that asks for gigabytes of weights costs nothing here."""
    with torch.device("meta"):
        model = model_from_config(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _config_hint(config, want: tuple, got: tuple) -> str:
    """' (config embed_dim = 8192)': the config fields whose value is a dimension the weights disagree with."""
    differing = {e for e, g in zip(want, got) if e != g} if len(want) == len(got) else set(want) - set(got)
    named = []
    for key, value in (config.to_dict() if hasattr(config, "to_dict") else {}).items():
        for i, v in enumerate(value if isinstance(value, (list, tuple)) else [value]):
            if isinstance(v, int) and not isinstance(v, bool) and v in differing:
                named.append(f"{key}[{i}] = {v}" if isinstance(value, (list, tuple)) else f"{key} = {v}")
    return f" (config {', '.join(named[:3])})" if named else ""


def check_state_dict(expected: dict, state_dict: dict, source: str = "<checkpoint>", config=None) -> None:
    """The keys and shapes of ``state_dict`` against ``expected`` (key -> shape, :func:`expected_shapes`),
    before any model is built; the error names the first bad key (and the config fields it contradicts)."""
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise BadInputError(f"{source}: missing key '{missing[0]}'{more}")
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise BadInputError(f"{source}: unexpected key '{unexpected[0]}'{more}")
    for k, want in expected.items():
        got = tuple(state_dict[k].shape)
        if got != tuple(want):
            raise BadInputError(f"{source}: key '{k}' has shape {list(got)}, expected {list(want)}"
                                + _config_hint(config, tuple(want), got))


def load_state_dict_strict(model: nn.Module, state_dict: dict, source: str = "<checkpoint>") -> None:
    """``load_state_dict(strict=True)`` with an error that names the first bad key."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_state_dict(expected, state_dict, source, getattr(model, "cfg", None))
    model.load_state_dict(state_dict, strict=True)


def save_checkpoint(model: nn.Module, path: str | os.PathLike, metrics: dict | None = None,
                    train_state: dict | None = None) -> Path:
    """Write our checkpoint format atomically (temp file, then rename).  ``train_state``: what
    ``neurodeploy train --resume`` needs to continue (optimizer state, position; tensors and plain values
    only, so the file still loads with ``weights_only=True``)."""
    arch = getattr(model, "arch", None)
    if arch is None:
        raise ValueError("model has no .arch name; build it with neurodeploy.build_model")
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "config": model.cfg.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metrics": dict(metrics or {}),
        "neurodeploy_version": __version__,
    }
    if train_state is not None:
        payload["train_state"] = train_state
    # serialized in memory, then written plainly: torch.save reports a full disk as a RuntimeError from its
    # zip writer; a plain write gives the OSError that atomic_path turns into one line (temp file removed)
    buf = io.BytesIO()
    torch.save(payload, buf)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(buf.getbuffer())
    return path


#: the longest path the kernel resolves, terminating NUL included (Linux); a longer one is ENAMETOOLONG
PATH_MAX = os.pathconf("/", "PC_PATH_MAX") if hasattr(os, "pathconf") else 4096


def _check_path_argument(path, name: str = "path") -> Path:
    """``load_model``'s file argument: a str or os.PathLike naming a file path the system can look up."""
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise BadInputError(f"load_model: argument '{name}' must be a file path (str or os.PathLike), "
                            f"got {type(path).__name__} {path!r}"[:200])
    raw = os.fsencode(path)
    if not raw:
        raise BadInputError(f"load_model: argument '{name}' is an empty path")
    shown = os.fsdecode(raw[:60]) + ("..." if len(raw) > 60 else "")
    if b"\0" in raw:
        raise BadInputError(f"load_model: argument '{name}' {shown!r} contains a NUL character")
    if len(raw) >= PATH_MAX:
        raise BadInputError(f"load_model: argument '{name}' {shown!r} is {len(raw):,} bytes long "
                            f"(PATH_MAX is {PATH_MAX:,})")
    try:
        os.stat(raw)
    except FileNotFoundError:
        pass  # named as "no such file" by the reader
    except OSError as exc:  # a component over NAME_MAX, a loop of links, a permission
        raise BadInputError(f"load_model: argument '{name}' {shown!r}: {exc.strerror}") from None
    return Path(os.fsdecode(raw))


def load_model(path: str | os.PathLike, arch: str | None = None) -> nn.Module:
    """Eval-mode torch module from our checkpoint, or from an official one when ``arch`` is given.  The
    config and the state_dict's keys and shapes are checked against each other before a model is built."""
    path = _check_path_argument(path)
    if arch is not None and not isinstance(arch, str):
        raise BadInputError(f"load_model: argument 'arch' must be an architecture name (str), got "
                            f"{type(arch).__name__}")
    obj = _torch_load(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        saved_arch = obj.get("arch")
        if saved_arch not in arch_names():
            raise BadInputError(f"{path}: unknown architecture {saved_arch!r} in checkpoint")
        if arch is not None and arch != saved_arch:
            raise BadInputError(f"{path}: checkpoint holds {saved_arch!r}, not {arch!r}")
        if not isinstance(obj.get("config"), dict):
            raise BadInputError(f"{path}: key 'config' is missing or not a dict")
        try:  # validated (types, ranges, parameter count) before anything is built
            cfg = config_from_dict(saved_arch, obj["config"], where=f"{path}: bad 'config': ")
        except (TypeError, ValueError) as exc:
            raise BadInputError(f"{path}: bad 'config': {exc}") from None
        sd = extract_state_dict(obj, path)
        with boundary(str(path)):
            # the config against the weights' keys and shapes first (meta device, no storage): a small
            # checkpoint whose config asks for a huge model is refused without allocating it
            check_state_dict(expected_shapes(cfg), sd, str(path), cfg)
            model = build_model(saved_arch, cfg.to_dict())
            load_state_dict_strict(model, sd, str(path))
        metrics = obj.get("metrics") or {}
        model.metrics = dict(metrics) if isinstance(metrics, dict) else {}
    else:
        if arch is None:
            raise BadInputError(
                f"{path}: not a neurodeploy checkpoint; for an official checkpoint pass --arch "
                f"(one of {', '.join(arch_names())})"
            )
        sd = extract_state_dict(obj, path)
        with boundary(str(path)):
            cfg = default_config(arch)
            check_state_dict(expected_shapes(cfg), sd, str(path), cfg)
            model = build_model(arch)
            load_state_dict_strict(model, sd, str(path))
        model.metrics = {}
    model.eval()
    return model
