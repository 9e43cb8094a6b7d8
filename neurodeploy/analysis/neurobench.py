"""NeuroBench metrics under their official names, measured by running a NIR graph on samples with our
reference simulator (:mod:`neurodeploy.graph.simulate`) and counting as neurobench 2.3.0 defines them
(its ``metrics/static`` and ``metrics/workload``; facts, no code, taken from it):

* ``SynapticOperations`` per sample, summed over steps, for every synaptic node (Affine, Linear, Conv1d,
  Conv2d; what neurobench hooks as Linear / Conv modules): ``Effective`` = the layer applied to the
  binarized input (non-zero -> 1) with binarized weights (non-zero -> 1) and no bias, summed; it is an AC when
  that step's input holds only 0 / 1 / -1 values, else a MAC; ``Dense`` = the same with all-ones input and
  weights (a padded conv counts only the taps inside the input).
* ``ActivationSparsity`` = zero outputs / all outputs of the spiking nodes, over every step and sample.
* ``MembraneUpdates`` per sample: per spiking node, every neuron on the first step, then the neurons whose
  membrane changed from the previous step.
* ``ParameterCount``, ``ConnectionSparsity`` (zero weights / weights of the synaptic nodes, biases excluded,
  rounded to 4 places as neurobench does), ``Footprint`` (bytes of the synaptic weights and biases at
  float32).

Differences from a hook-based count of the same model (said in :func:`neurobench_from_graph`'s notes):
neurobench's Footprint also counts the framework's neuron parameters and buffers (snnTorch's beta,
threshold, ...), which a NIR graph does not store as torch buffers; the attention products of the
spiking-attention extension are matrix products no hook sees (neurobench reports 0 for them): they are
given apart, never inside SynapticOperations; ``routing`` nodes (neurodeploy's token reshapes written as
fixed 0/1 matrices) are reshapes in the source model and are not counted.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..graph import meta, order_and_back_edges, predecessors, simulate
from ..graph.primitives import DENSE, kind_of, primitive_of
from ..graph.simulate import int_tuple, padding_arg



def _apply(node, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``node``'s map with weight ``w`` and no bias on ``x`` [N, *in]."""
    prim = primitive_of(node)
    if prim in DENSE:
        return x.reshape(x.shape[0], -1) @ w.reshape(w.shape[0], -1).T
    n = 1 if prim == "Conv1d" else 2
    fn = F.conv1d if n == 1 else F.conv2d
    return fn(x, w, None, stride=int_tuple(node.stride, n), padding=padding_arg(node.padding, n),
              dilation=int_tuple(node.dilation, n), groups=int(node.groups))


def counted_nodes(graph) -> list[str]:
    return [n for n, v in graph.nodes.items()
            if kind_of(v, n) == "synaptic" and meta(v, "neurodeploy.role") != "routing"]


class NeurobenchCounter:
    """The NeuroBench counts, fed one batch's float-simulator records at a time (records with membranes:
    ``simulate(..., record=True, record_membrane=True)``), so the one float reference run of a deployment
    (:mod:`neurodeploy.analysis.reference`) can feed it."""

    def __init__(self, graph):
        self.graph = graph
        order, self.back = order_and_back_edges(graph)
        self.preds = predecessors(graph)
        self.syn = counted_nodes(graph)
        self.spiking = [n for n in order if kind_of(graph.nodes[n], n) == "spiking"]
        self.wbin = {n: (torch.as_tensor(np.asarray(graph.nodes[n].weight)) != 0).float() for n in self.syn}
        self.mac = {n: 0.0 for n in self.syn}
        self.ac = {n: 0.0 for n in self.syn}
        self.dense = {n: 0.0 for n in self.syn}
        self.spikes = self.total = 0
        self.updates = {n: 0 for n in self.spiking}
        self.samples = 0

    def add(self, rec: dict, B: int) -> None:
        graph, back = self.graph, self.back
        self.samples += B
        for n in self.syn:
            parts = []
            for p in self.preds[n]:
                v = rec[p]
                if (p, n) in back:          # a recurrent edge carries the previous step (zero at t = 0)
                    v = torch.cat([torch.zeros_like(v[:1]), v[:-1]], 0)
                parts.append(v)
            inp = parts[0] if len(parts) == 1 else torch.stack(parts).sum(0)
            Tn = inp.shape[0]
            flat = inp.reshape((Tn * B,) + tuple(inp.shape[2:]))
            eff = _apply(graph.nodes[n], (flat != 0).float(), self.wbin[n]).reshape(Tn, -1).sum(1)
            binary = ((inp == 0) | (inp == 1) | (inp == -1)).reshape(Tn, -1).all(1)
            self.ac[n] += float(eff[binary].sum())
            self.mac[n] += float(eff[~binary].sum())
            one = _apply(graph.nodes[n], torch.ones((1,) + tuple(inp.shape[2:])), torch.ones_like(self.wbin[n])).sum()
            self.dense[n] += float(one) * Tn * B
        for n in self.spiking:
            o = rec[n]
            self.spikes += int(torch.count_nonzero(o))
            self.total += o.numel()
            v = rec.get(n + ":v")
            if v is not None:
                self.updates[n] += int(v[0].numel()) + int(torch.count_nonzero(v[1:] - v[:-1]))

    def result(self) -> dict:
        graph, syn = self.graph, self.syn
        mac, ac, dense, total, spikes = self.mac, self.ac, self.dense, self.total, self.spikes
        weights = zeros = params = 0
        for n in syn:
            node = graph.nodes[n]
            w = np.asarray(node.weight)
            b = getattr(node, "bias", None)
            weights += w.size
            zeros += int((w == 0).sum())
            params += w.size + (np.asarray(b).size if b is not None else 0)
        per = max(self.samples, 1)
        return {
            "Footprint": 4 * params,
            "ParameterCount": params,
            "ConnectionSparsity": round(zeros / weights, 4) if weights else 0.0,
            "ActivationSparsity": (total - spikes) / total if total else 0.0,
            "SynapticOperations": {"Effective_MACs": sum(mac.values()) / per, "Effective_ACs": sum(ac.values()) / per,
                                   "Dense": sum(dense.values()) / per},
            "MembraneUpdates": sum(self.updates.values()) / per,
            "samples": self.samples,
            "per_layer": {n: {"Effective_MACs": mac[n] / per, "Effective_ACs": ac[n] / per, "Dense": dense[n] / per}
                          for n in syn},
        }


def neurobench_from_graph(graph, x, T: int | None = None, batch_size: int = 8) -> dict:
    """The NeuroBench metrics of ``graph`` on samples ``x`` ([B, *input] repeated over T, or [B, T, *input]),
    per sample as neurobench reports them.  Memory: one batch's records (spikes and membranes of every node
    for all steps), so ``batch_size`` is small."""
    counter = NeurobenchCounter(graph)
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    for s in range(0, x.shape[0], batch_size):
        xb = x[s:s + batch_size]
        _, rec = simulate(graph, xb, T, record=True, record_membrane=True)
        counter.add(rec, xb.shape[0])
    return counter.result()
