"""Lava == our engine at full depth, one slice at a time (:mod:`neurodeploy.lower.slices` gives the argument).

A whole full-depth Spikingformer is hundreds of Lava processes (one OS process each) and does not run on a
small machine in useful time.  :func:`check_slices` runs each slice of the network as its own Lava process
graph, fed with the messages its outside sources sent in our engine's run of the WHOLE network, and
compares every member's spikes / u / v with that same whole-network run, bit for bit, every step.
"""
from __future__ import annotations

import time

import numpy as np

from ..lower.chain import SPARSE_CONV_MAX, convs_as_sparse
from ..lower.slices import cut_network, lava_process_count, replay_inputs
from .run import LavaNetwork


def compare_recordings(names, got: dict, want: dict) -> str:
    """'' when ``got`` equals ``want`` on every recorded key of every name, else where it first differs."""
    for name in names:
        if name not in got:
            return f"{name}: not recorded"
        for key, ref in want[name].items():
            a = got[name].get(key)
            if a is None or a.shape != np.shape(ref):
                return f"{name}.{key}: shape {None if a is None else a.shape} vs {np.shape(ref)}"
            bad = np.argwhere(a != ref)
            if bad.size:
                return f"{name}.{key} differs first at (step, sample, neuron) {bad[0].tolist()}"
    return ""


def check_slices(net, inputs: dict, steps: int, recorded: dict, slices, progress=None, chunk=None,
                 conv_as_sparse: bool = False, sparse_max: int = SPARSE_CONV_MAX) -> list:
    """Run every slice (lists of population names) in Lava with replayed inputs and compare it with
    ``recorded`` (our engine's whole-network run of one sample, every population recorded:
    ``{pop: {"s"|"u"|"v": [steps, 1, n]}}``).  Returns one dict per slice: ``members``, ``processes``
    (Lava processes built), ``seconds`` (build + run), ``mismatch`` ('' when bit-exact).
    ``progress(i, report)`` is called after each slice.

    ``conv_as_sparse``: in Lava, conv groups run as ``Sparse`` processes with the same integer connections
    where exact (:func:`neurodeploy.lower.chain.convs_as_sparse`, as :func:`neurodeploy.lava.run.run_lava_chained`
    does); the reference stays the engine's run of the network with its convs.  Lava 0.10.0's CPU ``Conv``
    model loops over C_in x C_out ``scipy.signal.convolve2d`` calls every step (its torch path is switched
    off in its source): about 2 s per step for one 384 x 384 1x1 conv on 16 tokens on 2 cores.  Conv groups
    with more than ``sparse_max`` connections stay Lava ``Conv`` processes (memory: a Lava ``Sparse`` holds
    about 12 bytes per connection, plus its model's copies)."""
    out = []
    for i, members in enumerate(slices):
        t0 = time.perf_counter()
        piece = cut_network(net, members)
        if conv_as_sparse:
            piece = convs_as_sparse(piece, sparse_max)
        rec = [m for m in members if not (piece.pop(m).kind == "input" and piece.pop(m).input_kind == "bias")]
        lnet = LavaNetwork(piece, replay_inputs(piece, recorded, inputs), steps, record=rec,
                           delay_lines=True)
        t_build = time.perf_counter() - t0
        got = lnet.run(chunk=chunk)
        rep = {"members": list(members), "processes": lava_process_count(net, members),
               "seconds": round(time.perf_counter() - t0, 2), "build_s": round(t_build, 2),
               "first_run_s": round(lnet.timing["first_s"], 2), "rest_run_s": round(lnet.timing["rest_s"], 2),
               "mismatch": compare_recordings(rec, got, recorded)}
        out.append(rep)
        if progress is not None:
            progress(i, rep)
    return out
