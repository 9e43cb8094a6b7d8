"""Multi-step LIF neuron of Spikingformer (SpikingJelly ``MultiStepLIFNode`` semantics).

Functional core plus a thin module, in the style of ``norse.torch.functional``:

* charge  ``H[t] = V[t-1] + (X[t] - V[t-1]) / tau``   (decay_input=True, v_reset = 0)
* fire    ``S[t] = H[t] >= v_th``                    (inclusive, as SpikingJelly's Heaviside)
* reset   ``V[t] = H[t] * (1 - S[t])``                (hard reset to 0, reset detached from the graph)
* surrogate gradient ``alpha * sigmoid(alpha x) * (1 - sigmoid(alpha x))`` with alpha = 4.

The arithmetic is written in exactly the order SpikingJelly uses (``v + (x - v) / tau``), so spikes are
bit-identical to the official neuron.  The time loop is the only Python loop; each step is four
whole-tensor kernels writing into preallocated buffers (see ``_lif_loop``), and the backward pass is a
hand-written reverse loop (no autograd graph per step), which is where the speed over SpikingJelly's
torch backend comes from (``benchmarks/bench_lif.py`` measures it).
"""
from __future__ import annotations

import torch
from torch import nn

SURROGATE_ALPHA = 4.0


def _surrogate_grad(h_minus_th: torch.Tensor, alpha: float) -> torch.Tensor:
    sg = torch.sigmoid(h_minus_th * alpha)
    return sg.mul_(1.0 - sg).mul_(alpha)


def _lif_loop(x: torch.Tensor, tau: float, v_threshold: float, h_seq: torch.Tensor | None = None) -> torch.Tensor:
    """The time loop (no autograd).  Returns spikes in x's dtype; writes H[t] into ``h_seq`` if given.

    Bit-identical to SpikingJelly's torch backend, written to touch memory as few times as possible:

    * t = 0: V[-1] = 0, so ``0 + (X - 0) / tau`` is exactly ``X / tau`` (up to the sign of a zero).
    * t > 0: ``d = X - V`` then ``H = V + d / tau`` as one ``addcdiv`` (float32/64: the quotient is
      rounded, then the sum: the same two roundings as ``v + (x - v) / tau``; half types compute addcdiv
      in float32 and round once, so they take the plain three-op path).
    * spikes ``S = H >= v_th`` written straight into the float output.
    * reset ``V = H - H * S`` as one ``addcmul`` (exactly 0 where S = 1, exactly H where S = 0).
    """
    T = x.shape[0]
    spikes = torch.empty_like(x)
    if T == 0:
        return spikes
    fused = x.dtype in (torch.float32, torch.float64)
    tau_t = torch.tensor(tau, dtype=x.dtype, device=x.device) if fused else None
    h = h_seq[0] if h_seq is not None else torch.empty_like(x[0])
    torch.div(x[0], tau, out=h)
    v = torch.empty_like(x[0])
    d = torch.empty_like(x[0]) if fused else None
    for t in range(T):
        if t:
            if h_seq is not None:
                h = h_seq[t]
            if fused:
                torch.sub(x[t], v, out=d)
                torch.addcdiv(v, d, tau_t, out=h)
            else:
                h.copy_(v + (x[t] - v) / tau)
        s = spikes[t]
        torch.ge(h, v_threshold, out=s)
        if t + 1 < T:
            torch.addcmul(h, h, s, value=-1.0, out=v)
    return spikes


class _MultiStepLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, tau: float, v_threshold: float, alpha: float):
        h_seq = torch.empty_like(x)
        spikes = _lif_loop(x.detach(), tau, v_threshold, h_seq)
        ctx.save_for_backward(h_seq, spikes)
        ctx.tau, ctx.v_threshold, ctx.alpha = tau, v_threshold, alpha
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor):
        h_seq, spikes = ctx.saved_tensors
        tau, v_threshold, alpha = ctx.tau, ctx.v_threshold, ctx.alpha
        # dL/dH[t] = dL/dS[t] * sg'(H[t] - th) + dL/dV[t] * (1 - S[t])   (reset detached)
        # dL/dX[t] = dL/dH[t] / tau;   dL/dV[t-1] = dL/dH[t] * (1 - 1/tau)
        # First term for all t at once, in two buffers (fresh large allocations cost page faults):
        # sg = sigmoid(alpha (H - th));  sg' = (1 - sg) sg alpha
        buf = torch.sub(h_seq, v_threshold).mul_(alpha).sigmoid_()
        grad_h = torch.rsub(buf, 1.0).mul_(buf).mul_(alpha).mul_(grad_spikes)
        keep = torch.mul(spikes, -1.0, out=buf).add_(1.0)  # 1 - S (exact for S in {0, 1})
        decay = 1.0 - 1.0 / tau
        grad_v = torch.empty_like(grad_h[0])
        for t in range(grad_h.shape[0] - 1, -1, -1):
            if t < grad_h.shape[0] - 1:
                grad_h[t].addcmul_(grad_v, keep[t])
            if t:
                torch.mul(grad_h[t], decay, out=grad_v)
        return grad_h.div_(tau), None, None, None


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
            spikes = _lif_loop(x, float(tau), float(v_threshold), h_seq)
        return spikes, h_seq
    if torch.is_grad_enabled() and x.requires_grad:
        return _MultiStepLIF.apply(x, float(tau), float(v_threshold), float(alpha))
    with torch.no_grad():
        return _lif_loop(x, float(tau), float(v_threshold))


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
