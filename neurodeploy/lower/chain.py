"""Chained mode: many samples one after another in ONE run of a lowered network (Lava or our engine).

A lowered network computes one sample in a window of ``period = T + latency`` steps: the population at
pipeline depth ``l`` works on the sample during steps ``l+1 .. l+T`` of the window.  To run samples
``0 .. K-1`` back to back (sample k occupies global steps ``k*period+1 .. (k+1)*period``, t counted from
1 as in Lava) :func:`chain_network` returns a copy of the network in which

* every non-input population is a ``LIFReset`` with ``reset_interval = period`` and
  ``reset_offset = (l + 1) % period``: u and v are zeroed right before the first step at which sample k's
  input reaches it, so whatever the previous sample left (its tail still travelling through the pipeline,
  its membrane state) is discarded.  This is exactly what the lowering's own reset fields already mean
  (the lowering sets them on populations with a bias); chaining extends them to every population.
  Everything that arrives at a population inside its window comes from the upstream populations' windows
  of the same sample (delay balancing), so within each window the chained run equals a fresh
  single-sample run of the chained network;
* a per-sample bias (``bias_input``, the host-side encoder) cannot stay a bias (Lava's bias is one
  value for the whole run): it becomes a ``graded`` input population (a Lava ``RingBuffer``) feeding the
  population's ``a_in`` through an ``identity`` synapse (no synapse process, no delay).  ``a_in`` enters v
  as ``a_in << 6`` (through u, with du = 4095 u holds only this step's input) where the bias entered as
  ``bias_mant << bias_exp``, so the graded value is ``bias_mant << (bias_exp - 6)``; exact when
  ``bias_exp >= 6`` or every mantissa is a multiple of ``2**(6 - bias_exp)`` (checked per sample by
  :func:`chain_inputs`, which refuses otherwise).  The population's own bias becomes 0;
* optionally (``conv_as_sparse``) conv synapse groups become ``sparse`` groups with the same integer
  connections when that is exact (the effective 8-bit Lava weights equal the conv weights and no sum can
  reach the conv's 24-bit wrap) and the group has at most ``max_connections`` connections (default
  :data:`SPARSE_CONV_MAX`; larger convs stay Lava Convs): Lava's CPU Conv loops over C_in x C_out scipy
  convolutions per step, Sparse is one sparse matrix product.  The sparse matrix is built from the
  kernel geometry (:func:`neurodeploy.lower.fixed_point.conv_to_sparse`), never through a dense one.

:func:`chain_inputs` turns batched engine-style inputs (``[T', B, ...]`` spike/graded sequences, looped
like a RingBuffer, and ``[B, ...]`` bias values) into the chained inputs ``[B*period, 1, n]``;
:func:`split_windows` turns chained results ``[B*period, 1, n]`` back into ``[period, B, n]`` (step i of
sample k's window).  Steps ``i < l`` of a population at depth ``l`` (before its reset) hold the previous
sample's tail in chained mode and are not part of the sample's computation.  Networks with recurrent
groups or their own synaptic delays (not balance delays) are refused: those would carry one sample's tail
past the reset into the next window.
"""
from __future__ import annotations

import copy

import numpy as np

from ..errors import BadInputError, UnsupportedError
from .fixed_point import conv_to_sparse, lava_effective_weights, lava_sign_mode
from .network import LoweredNetwork, Population, Synapse

_M23 = 1 << 23
#: conv groups with more connections than this stay convs under ``conv_as_sparse`` (memory)
SPARSE_CONV_MAX = 1 << 24


def sample_period(net: LoweredNetwork, steps: int | None = None) -> int:
    """``T + latency`` (the lowering's sample window) unless ``steps`` is given."""
    if steps:
        return int(steps)
    T = int(net.metadata.get("time_steps", 0) or 0)
    if not T:
        raise BadInputError("the lowered network does not fix its time steps; give the sample period")
    return T + int(net.metadata.get("latency", max(net.latency().values(), default=0)))


def _conv_as_sparse(net: LoweredNetwork, s: Synapse, max_connections: int = SPARSE_CONV_MAX):
    src = net.pop(s.src)
    if s.graded or src.input_kind == "graded":
        return None
    if net.pop(s.dst).size * int(np.prod(np.shape(s.weights)[1:])) > max_connections:
        return None
    view = tuple(s.src_view) if s.src_view else tuple(src.shape)
    m = conv_to_sparse(s.weights, view, s.stride, s.padding, s.dilation, s.groups)
    mode = lava_sign_mode(m, s.sign_mode)
    eff = lava_effective_weights(m, mode, 8)
    if eff.nnz != m.nnz or (eff != m).nnz:
        return None
    if m.nnz and np.asarray(abs(m).sum(1)).max() >= _M23:
        return None
    return Synapse(s.name, s.src, s.dst, "sparse", m, weight_exp=0, num_weight_bits=8, sign_mode=mode,
                   delays=None, balance_delay=s.balance_delay, graded=False, source=s.source)


def convs_as_sparse(net: LoweredNetwork, max_connections: int = SPARSE_CONV_MAX) -> LoweredNetwork:
    """A copy of ``net`` whose conv groups are ``sparse`` groups with the same integer connections where
    that is exact (see ``conv_as_sparse`` in the module doc); the others stay convs."""
    out = copy.deepcopy(net)
    out.synapses = [(_conv_as_sparse(out, s, max_connections) or s) if s.kind == "conv" else s
                    for s in out.synapses]
    out.validate()
    return out


def carries_tail(net: LoweredNetwork, s, period: int) -> bool:
    """Whether group ``s`` can carry one sample's tail into the next window ``period`` steps later: a
    recurrent group or one with the model's own synaptic delays, unless it is a loop the lowering proved
    finite (``metadata["finite_loops"]`` {group: steps after which every input has left it}: the token
    tiles' moving count, :func:`neurodeploy.lower.attention_graded.tiled_parts`) and ``period`` is that long."""
    if s.src == s.dst:
        steps = (net.metadata.get("finite_loops") or {}).get(s.name)
        return steps is None or int(steps) > int(period)
    # the largest own delay, read without a dense copy of a CSR matrix
    return s.delays is not None and int(s.delays.max() if hasattr(s.delays, "tocsr") else np.max(s.delays)) > 0


def chain_network(net: LoweredNetwork, period: int | None = None, bias_as_graded: bool = True,
                  conv_as_sparse: bool = False, one_window: bool = False) -> LoweredNetwork:
    """The chained-mode copy of ``net`` (see the module docstring).  ``bias_as_graded=False`` keeps
    bias inputs as biases (for batched engine runs, one sample per batch row, that only adds the resets).
    ``one_window``: the caller runs exactly one window per sample (the batched engine: one sample per batch
    row, ``period`` steps), so recurrent groups and the model's own delays cannot carry a tail into another
    sample and are allowed.
    The result's ``metadata["chain"]`` records the period and, per graded bias input, the original bias
    input and the shift ``bias_exp - 6``."""
    net.validate()
    P = sample_period(net, period)
    lat = net.latency()
    if max(lat.values(), default=0) >= P:
        raise UnsupportedError(f"sample period {P} is not longer than the pipeline latency {max(lat.values())}")
    for s in net.synapses:
        # a model's own synaptic delays or a recurrent group would carry the previous sample's tail past
        # the reset into the next window; balance delays cannot (they keep every arrival in step)
        if not one_window and carries_tail(net, s, P):
            raise UnsupportedError(f"synapse '{s.name}' ({s.source or s.name}): recurrent or with its own "
                                   "synaptic delays; chained samples would leak into each other")
    out = copy.deepcopy(net)
    graded = {}
    new_pops, new_syns = [], []
    for p in out.populations:
        if p.kind == "input":
            if p.input_kind == "bias" and bias_as_graded:
                continue            # replaced by one graded input per consuming population
            new_pops.append(p)
            continue
        if p.kind == "relay":        # no state: nothing to reset
            new_pops.append(p)
            continue
        p.reset_interval = P
        p.reset_offset = (lat[p.name] + 1) % P
        if p.bias_input and bias_as_graded:
            gname = f"{p.name}.bias_in"
            graded[gname] = {"bias_input": p.bias_input, "shift": int(p.bias_exp) - 6, "population": p.name}
            new_pops.append(Population(gname, tuple(p.shape), kind="input", input_kind="graded",
                                       source=p.bias_input))
            new_syns.append(Synapse(f"{p.name}<-bias_in", gname, p.name, "identity",
                                    np.zeros((0,), dtype=np.int64), source=p.bias_input))
            p.bias_input = ""
            p.bias_mant = 0
        new_pops.append(p)
    syns = []
    for s in out.synapses:
        if conv_as_sparse and s.kind == "conv":
            s = _conv_as_sparse(out, s) or s
        syns.append(s)
    out.populations = [p for p in new_pops if p.kind == "input"] + [p for p in new_pops if p.kind != "input"]
    out.synapses = new_syns + syns
    out.metadata = dict(out.metadata)
    out.metadata["chain"] = {"period": P, "graded_bias": graded}
    out.metadata["passes"] = list(out.metadata.get("passes", [])) + ["chain_samples"]
    out.validate()
    new_lat = out.latency()
    if any(new_lat[k] != v for k, v in lat.items() if k in new_lat):
        raise UnsupportedError("chaining changed the pipeline latency")    # identity adds no step
    return out


def _np(x):
    try:
        import torch
        if torch.is_tensor(x):
            return x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(x)


def chain_inputs(chained: LoweredNetwork, inputs: dict, batched: bool = False) -> dict:
    """Batched engine-style ``inputs`` of the original network -> ``{input: int64 [B*period, 1, n]}``
    for the chained network (sample k in steps ``k*period .. (k+1)*period - 1``); ``batched``: the same
    as ``[period, B, n]`` (one sample per batch row: the fresh per-sample runs of the chained network)."""
    info = chained.metadata.get("chain")
    if not info:
        raise BadInputError("chain_inputs needs a network from chain_network")
    P = int(info["period"])
    graded = info["graded_bias"]
    B = None
    out = {}
    for p in chained.inputs:
        if p.name in graded:
            g = graded[p.name]
            if g["bias_input"] not in inputs:
                raise BadInputError(f"input population '{g['bias_input']}': no data given")
            x = _np(inputs[g["bias_input"]]).astype(np.int64)
            x = x.reshape(x.shape[0], -1)
            sh = int(g["shift"])
            if sh < 0:
                if np.any(x % (1 << -sh)):
                    raise UnsupportedError(
                        f"population '{g['population']}': bias exponent {sh + 6} < 6 and a per-sample bias "
                        f"mantissa not a multiple of {1 << -sh}: it cannot be fed exactly as graded input "
                        "(lower with bias_exp_min=6)")
                x = x >> (-sh)
            else:
                x = x << sh
            if x.size and np.abs(x).max() >= (1 << 15):
                raise UnsupportedError(f"population '{g['population']}': graded bias input beyond Lava LIF's "
                                       "16-bit a_in")
            b = x.shape[0]
            seq = np.repeat(x[:, None, :], P, axis=1)              # [B, P, n]
        elif p.input_kind == "bias":
            continue
        else:
            if p.name not in inputs:
                raise BadInputError(f"input population '{p.name}': no data given")
            x = _np(inputs[p.name]).astype(np.int64)
            x = x.reshape(x.shape[0], x.shape[1], -1)
            b = x.shape[1]
            idx = np.arange(P) % x.shape[0]              # a RingBuffer loops its data
            seq = x[idx].transpose(1, 0, 2)                         # [B, P, n]
        if seq.shape[-1] != p.size:
            raise BadInputError(f"input '{p.name}': {seq.shape[-1]} values per step, expected {p.size}")
        if B is not None and b != B:
            raise BadInputError(f"input '{p.name}': batch {b} differs from {B}")
        B = b
        out[p.name] = seq.transpose(1, 0, 2).copy() if batched else seq.reshape(b * P, 1, -1)
    for p in chained.inputs:      # bias inputs kept as biases (bias_as_graded=False): pass through
        if p.input_kind == "bias":
            out[p.name] = _np(inputs[p.name])
    return out


def split_windows(res: dict, samples: int, period: int) -> dict:
    """Chained results ``{pop: {key: [samples*period, 1, n]}}`` -> ``{pop: {key: [period, samples, n]}}``."""
    out = {}
    for name, r in res.items():
        out[name] = {}
        for k, a in r.items():
            a = _np(a)
            if a.shape[0] != samples * period:
                raise BadInputError(f"{name}.{k}: {a.shape[0]} steps, expected {samples} x {period}")
            out[name][k] = a.reshape(samples, period, -1).transpose(1, 0, 2)
    return out
