"""Our engine's graded-spike parts (used by :class:`neurodeploy.sim.engine.Engine`): ``prod`` / ``graded_vec``
populations and ``einsum`` synapse groups, bit-exact with Lava 0.10.0 ``fixed_pt``:

* ``PyProdNeuronModelFixed``: ``v = (a_in1 * a_in2) >> exp`` (int32, floor shift), ``s = v * (|v| > vth)``;
* ``PyGradedVecModelFixed``: ``v = a_in`` (v is zeroed after each step), ``s = v * (|v| > vth)``;
* ``PyGradedReluVecModelFixed`` (``graded_relu``): ``v = a_in``, ``s = v * (v > vth)``;
* ``PySparseModelBitAcc`` / ``PyDelaySparseModelBitAcc`` with ``num_message_bits`` > 0: ``weights @ payload``
  (weights clipped/truncated as for spikes), then ``<< weight_exp`` or floor ``>> -weight_exp``, one step
  later plus the delay.

An einsum group is computed as a block-structured integer product on the whole batch (reshape to the source
axes, sum the axes the destination lacks, broadcast the ones it adds): no matrix, no loop over neurons.
Every value is an integer bounded by :func:`value_bounds`; the engine refuses a network whose graded values
could leave int32 (Lava's payload type), and sums in float32 only where the bound is below 2**24.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from ..errors import UnsupportedError
from ..lower.network import GRADED_KINDS, LoweredNetwork, einsum_fan_in, einsum_sides

_I32 = float(1 << 31)


def group_bound(s, weight: int, src_bound: float) -> float:
    """|contribution| of an einsum group (effective weight ``weight``) per destination neuron."""
    w = abs(int(weight)) * einsum_fan_in(s) * src_bound
    return w * 2.0 ** int(s.weight_exp) + (1 if s.weight_exp < 0 else 0)


def value_bounds(net: LoweredNetwork, weight) -> dict:
    """Bound of |output payload| per population (spiking: 1; graded input: inf); ``weight(s)``: the
    effective (Lava-truncated) weight of an einsum group.  ``net.metadata["graded_bounds"]`` {population:
    bound} tightens it where the lowering proved a smaller one (sums of weights cannot see that the packed
    attention's digits never carry: :func:`neurodeploy.lower.attention_graded.packed_parts`)."""
    pops = {p.name: p for p in net.populations}
    declared = dict(net.metadata.get("graded_bounds", {}) or {})
    inb = {}
    out = {}
    for name in net.topological_order():
        p = pops[name]
        if p.kind == "input":
            # a graded input has no bound, unless the lowering proved one for it (a slice of a network replays a
            # bounded population as an input: neurodeploy.lower.slices.cut_network)
            out[name] = 1.0 if p.input_kind == "spikes" else float(declared.get(name, float("inf")))
            continue
        if p.kind not in GRADED_KINDS + ("relay",):
            out[name] = 1.0
            continue
        ports = {0: 0.0, 1: 0.0, 2: 0.0}
        for s in net.synapses:
            if s.dst != name:
                continue
            b = out.get(s.src, float("inf"))
            if s.kind == "einsum":
                ports[s.port] += group_bound(s, weight(s), b)
            else:
                if sp.issparse(s.weights):      # never densified (full-size packed attention: 10^7 elements)
                    rows = float(np.asarray(abs(s.weights).sum(1)).max(initial=0)) if s.weights.shape[0] else 0.0
                else:
                    w = np.abs(np.asarray(s.weights, dtype=np.float64)).reshape(np.asarray(s.weights).shape[0], -1)
                    rows = float(w.sum(1).max(initial=0))
                ports[s.port] += rows * b * 2.0 ** int(s.weight_exp) + 1
        inb[name] = ports
        v = ports[1] * ports[2] if p.kind == "prod" else ports[0]
        if name in declared:        # a bound the lowering proved (the packed attention's digits, a max-pool's)
            v = min(v, float(declared[name]))
        if p.kind == "relay":       # a relay's payload bound (its groups' sums); never refused here
            out[name] = float(v)
            continue
        if v >= _I32 or (p.kind == "prod" and max(ports[1], ports[2]) >= _I32):
            raise UnsupportedError(f"population '{name}' ({p.source or name}): graded values can exceed "
                                   "Lava's int32 payloads")
        out[name] = float(v)
    return out


class EinsumGroup:
    """What one einsum group needs in the step loop (prepared once)."""

    def __init__(self, s, src_shape_flat: int, weight: int, dtype):
        src, dst = einsum_sides(s)
        self.src_sizes = tuple(int(s.axes[a]) for a in src)
        kept = [a for a in src if a in dst]
        self.sum_dims = tuple(1 + i for i, a in enumerate(src) if a not in dst)
        order = [kept.index(a) for a in dst if a in kept]
        self.perm = (0,) + tuple(1 + i for i in order)
        self.view = tuple(int(s.axes[a]) if a in kept else 1 for a in dst)
        self.full = tuple(int(s.axes[a]) for a in dst)
        self.n_dst = int(np.prod(self.full))
        self.weight = float(weight)
        self.exp = int(s.weight_exp)
        self.dtype = dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        y = x.to(self.dtype).reshape((B,) + self.src_sizes)
        if self.sum_dims:
            y = y.sum(dim=self.sum_dims)
        y = y.permute(self.perm).reshape((B,) + self.view).expand((B,) + self.full).reshape(B, self.n_dst)
        y = y * self.weight                  # a new tensor (the caller adds into it)
        if self.exp > 0:
            y.mul_(float(1 << self.exp))
        elif self.exp < 0:
            y.mul_(2.0 ** self.exp).floor_()
        return y


def graded_step(kind: str, slot, slot2, vth: int, exp: int, shape, dtype, device) -> torch.Tensor:
    """One step of a prod / graded_vec population (no memory): the graded output payload."""
    if kind == "prod":
        if slot is None or slot2 is None:
            return torch.zeros(shape, dtype=dtype, device=device)
        v = slot.to(dtype) * slot2.to(dtype)
    else:
        if slot is None:
            return torch.zeros(shape, dtype=dtype, device=device)
        v = slot.to(dtype, copy=True)
    if exp:
        v = torch.floor(v * 2.0 ** (-exp))
    # v is this step's own tensor: masked in place (full-size attention: millions of products per step)
    if kind == "graded_relu":
        return v.clamp_(min=0) if vth == 0 else v.mul_(v > vth)
    if vth == 0:                    # |v| > 0 keeps every nonzero value: nothing to mask
        return v
    return v.mul_(v.abs() > vth)
