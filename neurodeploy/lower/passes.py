"""Named lowering passes, each ``(net, **options) -> net``, applied in a recorded order (the way hls4ml runs
its optimizer flows): the list of passes a network went through is in ``net.metadata["passes"]``, so an
artifact says how it was made.

* ``lower_nir`` - NIR graph -> quantized populations and synapse groups (:mod:`.loihi2`; the first pass,
  it makes the network, so it is recorded by :func:`neurodeploy.lower.loihi2.lower_graph` itself)
* ``graded_attention`` - attention ops -> ProdNeuron / GradedVec / graded synapse groups (:mod:`.attention_graded`)
* ``split_fan_in`` - partial-sum relays for neurons that read more than a core gives one neuron (:mod:`.fan_in`)
* ``split_channels`` - conv-fed populations cut by output channels into several processes, so that a
  chip compiler's tiling fills its cores (:mod:`.channels`; only with ``channels``, e.g. from the chip fit's
  core model: ``neurodeploy.mapping.channels``)
* ``balance_delays`` - every path into a population arrives in the same step (:mod:`.balance`); the rewriting
  passes above leave balancing to it, so it runs once, after them
* ``chain_samples`` - resets and graded bias inputs so that samples run back to back (:mod:`.chain`; on a
  balanced network, by the simulators)

:data:`LOIHI2_FLOW` is the flow :func:`~neurodeploy.lower.loihi2.lower_graph` runs after ``lower_nir``
(without ``graded_attention`` when the attention stays one op, ``attention="process"``).
"""
from __future__ import annotations

import inspect

from ..errors import BadInputError
from .attention_graded import attention_to_graded
from .balance import balance_network
from .chain import chain_network
from .channels import split_channels
from .fan_in import MAX_FAN_IN, split_fan_in
from .network import LoweredNetwork


def _balance(net: LoweredNetwork, T: int | None = None) -> LoweredNetwork:
    balance_network(net, T if T is not None else (int(net.metadata.get("time_steps", 0) or 0) or None))
    return net


def _graded_attention(net: LoweredNetwork, order: str = "auto", schedule: str = "parallel") -> LoweredNetwork:
    if not net.attention:
        return net                  # nothing to rewrite (attention_to_graded would return a copy)
    return attention_to_graded(net, order=order, schedule=schedule, balance=False)


def _split_fan_in(net: LoweredNetwork, max_fan_in: int = MAX_FAN_IN, bin_fan_in: int | None = None) -> LoweredNetwork:
    return split_fan_in(net, max_fan_in=max_fan_in, bin_fan_in=bin_fan_in, balance=False)


def _split_channels(net: LoweredNetwork, channels=None) -> LoweredNetwork:
    return split_channels(net, channels)


PASSES = {
    "graded_attention": _graded_attention,
    "split_fan_in": _split_fan_in,
    "split_channels": _split_channels,
    "balance_delays": _balance,
    "chain_samples": chain_network,
}

#: the Loihi 2 pass flow after ``lower_nir``: rewrites first, balancing once, last
LOIHI2_FLOW = ("graded_attention", "split_fan_in", "split_channels", "balance_delays")


def run_pass(net: LoweredNetwork, name: str, **options) -> LoweredNetwork:
    """Apply pass ``name`` and append it to the result's ``metadata["passes"]``."""
    if name not in PASSES:
        raise BadInputError(f"unknown lowering pass {name!r} (known: {', '.join(PASSES)})")
    before = list(net.metadata.get("passes", []))
    out = PASSES[name](net, **options)
    if list(out.metadata.get("passes", [])) != before + [name]:     # passes that do not record themselves
        out.metadata["passes"] = before + [name]
    return out


def run_passes(net: LoweredNetwork, names, **options) -> LoweredNetwork:
    """Apply the passes ``names`` in order (``options`` go to every pass that names them)."""
    for name in names:
        fn = PASSES.get(name)
        if fn is None:
            raise BadInputError(f"unknown lowering pass {name!r} (known: {', '.join(PASSES)})")
        accepted = inspect.signature(fn).parameters
        net = run_pass(net, name, **{k: v for k, v in options.items() if k in accepted})
    return net
