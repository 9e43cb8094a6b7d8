"""Hardware profiles: one TOML per target in ``hardware_profiles/`` (installed as
``neurodeploy.hardware_profiles``), validated against ``hardware_profiles/schema.json``.

Every number in a profile is a *quantity*: ``{ value = ..., source = "...", confidence = "..." }`` (plus an
optional ``unit`` and ``note``), so each figure carries where it came from and how sure we are.  Users can
pass their own file (``--profile FILE``); a bad profile is a :class:`BadInputError` naming the file and the
dotted key.
"""
from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - 3.10
    import tomli as tomllib

import jsonschema

from .errors import BadInputError

PROFILE_PACKAGE = "neurodeploy.hardware_profiles"

#: confidence levels of profile quantities, strongest first (hardware_profiles/schema.json)
CONFIDENCE_ORDER = ("measured", "source", "documented", "derived", "unverified", "assumption")
#: a verdict resting on one of these is not firm (``report --strict`` exits 1)
WEAK_CONFIDENCE = ("unverified", "assumption")


@dataclass
class Profile:
    """A validated hardware profile.  ``data`` is the raw TOML table; helpers read quantity values."""

    name: str
    path: str
    data: dict = field(repr=False)

    # -- quantities ----------------------------------------------------------------------------------
    def quantity(self, section: str, key: str) -> dict | None:
        sec = self.data.get(section, {})
        q = sec.get(key)
        return q if isinstance(q, dict) and "value" in q else None

    def value(self, section: str, key: str, default: Any = None) -> Any:
        q = self.quantity(section, key)
        return default if q is None else q["value"]

    def core_limit(self, key: str, default: Any = None) -> Any:
        return self.value("core", key, default)

    @property
    def title(self) -> str:
        return self.data["title"]

    @property
    def cost_model(self) -> str:
        return self.data["cost_model"]

    @property
    def cores_per_chip(self) -> int:
        return int(self.value("chip", "cores"))

    @property
    def operations(self) -> list[str]:
        return list(self.data["features"]["operations"])

    @property
    def neuron_models(self) -> list[str]:
        return list(self.data["features"]["neuron_models"])

    @property
    def attention(self) -> dict:
        return dict(self.data["features"]["attention"])

    @property
    def pack_populations(self) -> bool:
        return bool(self.data["mapping"]["pack_populations"]["value"])

    @property
    def tiling(self) -> str:
        return self.data["mapping"]["tiling"]

    @property
    def systems(self) -> list[tuple[str, int]]:
        """(name, chips), smallest first."""
        return sorted(((s["name"], int(s["chips"]["value"])) for s in self.data["systems"]), key=lambda s: s[1])

    def energy(self, key: str) -> float | None:
        v = self.value("energy", key)
        return None if v is None else float(v)

    def sources(self) -> list[dict]:
        """Every quantity as {key, value, unit, source, confidence, note} (for reports)."""
        out = []

        def walk(prefix, node):
            if isinstance(node, dict):
                if "value" in node and "source" in node:
                    out.append({"key": prefix, **{k: node.get(k) for k in ("value", "unit", "source", "confidence", "note")}})
                    return
                for k, v in node.items():
                    walk(f"{prefix}.{k}" if prefix else k, v)
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    walk(f"{prefix}[{i}]", v)

        walk("", self.data)
        return out

    # -- confidence (reports) ----------------------------------------------------------------------------
    def source_of(self, key: str) -> dict | None:
        """The quantity at dotted ``key`` (``core.neurons``, ``systems[1].chips``, ``features.attention``) as
        {key, value, unit, source, confidence, note}, or None if the profile has no such quantity."""
        node: Any = self.data
        for part in key.replace("[", ".[").split("."):
            if part.startswith("["):
                i = int(part[1:-1])
                node = node[i] if isinstance(node, list) and i < len(node) else None
            else:
                node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                return None
        if not isinstance(node, dict) or "confidence" not in node:
            return None
        return {"key": key, **{k: node.get(k) for k in ("value", "unit", "source", "confidence", "note")}}

    def verdict_keys(self, resources=()) -> list[str]:
        """Dotted keys of the numbers a chip-fit verdict on this profile rests on: the per-core limits of
        ``resources`` (default: every core limit), chip.cores, every system's chip count, the synapse
        accounting of the cost model and the packing rule."""
        core = self.data.get("core", {})
        keys = [f"core.{r}" for r in (resources or core) if r in core]
        keys.append("chip.cores")
        keys += [f"systems[{i}].chips" for i in range(len(self.data.get("systems", [])))]
        keys += [f"synapse_accounting.{k}" for k, q in self.data.get("synapse_accounting", {}).items()
                 if isinstance(q, dict) and "confidence" in q]
        keys.append("mapping.pack_populations")
        return [k for k in keys if self.source_of(k) is not None]

    @staticmethod
    def weakest(entries: list[dict]) -> dict | None:
        """The entry with the weakest confidence (CONFIDENCE_ORDER, strongest first); None for none."""
        rank = {c: i for i, c in enumerate(CONFIDENCE_ORDER)}
        entries = [e for e in entries if e]
        return max(entries, key=lambda e: rank.get(e.get("confidence"), len(rank)), default=None)


@lru_cache(maxsize=1)
def _schema() -> dict:
    text = resources.files(PROFILE_PACKAGE).joinpath("schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def _dotted(path) -> str:
    parts = []
    for p in path:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "<top level>"


#: per-core limits each cost model reads (neurodeploy.mapping.costs)
REQUIRED_CORE_KEYS = {
    "loihi2": ("neurons", "input_axons", "synapse_memory"),
    "loihi1": ("neurons", "input_axons", "synapse_memory"),
    "spinnaker2": ("neurons", "synapse_memory"),
    "crossbar": ("neurons", "input_axons"),
    "dynapcnn": ("kernel_memory", "neuron_memory", "bias_memory", "kernel_size", "channels", "fan_out"),
    "xylo": ("input_channels", "hidden_neurons", "output_neurons"),
    "akida": ("weight_memory",),
}
LIST_KEYS = {"kernel_memory", "neuron_memory"}


#: sections whose numbers are capacities or widths: each must be >= 1 (a 0 would divide by zero later)
POSITIVE_SECTIONS = ("core", "chip")
POSITIVE_PRECISION = ("weight_bits", "state_bits", "spike_payload_bits")


#: the plausible range of every number in a profile, by dotted key (fnmatch pattern; the first match wins),
#: with the reason.  A value outside is a typo or a unit mistake (1e12 cores, 1e300 pJ), refused naming the
#: file and key; the bounds leave 100x or more room above the largest figure in the built-in profiles.
PLAUSIBLE_RANGES: tuple[tuple[str, float, float, str], ...] = (
    ("chip.cores", 1, 2**20, "the most cores on a chip is 4,096 (TrueNorth)"),
    ("chip.*", 1, 10**13, "a chip's capacity: the largest built in is 2.7e8 synapses (TrueNorth)"),
    ("core.*", 1, 2**32, "a core's capacity: the largest built in is 1,048,576 bits of synapse memory (Loihi)"),
    ("precision.*_bits", 1, 64, "a bit width: at most a 64-bit word"),
    ("precision.delay_max", 0, 2**16, "a delay in time steps: Loihi 2 allows 63"),
    ("precision.*", 0, 2**32, "a precision figure"),
    ("synapse_accounting.*", 0, 4096, "a packing factor, word or header size: the largest built in is a 64-bit word"),
    ("systems[[]*[]].chips", 1, 10**6, "chips in a system: the largest built in is 70,000 (SpiNNaker 2 goal machine)"),
    ("energy.*_pj", 0, 10**6, "energy per operation in pJ: published figures are 6.8 to 52 pJ"),
    ("energy.*_mj", 0, 10**6, "energy per step in mJ: Loihi 2 PilotNet takes 1.66 mJ"),
    ("energy.*_w", 0, 10**4, "power in W: the chips draw 0.03 to 0.23 W"),
    ("energy.*_s", 0, 3600, "a time step in s: 1 to 2.45 ms built in"),
    ("*", 0, 10**15, "a profile number"),
)


def plausible_range(key: str) -> tuple[float, float, str]:
    """(lowest, highest, reason) for the number at dotted ``key`` (``PLAUSIBLE_RANGES``)."""
    for pattern, lo, hi, why in PLAUSIBLE_RANGES:
        if fnmatch.fnmatchcase(key, pattern):
            return lo, hi, why
    raise AssertionError("PLAUSIBLE_RANGES ends with '*'")  # pragma: no cover


def _check_plausible(data: dict, where: str) -> None:
    """Every quantity's number(s) within ``plausible_range`` of its key."""
    quantities = [(f"{sec}.{k}", q) for sec in ("chip", "core", "precision", "synapse_accounting", "energy")
                  for k, q in (data.get(sec) or {}).items()]
    quantities += [(f"systems[{i}].chips", s.get("chips")) for i, s in enumerate(data.get("systems") or [])]
    for key, q in quantities:
        if not isinstance(q, dict) or "value" not in q:
            continue
        v = q["value"]
        for x in v if isinstance(v, list) else [v]:
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                continue
            lo, hi, why = plausible_range(key)
            if not lo <= x <= hi:
                raise BadInputError(f"hardware profile {where}: key {key}: {x!r} is outside the plausible range "
                                    f"[{lo:,}, {hi:,}] ({why})")


def _check_finite(node, path, where: str) -> None:
    """TOML allows nan and inf; JSON Schema's ``minimum`` lets NaN through: refuse them by key."""
    stack = [(node, path)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            stack.extend((v, (*path, k)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            raise BadInputError(f"hardware profile {where}: key {_dotted(path)}: {node!r} is not a finite number")


def validate_profile(data: dict, where: str) -> None:
    """Schema check plus the consistency rules a schema cannot say.  Raises BadInputError."""
    if not isinstance(data, dict):
        raise BadInputError(f"hardware profile {where}: expected a TOML table")
    _check_finite(data, (), where)
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(list(e.absolute_path)), list(map(str, e.absolute_path))))
    if errors:
        err = errors[0]
        # a oneOf/anyOf failure names the container; prefer the deepest sub-error for the key
        best = err
        for sub in err.context or []:
            if len(list(sub.absolute_path)) > len(list(best.absolute_path)):
                best = sub
        key = _dotted(best.absolute_path)
        raise BadInputError(f"hardware profile {where}: key {key}: {best.message}")
    cores = data["chip"]["cores"]["value"]
    if not isinstance(cores, (int, float)) or isinstance(cores, bool) or cores < 1 or int(cores) != cores:
        raise BadInputError(f"hardware profile {where}: key chip.cores: must be a positive integer, got {cores!r}")
    for sec in ("core", "chip"):
        for key, q in data[sec].items():
            v = q["value"]
            if isinstance(v, list) and len(v) != int(cores):
                raise BadInputError(
                    f"hardware profile {where}: key {sec}.{key}: per-core list has {len(v)} entries, chip.cores is {int(cores)}")
    for sec in POSITIVE_SECTIONS:
        for key, q in data[sec].items():
            v = q["value"]
            vals = v if isinstance(v, list) else [v]
            if any(isinstance(x, bool) or not x >= 1 for x in vals):
                raise BadInputError(f"hardware profile {where}: key {sec}.{key}: must be >= 1, got {v!r}"[:300])
    for key in POSITIVE_PRECISION:
        v = data["precision"][key]["value"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 1:
            raise BadInputError(f"hardware profile {where}: key precision.{key}: must be a number >= 1, got {v!r}")
    for key in REQUIRED_CORE_KEYS.get(data["cost_model"], ()):
        if key not in data["core"]:
            raise BadInputError(f"hardware profile {where}: key core.{key}: required by cost_model "
                                f"'{data['cost_model']}' but missing")
        v = data["core"][key]["value"]
        if isinstance(v, bool) or (key in LIST_KEYS) != isinstance(v, list):
            want = f"a list of {int(cores)} numbers (one per core)" if key in LIST_KEYS else "a number"
            raise BadInputError(f"hardware profile {where}: key core.{key}.value: must be {want}")
    for i, s in enumerate(data["systems"]):
        c = s["chips"]["value"]
        if isinstance(c, bool) or not isinstance(c, (int, float)) or c < 1 or int(c) != c:
            raise BadInputError(f"hardware profile {where}: key systems[{i}].chips: must be a positive integer, got {c!r}")
    _check_plausible(data, where)


def builtin_names() -> list[str]:
    root = resources.files(PROFILE_PACKAGE)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def _parse(text: str, where: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"hardware profile {where}: not valid TOML: {exc}") from None


def load_profile_file(path: str | Path) -> Profile:
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"hardware profile {p}: no such file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"hardware profile {p}: cannot read: {exc}") from None
    data = _parse(text, str(p))
    validate_profile(data, str(p))
    return Profile(name=data["name"], path=str(p), data=data)


@lru_cache(maxsize=None)
def _load_builtin(name: str) -> Profile:
    res = resources.files(PROFILE_PACKAGE).joinpath(f"{name}.toml")
    where = f"{name}.toml (built in)"
    data = _parse(res.read_text(encoding="utf-8"), where)
    validate_profile(data, where)
    if data["name"] != name:
        raise BadInputError(f"hardware profile {where}: key name: {data['name']!r} does not match the file name")
    return Profile(name=name, path=str(res), data=data)


def load_profile(name_or_path: str | Path) -> Profile:
    """A built-in target name (``loihi2``) or a path to a TOML profile."""
    s = str(name_or_path)
    if s in builtin_names():
        return _load_builtin(s)
    if s.endswith(".toml") or "/" in s or Path(s).exists():
        return load_profile_file(s)
    raise BadInputError(f"unknown target {s!r}; built-in targets: {', '.join(builtin_names())} (or a .toml profile path)")


def load_profiles(targets: list[str] | None = None, extra_files: list[str] | None = None) -> list[Profile]:
    """Built-in ``targets`` plus user profile files; a user file overrides a built-in of the same name."""
    user = [load_profile_file(f) for f in (extra_files or [])]
    by_name = {p.name: p for p in user}
    out: list[Profile] = []
    for t in dict.fromkeys(targets or []):  # a target named twice is mapped once
        out.append(by_name.pop(t) if t in by_name else load_profile(t))
    out.extend(by_name.values())
    return out
