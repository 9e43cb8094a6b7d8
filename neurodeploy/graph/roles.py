"""The role of a synaptic node in a graph: declared (``neurodeploy.role`` metadata: ``encoder``, ``readout``,
``routing``) or, for a graph that declares none, inferred from the structure alone.  One rule for every
stage (purity, the op count, the chip fit, the lowering read it through the annotated graph)."""
from __future__ import annotations

import nir

from .core import meta
from .primitives import classes

#: data-movement nodes an encoder may read the graph input through
_PASSTHROUGH = (nir.Flatten, nir.Delay, nir.SumPool2d, nir.AvgPool2d)


def declared_role(node) -> str | None:
    r = meta(node, "neurodeploy.role")
    return str(r) if r is not None else None


def infer_roles(order: list[str], preds: dict[str, list[str]], nodes: dict, synaptic: list[str]) -> dict[str, str]:
    """Roles of ``synaptic`` nodes for graphs without any ``neurodeploy.role``: ``encoder`` = a synaptic node
    reading the graph input through data-movement nodes only; ``readout`` = a synaptic node that reaches the
    output without passing a spiking neuron.  ``{}`` when any node declares a role (the graph says it)."""
    if any(declared_role(n) is not None for n in nodes.values()):
        return {}
    spiking = classes("spiking")
    from_input: dict[str, bool] = {}
    for n in order:
        node = nodes[n]
        if isinstance(node, nir.Input):
            from_input[n] = True
        elif isinstance(node, _PASSTHROUGH):
            from_input[n] = bool(preds[n]) and all(from_input.get(p, False) for p in preds[n])
        else:
            from_input[n] = False
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for n, ps in preds.items():
        for p in ps:
            succ.setdefault(p, []).append(n)
    to_out: dict[str, bool] = {}
    for n in reversed(order):
        if isinstance(nodes[n], nir.Output):
            to_out[n] = True
        else:
            to_out[n] = any(to_out.get(s, False) and not isinstance(nodes[s], spiking) for s in succ.get(n, []))
    roles = {}
    for n in synaptic:
        if any(from_input.get(p, False) for p in preds[n]):
            roles[n] = "encoder"
        elif to_out.get(n, False):
            roles[n] = "readout"
    return roles
