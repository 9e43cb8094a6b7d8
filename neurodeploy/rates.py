"""Firing-rate files (``report --firing-rates FILE``): JSON ``{node: rate}``, ``{"firing_rates": {...}}`` or a
``neurodeploy check --format json`` report (its ``dynamic.firing_rates``).  Rates are fractions in [0, 1].

Hardened copy of ``neurodeploy.report.load_firing_rates`` (issue 14): size cap before reading, nesting
depth checked (a deeply nested file is one line, not a RecursionError), NaN/Infinity tokens refused.
The report imports it from here after the merge (lead: switch ``from ..report import load_firing_rates``
in commands/report.py to ``from ..rates import load_firing_rates`` and drop the old copy)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from . import limits
from .errors import BadInputError, ResourceLimitError, first_line

#: a firing-rate file holds one number per layer: 64 MiB is far beyond any model
MAX_BYTES = 64 * 2**20


def _nesting(text: str) -> int:
    """Deepest bracket nesting of a JSON text (strings skipped), without parsing it."""
    depth = deepest = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_constant(token: str):
    raise ValueError(f"{token} is not a valid rate")


def load_firing_rates(path: str | os.PathLike) -> dict:
    """``{node: rate}`` from a JSON file; every error is one :class:`BadInputError` line naming the file."""
    p = Path(path)
    where = f"--firing-rates {p}"
    try:
        size = p.stat().st_size
        if p.is_dir():
            raise BadInputError(f"{where}: is a directory")
        if size > MAX_BYTES:
            raise ResourceLimitError(f"{where}: {size:,} bytes (limit {MAX_BYTES:,})")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{where}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    if _nesting(text) > limits.MAX_NESTING:
        raise ResourceLimitError(f"{where}: JSON nested deeper than {limits.MAX_NESTING} levels")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        first = first_line(exc)
        raise BadInputError(f"{where}: not a JSON file ({first})") from None
    if isinstance(data, dict) and isinstance(data.get("dynamic"), dict):
        data = data["dynamic"]
    if isinstance(data, dict) and isinstance(data.get("firing_rates"), dict):
        data = data["firing_rates"]
    if not isinstance(data, dict) or not data:
        raise BadInputError(f"{where}: expected an object {{node: rate}}")
    out = {}
    for k, v in data.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)) \
                or not 0.0 <= float(v) <= 1.0:
            raise BadInputError(f"{where}: key {k!r}: rate must be a number in [0, 1], got {v!r}"[:300])
        out[str(k)] = float(v)
    return out
