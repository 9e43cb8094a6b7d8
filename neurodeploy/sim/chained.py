"""Our engine in chained mode (:mod:`neurodeploy.lower.chain`): many samples back to back in one run, what
:func:`neurodeploy.lava.run.run_lava_chained` computes in Lava.  (Here, not in ``lower/``: the lowering
imports no simulator.)"""
from __future__ import annotations

import torch

from ..lower.chain import chain_inputs, chain_network
from ..lower.network import LoweredNetwork
from .engine import Engine


def simulate_chained(net: LoweredNetwork, inputs: dict, period: int | None = None, record=None,
                     device="cpu", conv_as_sparse: bool = False, progress=None):
    """Our engine in chained mode (batch 1, ``B*period`` steps): what :func:`run_lava_chained` computes.
    Returns ``(chained network, {pop: {key: numpy [B*period, 1, n]}})``."""
    chained = chain_network(net, period, conv_as_sparse=conv_as_sparse)
    cin = chain_inputs(chained, inputs)
    steps = next(iter(cin.values())).shape[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # batch 1: threads only add synchronisation (and suffer on busy machines)
    try:
        res = Engine(chained, device=device).run(cin, steps, record=record, progress=progress)
    finally:
        torch.set_num_threads(threads)
    return chained, {n: {k: t.cpu().numpy() for k, t in r.items()} for n, r in res.items()}
