"""Test-only helpers for comparing our Speck target with sinabs 3.1.3 (the vendor's tool as ground truth).

**samna import guard (tests only).**  ``sinabs.backend.dynapcnn`` imports samna at module level (its
``dynapcnn_network``, ``io``, ``config_builder`` and chip modules), and samna has no Python 3.11 build (the
PyPI releases for 3.11 are stubs that try to download the real package on import).  Nothing we compare with
*calls* samna: ``DynapcnnNetwork(...)`` construction, ``memory_summary()``, the discretized CPU ``forward``,
``DynapcnnConfigBuilder.get_constraints()`` and ``map_layers_to_cores()`` (sinabs' ``get_valid_mapping``)
are plain torch / Python.  :func:`import_dynapcnn` therefore installs, only when ``import samna`` fails, a
meta-path finder that answers ``samna`` / ``samnagui`` imports with empty modules whose every attribute
raises "samna is not installed" when called.  It lives here, in the tests, and is never part of the
neurodeploy package.  Out of reach with it: ``make_config`` / ``to(device=...)`` (the samna chip
configuration and its validation), specksim, the dev kit.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

import nir
import numpy as np


class _Absent:
    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        return _Absent(f"{self._name}.{attr}")

    def __call__(self, *a, **k):
        raise RuntimeError(f"{self._name}: samna is not installed (test import guard, tests/speck_vendor.py)")

    def __mro_entries__(self, bases):
        return (object,)


class _Module(types.ModuleType):
    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Absent(f"{self.__name__}.{attr}")


class _SamnaGuard(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("samna", "samnagui"):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return _Module(spec.name)

    def exec_module(self, module):
        module.__path__ = []


def import_dynapcnn():
    """``(DynapcnnNetwork, DynapcnnConfigBuilder, mapping module)`` from sinabs, with the samna guard when
    samna is missing."""
    try:
        import samna  # noqa: F401
    except Exception:  # noqa: BLE001 - not installed, or the download stub failing offline
        if not any(isinstance(f, _SamnaGuard) for f in sys.meta_path):
            for k in [k for k in sys.modules if k.split(".")[0] in ("samna", "samnagui")]:
                del sys.modules[k]
            sys.meta_path.insert(0, _SamnaGuard())
    from sinabs.backend.dynapcnn import DynapcnnNetwork, mapping
    from sinabs.backend.dynapcnn.chips.dynapcnn import DynapcnnConfigBuilder

    return DynapcnnNetwork, DynapcnnConfigBuilder, mapping


# -- generated networks: the same numbers as a NIR graph and as a sinabs nn.Sequential ---------------------
def build(spec: dict, seed: int = 0):
    """``spec``: ``{"input": (C, H, W), "layers": [("conv", c_out, k, stride, pad, pool) | ("linear", n_out,
    bias?)...]}``.  Returns ``(nir graph, sinabs nn.Sequential)`` with identical parameters; IF thresholds are
    scalars (as ``DynapcnnNetwork`` needs), read like ``sinabs.from_nir`` reads IF (min_v_mem = -threshold)."""
    import sinabs.layers as sl
    import torch

    rng = np.random.default_rng(seed)
    cur = tuple(spec["input"])
    nodes = {"input": nir.Input(input_type={"input": np.array(cur)})}
    order = ["input"]
    mods = []
    for i, L in enumerate(spec["layers"]):
        if L[0] == "conv":
            _, co, k, st, pad, pool = L
            fan_in = cur[0] * k * k
            w = rng.normal(0, 1.0 / np.sqrt(fan_in), (co, cur[0], k, k)).astype(np.float32)
            b = rng.normal(0, 0.05, co).astype(np.float32)
            nodes[f"c{i}"] = nir.Conv2d(input_shape=cur[1:], weight=w, stride=st, padding=pad, dilation=1,
                                        groups=1, bias=b)
            order.append(f"c{i}")
            conv = torch.nn.Conv2d(cur[0], co, k, stride=st, padding=pad, bias=True)
            conv.weight.data = torch.tensor(w)
            conv.bias.data = torch.tensor(b)
            mods.append(conv)
            h, wd = (cur[1] + 2 * pad - k) // st + 1, (cur[2] + 2 * pad - k) // st + 1
            cur = (co, h, wd)
        else:
            _, n, with_bias = L
            if len(cur) == 3:
                nodes[f"f{i}"] = nir.Flatten(input_type={"input": np.array(cur)}, start_dim=0, end_dim=-1)
                order.append(f"f{i}")
                mods.append(torch.nn.Flatten())
            fan_in = int(np.prod(cur))
            w = rng.normal(0, 1.0 / np.sqrt(fan_in), (n, fan_in)).astype(np.float32)
            lin = torch.nn.Linear(fan_in, n, bias=with_bias)
            lin.weight.data = torch.tensor(w)
            if with_bias:
                b = rng.normal(0, 0.05, n).astype(np.float32)
                nodes[f"l{i}"] = nir.Affine(weight=w, bias=b)
                lin.bias.data = torch.tensor(b)
            else:
                nodes[f"l{i}"] = nir.Linear(weight=w)
            order.append(f"l{i}")
            mods.append(lin)
            cur = (n,)
            pool = 1
        thr = float(np.float32(rng.uniform(0.3, 1.0)))
        shape = cur
        nodes[f"n{i}"] = nir.IF(r=np.ones(shape, np.float32), v_threshold=np.full(shape, thr, np.float32),
                                v_reset=np.zeros(shape, np.float32))
        order.append(f"n{i}")
        mods.append(sl.IAFSqueeze(batch_size=1, spike_threshold=thr, min_v_mem=-thr))
        if pool > 1:
            nodes[f"p{i}"] = nir.SumPool2d(kernel_size=np.array([pool, pool]), stride=np.array([pool, pool]),
                                           padding=np.array([0, 0]))
            order.append(f"p{i}")
            mods.append(sl.SumPool2d(pool))
            cur = (cur[0], cur[1] // pool, cur[2] // pool)
    nodes["output"] = nir.Output(output_type={"output": np.array(cur)})
    order.append("output")
    g = nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), type_check=False)
    g.infer_types()
    return g, torch.nn.Sequential(*mods)


def sinabs_from_nir_scalar(graph):
    """``sinabs.from_nir(graph)`` as an ``nn.Sequential`` in chain order with scalar IF thresholds (what
    ``DynapcnnNetwork`` accepts; vendors.md)."""
    import sinabs
    import sinabs.layers as sl
    import torch

    from neurodeploy.graph import topological_order

    ex = sinabs.from_nir(graph, batch_size=1)
    mods = []
    for n in topological_order(graph):
        m = getattr(ex, n)
        if isinstance(m, sl.IAFSqueeze):
            thr = float(m.spike_threshold.flatten()[0])
            m = sl.IAFSqueeze(batch_size=1, spike_threshold=thr, min_v_mem=-thr)
        if not isinstance(m, torch.nn.Identity):
            mods.append(m)
    return torch.nn.Sequential(*mods)
