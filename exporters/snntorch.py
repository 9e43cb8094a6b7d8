"""snnTorch modules -> NIR through snnTorch's own exporter (``snntorch.export_nir.export_to_nir``, 1.0.0).

We only add what it lacks: a check of every module first (its exporter maps unknown modules to None and
drops them silently; it also writes every reset as a hard reset to 0), ``ignore_dims=[0]`` (its default
call fails the nir 1.0.8 type check), and per-neuron arrays for scalar ``beta``/``alpha``/``threshold``
(NIR parameters define the population shape, nir#176): we broadcast them to the layer's output shape,
measured by running ``sample_data`` through the model.

Which snnTorch neurons NIR expresses exactly (reference simulator == snnTorch spikes, tests/test_nir_corpus.py):
Leaky (reset_mechanism="zero", either reset_delay); Synaptic and RLeaky with reset_mechanism="zero"
and reset_delay=False.  With reset_delay=True (snnTorch's default) the reset of those three acts one step
late (the membrane is set to 0 on the step after the spike, discarding that step's input), which NIR's
LIF/CubaLIF cannot express: refused, naming the layer.  RSynaptic is refused (reset_delay=False crashes in
snnTorch 1.0.0 itself).
"""
from __future__ import annotations

import warnings

import nir
import numpy as np
import torch

from neurodeploy.errors import BadInputError, UnsupportedError

from .nir_file import import_graph

SUPPORTED_SNNTORCH = ("torch.nn.Linear", "torch.nn.Conv2d", "torch.nn.AvgPool2d", "torch.nn.Flatten", "snntorch.Leaky",
                      "snntorch.Synaptic", "snntorch.RLeaky")


def _check_module(path: str, mod) -> None:
    import snntorch as snn

    kind = type(mod).__name__
    if isinstance(mod, (snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic)):
        if getattr(mod, "reset_mechanism", "zero") != "zero":
            raise UnsupportedError(
                f"snnTorch layer {path!r} ({kind}): reset_mechanism={mod.reset_mechanism!r}; NIR can only express a "
                "hard reset to v_reset (nir#137), and snnTorch's exporter would silently write reset-to-zero: "
                "use reset_mechanism='zero'"
            )
        if isinstance(mod, snn.RSynaptic):
            raise UnsupportedError(
                f"snnTorch layer {path!r} (RSynaptic): with reset_delay=True its zero reset acts one step late, "
                "which NIR cannot express, and snnTorch 1.0.0's RSynaptic with reset_delay=False fails in its own "
                "forward (rsynaptic.py:369); use RLeaky, or Synaptic plus a Linear feedback in a NIR graph")
        if not isinstance(mod, snn.Leaky) and getattr(mod, "reset_delay", True):
            raise UnsupportedError(
                f"snnTorch layer {path!r} ({kind}): reset_delay=True makes the zero reset act one step late (the "
                "step after a spike sets the membrane to 0 and discards that step's input), which NIR cannot "
                "express; spikes would differ (measured). Use reset_delay=False"
            )
        if isinstance(mod, (snn.RLeaky, snn.RSynaptic)) and not mod.all_to_all and np.ndim(mod.recurrent.V.detach()) == 0:
            raise UnsupportedError(f"snnTorch layer {path!r} ({kind}): all_to_all=False with a scalar V; "
                                   "pass V as a per-neuron tensor")
        return
    if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.AvgPool2d, torch.nn.Flatten)):
        if isinstance(mod, torch.nn.AvgPool2d) and (mod.padding not in (0, (0, 0)) or mod.ceil_mode):
            raise UnsupportedError(f"snnTorch model layer {path!r} (AvgPool2d): padding/ceil_mode are not exported by snnTorch")
        return
    raise UnsupportedError(
        f"snnTorch model layer {path!r} ({type(mod).__module__}.{kind}) is not supported; supported: {', '.join(SUPPORTED_SNNTORCH)}"
    )


def _to_numpy(node) -> None:
    if isinstance(node, nir.NIRGraph):
        for sub in node.nodes.values():
            _to_numpy(sub)
        return
    for key, val in vars(node).items():
        if isinstance(val, torch.Tensor):
            setattr(node, key, val.detach().cpu().numpy())


_NEURON_FIELDS = ("tau", "tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in")


def _broadcast_neuron(node, shape: tuple) -> None:
    """Scalar (or size-1) neuron parameters -> arrays of the layer's shape (nir#176)."""
    for key in _NEURON_FIELDS:
        val = getattr(node, key, None)
        if val is None:
            continue
        arr = np.asarray(val, dtype=np.float32)
        if arr.shape != shape:
            if arr.size != 1:
                raise UnsupportedError(f"snnTorch layer: parameter {key} has shape {list(arr.shape)}, the layer "
                                       f"output is {list(shape)}")
            setattr(node, key, np.full(shape, arr.reshape(-1)[0], dtype=np.float32))
    for attr in ("input_type", "output_type"):
        types = getattr(node, attr, None)
        if isinstance(types, dict):
            setattr(node, attr, {k: np.asarray(shape) for k in types})


def _per_neuron_copy(model, leaves, shapes):
    """A copy of ``model`` whose Leaky/Synaptic beta, alpha, threshold are tensors of the layer's shape
    (snnTorch's exporter builds nir.CubaLIF from mixed scalar and vector parameters, which nir refuses)."""
    import copy

    import snntorch as snn

    todo = [p for p, m in leaves if isinstance(m, (snn.Leaky, snn.Synaptic)) and p in shapes]
    if not todo:
        return model
    model = copy.deepcopy(model)
    mods = dict(model.named_modules())
    for path in todo:
        mod, shape = mods[path], shapes[path]
        for attr in ("alpha", "beta", "threshold"):
            val = getattr(mod, attr, None)
            if not isinstance(val, torch.Tensor):
                if val is None:
                    continue
                val = torch.as_tensor(float(val))
            if tuple(val.shape) == shape:
                continue
            new = val.detach().float().expand(shape).clone() if val.numel() != 1 else torch.full(shape, float(val.reshape(-1)[0]))
            if attr in mod._parameters:
                mod._parameters[attr] = torch.nn.Parameter(new, requires_grad=False)
            elif attr in mod._buffers:
                mod._buffers[attr] = new
            else:
                setattr(mod, attr, new)
    return model


def from_snntorch(model: torch.nn.Module, sample_data) -> nir.NIRGraph:
    """An snnTorch model (``init_hidden=True`` layers in a Sequential) -> NIR graph in our conventions."""
    import nirtorch
    import snntorch as snn
    from snntorch.export_nir import _extract_snntorch_module

    if sample_data is None:
        raise BadInputError("snnTorch export needs sample_data: one batched input step, e.g. torch.zeros(1, n_inputs)")
    recurrent = (snn.RLeaky, snn.RSynaptic)
    leaves = []
    for p, m in model.named_modules():
        if not p or any(p.startswith(q + ".") for q, r in leaves if isinstance(r, recurrent)):
            continue
        if isinstance(m, recurrent) or not any(True for _ in m.children()):
            leaves.append((p, m))
    for path, mod in leaves:
        _check_module(path, mod)
    shapes: dict[str, tuple] = {}

    in_shapes: dict[str, tuple] = {}

    def hook(mod, inp, out, path):
        out = out[0] if isinstance(out, tuple) else out
        shapes[path] = tuple(int(s) for s in out.shape[1:])
        in_shapes[path] = tuple(int(s) for s in inp[0].shape[1:])

    handles = [m.register_forward_hook(lambda mod, i, o, p=p: hook(mod, i, o, p)) for p, m in leaves]
    try:
        with torch.no_grad():
            model(torch.as_tensor(sample_data))
    except Exception as exc:  # noqa: BLE001
        raise BadInputError(f"snnTorch model does not run on sample_data of shape {list(np.shape(sample_data))}: "
                            f"{type(exc).__name__}: {exc}") from None
    finally:
        for h in handles:
            h.remove()
        try:
            import snntorch.utils

            snntorch.utils.reset(model)
        except Exception:  # noqa: BLE001 - a model without hidden state
            pass
    model = _per_neuron_copy(model, leaves, shapes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # export_to_nir's own steps without its final infer_types(), which fails on scalar parameters
            # (we broadcast them first; import_graph then runs nir's type check)
            graph = nirtorch.extract_nir_graph(model, _extract_snntorch_module, torch.as_tensor(sample_data),
                                               model_name="snntorch", ignore_submodules_of=[snn.RLeaky, snn.RSynaptic],
                                               ignore_dims=[0])
        except Exception as exc:  # noqa: BLE001 - report snnTorch's failure with its message
            raise UnsupportedError(f"snnTorch's NIR exporter failed: {type(exc).__name__}: {exc}") from None
    names = [n for n, node in graph.nodes.items() if not isinstance(node, (nir.Input, nir.Output))]
    dropped = [p for p, _ in leaves if p not in graph.nodes and not any(n.startswith(p + ".") for n in names)]
    if dropped or graph.nodes.get(names[0] if names else "") is None:
        raise UnsupportedError(f"snnTorch's exporter dropped layer(s) {dropped}")
    for node in graph.nodes.values():
        _to_numpy(node)
    for path, mod in leaves:
        for name in [path] + [n for n in names if n.startswith(path + ".")]:
            node = graph.nodes.get(name)
            if node is None:
                continue
            if isinstance(mod, (snn.Leaky, snn.Synaptic)) and path in shapes:
                _broadcast_neuron(node, shapes[path])
            if isinstance(node, nir.Conv2d) and node.input_shape is None and path in in_shapes:
                node = graph.nodes[name] = nir.Conv2d(  # snnTorch writes input_shape=None: nir cannot type it
                    input_shape=in_shapes[path][1:], weight=node.weight, stride=node.stride, padding=node.padding,
                    dilation=node.dilation, groups=node.groups, bias=node.bias)
            if isinstance(node, (nir.Flatten, nir.AvgPool2d)) and path in in_shapes:
                node.input_type = {"input": np.asarray(in_shapes[path])}
                node.output_type = {"output": np.asarray(shapes[path])}
            node.metadata = {**(node.metadata or {}), "neurodeploy.source": path}
    graph = nir.NIRGraph(nodes=graph.nodes, edges=list(graph.edges), metadata=dict(graph.metadata or {}), type_check=False)
    return import_graph(graph, arch="snntorch", where="snnTorch model: ",
                        extra={"neurodeploy.input_domain": "real", "neurodeploy.input_encoding": "events"})
