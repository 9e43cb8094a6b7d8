"""Candidate lowering configurations and the chip budget (issue 28, "fit to a budget").

A :class:`LoweringConfig` names one way of building the same network exactly (every candidate gives the same
output spikes, later or earlier by its latency): today the residual stream built once (``relay``: one graded
relay per stream value, synapse memory linear in depth, one step per stream value) or expanded (every LIF
of the stream holds every earlier branch: fewer steps, synapse memory quadratic in depth).  The search
(:meth:`neurodeploy.deploy.loihi2.Loihi2Target.lower` with a budget) lowers, maps and records every
candidate of :data:`CANDIDATES` and keeps the lowest-latency one that fits.  Adding a lowering option to the
search is one line here (e.g. an attention schedule: ``LoweringConfig("serial attention",
attention_schedule="serial")``, passed to ``lower_graph(attention_schedule=...)``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..errors import BadInputError

#: the largest chip budget accepted (--max-chips): far above every system in the profiles (Hala Point: 1,152)
MAX_CHIPS_LIMIT = 1_000_000


@dataclass(frozen=True)
class LoweringConfig:
    name: str
    residual_stream: str = "relay"          # lower_graph(residual_stream=...): relay | expanded
    attention_schedule: str = "parallel"    # lower_graph(attention_schedule=...): ATTENTION_SCHEDULES

    def lower_kwargs(self) -> dict:
        """Keyword arguments of :func:`neurodeploy.lower.loihi2.lower_graph` (defaults left out, so a
        lowering that does not know an option is only asked for it by a candidate that uses it)."""
        kw = {"residual_stream": self.residual_stream}
        if self.attention_schedule != "parallel":
            kw["attention_schedule"] = self.attention_schedule
        return kw

    def to_dict(self) -> dict:
        return asdict(self)


#: without a budget: the residual stream built once, token-parallel attention (the fewest chips of the forms
#: built today for every Spikingformer; one more step per stream value)
DEFAULT = LoweringConfig("stream built once", residual_stream="relay")

#: what a budget search tries, in this order (ties in latency and chips: the earlier one)
CANDIDATES = [
    DEFAULT,
    LoweringConfig("stream expanded", residual_stream="expanded"),
    LoweringConfig("stream built once, packed attention", residual_stream="relay", attention_schedule="packed"),
    LoweringConfig("stream expanded, packed attention", residual_stream="expanded", attention_schedule="packed"),
]


#: tried by a budget search only when no candidate of :data:`CANDIDATES` fits, in this order (latency grows
#: down the list), stopping at the first that fits (so the lowest latency that fits): the repacked twins of the
#: packed candidates (stage 1 at 3 digits per word: fewer product neurons, 3 steps more per block), then the
#: token-tiled attention at a lower sample rate (8, 4, 2 tokens per tile: a bank of product neurons reused by
#: the tiles, + 2 (N/G - 1) T steps per block; docs/lowering.md, "Token tiles").  When none fits, the refusal
#: names the smallest exact configuration of all.  Not with ``--attention-schedule``.
FALLBACK = [
    LoweringConfig("stream built once, repacked attention", residual_stream="relay", attention_schedule="repacked"),
    LoweringConfig("stream expanded, repacked attention", residual_stream="expanded", attention_schedule="repacked"),
    LoweringConfig("stream built once, tiled-8 attention", residual_stream="relay", attention_schedule="tiled-8"),
    LoweringConfig("stream built once, tiled-4 attention", residual_stream="relay", attention_schedule="tiled-4"),
    LoweringConfig("stream built once, tiled-2 attention", residual_stream="relay", attention_schedule="tiled-2"),
]


def with_schedule(cfg: LoweringConfig, schedule: str | None) -> LoweringConfig:
    """``cfg`` with the attention schedule the user fixed (``--attention-schedule``), or ``cfg`` itself."""
    if not schedule or schedule == cfg.attention_schedule:
        return cfg
    return replace(cfg, name=f"{cfg.name}, {schedule} attention", attention_schedule=schedule)


def candidates(schedule: str | None = None) -> list[LoweringConfig]:
    """The candidates a budget search tries: all of :data:`CANDIDATES`, or those with the attention schedule
    the user fixed (``--attention-schedule``; a schedule no candidate has, e.g. ``repacked``: each stream form
    with it)."""
    if schedule and not any(c.attention_schedule == schedule for c in CANDIDATES):
        return [with_schedule(c, schedule) for c in CANDIDATES if c.attention_schedule == DEFAULT.attention_schedule]
    return [c for c in CANDIDATES if not schedule or c.attention_schedule == schedule]


def config_by_name(name: str) -> LoweringConfig:
    for c in CANDIDATES + FALLBACK:
        if c.name == name:
            return c
    raise BadInputError(f"unknown lowering configuration {name!r} (known: {', '.join(c.name for c in CANDIDATES)})")


def system_slug(name: str) -> str:
    """'Kapoho Point' -> 'kapoho-point' (how --system names a system)."""
    return "-".join(str(name).lower().split())


def check_max_chips(value, option: str = "--max-chips") -> int | None:
    """A chip budget: an integer 1..MAX_CHIPS_LIMIT (else BadInputError naming the option)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInputError(f"{option} must be an integer >= 1, got {value!r}")
    if value > MAX_CHIPS_LIMIT:
        raise BadInputError(f"{option} {value} is more than {MAX_CHIPS_LIMIT:,} chips (no system is that large)")
    return int(value)


def resolve_system(name: str | None, profile, option: str = "--system") -> tuple[str, int] | None:
    """``(system name, chips)`` of the system named ``name`` (slug or title, any case) in ``profile``'s systems,
    or BadInputError naming the option and the known systems."""
    if name is None:
        return None
    systems = list(profile.systems)
    for sname, chips in systems:
        if system_slug(sname) == system_slug(name):
            return sname, int(chips)
    known = ", ".join(system_slug(s) for s, _ in systems) or "none"
    raise BadInputError(f"{option} {name!r}: not a {profile.name} system (known: {known})")


def chip_budget(lowering: dict, profile) -> tuple[int, str] | None:
    """The chip budget of a deployment's lowering options (``max_chips``, ``system``; both: the smaller) and
    a label for it, or None (no budget)."""
    mc = check_max_chips(lowering.get("max_chips"))
    sysr = resolve_system(lowering.get("system"), profile) if lowering.get("system") else None
    if mc is None and sysr is None:
        return None
    if sysr is not None and (mc is None or sysr[1] <= mc):
        return sysr[1], f"{sysr[0]} ({sysr[1]} chip{'s' if sysr[1] != 1 else ''})"
    return mc, f"{mc} chip{'s' if mc != 1 else ''}"


def config_energy(rows: list, estimate: dict | None, profile) -> None:
    """Energy per inference of each configuration row (in place; ``energy_uj``, None without a target
    estimate): the target estimate's synaptic part (the model's synaptic ops at the firing rates: the same
    for every exact configuration), plus every built neuron updated every step of the configuration's
    latency (T + pipeline depth) at ``neuron_update_pj``, plus static power x step time x that latency x
    chips.  Graded relay traffic is not priced separately (as in the target estimate)."""
    for r in rows:
        r["energy_uj"] = None
        if estimate is None or "latency_steps" not in r:
            continue
        nu_pj = profile.energy("neuron_update_pj") or 0.0
        static_w, step_s = profile.energy("static_power_w"), profile.energy("step_time_s")
        e = estimate["breakdown_uj"]["synaptic"] + r["neurons"] * r["latency_steps"] * nu_pj * 1e-6
        if static_w is not None and step_s is not None:
            e += static_w * step_s * r["latency_steps"] * max(1, r["chips"]) * 1e6
        r["energy_uj"] = round(float(e), 4)
