"""Full-size runs of our engine: the batch is split into chunks that fit a memory budget.

:func:`simulate_batched` prepares ONE :class:`~neurodeploy.sim.engine.Engine` (weights converted once)
and runs the samples in chunks of ``chunk`` samples, where ``chunk`` is the largest batch whose estimated
working memory (:func:`memory_estimate`) fits ``max_memory`` bytes next to the prepared weights.  Every
chunk is an independent run (samples never interact), so the result equals one run over the whole batch,
integer for integer.  Results are moved to the host after each chunk (numpy), so device memory holds one
chunk at a time; ``device`` may be ``"cuda"`` (same code, no CPU-only path).  Only the populations in
``record`` are recorded (default: the network's outputs); ``record="all"`` records every layer (memory:
``steps x neurons x 3 x 8`` bytes per sample, counted in the estimate).  ``progress=True`` shows a tqdm
bar over all steps of all chunks (or pass a callable taking the number of steps done).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import BadInputError
from ..lower.network import LoweredNetwork
from .engine import Engine

#: default memory budget of a batched run (bytes): working memory of the chunk plus the prepared weights
DEFAULT_MAX_MEMORY = 4 << 30


def _weight_bytes(engine: Engine) -> int:
    total = 0
    for groups in engine.out_groups.values():
        for g in groups:
            for _, _, w in g.parts:
                if not torch.is_tensor(w):      # None, or an einsum group (one scalar weight)
                    continue
                if w.layout == torch.sparse_csr:
                    total += sum(t.numel() * t.element_size() for t in (w.crow_indices(), w.col_indices(),
                                                                          w.values()))
                else:
                    total += w.numel() * w.element_size()
    return total


def memory_estimate(engine: Engine, steps: int, record=None, input_steps: int | None = None) -> tuple:
    """``(fixed, per_sample)`` bytes of :meth:`Engine.run` (an upper estimate): ``fixed`` the prepared
    weights; ``per_sample`` the state of every population (u, v and scratch, float64 at worst), its ring
    buffer of pending input, the conv work buffers (im2col: C_in/groups x kH x kW per output position),
    the inputs (``input_steps`` x neurons, three copies) and the recordings (steps x neurons x s/u/v in
    int64, preallocated once per run, plus a copy when the results are moved to the host)."""
    net = engine.net
    rec = set(p.name for p in net.populations) if record in ("all", True) else set(record or net.outputs)
    T_in = int(input_steps or steps)
    per = 0
    for p in net.populations:
        n = p.size
        if p.kind == "input":
            per += n * 8 * (1 if p.input_kind == "bias" else 3 * T_in)
        else:
            per += n * 8 * (4 + engine.ring_len[p.name])
        if p.name in rec and p.input_kind != "bias":
            per += 2 * steps * n * (1 if p.kind == "input" else 3) * 8
    for groups in engine.out_groups.values():
        for g in groups:
            s = g.syn
            dst = engine.pops[s.dst].size
            per += dst * 8 * 2                           # the contribution and its dtype copy
            if s.kind == "conv":
                kk = int(np.prod(np.shape(s.weights)[1:]))
                per += dst // max(1, int(np.shape(s.weights)[0])) * kk * 8
    for a in net.attention:
        per += a.heads * (a.dim // a.heads) ** 2 * 8 + a.dim * a.tokens * 8 * 3
    return _weight_bytes(engine), int(per)


def chunk_size(engine: Engine, steps: int, max_memory: int = DEFAULT_MAX_MEMORY, record=None,
               input_steps: int | None = None) -> int:
    """The largest batch whose estimated memory fits ``max_memory`` (at least 1)."""
    fixed, per = memory_estimate(engine, steps, record, input_steps)
    return max(1, int((int(max_memory) - fixed) // max(per, 1)))


def _batch_of(net: LoweredNetwork, inputs: dict) -> int:
    B = None
    for p in net.inputs:
        if p.name not in inputs:
            raise BadInputError(f"input population '{p.name}': no data given")
        x = inputs[p.name]
        b = int(x.shape[0] if p.input_kind == "bias" else x.shape[1])
        if B is not None and b != B:
            raise BadInputError(f"input '{p.name}': batch {b} differs from {B}")
        B = b
    return B or 1


def _slice(net: LoweredNetwork, inputs: dict, i: int, j: int) -> dict:
    out = {}
    for p in net.inputs:
        x = inputs[p.name]
        out[p.name] = x[i:j] if p.input_kind == "bias" else x[:, i:j]
    return out


def simulate_batched(net: LoweredNetwork, inputs: dict, steps: int, record=None, device="cpu",
                     max_memory: int = DEFAULT_MAX_MEMORY, progress=False, pipelined: bool = True,
                     threads: int | None = None, engine: Engine | None = None) -> dict:
    """Our engine over a batch of any size in chunks that fit ``max_memory`` bytes; numpy results
    ``{pop: {"s"|"u"|"v": array [steps, B, n]}}`` equal to one :func:`~neurodeploy.sim.engine.simulate`
    call over the whole batch.  ``inputs`` as for :meth:`Engine.run`.  ``engine``: a prepared engine of
    ``net`` to reuse (its device and threads apply).  :func:`chunk_size` gives the chunk it uses."""
    eng = engine or Engine(net, device=device, pipelined=pipelined, threads=threads)
    B = _batch_of(net, inputs)
    T_in = max((int(inputs[p.name].shape[0]) for p in net.inputs if p.input_kind != "bias"), default=steps)
    chunk = min(B, chunk_size(eng, steps, max_memory, record, T_in))
    n_chunks = math.ceil(B / chunk)
    bar, cb = None, None
    if progress is True:
        from tqdm import tqdm
        bar = tqdm(total=steps * n_chunks, unit="step", desc=f"engine ({B} samples, {n_chunks} chunks)")
        cb = bar.update
    elif callable(progress):
        cb = progress
    parts = []
    try:
        for i in range(0, B, chunk):
            res = eng.run(_slice(net, inputs, i, min(B, i + chunk)), steps, record=record, progress=cb)
            parts.append({n: {k: t.cpu().numpy() for k, t in r.items()} for n, r in res.items()})
            del res
    finally:
        if bar is not None:
            bar.close()
    if len(parts) == 1:
        return parts[0]
    return {n: {k: np.concatenate([p[n][k] for p in parts], axis=1) for k in parts[0][n]} for n in parts[0]}
