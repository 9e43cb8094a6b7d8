"""Norse modules -> NIR through Norse's own exporter (``norse.torch.to_nir``, Norse 1.1.0).

Norse 1.1.0's exporter writes tau = dt / tau_mem_inv, which is wrong (norse#411, fixed after the release by
norse#413), exports scalar parameters (NIR needs per-neuron arrays, nir#176), maps unknown modules to None
(dropped) and ignores v_reset.  We keep its graph structure and rewrite the neuron nodes from the module
parameters: LIFBoxCell -> LIF with tau = (1 / (dt_norse * tau_mem_inv)) * dt, r = 1 (Norse's box LIF is
v += dt * tau_mem_inv * ((v_leak - v) + x), so that is exact per step), v_leak, v_th, v_reset as arrays.
"""
from __future__ import annotations

import warnings

import nir
import numpy as np
import torch

from neurodeploy.errors import BadInputError, UnsupportedError
from neurodeploy.graph.core import DT_DEFAULT

from .nir_file import import_graph

SUPPORTED_NORSE = ("torch.nn.Linear", "torch.nn.Conv2d", "torch.nn.Flatten", "norse LIFBoxCell", "norse LIBoxCell", "norse IAFCell")


def _np(v) -> np.ndarray:
    return v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


def from_norse(model: torch.nn.Module, sample_data, dt: float = DT_DEFAULT) -> nir.NIRGraph:
    import norse.torch as nt

    if sample_data is None:
        raise BadInputError("Norse export needs sample_data: one batched input step, e.g. torch.zeros(1, n_inputs)")
    cells = (nt.LIFBoxCell, nt.LIBoxCell, nt.IAFCell)
    leaves = [(p, m) for p, m in model.named_modules() if p and not any(True for _ in m.children())]
    for path, mod in leaves:
        if isinstance(mod, nt.LIFCell):
            raise UnsupportedError(
                f"Norse layer {path!r} (LIFCell): Norse 1.1.0 exports it as CubaLIF, but its membrane reads the "
                "previous step's synaptic current while neurodeploy's CubaLIF (and snnTorch's) reads the updated one; "
                "use LIFBoxCell after a Linear, or an snnTorch Synaptic layer"
            )
        if not isinstance(mod, cells + (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Flatten)):
            raise UnsupportedError(
                f"Norse model layer {path!r} ({type(mod).__module__}.{type(mod).__name__}) is not supported; "
                f"supported: {', '.join(SUPPORTED_NORSE)}"
            )
    shapes: dict[str, tuple] = {}
    in_shapes: dict[str, tuple] = {}

    def hook(mod, i, o, p):
        shapes[p] = tuple((o[0] if isinstance(o, tuple) else o).shape[1:])
        in_shapes[p] = tuple(i[0].shape[1:])

    handles = [m.register_forward_hook(lambda mod, i, o, p=p: hook(mod, i, o, p)) for p, m in leaves]
    try:
        with torch.no_grad():
            model(torch.as_tensor(sample_data))
    except Exception as exc:  # noqa: BLE001
        raise BadInputError(f"Norse model does not run on sample_data of shape {list(np.shape(sample_data))}: {exc}") from None
    finally:
        for h in handles:
            h.remove()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            raw = nt.to_nir(model, torch.as_tensor(sample_data))
        except Exception as exc:  # noqa: BLE001
            raise UnsupportedError(f"Norse's NIR exporter failed: {type(exc).__name__}: {exc}") from None
    nodes: dict[str, nir.NIRNode] = {}
    mods = dict(leaves)
    for name, node in raw.nodes.items():
        mod = mods.get(name)
        if isinstance(node, nir.Input):
            shape = np.asarray(sample_data.shape[1:])
            nodes[name] = nir.Input(input_type={"input": shape})
        elif isinstance(node, nir.Output):
            last = [src for src, dst in raw.edges if dst == name]
            if len(last) != 1 or last[0] not in shapes:
                raise UnsupportedError(f"Norse exporter produced an output node {name!r} that neurodeploy cannot place")
            nodes[name] = nir.Output(output_type={"output": np.asarray(shapes[last[0]])})
        elif isinstance(mod, (nt.LIFBoxCell, nt.LIBoxCell)):
            p, shape = mod.p, shapes[name]
            full = lambda v: np.broadcast_to(_np(v).astype(np.float32), shape).copy()  # noqa: E731
            steps = 1.0 / (float(mod.dt) * _np(p.tau_mem_inv).astype(np.float64))
            tau = full(steps * dt)
            if isinstance(mod, nt.LIBoxCell):
                nodes[name] = nir.LI(tau=tau, r=full(1.0), v_leak=full(p.v_leak))
            else:
                nodes[name] = nir.LIF(tau=tau, r=full(1.0), v_leak=full(p.v_leak), v_threshold=full(p.v_th),
                                      v_reset=full(p.v_reset))
        elif isinstance(mod, nt.IAFCell):
            shape = shapes[name]
            full = lambda v: np.broadcast_to(_np(v).astype(np.float32), shape).copy()  # noqa: E731
            nodes[name] = nir.IF(r=full(1.0), v_threshold=full(mod.p.v_th), v_reset=full(mod.p.v_reset))
        elif isinstance(node, nir.Affine):
            nodes[name] = nir.Affine(weight=_np(node.weight), bias=_np(node.bias))
        elif isinstance(mod, torch.nn.Flatten):
            nd = len(in_shapes[name])
            start, end = mod.start_dim - 1 if mod.start_dim > 0 else mod.start_dim, mod.end_dim - 1 if mod.end_dim > 0 else mod.end_dim
            nodes[name] = nir.Flatten(input_type={"input": np.asarray(in_shapes[name])}, start_dim=start % nd, end_dim=end % nd)
        elif isinstance(node, nir.Conv2d):
            nodes[name] = nir.Conv2d(input_shape=in_shapes[name][1:] if name in in_shapes else None, weight=_np(node.weight), stride=node.stride, padding=node.padding,
                                     dilation=node.dilation, groups=node.groups, bias=_np(node.bias))
        else:
            raise UnsupportedError(f"Norse exporter produced node {name!r} of type {type(node).__name__}, which is not supported")
        if mod is not None:
            nodes[name].metadata = {"neurodeploy.source": name}
    if len([n for n in nodes if n in mods]) != len(leaves):
        raise UnsupportedError("Norse's exporter dropped a layer: "
                               f"{sorted(set(mods) - set(nodes))}")
    graph = nir.NIRGraph(nodes=nodes, edges=list(raw.edges), metadata={})
    return import_graph(graph, arch="norse", where="Norse model: ", dt=dt)
