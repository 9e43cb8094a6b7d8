"""Multi-step LIF neuron of Spikingformer (SpikingJelly ``MultiStepLIFNode`` semantics).

Functional core plus a thin module, in the style of ``norse.torch.functional``:

* charge  ``H[t] = V[t-1] + (X[t] - V[t-1]) / tau``   (decay_input=True, v_reset = 0)
* fire    ``S[t] = H[t] >= v_th``                    (inclusive, as SpikingJelly's Heaviside)
* reset   ``V[t] = H[t] * (1 - S[t])``                (hard reset to 0, reset detached from the graph)
* surrogate gradient ``alpha * sigmoid(alpha x) * (1 - sigmoid(alpha x))`` with alpha = 4.

The arithmetic is written in exactly the order SpikingJelly uses (``v + (x - v) / tau``), so spikes are
bit-identical to the official neuron.  The time loop is the only Python loop; the backward pass is a
hand-written reverse loop (one fused pass, no autograd graph per step), which is where the speed over
SpikingJelly's torch backend comes from.
"""
from __future__ import annotations

import torch
from torch import nn

SURROGATE_ALPHA = 4.0


def _surrogate_grad(h_minus_th: torch.Tensor, alpha: float) -> torch.Tensor:
    sg = torch.sigmoid(h_minus_th * alpha)
    return sg.mul_(1.0 - sg).mul_(alpha)


class _MultiStepLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, tau: float, v_threshold: float, alpha: float):
        spikes = torch.empty_like(x)
        h_seq = torch.empty_like(x)
        v = torch.zeros_like(x[0])
        for t in range(x.shape[0]):
            h = v + (x[t] - v) / tau
            s = h >= v_threshold
            h_seq[t] = h
            spikes[t] = s
            v = h.masked_fill(s, 0.0)
        ctx.save_for_backward(h_seq, spikes)
        ctx.tau, ctx.v_threshold, ctx.alpha = tau, v_threshold, alpha
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor):
        h_seq, spikes = ctx.saved_tensors
        tau, v_threshold, alpha = ctx.tau, ctx.v_threshold, ctx.alpha
        grad_x = torch.empty_like(grad_spikes)
        grad_v = torch.zeros_like(grad_spikes[0])
        decay = 1.0 - 1.0 / tau
        for t in range(grad_spikes.shape[0] - 1, -1, -1):
            # dL/dH = dL/dS * sg'(H - th) + dL/dV * (1 - S)   (reset detached)
            grad_h = grad_spikes[t] * _surrogate_grad(h_seq[t] - v_threshold, alpha)
            grad_h.addcmul_(grad_v, 1.0 - spikes[t])
            grad_x[t] = grad_h / tau
            grad_v = grad_h * decay
        return grad_x, None, None, None


def lif_multistep(
    x: torch.Tensor,
    tau: float = 2.0,
    v_threshold: float = 1.0,
    alpha: float = SURROGATE_ALPHA,
    return_membrane: bool = False,
):
    """Run the LIF over the leading time axis of ``x`` ([T, ...]); returns spikes (same dtype as x).

    With ``return_membrane=True`` (no gradient) it also returns the charged membrane ``H`` per step,
    which exporters and tests use to compare traces.
    """
    if x.dim() < 1:
        raise ValueError("lif_multistep expects a tensor with a leading time axis [T, ...]")
    if return_membrane:
        with torch.no_grad():
            h_seq = torch.empty_like(x)
            spikes = torch.empty_like(x)
            v = torch.zeros_like(x[0])
            for t in range(x.shape[0]):
                h = v + (x[t] - v) / tau
                s = h >= v_threshold
                h_seq[t] = h
                spikes[t] = s
                v = h.masked_fill(s, 0.0)
        return spikes, h_seq
    if torch.is_grad_enabled() and x.requires_grad:
        return _MultiStepLIF.apply(x, float(tau), float(v_threshold), float(alpha))
    with torch.no_grad():
        spikes = torch.empty_like(x)
        v = torch.zeros_like(x[0])
        for t in range(x.shape[0]):
            h = v + (x[t] - v) / tau
            s = h >= v_threshold
            spikes[t] = s
            v = h.masked_fill_(s, 0.0)
        return spikes


class MultiStepLIF(nn.Module):
    """Multi-step LIF module; input and output are [T, B, ...].  Holds no parameters or buffers,
    like SpikingJelly's node, so official state_dicts have no entries for it."""

    def __init__(self, tau: float = 2.0, v_threshold: float = 1.0, alpha: float = SURROGATE_ALPHA):
        super().__init__()
        self.tau = float(tau)
        self.v_threshold = float(v_threshold)
        self.v_reset = 0.0
        self.decay_input = True
        self.detach_reset = True
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lif_multistep(x, self.tau, self.v_threshold, self.alpha)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, v_threshold={self.v_threshold}, v_reset=0.0, decay_input=True, detach_reset=True"
