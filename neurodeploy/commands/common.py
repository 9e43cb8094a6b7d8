"""Options shared by the commands that run a model on data (check, simulate, export, report)."""
from __future__ import annotations

import argparse

from ..deploy.configs import check_max_chips, resolve_system
from ..errors import BadInputError
from ..profiles import load_profiles


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
    parser.add_argument("-T", "--steps", "--time-steps", type=int, default=None, dest="steps", metavar="N",
                        help="time steps per sample for static data and event files (default: the data's time "
                             "axis, else the model's)")
    if dt:
        parser.add_argument("--dt", type=float, default=None, metavar="SECONDS",
                            help="the simulation step of the graph's neuron equations, in seconds (NIR files carry "
                                 "none: default the graph's neurodeploy.dt metadata, else 1e-4); recorded in "
                                 "OUT/model.nir")


def add_lowering_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the targets' lowerings, the same in export, simulate and report; :func:`lowering_options`
    turns them into ``Deployment.build(lowering=...)``."""
    parser.add_argument("--split-signs", action="store_true",
                        help="loihi2: every mixed-sign spike group becomes an excitatory and an inhibitory group "
                             "(one more bit of weight resolution, one more synapse group each; docs/lowering.md)")


def add_budget_arguments(parser: argparse.ArgumentParser, max_chips: bool = True) -> None:
    """``--max-chips N`` and ``--system NAME`` (export, report): the Loihi 2 lowering tries its candidate
    configurations and keeps the lowest-latency one that fits (neurodeploy/deploy/configs.py).
    ``max_chips=False``: the command already has ``--max-chips``."""
    if max_chips:
        parser.add_argument("--max-chips", type=int, default=None, metavar="N",
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
