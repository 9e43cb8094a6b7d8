"""LIF dynamics against hand-computed traces (H = V + (X - V)/tau, spike iff H >= v_th, hard reset to 0)."""
import pytest
import torch

from neurodeploy.models.neuron import MultiStepLIF, lif_multistep


def run(x, **kw):
    s, h = lif_multistep(torch.tensor(x, dtype=torch.float32).reshape(-1, 1), return_membrane=True, **kw)
    return s.ravel().tolist(), h.ravel().tolist()


def test_tau2_trace_by_hand():
    # H1 = 0 + (1.5 - 0)/2 = 0.75        no spike, V = 0.75
    # H2 = 0.75 + (0.5 - 0.75)/2 = 0.625  no spike, V = 0.625
    # H3 = 0.625 + (2.0 - 0.625)/2 = 1.3125  spike, V = 0 (hard reset)
    # H4 = 0 + (0.9 - 0)/2 = 0.45         no spike
    # H5 = 0.45 + (1.1 - 0.45)/2 = 0.775  no spike
    s, h = run([1.5, 0.5, 2.0, 0.9, 1.1], tau=2.0)
    assert s == [0, 0, 1, 0, 0]
    assert h[:3] == [0.75, 0.625, 1.3125]  # exact in binary floating point
    assert h[3:] == pytest.approx([0.45, 0.775], rel=1e-6)  # float32 rounding of 0.9, 1.1


def test_spike_at_equality_is_inclusive():
    # H = 0 + (2.0 - 0)/2 = 1.0 == v_th: SpikingJelly's Heaviside fires on H - v_th >= 0
    s, h = run([2.0, 2.0], tau=2.0)
    assert h == [1.0, 1.0] and s == [1, 1]
    # just below the threshold does not fire
    s, _ = run([1.9999998], tau=2.0)
    assert s == [0]


def test_tau_1_5_and_attention_threshold():
    # tau 1.5 (DVS): H1 = 1.5/1.5 = 1.0 -> spike, reset; H2 = 0.75/1.5 = 0.5; H3 = 0.5 + (0.75-0.5)/1.5
    s, h = run([1.5, 0.75, 0.75], tau=1.5)
    assert s == [1, 0, 0]
    assert h[:2] == [1.0, 0.5]
    assert h[2] == pytest.approx(0.5 + 0.25 / 1.5, rel=1e-7)
    # attn_lif: threshold 0.5, tau 2: H = 1.0/2 = 0.5 -> spike (>=)
    s, _ = run([1.0, 0.9], tau=2.0, v_threshold=0.5)
    assert s == [1, 0]


def test_reset_is_hard_to_zero_not_subtractive():
    # H1 = 3.0 (x = 6): spike; a subtractive reset would leave V = 2.0 and fire again at t2 with x = 0:
    # H2 = 2.0 + (0 - 2.0)/2 = 1.0 >= 1.  The hard reset gives H2 = 0.
    s, h = run([6.0, 0.0], tau=2.0)
    assert s == [1, 0] and h == [3.0, 0.0]


def _reference_lif(x, tau, v_th, alpha=4.0):
    """Straightforward autograd reference (SpikingJelly-style step functions, detach_reset)."""

    class Heaviside(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u):
            ctx.save_for_backward(u)
            return (u >= 0).to(u.dtype)

        @staticmethod
        def backward(ctx, g):
            (u,) = ctx.saved_tensors
            sg = torch.sigmoid(alpha * u)
            return g * alpha * sg * (1 - sg)

    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) / tau
        s = Heaviside.apply(h - v_th)
        out.append(s)
        v = h * (1 - s.detach())
    return torch.stack(out)


@pytest.mark.parametrize("tau,v_th", [(2.0, 1.0), (1.5, 1.0), (2.0, 0.5)])
def test_forward_and_surrogate_gradient_match_reference(tau, v_th):
    torch.manual_seed(0)
    x = (torch.randn(6, 3, 50) * 1.5 + 0.8).requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    w = torch.randn(6, 3, 50)
    s = lif_multistep(x, tau, v_th)
    s_ref = _reference_lif(x_ref, tau, v_th)
    assert torch.equal(s, s_ref)
    (s * w).sum().backward()
    (s_ref * w).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-6)


def test_module_has_no_state_dict_entries():
    m = MultiStepLIF(tau=2.0)
    assert m.state_dict() == {}
    x = torch.rand(4, 2, 8) * 3
    assert torch.equal(m(x), lif_multistep(x, 2.0, 1.0))
