"""Fidelity: a lowered (fixed-point) network against the float model it came from, on sample data.

* :func:`float_predictions` - the float reference (our NIR simulator), batched.
* :func:`simulate_lowered` - run a Loihi 2 lowered network on our fast engine or in Lava (chained: all
  samples in one run) and compare predictions, accuracies and per-layer spikes with the float model.
  The lowered network is given: whoever made it (the Loihi 2 target of a deployment) is the one whose
  artifact is measured, so the figure belongs to the network that is written and mapped.
* :func:`simulate_loihi2` - convenience for the Python API: lower ``graph`` (input range from ``x``), then
  :func:`simulate_lowered`.
"""
from __future__ import annotations

import time

import numpy as np

from .data import check_labels, float_batch
from .errors import BadInputError
from .lava.run import run_lava, run_lava_chained  # Lava itself is imported only when a run starts
from .graph.core import node_shape, input_names
from .front_door import num_classes
from .graph import simulate as float_simulate
from .graph.simulate import record_bytes
from .lower.chain import carries_tail, chain_inputs, chain_network, split_windows
from .sim import Engine
from .sim.batch import DEFAULT_MAX_MEMORY, chunk_size, memory_estimate
from .lower.loihi2 import lower_graph


#: per-layer spike agreement is measured over at most this many steps of the first batch (recording every
#: layer for all T steps made memory grow with T: 0.85 MB per step on digits, issue 14)
LAYER_AGREEMENT_STEPS = 256


def _distributed():
    """(torch.distributed, rank, world size) when a process group is initialised (torchrun), else (None, 0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist, dist.get_rank(), dist.get_world_size()
    return None, 0, 1


def graph_time_steps(graph, steps: int | None = None) -> int:
    T = steps or int((graph.metadata or {}).get("neurodeploy.time_steps", 0) or 0)
    if not T:
        raise BadInputError("the model does not fix its time steps; give --steps N")
    return int(T)


def float_predictions(graph, x, steps: int | None = None, batch: int = 64, record_first: bool = False):
    """Class predictions [B] of the float model (mean output over time, argmax); with ``record_first`` also
    the per-node records of the first batch (for per-layer agreement)."""
    import torch

    T = graph_time_steps(graph, steps)
    preds, first = [], None
    with torch.no_grad():
        for j in range(0, len(x), batch):
            xb = torch.as_tensor(float_batch(x, j, j + batch))
            want = record_first and j == 0
            # the float reference in time chunks: its memory does not grow with T (records: first batch only)
            out = float_simulate(graph, xb, T=T, record=want) if want else \
                float_simulate(graph, xb, T=T, time_chunk=LAYER_AGREEMENT_STEPS)
            fout, rec = out if want else (out, None)
            if want:
                first = rec
            preds.append(fout.float().mean(0).reshape(len(xb), -1).numpy().argmax(1))
    p = np.concatenate(preds) if preds else np.zeros((0,), dtype=np.int64)
    return (p, first) if record_first else p


def _encode(net, x, T, L, device, in_dims):
    """Engine inputs of the lowered network for samples ``x`` [B, *input] or [B, T, *input] (``in_dims``: the
    graph input's dimensions, not the population's: a [C, N] input is a (C, 1, N) population): the host
    encoder's biases, or spike/graded sequences padded by the latency."""
    if net.encoders:
        return dict(net.encode_inputs(x, device=device))
    inp = net.inputs[0]
    seq = np.broadcast_to(x[None], (T,) + x.shape) if x.ndim == in_dims + 1 else np.swapaxes(x, 0, 1)
    seq = np.concatenate([seq, np.zeros((L,) + seq.shape[1:], seq.dtype)])
    return {inp.name: seq.astype(np.int64)}


def _encode_stream(net, x, T, device, in_dims):
    """Engine inputs of one batch for :meth:`Engine.run_stream`: the host encoder's biases, or the first T
    steps of what :func:`_encode` + :func:`chain_inputs` give one sample window (its data, looped like a
    RingBuffer over the data padded by the latency)."""
    L = int(net.metadata["latency"])
    enc = _encode(net, x, T, L, device, in_dims)
    return {k: (v if net.pop(k).input_kind == "bias" else v[np.arange(T) % v.shape[0]]) for k, v in enc.items()}


#: batches per pipelined engine run (:meth:`Engine.run_stream`): the pipeline fills once per run
STREAM_BATCHES = 32


def layer_agreement_batch(graph, net, steps: int, batch: int, max_memory: int | None = None,
                          device: str = "cpu") -> tuple[int, Engine]:
    """The samples the per-layer agreement runs on (at most ``batch``) and the engine it (layer-synchronous;
    pipelined for a network with a sample clock, read in each LIF's window)
    uses: both of its runs (the float records of every node and our engine's records of every LIF) fit
    ``max_memory`` (default :data:`DEFAULT_MAX_MEMORY`) together."""
    # a token-tiled attention (a sample clock) exists only in pipelined time: its LIFs are read in their windows
    sync = Engine(net, device=device, pipelined=bool(net.metadata.get("sample_clock")))
    lifs = [p.name for p in net.populations if p.kind == "lif"]
    fixed, per = memory_estimate(sync, steps, lifs)
    budget = int(max_memory) if max_memory else DEFAULT_MAX_MEMORY
    per += record_bytes(graph, steps)
    return max(1, min(int(batch), int((budget - fixed) // max(per, 1)))), sync


def simulate_lowered(graph, net, x, y=None, steps: int | None = None, backend: str = "fast", batch: int = 64,
                     device: str = "cpu", progress: bool = True, layers: bool = True,
                     max_memory: int | None = None, reference=None, pipeline: bool = True,
                     engine_options: dict | None = None) -> dict:
    """Fidelity of the lowered network ``net`` (made from ``graph``) on samples ``x`` [B, ...] (labels ``y``
    optional): predictions of the fixed-point run (``backend`` fast: our engine, batched; lava: Lava
    ``fixed_pt``, all samples chained in one run) against the float model's; ``layers``: per-layer spike
    agreement float vs integer on the first samples (layer-synchronous engine; as many of the batch as
    fit ``max_memory`` with every layer recorded, :func:`layer_agreement_batch`); ``max_memory``: the fast
    engine's batch is cut to what fits this many bytes (:func:`neurodeploy.sim.batch.chunk_size`), default
    :data:`neurodeploy.sim.batch.DEFAULT_MAX_MEMORY`; ``reference``: the float model's predictions [N] when
    the caller ran it already (the deployment's one float run), else they are computed here; ``pipeline``
    (fast back-end): consecutive batches follow each other through the pipeline T steps apart
    (:meth:`neurodeploy.sim.Engine.run_stream`, up to :data:`STREAM_BATCHES` batches per run; the same
    integers as one window per batch), else one run of T + latency steps per batch; ``engine_options``:
    keyword options of :class:`neurodeploy.sim.Engine` (its speed-up switches)."""
    import torch
    from tqdm import tqdm

    if backend not in ("fast", "lava"):
        raise BadInputError(f"backend must be 'fast' or 'lava', not {backend!r}")
    if not isinstance(x, np.memmap):        # memory-mapped samples are read one batch at a time
        x = np.asarray(x, dtype=np.float32)
    check_labels(y, num_classes(graph), "labels")  # out-of-range labels would count as wrong silently
    T = graph_time_steps(graph, steps or int(net.metadata.get("time_steps", 0) or 0) or None)
    L = int(net.metadata["latency"])
    out_pop = net.outputs[0]
    readout = net.pop(out_pop).kind == "readout"
    n = len(x)
    if n == 0:
        raise BadInputError("no samples to simulate")

    ins = input_names(graph)
    in_dims = len(node_shape(graph.nodes[ins[0]], "output") or node_shape(graph.nodes[ins[0]], "input") or ())
    if net.encoders and x.ndim == in_dims + 2:
        raise BadInputError("samples with a time axis need a spiking input on Loihi 2: the input domain is real "
                            "(the host encoder takes one static input per sample); give --input-domain binary or "
                            "counts")

    def decode(res):
        if readout:
            v = res[out_pop]["v"][-1]
            return v.float().cpu().numpy() if torch.is_tensor(v) else v
        s = res[out_pop]["s"]
        s = s.float().cpu().numpy() if torch.is_tensor(s) else s
        return s[L:L + T].sum(0)

    # both back-ends run the chained-mode network (neurodeploy.lower.chain): every population reset at the
    # start of its sample window, so one sample's result does not depend on the one before; Lava runs all
    # samples back to back in ONE process graph, the fast engine one sample per batch row
    P = T + L
    dist, rank, world = _distributed()
    # a recurrent group or the model's own delays would carry one sample's tail into the next chained window:
    # Lava then runs one sample per process graph (slower: the graph is built per sample), as the fast engine
    # runs one sample per batch row
    per_sample = backend == "lava" and any(carries_tail(net, s, P) for s in net.synapses)
    one_window = backend == "fast" or per_sample
    chained = chain_network(net, P, bias_as_graded=(backend == "lava" and not per_sample),
                            conv_as_sparse=(backend == "lava"), one_window=one_window)
    engine = Engine(chained, device=device, **(engine_options or {})) if backend == "fast" else None
    # pipelined samples need a network without recurrence or own delays, read out at the full latency
    stream = bool(engine is not None and pipeline and not engine.stream_refusal()
                  and chained.latency()[out_pop] == L)
    if engine is not None:          # the batch that fits the memory budget (full-size models: a few samples)
        budget = int(max_memory) if max_memory else DEFAULT_MAX_MEMORY
        batch = max(1, min(batch, chunk_size(engine, P, budget, record=[out_pop])))
    bsz = batch if backend == "fast" else -(-n // world)
    starts = list(range(0, n, bsz))[rank::world]      # whole batches per rank: the same batches as one process
    bar = tqdm(total=sum(min(bsz, n - i) for i in starts), desc=f"{'loihi2'}/{backend}", unit="sample",
               disable=not progress or rank != 0)
    timing = None
    mine = []                # (start, float predictions, fixed-point predictions)
    t_run = t_float = 0.0
    for j in range(0, len(starts), STREAM_BATCHES) if stream else ():
        group = starts[j:j + STREAM_BATCHES]
        xbs = [float_batch(x, i, i + bsz) for i in group]
        t0 = time.perf_counter()
        fps = [np.asarray(reference[i:i + len(xb)]) if reference is not None else
               float_predictions(graph, xb, T, batch=batch) for i, xb in zip(group, xbs)]
        t_float += time.perf_counter() - t0
        t0 = time.perf_counter()
        res = engine.run_stream([_encode_stream(net, xb, T, device, in_dims) for xb in xbs], T, record=[out_pop])
        # each sample's window of the output population: [T, samples, n]
        out = res[out_pop]["v"][-1] if readout else res[out_pop]["s"].sum(0)
        pred = out.float().cpu().numpy().reshape(out.shape[0], -1).argmax(1)
        t_run += time.perf_counter() - t0
        bar.update(len(pred))
        k = 0
        for i, xb, fp in zip(group, xbs, fps):
            mine.append((i, fp, pred[k:k + len(xb)]))
            k += len(xb)
    for i in (() if stream else starts):
        xb = float_batch(x, i, i + bsz)
        t0 = time.perf_counter()
        fp = np.asarray(reference[i:i + len(xb)]) if reference is not None else \
            float_predictions(graph, xb, T, batch=batch)
        t_float += time.perf_counter() - t0
        t0 = time.perf_counter()
        if backend == "fast":
            res = engine.run(chain_inputs(chained, _encode(net, xb, T, L, device, in_dims), batched=True), P, record=[out_pop])
            bar.update(len(xb))
        elif per_sample:
            enc = _encode(net, xb, T, L, device, in_dims)
            enc = {k: (v.cpu().numpy() if torch.is_tensor(v) else np.asarray(v)) for k, v in enc.items()}
            parts = []
            for j in range(len(xb)):
                one = {k: (v[j:j + 1] if chained.pop(k).input_kind == "bias" else v[:, j:j + 1]) for k, v in enc.items()}
                parts.append(run_lava(chained, one, P, record=[out_pop]))
                bar.update(1)
            res = {out_pop: {k: torch.as_tensor(np.concatenate([r[out_pop][k] for r in parts], 1))
                             for k in parts[0][out_pop]}}
        else:
            inp = {k: (v.cpu().numpy() if torch.is_tensor(v) else v) for k, v in _encode(net, xb, T, L, device, in_dims).items()}
            chunk = P * max(1, min(10, len(xb) // 20 or 1))
            _, res, timing = run_lava_chained(net, inp, P, record=[out_pop], chunk=chunk,
                                              progress=lambda k: bar.update(k // P))
            res = {k: {kk: torch.as_tensor(a) for kk, a in r.items()} for k, r in
                   split_windows(res, len(xb), P).items()}
        t_run += time.perf_counter() - t0
        mine.append((i, fp, np.asarray(decode(res)).reshape(len(xb), -1).argmax(1)))
    bar.close()
    if dist is not None:           # gather every rank's batches (torch.distributed: gloo on CPU, nccl on GPUs)
        parts = [None] * world
        dist.all_gather_object(parts, (mine, t_run, t_float))
        mine = [m for p in parts for m in p[0]]
        t_run = max(p[1] for p in parts)
        t_float = max(p[2] for p in parts)
    mine.sort(key=lambda m: m[0])
    float_pred = np.concatenate([m[1] for m in mine])
    int_pred = [m[2] for m in mine]
    layer_agree = {}
    t_layers = time.perf_counter()
    if layers:
        # the first samples, over at most LAYER_AGREEMENT_STEPS steps (memory does not grow with T)
        engine = None                               # the fixed-point run's engine: its memory is free now
        Tr = min(T, LAYER_AGREEMENT_STEPS)
        # as many samples as both record-keeping runs fit in the memory budget (at most the batch)
        lbatch, sync_engine = layer_agreement_batch(graph, net, Tr, batch, max_memory, device)
        first_x = float_batch(x, 0, lbatch)
        timed = first_x.ndim != len(net.inputs[0].shape) + 1       # [B, T, ...]: cut to Tr steps
        fx = first_x[:, :Tr] if timed else first_x
        _, first_rec = float_predictions(graph, fx, Tr, batch=lbatch, record_first=True)
        lifs = [p.name for p in net.populations if p.kind == "lif"]
        enc = _encode(net, fx, Tr, L, device, in_dims)
        if sync_engine.pipelined:       # each LIF's own window of the pipelined run
            lat = net.latency()
            sync = sync_engine.run(enc, Tr + L, record=lifs, windows={k: (lat[k], lat[k] + Tr) for k in lifs})
        else:
            sync = sync_engine.run({k: (v[:Tr] if net.pop(k).input_kind != "bias" else v) for k, v in enc.items()},
                                   Tr, record=lifs)
        sync = {name: r["s"].cpu().numpy() for name, r in sync.items()}
        for name, parts in (net.metadata.get("channel_splits") or {}).items():
            # a population cut by channels (neurodeploy.lower.channels): its parts' spikes, rejoined in order
            if all(p[0] in sync for p in parts):
                sync[name] = np.concatenate([sync.pop(p[0]) for p in parts], axis=-1)
        for name, s in sync.items():
            if name in first_rec:
                f = first_rec[name].reshape(Tr, len(first_x), -1).numpy()
                layer_agree[name] = float((f == s).mean())
    t_layers = time.perf_counter() - t_layers
    ip = np.concatenate(int_pred)
    result = {"backend": backend, "samples": int(n), "batch": int(bsz), "processes": int(world),
              "pipelined_samples": stream,
              "steps_per_sample": T, "latency_steps": L,
              "prediction_agreement": float((float_pred == ip).mean()),
              "samples_per_s": n / max(t_run, 1e-9),
              "sample_steps_per_s": n * P / max(t_run, 1e-9),
              "float_reference_s": t_float, "fixed_point_s": t_run, "layer_agreement_s": t_layers,
              "layer_spike_agreement": layer_agree,
              "layer_agreement_samples": int(len(first_x)) if layers else 0,
              "predictions": ip.astype(int).tolist(), "float_predictions": float_pred.astype(int).tolist(),
              "clipped_weights": (net.metadata.get("quantization") or {}).get("clipped_weights"),
              "clipped_biases": (net.metadata.get("quantization") or {}).get("clipped_biases")}
    if timing is not None:
        # Lava, chained: one process graph for all samples; the first chunk includes compiling it
        result["lava"] = {"compile_and_first_chunk_s": timing["first_s"], "first_chunk_steps": timing["first_steps"],
                          "steady_steps_per_s": timing["rest_steps"] / max(timing["rest_s"], 1e-9)
                          if timing["rest_steps"] else None}
    if y is not None:
        y = np.asarray(y)[:n]
        result["float_accuracy"] = float((float_pred == y).mean())
        result["loihi2_accuracy"] = float((ip == y).mean())
    return result


def simulate_loihi2(graph, x, y=None, steps=None, backend="fast", batch=64, device="cpu", progress=True,
                    return_network=False):
    """Lower ``graph`` for Loihi 2 (input range from ``x``) and measure its fidelity on ``x``
    (:func:`simulate_lowered`).  With ``return_network=True`` returns ``(result, lowered network)``."""
    x = np.asarray(x, dtype=np.float32)
    T = graph_time_steps(graph, steps)
    net, report = lower_graph(graph, T=T, input_range=(float(x.min()), float(x.max())))
    net.metadata["quantization"] = {"clipped_weights": report["clipped_weights"],
                                    "clipped_biases": report["clipped_biases"]}
    res = simulate_lowered(graph, net, x, y, steps=T, backend=backend, batch=batch, device=device, progress=progress)
    return (res, net) if return_network else res
