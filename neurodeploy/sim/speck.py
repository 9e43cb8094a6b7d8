"""Fixed-point simulation of a Speck integer network (:mod:`neurodeploy.lower.speck`), time-stepped.

Per layer and step: ``v += conv(x) + b``; ``s = floor(v / thr)`` where ``v > 0`` else 0; ``v -= s * thr``;
``v = max(v, min_v)``; the output is ``s`` sum-pooled.  Integers throughout (int64 state; the conv runs in
float64, exact for integer sums below 2^53).  This is the arithmetic of sinabs' discretized CPU forward
(``DynapcnnNetwork(..., discretize=True)``), which runs it in float32: the two agree spike for spike while
every membrane value stays below 2^24 in magnitude (tests/test_speck.py checks equality on every network it
generates).  Like sinabs' forward, the state is not saturated at 16 bits.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def run(net, x, record: bool = False):
    """Spike counts of the last layer, int64 ``[B, T, C, H, W]`` for events ``x`` ``[B, T, C, H, W]`` (or
    ``[B, T, N]`` for a (N, 1, 1) input); with ``record`` also every layer's output ``{name: array}``."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x.reshape(x.shape + (1, 1))
    if x.ndim != 5 or tuple(x.shape[2:]) != tuple(net.input_shape):
        raise ValueError(f"Speck input must be [B, T, {', '.join(map(str, net.input_shape))}], got {list(x.shape)}")
    B, T = x.shape[:2]
    cur = torch.as_tensor(x.reshape((B * T,) + x.shape[2:]), dtype=torch.float64)
    rec = {}
    for L in net.layers:
        w = torch.as_tensor(L.weight, dtype=torch.float64)
        b = torch.as_tensor(L.bias, dtype=torch.float64) if L.bias is not None else None
        inp = F.conv2d(cur, w, b, stride=L.stride, padding=L.padding).to(torch.int64)
        inp = inp.reshape((B, T) + inp.shape[1:])
        v = torch.zeros_like(inp[:, 0])
        out = torch.empty_like(inp)
        thr, lo = int(L.threshold), int(L.min_v_mem)
        for t in range(T):
            v += inp[:, t]
            s = torch.where(v > 0, torch.div(v, thr, rounding_mode="floor"), torch.zeros_like(v))
            v -= s * thr
            torch.clamp_(v, min=lo)
            out[:, t] = s
        spk = out.reshape((B * T,) + out.shape[2:])
        if L.pool > 1:
            spk = (F.avg_pool2d(spk.to(torch.float64), L.pool) * (L.pool * L.pool)).round().to(torch.int64)
        cur = spk.to(torch.float64)
        if record:
            rec[L.name] = spk.reshape((B, T) + spk.shape[1:]).numpy()
    res = cur.to(torch.int64).reshape((B, T) + tuple(cur.shape[1:])).numpy()
    return (res, rec) if record else res


def predict(net, x) -> np.ndarray:
    """Class = the output channel with the most spikes over all steps (first on ties)."""
    out = run(net, x)
    return out.reshape(out.shape[0], out.shape[1], -1).sum(axis=1).argmax(axis=1)
