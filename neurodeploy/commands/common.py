"""Options shared by the commands that run a model on data (check, simulate, export, report)."""
from __future__ import annotations

import argparse
import difflib
import math

from .. import limits
from ..lower.attention_graded import ATTENTION_SCHEDULES
from ..deploy.configs import check_max_chips, resolve_system
from ..errors import BadInputError
from ..models.registry import arch_names
from ..profiles import builtin_names, load_profile, load_profiles


def add_data_arguments(parser: argparse.ArgumentParser, data: bool = True, dt: bool = True) -> None:
    """``--data FILE``, ``--input-domain binary|counts|real``, ``-T/--steps N`` and ``--dt SECONDS``, the same
    way for every command; turn them into samples with :func:`neurodeploy.data.graph_samples` (``args.data``,
    ``args.steps``, ``args.input_domain``) and apply ``args.dt`` with :func:`neurodeploy.data.apply_dt`.
    ``data=False``: the command already has its own ``--data``; ``dt=False``: the command does not simulate."""
    if data:
        parser.add_argument("--data", default=None, metavar="FILE",
                            help="samples: .npy/.npz/.pt with [N, ...] (static) or [N, T, ...] (event tensors, "
                                 "sequences), or (x, y, t, p) events (.npy/.npz, binned into T frames)")
    parser.add_argument("--input-domain", choices=("binary", "counts", "real"), default=None,
                        help="what the graph input carries (default: the graph's metadata, else real)")
    parser.add_argument("-T", "--steps", "--time-steps", type=positive_int("--steps", limits.MAX_TIME_STEPS), default=None, dest="steps", metavar="N",
                        help="time steps per sample for static data and event files (default: the data's time "
                             "axis, else the model's)")
    if dt:
        parser.add_argument("--dt", type=positive_float("--dt", MAX_DT_S), default=None, metavar="SECONDS",
                            help="the simulation step of the graph's neuron equations, in seconds (NIR files carry "
                                 "none: default the graph's neurodeploy.dt metadata, else 1e-4); recorded in "
                                 "OUT/model.nir")


def add_lowering_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the targets' lowerings, the same in export, simulate and report; :func:`lowering_options`
    turns them into ``Deployment.build(lowering=...)``."""
    parser.add_argument("--split-signs", action="store_true",
                        help="loihi2: every mixed-sign spike group becomes an excitatory and an inhibitory group "
                             "(one more bit of weight resolution, one more synapse group each; docs/lowering.md)")
    parser.add_argument("--stream-scale", choices=("level", "one", "ratio"), default=None,
                        help="loihi2: the integer scale of the residual stream's relays: level (default: each relay "
                             "the largest its own weights and readers allow, a power of two apart), one (one "
                             "scale for the whole stream, set by its largest weight) or ratio (each relay the "
                             "largest it allows, its parent read at an 8-bit weight; docs/lowering.md)")
    parser.add_argument("--attention-schedule", choices=ATTENTION_SCHEDULES, default=None,
                        help="loihi2: how the attention is built (all exact): parallel (default), packed "
                             "(channels packed into 24-bit graded words: half the product neurons or fewer, "
                             "4 steps more latency), repacked (stage 1 at 3 digits per word), or tiled-8 / "
                             "tiled-4 / tiled-2 / serial (G = 8, 4, 2, 1 tokens per tile through one bank of "
                             "product neurons, a new sample every T + latency steps: about N/G times fewer product "
                             "neurons, 2 (N/G - 1) T steps more per block; docs/lowering.md, 'Attention schedules')")


def add_budget_arguments(parser: argparse.ArgumentParser, max_chips: bool = True) -> None:
    """``--max-chips N`` and ``--system NAME`` (export, report): the Loihi 2 lowering tries its candidate
    configurations and keeps the lowest-latency one that fits (neurodeploy/deploy/configs.py).
    ``max_chips=False``: the command already has ``--max-chips``."""
    if max_chips:
        parser.add_argument("--max-chips", type=positive_int("--max-chips", MAX_CHIPS), default=None, metavar="N",
                            help="loihi2: choose the lowest-latency lowering configuration that fits N chips "
                                 "(exit 1 naming the smallest fit when none does)")
    parser.add_argument("--system", default=None, metavar="NAME",
                        help="loihi2: choose the lowest-latency lowering configuration that fits this system "
                             "(oheo-gulch, kapoho-point, hala-point: the profile's systems)")


def lowering_options(args: argparse.Namespace, targets=None, report: bool = False) -> dict:
    """The lowering options of ``args`` (``Deployment.build(lowering=...)``); a chip budget is checked here,
    before any work: ``--max-chips`` 1..1,000,000, ``--system`` a system of the Loihi 2 profile, both only
    with the loihi2 target (``targets``: the command's targets; ``report``: --max-chips is also the report's
    budget for every target, so it is accepted without loihi2)."""
    out = {"split_signs": True} if getattr(args, "split_signs", False) else {}
    if getattr(args, "attention_schedule", None):
        out["attention_schedule"] = args.attention_schedule
    if getattr(args, "stream_scale", None):
        out["stream_scale"] = args.stream_scale
    mc = check_max_chips(getattr(args, "max_chips", None))
    system = getattr(args, "system", None)
    if system is not None:
        if targets is not None and "loihi2" not in targets:
            raise BadInputError(f"--system {system!r}: applies to the loihi2 target (give --target loihi2)")
        resolve_system(system, load_profiles(["loihi2"])[0])
        out["system"] = system
    if mc is not None:
        if targets is not None and "loihi2" not in targets and not report:
            raise BadInputError(f"--max-chips {mc}: applies to the loihi2 target (give --target loihi2)")
        out["max_chips"] = mc
    return out


# -- option values: argparse ``type=`` validators ----------------------------------------------------------
# Each returns a function for ``add_argument(type=...)``: a bad value is argparse's usage error, which the CLI
# prints as one line ``neurodeploy: error: <command>: <message naming the option>`` with exit 2, before any
# file is read or model built.  Rules: docs/reliability.md, "Options".

#: the largest system budget a --max-chips takes: the largest built-in system has 70,000 chips (SpiNNaker 2)
MAX_CHIPS = 10**6
#: the longest --dt: one second (a neuron-equation step; the built-in models use 1e-4 s, NIR tools 1e-3 s)
MAX_DT_S = 1.0
#: the most samples --samples / --limit take: an array's element limit
MAX_SAMPLES = limits.MAX_ARRAY_ELEMENTS
#: the largest --batch of the fast engine (the batch is cut to --max-memory anyway)
MAX_BATCH = 2**20
#: the largest --max-energy-uj: 1 J per inference (the chips' figures are nJ to mJ)
MAX_ENERGY_UJ = 10.0**6
#: the longest --max-minutes: one week (a training budget beyond that is a typo for another unit)
MAX_MINUTES = 7 * 24 * 60


def _number(text: str, name: str, kind: type):
    t = str(text).strip()
    try:
        value = float(t) if kind is float else int(t, 10)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{name} must be {what}, got {t[:40]!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{name} must be a finite number, got {t[:40]}")
    return value


def positive_int(name: str, maximum: int, minimum: int = 1):
    """``type=`` for an integer option in [minimum, maximum] (``--max-chips``, ``--batch``, ``-T``)."""
    def parse(text: str) -> int:
        value = _number(text, name, int)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be >= {minimum}, got {value}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"{name} {str(value)[:30]} exceeds the limit of {maximum:,}")
        return value

    parse.__name__ = "positive_int"
    return parse


def positive_float(name: str, maximum: float):
    """``type=`` for a finite number in (0, maximum] (``--max-energy-uj``, ``--dt``)."""
    def parse(text: str) -> float:
        value = _number(text, name, float)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{name} must be > 0, got {value:g}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"{name} {value:g} exceeds the limit of {maximum:g}")
        return value

    parse.__name__ = "positive_float"
    return parse


def fraction(name: str):
    """``type=`` for a fraction in [0, 1] (``--min-fidelity``)."""
    def parse(text: str) -> float:
        value = _number(text, name, float)
        if not 0.0 <= value <= 1.0:
            raise argparse.ArgumentTypeError(f"{name} must be a fraction in [0, 1], got {value:g}")
        return value

    parse.__name__ = "fraction"
    return parse


def positive_minutes(name: str = "--max-minutes", maximum: float = MAX_MINUTES):
    """``type=`` for a time budget in minutes: finite, > 0, at most a week (``train --max-minutes``)."""
    parse = positive_float(name, maximum)
    parse.__name__ = "positive_minutes"
    return parse


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def known_name(name: str, choices, what: str = "name"):
    """``type=`` for a name from ``choices`` (a list, or a function returning one, called when the option is
    parsed): matched ignoring case, spaces, '-' and '_'; returns the listed spelling.  An unknown name is
    refused listing the close matches (else every choice)."""
    def parse(text: str) -> str:
        known = list(choices() if callable(choices) else choices)
        by_norm = {}
        for c in known:
            by_norm.setdefault(_norm(c), c)
        hit = by_norm.get(_norm(text))
        if hit is not None:
            return hit
        close = difflib.get_close_matches(_norm(text), list(by_norm), n=5, cutoff=0.5)
        shown = [by_norm[c] for c in close] or known
        label = "close matches" if close else "known"
        raise argparse.ArgumentTypeError(f"{name}: unknown {what} {str(text)[:60]!r}; {label}: "
                                         + ", ".join(shown[:20]) + (" ..." if len(shown) > 20 else ""))

    parse.__name__ = "known_name"
    return parse


def arch_name(name: str = "--arch"):
    """``type=`` for an architecture name of :func:`neurodeploy.arch_names` (every family), close matches
    listed when unknown."""
    parse = known_name(name, arch_names, "architecture")
    parse.__name__ = "arch_name"
    return parse


def known_systems() -> list[str]:
    """The names of the systems in the built-in hardware profiles (``[[systems]] name``), in profile order."""
    return list(dict.fromkeys(name for p in builtin_names() for name, _ in load_profile(p).systems))


def system_name(name: str = "--system"):
    """``type=`` for a system name of the built-in hardware profiles (``Hala Point``, ``kapoho-point``)."""
    parse = known_name(name, known_systems, "system")
    parse.__name__ = "system_name"
    return parse
