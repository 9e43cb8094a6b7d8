"""The checks at :func:`neurodeploy.lower.loihi2.lower_graph`'s door: it is a documented entry point, so a
graph handed to it is validated as a file read by the CLI is (``graph.core.validate_graph``: NaN/inf
parameters and algebraic loops named by node, conv fields, shapes, metadata), and so are its arguments.
Without this a NaN weight ended as ``ValueError: cannot convert float NaN to integer`` deep in the
quantization, and an algebraic loop as ``RecursionError``."""
from __future__ import annotations

import math
from numbers import Integral, Real

from .. import limits
from ..analysis.annotate import AnnotatedGraph
from ..errors import BadInputError, ResourceLimitError
from ..graph.core import validate_graph
from ..graph.primitives import is_graph
from .attention_graded import ATTENTION_SCHEDULES

#: Loihi 2's bias exponent field: 0..7 (the lowering raises it up to 7 to fit the 13-bit mantissa)
BIAS_EXP_RANGE = (0, 7)
#: a forced integer weight scale: positive, at most 2**31 (weights are 8-bit mantissas times 2**exp)
MAX_SCALE = 2**31


def _is_int(v) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


def check_lowering_inputs(graph, T=None, scale=None, rounding="nearest", input_range=(0.0, 1.0),
                          bias_exp_min=0, attention="graded", attention_schedule="parallel",
                          residual_stream="relay", stream_scale="level") -> None:
    """Raise BadInputError / ResourceLimitError naming the argument, or the node of ``graph``, that
    :func:`lower_graph` cannot use."""
    where = "lower_graph: "
    if isinstance(graph, AnnotatedGraph):
        graph = graph.graph
    if not is_graph(graph):
        raise BadInputError(f"{where}argument 'graph' must be a nir.NIRGraph (or its AnnotatedGraph), "
                            f"got {type(graph).__name__}")
    if T is not None:
        if not _is_int(T) or T < 1:
            raise BadInputError(f"{where}argument 'T' must be an integer >= 1, got {T!r}"[:200])
        if T > limits.MAX_TIME_STEPS:
            raise ResourceLimitError(f"{where}argument 'T' = {T:,} exceeds the limit of {limits.MAX_TIME_STEPS:,}")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, Real) or not math.isfinite(scale)
                              or not 0 < scale <= MAX_SCALE):
        raise BadInputError(f"{where}argument 'scale' must be a number in (0, {MAX_SCALE:,}], got {scale!r}"[:200])
    if rounding not in ("nearest", "floor"):
        raise BadInputError(f"{where}argument 'rounding' must be 'nearest' or 'floor', got {rounding!r}"[:200])
    if attention not in ("graded", "process"):
        raise BadInputError(f"{where}argument 'attention' must be 'graded' or 'process', got {attention!r}"[:200])
    if attention_schedule not in ATTENTION_SCHEDULES:
        raise BadInputError(f"attention_schedule must be one of {', '.join(ATTENTION_SCHEDULES)}, "
                            f"not '{attention_schedule}'")
    if attention == "process" and attention_schedule != "parallel":
        raise BadInputError(f"attention_schedule '{attention_schedule}' needs attention='graded'")
    if residual_stream not in ("relay", "expanded"):
        raise BadInputError(f"residual_stream must be 'relay' or 'expanded', not '{residual_stream}'")
    if stream_scale not in ("level", "one", "ratio"):
        raise BadInputError(f"stream_scale must be 'level', 'one' or 'ratio', not '{stream_scale}'")
    try:
        lo, hi = input_range
        ok = all(isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) for v in (lo, hi)) and lo <= hi
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise BadInputError(f"{where}argument 'input_range' must be two finite numbers (low, high) with "
                            f"low <= high, got {input_range!r}"[:200])
    if not _is_int(bias_exp_min) or not BIAS_EXP_RANGE[0] <= bias_exp_min <= BIAS_EXP_RANGE[1]:
        raise BadInputError(f"{where}argument 'bias_exp_min' must be an integer in "
                            f"[{BIAS_EXP_RANGE[0]}, {BIAS_EXP_RANGE[1]}], got {bias_exp_min!r}"[:200])
    validate_graph(graph, where)
