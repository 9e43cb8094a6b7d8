"""Options shared by the commands that run a model on data (check, simulate, export, report)."""
from __future__ import annotations

import argparse

from ..lower.attention_graded import ATTENTION_SCHEDULES


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


    parser.add_argument("--attention-schedule", choices=ATTENTION_SCHEDULES, default=None,
                        help="loihi2: how the attention is built (all exact): parallel (default) or packed "
                             "(channels packed into 24-bit graded words: half the product neurons or fewer, "
                             "4 steps more latency; docs/lowering.md, 'Attention schedules')")


def lowering_options(args: argparse.Namespace) -> dict:
    out = {"split_signs": True} if getattr(args, "split_signs", False) else {}
    if getattr(args, "attention_schedule", None):
        out["attention_schedule"] = args.attention_schedule
    return out
