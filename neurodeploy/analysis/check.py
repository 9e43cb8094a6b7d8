"""``check_model``: the whole spike-purity check (what ``neurodeploy check`` runs), as a Python API.

model -> NIR graph (:mod:`neurodeploy.front_door`) -> [readout folding + verification by simulation] ->
value domains and classes -> [dynamic check on sample data] -> :class:`PurityReport`.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ..errors import BadInputError, NeurodeployError
from ..front_door import input_shape, load_graph, resolve_data
from ..graph.core import meta
from .activity import record_activity
from .domains import graph_input_domain
from .fold import fold_readout, verify_fold
from .purity import PurityReport, check_purity


def _check_declared(x: torch.Tensor, declared: str, where: str) -> None:
    if declared == "binary" and not bool(((x == 0) | (x == 1)).all()):
        bad = float(x[(x != 0) & (x != 1)].reshape(-1)[0])
        raise BadInputError(f"{where}: the input is declared binary but the samples hold {bad:g}")
    if declared == "counts" and not bool(((x >= 0) & (x == x.round())).all()):
        bad = float(x[(x < 0) | (x != x.round())].reshape(-1)[0])
        raise BadInputError(f"{where}: the input is declared counts (integers >= 0) but the samples hold {bad:g}")


def _random_inputs(graph, declared: str, n: int = 8) -> torch.Tensor:
    shape = input_shape(graph)
    if shape is None:
        raise BadInputError("cannot verify the folding: the graph input has no shape")
    g = torch.Generator().manual_seed(0)
    T = int(meta(graph, "neurodeploy.time_steps", 0) or 0)
    full = (n,) + tuple(shape) if T else (n, 4) + tuple(shape)
    if declared == "binary":
        return (torch.rand(full, generator=g) < 0.3).float()
    if declared == "counts":
        return torch.randint(0, 3, full, generator=g).float()
    return torch.rand(full, generator=g)


def check_model(model, arch: str | None = None, allow=None, input_domain: str | None = None, data=None,
                fold: bool = False, T: int | None = None, samples: int = 64, dynamic: bool = True) -> PurityReport:
    """Run the spike-purity check.  ``data``: file / array / "digits" / None (digits demo models use the
    bundled digits).  Raises BadInputError for bad input, NeurodeployError for an internal error found by
    the dynamic check or a failed folding verification."""
    t0 = time.perf_counter()
    graph, info = load_graph(model, arch)
    declared = graph_input_domain(graph, input_domain)
    if dynamic:
        got = resolve_data(graph, data, info, limit=samples)
        x = None if got.x is None else torch.as_tensor(np.asarray(got.x, dtype=np.float32))
        data_desc = got.desc
    else:
        x, data_desc = None, ""
    if x is not None:
        _check_declared(x, declared, data_desc)
    extra: dict = {"model": info}
    if fold:
        folded, finfo = fold_readout(graph, input_domain=declared)
        xv = x if x is not None else _random_inputs(graph, declared)
        ver = verify_fold(graph, folded, xv, T)
        ver["data"] = data_desc or f"random {declared} inputs (seed 0)"
        if not ver["equal"]:
            raise NeurodeployError(f"internal error: the folded readout changes the logits "
                                   f"(max |diff| {ver['max_abs_diff']:.3g}); not folding")
        finfo["verification"] = ver
        extra["folding"] = finfo
        graph = folded
    t_an = time.perf_counter()
    report = check_purity(graph, input_domain=declared, allow=allow)
    extra["analysis_seconds"] = time.perf_counter() - t_an
    if x is not None:
        act = record_activity(graph, x, T, analysis=report.analysis)
        act["data"] = data_desc
        extra["dynamic"] = act
        if act["internal_errors"]:  # a value the analysis proved impossible: never report a verdict on it
            raise NeurodeployError(act["internal_errors"][0] + f" ({len(act['internal_errors'])} in all)")
    extra["elapsed_seconds"] = time.perf_counter() - t0
    report.extra = extra
    report.graph = graph
    return report
