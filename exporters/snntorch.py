"""snnTorch modules -> NIR through snnTorch's own exporter (``snntorch.export_nir.export_to_nir``).

We only add what it lacks: a check of every module first (its exporter maps unknown modules to None and
drops them silently; it also writes every reset as a hard reset), ``ignore_dims=[0]`` (its default call
fails the 1.0.8 type check), and a clear error for scalar ``beta``/``threshold`` (snntorch#410, nir#176).
"""
from __future__ import annotations

import warnings

import nir
import torch

from neurodeploy.errors import BadInputError, UnsupportedError

from .nir_file import import_graph

SUPPORTED_SNNTORCH = ("torch.nn.Linear", "torch.nn.Conv2d", "torch.nn.AvgPool2d", "torch.nn.Flatten", "snntorch.Leaky")


def _check_module(path: str, mod) -> None:
    import snntorch as snn

    kind = type(mod).__name__
    if isinstance(mod, snn.Synaptic):
        raise UnsupportedError(
            f"snnTorch layer {path!r} (Synaptic): its zero reset acts one step late (the step after a spike sets the "
            "membrane to 0 and discards that step's input), which NIR's CubaLIF cannot express; spikes would differ "
            "(measured). Use Leaky"
        )
    if isinstance(mod, snn.Leaky):
        if getattr(mod, "reset_mechanism", "zero") != "zero":
            raise UnsupportedError(
                f"snnTorch layer {path!r} ({kind}): reset_mechanism={mod.reset_mechanism!r}; NIR can only express a "
                "hard reset to v_reset (nir#137), and snnTorch's exporter would silently write reset-to-zero"
            )
        for attr in ("beta", "threshold"):
            val = getattr(mod, attr)
            if not isinstance(val, torch.Tensor) or val.dim() == 0 or val.numel() == 1:
                raise UnsupportedError(
                    f"snnTorch layer {path!r} ({kind}): {attr} is a scalar; snnTorch's NIR exporter needs per-neuron "
                    f"tensors (NIR parameters define the population shape; snntorch#410, nir#176): pass e.g. "
                    f"{attr}=torch.full((n,), value)"
                )
        return
    if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.AvgPool2d, torch.nn.Flatten)):
        if isinstance(mod, torch.nn.AvgPool2d) and (mod.padding not in (0, (0, 0)) or mod.ceil_mode):
            raise UnsupportedError(f"snnTorch model layer {path!r} (AvgPool2d): padding/ceil_mode are not exported by snnTorch")
        return
    raise UnsupportedError(
        f"snnTorch model layer {path!r} ({type(mod).__module__}.{kind}) is not supported; supported: {', '.join(SUPPORTED_SNNTORCH)}"
    )


def from_snntorch(model: torch.nn.Module, sample_data) -> nir.NIRGraph:
    """An snnTorch model (``init_hidden=True`` layers in a Sequential) -> NIR graph in our conventions."""
    from snntorch.export_nir import export_to_nir

    if sample_data is None:
        raise BadInputError("snnTorch export needs sample_data: one batched input step, e.g. torch.zeros(1, n_inputs)")
    leaves = [(p, m) for p, m in model.named_modules() if p and not any(True for _ in m.children())]
    for path, mod in leaves:
        _check_module(path, mod)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            graph = export_to_nir(model, torch.as_tensor(sample_data), ignore_dims=[0])
        except Exception as exc:  # noqa: BLE001 - report snnTorch's failure with its message
            raise UnsupportedError(f"snnTorch's NIR exporter failed: {type(exc).__name__}: {exc}") from None
    computing = [n for n, node in graph.nodes.items() if not isinstance(node, (nir.Input, nir.Output))]
    if len(computing) != len(leaves):
        raise UnsupportedError(f"snnTorch's exporter produced {len(computing)} nodes for {len(leaves)} layers; a layer was dropped")
    for node in graph.nodes.values():
        for key, val in vars(node).items():
            if isinstance(val, torch.Tensor):
                setattr(node, key, val.detach().cpu().numpy())
    graph = nir.NIRGraph(nodes=graph.nodes, edges=list(graph.edges), metadata=dict(graph.metadata or {}))
    for path, mod in leaves:
        if path in graph.nodes:
            graph.nodes[path].metadata = {**(graph.nodes[path].metadata or {}), "neurodeploy.source": path}
    return import_graph(graph, arch="snntorch", where="snnTorch model: ",
                        extra={"neurodeploy.input_domain": "real", "neurodeploy.input_encoding": "events"})
