"""The float reference run of a deployment: every sample through the float model (our NIR simulator) once.

One pass serves what a deployment measures on its samples: the float model's class predictions (every
target's fidelity compares with them), the dynamic activity (firing rates, :class:`ActivityCounter`) and the
NeuroBench counts (:class:`NeurobenchCounter`), the last two on the first ``profile_samples`` samples as
before.  Batched (``batch`` samples at a time, fewer where one batch's records would pass :data:`RECORD_BUDGET`;
records kept for one batch only), so full-size models fit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import float_batch
from ..graph.simulate import input_sequence, record_bytes, simulate
from .activity import ActivityCounter
from .domains import DomainAnalysis
from .neurobench import NeurobenchCounter

#: samples the activity and NeuroBench figures are measured on (the first ones)
PROFILE_SAMPLES = 64
#: bytes the records of one batch may take (every node's output and every neuron's membrane over T steps):
#: full-size models record fewer samples at a time (imagenet-8-768: 1.2 GiB a sample, so 3, not 8)
RECORD_BUDGET = 4 * 2 ** 30


@dataclass
class FloatReference:
    """What the one float run measured: ``predictions`` [N] (argmax of the mean output over time),
    ``activity`` (:func:`~neurodeploy.analysis.activity.record_activity`'s dict) and ``neurobench``
    (:func:`~neurodeploy.analysis.neurobench.neurobench_from_graph`'s dict) on the first samples."""

    predictions: np.ndarray
    activity: dict
    neurobench: dict
    steps: int | None = None


def float_reference(graph, x, T: int | None = None, analysis: DomainAnalysis | None = None,
                    profile_samples: int = PROFILE_SAMPLES, batch: int = 8) -> FloatReference:
    """Run ``graph`` once on samples ``x`` ([N, *input] or [N, T, *input]); see the module docstring."""
    activity, nb = ActivityCounter(graph, analysis), NeurobenchCounter(graph)
    preds = []
    n = len(x)
    if n and min(n, profile_samples) > 0:
        steps = input_sequence(graph, torch.as_tensor(float_batch(x, 0, 1)), T).shape[0]
        batch = max(1, min(int(batch), RECORD_BUDGET // max(1, record_bytes(graph, steps, membranes=True))))
    with torch.no_grad():
        for i in range(0, n, batch):
            xb = torch.as_tensor(float_batch(x, i, i + batch))
            k = max(0, min(len(xb), profile_samples - i))      # rows of this batch the profiles count
            if k:
                out, rec = simulate(graph, xb, T, record=True, record_membrane=True)
                part = rec if k == len(xb) else {name: v[:, :k] for name, v in rec.items()}
                activity.add(part, k)
                nb.add(part, k)
                del rec, part
            else:
                out = simulate(graph, xb, T)
            preds.append(out.float().mean(0).reshape(len(xb), -1).numpy().argmax(1))
    p = np.concatenate(preds) if preds else np.zeros((0,), dtype=np.int64)
    return FloatReference(p, activity.result(T), nb.result(), T)
