"""Front-ends into one ``nir.NIRGraph`` (docs/nir.md): neurodeploy torch models (Spikingformer, Spikformer,
SEW-ResNet), .nir files from any tool, snnTorch and Norse modules.  Installed as ``neurodeploy.exporters``.

``to_nir(model_or_path, ...)`` is the front door; the CLI ``neurodeploy export`` calls it.
"""
from __future__ import annotations

import os
from pathlib import Path

import nir
import numpy as np

from neurodeploy.errors import BadInputError, UnsupportedError

from .nir_file import import_graph, import_nir_file
from .torch_models import SUPPORTED_TORCH, export_torch_model
from .compat import make_compatible
from neurodeploy.checkpoint import load_model
from .snntorch import from_snntorch
from .norse import from_norse

__all__ = ["to_nir", "export_torch_model", "import_nir_file", "import_graph", "SUPPORTED_TORCH"]


#: the dtypes a graph's parameters may be written in: NIR parameters are real numbers (an integer dtype
#: cannot hold a threshold's scale or an infinite bound; it overflowed deep in the export)
DTYPES = ("float16", "float32", "float64")


def check_dtype(dtype) -> np.dtype:
    """``to_nir``'s ``dtype`` as a numpy float dtype, or BadInputError naming the argument."""
    try:
        dt = None if dtype is None or isinstance(dtype, bool) else np.dtype(dtype)
    except Exception:  # noqa: BLE001 - numpy raises TypeError, ValueError or others for what it cannot read
        dt = None
    if dt is None or dt.name not in DTYPES:
        raise BadInputError(f"to_nir: argument 'dtype' must be one of {', '.join(DTYPES)}, got {dtype!r}"[:200])
    return dt.type


def _is_from(model, package: str) -> bool:
    return any(type(m).__module__.split(".")[0] == package for m in model.modules())


def to_nir(model_or_path, *, arch: str | None = None, input_shape=None, expand_attention: bool = False,
           dtype=np.float32, sample_data=None, compat: str | None = None) -> nir.NIRGraph:
    """A NIR graph from a model or a file.

    * ``str``/``Path``: a ``.nir`` file (any tool), else a checkpoint loaded with
      ``neurodeploy.load_model(path, arch)`` (ours, or an official one with ``arch``);
    * a neurodeploy torch model (``input_shape`` = [C, H, W] overrides the config's image size);
    * an snnTorch or Norse module (``sample_data`` = one batched input step, e.g. ``torch.zeros(1, 784)``);
    * a ``nir.NIRGraph`` (checked and tagged like a file).
    ``expand_attention`` writes the attention as standard primitives (small models only).
    ``compat`` ('strict' or 'snntorch', :mod:`neurodeploy.exporters.compat`): a graph that consumer reads."""
    dtype = check_dtype(dtype)
    graph = _to_nir(model_or_path, arch=arch, input_shape=input_shape, expand_attention=expand_attention,
                    dtype=dtype, sample_data=sample_data)
    if compat is None:
        return graph

    return make_compatible(graph, compat)


def _to_nir(model_or_path, *, arch, input_shape, expand_attention, dtype, sample_data) -> nir.NIRGraph:
    if isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        if path.suffix.lower() == ".nir":
            return import_nir_file(path)

        model = load_model(path, arch)
        return export_torch_model(model, input_shape, dtype, expand_attention)
    if isinstance(model_or_path, nir.NIRGraph):
        return import_graph(model_or_path, arch="nir-graph")
    import torch

    if isinstance(model_or_path, torch.nn.Module):
        model = model_or_path
        if getattr(model, "arch_family", None) is not None:
            return export_torch_model(model, input_shape, dtype, expand_attention)
        if _is_from(model, "snntorch"):
            return from_snntorch(model, sample_data)
        if _is_from(model, "norse"):
            return from_norse(model, sample_data)
        leaves = [(p, m) for p, m in model.named_modules() if p and not any(True for _ in m.children())]
        first = f"; its first layer {leaves[0][0]!r} is {type(leaves[0][1]).__module__}.{type(leaves[0][1]).__name__}" if leaves else ""
        raise UnsupportedError(f"model {type(model).__name__} is not a neurodeploy, snnTorch or Norse model{first}; "
                               f"supported: {SUPPORTED_TORCH}")
    raise BadInputError(f"cannot export a {type(model_or_path).__name__}; pass a model, a checkpoint path or a .nir file")
