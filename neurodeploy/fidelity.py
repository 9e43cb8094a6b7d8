"""Fidelity of the Loihi 2 fixed-point network against the float model (the ``simulate`` command, the
report and ``make demo`` use it): lower the NIR graph, run the lowered network on our fast engine or in Lava
(chained: all samples in one run), run the float reference simulator on the same samples, and compare
predictions, accuracies and per-layer spikes."""
from __future__ import annotations

import time

import numpy as np

from .data import check_labels
from .errors import BadInputError


def _num_classes(graph) -> int | None:
    """Size of the graph output (the number of classes of a classifier), None when unknown."""
    from .graph.core import node_shape, output_names

    outs = output_names(graph)
    shape = node_shape(graph.nodes[outs[0]], "input") or node_shape(graph.nodes[outs[0]], "output") if outs else None
    return int(np.prod(shape)) if shape else None


#: per-layer spike agreement is measured over at most this many steps of the first batch (recording every
#: layer for all T steps made memory grow with T: 0.85 MB per step on digits, issue 14)
LAYER_AGREEMENT_STEPS = 256


def simulate_loihi2(graph, x, y=None, steps=None, backend="fast", batch=64, device="cpu", progress=True,
                    return_network=False):
    """Returns a result dict (accuracies, agreement, per-layer spike agreement, steps/s).
    With ``return_network=True`` it returns ``(result, lowered network)`` so callers need not lower again."""
    import torch
    from tqdm import tqdm

    from .graph import simulate as float_simulate
    from .lower.chain import chain_inputs, chain_network, split_windows
    from .lower.from_nir import lower_graph
    from .sim import Engine

    x = np.asarray(x, dtype=np.float32)
    check_labels(y, _num_classes(graph), "labels")  # out-of-range labels would count as wrong silently
    T = steps or int((graph.metadata or {}).get("neurodeploy.time_steps", 0) or 0)
    if not T:
        raise BadInputError("the model does not fix its time steps; give --steps N")
    domain = str((graph.metadata or {}).get("neurodeploy.input_domain", "binary"))
    net, report = lower_graph(graph, T=T, input_range=(float(x.min()), float(x.max())))
    L = int(net.metadata["latency"])
    out_pop = net.outputs[0]
    readout = net.pop(out_pop).kind == "readout"
    n = len(x)
    float_pred, int_pred = [], []
    layer_agree = {}
    t_run = 0.0
    steps_done = 0

    def inputs_for(xb):
        if domain == "real":
            return {k: v for k, v in net.encode_inputs(xb, device=device).items()}
        seq = np.broadcast_to(xb[None], (T,) + xb.shape) if xb.ndim == len(net.inputs[0].shape) + 1 else \
            np.swapaxes(xb, 0, 1)
        seq = np.concatenate([seq, np.zeros((L,) + seq.shape[1:], seq.dtype)])
        return {net.inputs[0].name: seq.astype(np.int64)}

    def decode(res):
        if readout:
            return res[out_pop]["v"][-1].float().cpu().numpy() if torch.is_tensor(res[out_pop]["v"]) \
                else res[out_pop]["v"][-1]
        s = res[out_pop]["s"]
        s = s.float().cpu().numpy() if torch.is_tensor(s) else s
        return s[L:L + T].sum(0)

    # both back-ends run the chained-mode network (neurodeploy.lower.chain): every population reset at
    # the start of its sample window, so one sample's result does not depend on the one before; Lava
    # runs all samples back to back in ONE process graph, the fast engine one sample per batch row
    P = T + L
    Tr = min(T, LAYER_AGREEMENT_STEPS)  # steps of the per-layer spike agreement (all of them up to the cap)
    chained = chain_network(net, P, bias_as_graded=(backend == "lava"), conv_as_sparse=(backend == "lava"))
    bar = tqdm(total=n, desc=f"loihi2/{backend}", unit="sample", disable=not progress)
    engine = Engine(chained, device=device) if backend == "fast" else None
    timing = None
    bsz = batch if backend == "fast" else n
    for i in range(0, n, bsz):
        xb = x[i:i + bsz]
        with torch.no_grad():
            for j in range(0, len(xb), batch):
                first = i + j == 0  # per-layer agreement is measured on the first batch: record only there
                fout = float_simulate(graph, torch.as_tensor(xb[j:j + batch]), T=T, time_chunk=LAYER_AGREEMENT_STEPS)
                float_pred.append(fout.float().mean(0).reshape(len(xb[j:j + batch]), -1).numpy().argmax(1))
                if first:  # records of every layer over the first Tr steps only: memory does not grow with T
                    first_x = xb[j:j + batch]
                    timed = first_x.ndim != len(net.inputs[0].shape) + 1  # [B, T, ...]: cut to Tr steps
                    _, first_rec = float_simulate(graph, torch.as_tensor(first_x[:, :Tr] if timed else first_x),
                                                  T=Tr, record=True)
        t0 = time.perf_counter()
        if backend == "fast":
            res = engine.run(chain_inputs(chained, inputs_for(xb), batched=True), P, record=[out_pop])
            bar.update(len(xb))
        else:
            from .lava.run import run_lava_chained
            inp = {k: (v.cpu().numpy() if torch.is_tensor(v) else v) for k, v in inputs_for(xb).items()}
            chunk = P * max(1, min(10, len(xb) // 20 or 1))
            _, res, timing = run_lava_chained(net, inp, P, record=[out_pop], chunk=chunk,
                                              progress=lambda k: bar.update(k // P))
            res = {k: {kk: torch.as_tensor(a) for kk, a in r.items()} for k, r in
                   split_windows(res, len(xb), P).items()}
        t_run += time.perf_counter() - t0
        steps_done += P * len(xb) if backend == "lava" else P
        int_pred.append(np.asarray(decode(res)).reshape(len(xb), -1).argmax(1))
    # per-layer spike agreement float vs integer (layer-synchronous engine, first batch)
    sync = Engine(net, device=device, pipelined=False).run(
        {k: (v[:Tr] if net.pop(k).input_kind != "bias" else v) for k, v in inputs_for(first_x).items()}, Tr,
        record=[p.name for p in net.populations if p.kind == "lif"])
    for name, r in sync.items():
        if name in first_rec:
            f = first_rec[name].reshape(Tr, len(first_x), -1).numpy()
            layer_agree[name] = float((f == r["s"].cpu().numpy()).mean())
    bar.close()
    fp, ip = np.concatenate(float_pred), np.concatenate(int_pred)
    result = {"backend": backend, "samples": int(n), "steps_per_sample": T, "latency_steps": L,
              "prediction_agreement": float((fp == ip).mean()),
              "steps_per_s": steps_done / max(t_run, 1e-9),
              "samples_per_s": n / max(t_run, 1e-9), "layer_spike_agreement": layer_agree,
              "clipped_weights": report["clipped_weights"], "clipped_biases": report["clipped_biases"]}
    if timing is not None:
        # Lava, chained: one process graph for all samples; the first chunk includes compiling it
        result["lava"] = {"compile_and_first_chunk_s": timing["first_s"], "first_chunk_steps": timing["first_steps"],
                          "steady_steps_per_s": timing["rest_steps"] / max(timing["rest_s"], 1e-9)
                          if timing["rest_steps"] else None}
    if y is not None:
        y = np.asarray(y)[:n]
        result["float_accuracy"] = float((fp == y).mean())
        result["loihi2_accuracy"] = float((ip == y).mean())
    return (result, net) if return_network else result
