"""Readout folding: rewrite a non-spiking Linear(mean(x)) head as accumulates of spikes.

In Spikingformer the head reads the residual stream, a sum of Conv outputs of spikes (the tokenizer's
last conv, every ``proj_conv`` and ``mlp2_conv``).  All of it is linear, so

    head(flatten(sum_b conv_b(s_b))) = sum_b (W_head . flatten . W_b) s_b + (b_head + sum_b W_head . flatten(b_b))

Each branch b becomes one Affine on the spikes s_b that fed conv_b, with the composed weight
``W_head . flatten . W_b`` (computed exactly in float64 as the Jacobian of the linear chain): spikes in,
so every synaptic event is an accumulate.  The new nodes sum into the graph output, which the readout
reduction (mean over time) integrates: a non-spiking integrator.  Spike sources that reach the head
directly (Spikformer's stream) become Affines on those spikes.  The rest of the graph is unchanged;
``verify_fold`` simulates both graphs and compares the logits.
"""
from __future__ import annotations

import nir
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UnsupportedError
from ..graph.core import node_shape
from ..graph.primitives import CONV, DENSE, primitive_of
from ..graph.simulate import int_tuple, padding_arg, reduce_output, simulate
from .domains import analyze, role_of, source_of



def _apply(node, x: torch.Tensor, with_bias: bool) -> torch.Tensor:
    """The linear map of ``node`` on a batch [B, *shape] (float64)."""
    prim = primitive_of(node)
    if prim == "Flatten":
        nd = x.dim() - 1
        s = int(node.start_dim) % nd
        e = int(node.end_dim) % nd
        return torch.flatten(x, s + 1, e + 1)
    w = torch.as_tensor(np.asarray(node.weight, dtype=np.float64))
    b = getattr(node, "bias", None)
    b = torch.as_tensor(np.asarray(b, dtype=np.float64)) if (with_bias and b is not None) else None
    if prim in DENSE:
        return F.linear(x, w, b)
    if prim == "Conv1d":
        return F.conv1d(x, w, b, int_tuple(node.stride, 1), padding_arg(node.padding, 1), int_tuple(node.dilation, 1),
                        int(np.asarray(node.groups).reshape(-1)[0]))
    if prim == "Conv2d":
        return F.conv2d(x, w, b, int_tuple(node.stride, 2), padding_arg(node.padding, 2), int_tuple(node.dilation, 2),
                        int(np.asarray(node.groups).reshape(-1)[0]))
    raise UnsupportedError(f"readout folding: {prim} is not linear")


def _in_shape(name, node) -> tuple[int, ...]:
    prim = primitive_of(node, name)
    if prim == "Conv2d":
        hw = int_tuple(node.input_shape, 2)
        return (int(np.asarray(node.weight).shape[1]) * int(np.asarray(node.groups).reshape(-1)[0]),) + hw
    if prim == "Conv1d":
        return (int(np.asarray(node.weight).shape[1]) * int(np.asarray(node.groups).reshape(-1)[0]),
                int_tuple(node.input_shape, 1)[0])
    if prim in DENSE:
        return (int(np.asarray(node.weight).shape[1]),)
    shape = node_shape(node, "input")
    if shape is None:
        raise UnsupportedError(f"readout folding: node {name!r} has no input shape")
    return shape


def _readout_nodes(graph, res) -> list[str]:
    out = []
    for n, node in graph.nodes.items():
        if primitive_of(node, n) in DENSE and role_of(node) == "readout":
            d = res.inp.get(n)
            if d is not None and not d.is_spike:
                out.append(n)
    return sorted(out)


def _paths(graph, res, preds, head: str):
    """Leaves feeding ``head`` through Flatten / fan-in only: list of (leaf, kind, chain) where chain
    is [leaf?, flatten..., ] in data order (excluding the head); kind 'conv' (synaptic leaf on spikes,
    composed through) or 'spikes' (a spike source taken as it is)."""
    found = []

    def walk(name, chain):
        for p in preds[name]:
            node = graph.nodes[p]
            d_out = res.out.get(p)
            if d_out is not None and d_out.is_spike:
                found.append((p, "spikes", list(reversed(chain))))
            elif primitive_of(node, p) == "Flatten":
                walk(p, chain + [p])
            elif primitive_of(node, p) in DENSE + CONV and role_of(node) != "routing" and res.inp.get(p) is not None \
                    and res.inp[p].is_spike:
                found.append((p, "conv", [p] + list(reversed(chain))))
            else:
                d = res.out.get(p)
                raise UnsupportedError(
                    f"cannot fold readout {head!r}: its input passes through {p!r} ({primitive_of(node, p)}, "
                    f"{d.text() if d else 'unknown'}), which is not a Flatten, a spike source, or an "
                    f"Affine/Conv on spikes")

    walk(head, [])
    return found


def fold_readout(graph: nir.NIRGraph, input_domain: str | None = None) -> tuple[nir.NIRGraph, dict]:
    """The folded graph and a description ``{"readouts": [...], "branches": [...]}``.

    Raises UnsupportedError (naming the node) when the head's input is not a sum of Flatten'ed Affine /
    Conv outputs of spikes and spike sources, or when there is no non-spiking readout to fold."""
    res = analyze(graph, input_domain=input_domain)
    preds = {n: [] for n in graph.nodes}
    succ = {n: [] for n in graph.nodes}
    for s, d in graph.edges:
        preds[d].append(s)
        succ[s].append(d)
    heads = _readout_nodes(graph, res)
    if not heads:
        raise UnsupportedError("--fold-readout: the graph has no non-spiking readout (an Affine/Linear with "
                               "neurodeploy.role=readout and non-spike input) to fold")
    nodes = dict(graph.nodes)
    edges = list(graph.edges)
    info = {"readouts": [], "branches": []}
    for head in heads:
        hnode = graph.nodes[head]
        leaves = _paths(graph, res, preds, head)
        W_head = np.asarray(hnode.weight, dtype=np.float64)
        b_total = np.asarray(getattr(hnode, "bias", np.zeros(W_head.shape[0])), dtype=np.float64).reshape(-1).copy()
        if b_total.size == 1 and W_head.shape[0] != 1:
            b_total = np.full(W_head.shape[0], b_total[0])
        groups: dict[str, dict] = {}
        for leaf, kind, chain in leaves:
            ops = [graph.nodes[c] for c in chain]
            if kind == "conv":
                in_shape = _in_shape(leaf, graph.nodes[leaf])
            else:
                in_shape = node_shape(graph.nodes[leaf], "output")
                if in_shape is None:
                    raise UnsupportedError(f"cannot fold readout {head!r}: spike source {leaf!r} has no output shape")

            def f(x, ops=ops):
                y = x.unsqueeze(0)
                for op in ops:
                    y = _apply(op, y, with_bias=False)
                y = F.linear(y.reshape(1, -1), torch.as_tensor(W_head))
                return y[0]

            x0 = torch.zeros(in_shape, dtype=torch.float64)
            J = torch.autograd.functional.jacobian(f, x0, vectorize=True).reshape(W_head.shape[0], -1).numpy()
            if kind == "conv":  # constant part of this branch: the leaf's bias through the chain
                y = torch.zeros((1,) + tuple(in_shape), dtype=torch.float64)
                for k, op in enumerate(ops):
                    y = _apply(op, y, with_bias=(k == 0))
                b_total += (torch.as_tensor(W_head) @ y.reshape(-1)).numpy()
            g = groups.setdefault(leaf, {"kind": kind, "W": np.zeros_like(J), "shape": tuple(in_shape), "chains": []})
            g["W"] += J
            g["chains"].append(chain)
        # new nodes
        consumers = succ[head]
        first = True
        for i, (leaf, g) in enumerate(sorted(groups.items())):
            base = f"{head}.fold.{i}"
            srcs = preds[leaf] if g["kind"] == "conv" else [leaf]
            flat = nir.Flatten(input_type={"input": np.array(g["shape"])}, start_dim=0, end_dim=-1)
            flat.metadata = {"neurodeploy.source": source_of(head, hnode), "neurodeploy.role": "readout"}
            W = g["W"].astype(np.float32)
            if first:
                lin = nir.Affine(weight=W, bias=b_total.astype(np.float32))
                first = False
            else:
                lin = nir.Linear(weight=W)
            src_desc = source_of(leaf, graph.nodes[leaf])
            lin.metadata = {"neurodeploy.source": f"{source_of(head, hnode)} o {src_desc}", "neurodeploy.role": "readout",
                            "neurodeploy.folded_from": f"{head} <- {leaf}"}
            nodes[base + ".flatten"] = flat
            nodes[base] = lin
            edges += [(s, base + ".flatten") for s in srcs] + [(base + ".flatten", base)]
            edges += [(base, c) for c in consumers]
            info["branches"].append({"node": base, "leaf": leaf, "kind": g["kind"], "inputs": list(srcs),
                                     "weight_shape": list(W.shape)})
        # drop the head and the chain nodes that only fed it
        removed = {head}
        changed = True
        while changed:
            changed = False
            for n in list(nodes):
                if n in removed or primitive_of(nodes[n], n) != "Flatten" or n.startswith(head + ".fold."):
                    continue
                outs = [d for s, d in edges if s == n]
                if outs and all(d in removed for d in outs):
                    removed.add(n)
                    changed = True
        for n in removed:
            nodes.pop(n, None)
        edges = [(s, d) for s, d in edges if s not in removed and d not in removed]
        info["readouts"].append({"head": head, "removed": sorted(removed), "branches": len(groups)})
    md = dict(graph.metadata or {})
    md["neurodeploy.readout_folded"] = 1
    folded = nir.NIRGraph(nodes=nodes, edges=edges, metadata=md, type_check=False)
    return folded, info


def verify_fold(graph: nir.NIRGraph, folded: nir.NIRGraph, x, T: int | None = None) -> dict:
    """Simulate both graphs on ``x`` and compare the reduced outputs (the logits)."""
    a = reduce_output(graph, simulate(graph, x, T)).double()
    b = reduce_output(folded, simulate(folded, x, T)).double()
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    scale = float(a.abs().max()) if a.numel() else 0.0
    ok = bool(torch.allclose(a, b, rtol=1e-4, atol=1e-4 * max(1.0, scale)))
    same_argmax = bool(torch.equal(a.argmax(-1), b.argmax(-1))) if a.dim() > 1 else True
    return {"samples": int(a.shape[0]) if a.dim() > 1 else 1, "max_abs_diff": diff, "max_abs_logit": scale,
            "equal": ok, "same_prediction": same_argmax}
