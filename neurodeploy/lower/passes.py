"""Named lowering passes, each ``(net, **options) -> net``, applied in a recorded order (the way hls4ml runs
its optimizer flows): the list of passes a network went through is in ``net.metadata["passes"]``, so an
artifact says how it was made.

* ``lower_nir`` - NIR graph -> quantized populations and synapse groups (:mod:`.from_nir`; the first pass,
  it makes the network, so it is recorded by :func:`neurodeploy.lower.from_nir.lower_graph` itself)
* ``balance_delays`` - every path into a population arrives in the same step (:mod:`.balance`)
* ``graded_attention`` - attention ops -> ProdNeuron / GradedVec / graded synapse groups (:mod:`.attention_graded`)
* ``split_fan_in`` - partial-sum relays for neurons that read more than a core gives one neuron (:mod:`.fan_in`)
* ``chain_samples`` - resets and graded bias inputs so that samples run back to back (:mod:`.chain`)
"""
from __future__ import annotations

from ..errors import BadInputError
from .attention_graded import attention_to_graded
from .balance import balance_network
from .chain import chain_network
from .fan_in import split_fan_in
from .network import LoweredNetwork


def _balance(net: LoweredNetwork, T: int | None = None) -> LoweredNetwork:
    balance_network(net, T if T is not None else (int(net.metadata.get("time_steps", 0) or 0) or None))
    return net


PASSES = {
    "balance_delays": _balance,
    "graded_attention": attention_to_graded,
    "split_fan_in": split_fan_in,
    "chain_samples": chain_network,
}


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
    import inspect

    for name in names:
        fn = PASSES.get(name)
        if fn is None:
            raise BadInputError(f"unknown lowering pass {name!r} (known: {', '.join(PASSES)})")
        accepted = inspect.signature(fn).parameters
        net = run_pass(net, name, **{k: v for k, v in options.items() if k in accepted})
    return net
