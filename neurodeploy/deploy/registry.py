"""The target registry: one :class:`Target` per deployable chip, looked up by the profile's name.

A target turns the annotated deployment (NIR graph, samples, purity, firing rates) into an *artifact* (what
would be loaded onto the chip), simulates that artifact, maps it onto cores and chips, and writes / reads it.
The report, ``export``, ``simulate`` and ``report`` only go through this interface, so a new chip is one
module (a :class:`Target` subclass passed to :func:`register_target`) plus one TOML profile
(``hardware_profiles/<name>.toml`` or ``--profile FILE``).  A profile with no registered target gets
:class:`ProfileTarget`: it maps the NIR graph with the profile's cost model and has no simulator.

Targets from other packages can register themselves through the ``neurodeploy.targets`` entry-point group
(``name = "package.module:TargetClass"``), loaded on first lookup (the PyTorch / pytest plugin convention).
"""
from __future__ import annotations

from importlib import metadata

from ..errors import BadInputError
from .loihi2 import Loihi2Target
from .profile_target import ProfileTarget
from .speck import SpeckTarget
from .target import Target
from .xylo import CHIPS as XYLO_CHIPS, XyloTarget

_REGISTRY: dict[str, type[Target] | Target] = {}
_ENTRY_POINTS_LOADED = False
ENTRY_POINT_GROUP = "neurodeploy.targets"


def register_target(name: str, target: type[Target] | Target, replace: bool = False) -> None:
    """Register ``target`` (a :class:`Target` subclass or instance) under the profile name ``name``."""
    if not isinstance(name, str) or not name:
        raise BadInputError("register_target: the name must be a non-empty string")
    if not (isinstance(target, Target) or (isinstance(target, type) and issubclass(target, Target))):
        raise BadInputError(f"register_target({name!r}): expected a neurodeploy.deploy.Target subclass or instance")
    if name in _REGISTRY and not replace and _REGISTRY[name] is not target:
        raise BadInputError(f"target {name!r} is already registered (pass replace=True to override it)")
    _REGISTRY[name] = target


def unregister_target(name: str) -> None:
    _REGISTRY.pop(name, None)


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue
        try:
            register_target(ep.name, ep.load())
        except Exception as exc:  # noqa: BLE001 - a broken plugin is named, never a traceback
            raise BadInputError(f"target plug-in {ep.name!r} ({ep.value}): cannot be loaded: {exc}") from None


def registered_targets() -> list[str]:
    _load_builtin()
    _load_entry_points()
    return sorted(_REGISTRY)


def get_target(name: str) -> Target:
    """The target registered under ``name``, or the profile-only default."""
    _load_builtin()
    if name not in _REGISTRY:
        _load_entry_points()
    t = _REGISTRY.get(name)
    if t is None:
        pt = ProfileTarget()
        pt.name = name
        return pt
    inst = t() if isinstance(t, type) else t
    if not inst.name:
        inst.name = name
    return inst


def _load_builtin() -> None:
    _REGISTRY.setdefault("loihi2", Loihi2Target)
    _REGISTRY.setdefault("speck", SpeckTarget)
    for chip in XYLO_CHIPS:
        _REGISTRY.setdefault(chip, XyloTarget)
