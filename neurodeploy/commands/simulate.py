"""``neurodeploy simulate MODEL --target loihi2 --backend fast|lava [--data FILE] [--steps N]``.

Lowers MODEL (our checkpoint, or a .nir file) for Loihi 2, runs the integer network on the data with our
fixed-point engine (``fast``: batched, bit-exact with Lava) or in Lava itself (``lava``: all samples
chained in time in ONE Lava process graph, :func:`neurodeploy.lava.run.run_lava_chained`), and prints the float model's accuracy, the Loihi 2 accuracy, their prediction agreement and
per-layer spike agreement.  ``--data``: an .npz with ``x`` [N, ...] (and ``y`` for accuracy); default:
the digits test split for digits models.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from ..errors import BadInputError


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "simulate", help="simulate a model lowered to a neuromorphic target (Loihi 2 fixed point)",
        description="Lower MODEL for Loihi 2 and simulate it: our fast fixed-point engine or Lava.")
    p.add_argument("model", metavar="MODEL", help="checkpoint (.pt) or .nir file")
    p.add_argument("--target", default="loihi2", choices=["loihi2"])
    p.add_argument("--backend", default="fast", choices=["fast", "lava"])
    p.add_argument("--data", default=None, metavar="FILE", help=".npz with x [N, ...] and optional y")
    p.add_argument("--steps", type=int, default=None, metavar="N", help="time steps per sample (default: the model's)")
    p.add_argument("--limit", type=int, default=None, metavar="K",
                   help="first K samples (default: all for fast, 100 for lava)")
    p.add_argument("--batch", type=int, default=64, help="batch size of the fast engine")
    p.add_argument("--device", default="cpu", help="torch device of the fast engine (cpu, cuda)")
    p.add_argument("--arch", default=None, help="architecture of an official checkpoint")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
    return p


def load_graph(model: str, arch: str | None = None):
    """The NIR graph of MODEL (checkpoint, official checkpoint with ``arch``, .nir file, architecture name)."""
    from ..analysis.check import load_graph as load_model_graph

    return load_model_graph(model, arch)[0]


def load_data(data: str | None, graph):
    """(x, y) to simulate: --data FILE (labels optional), or the bundled digits test split for digits models."""
    if data is None:
        arch = str((graph.metadata or {}).get("neurodeploy.arch", ""))
        if "digits" not in arch:
            raise BadInputError(f"model '{arch}': give --data FILE (.npz with x and y)")
        from ..training import digits_split
        _, _, x, y = digits_split()
        return x.numpy(), y.numpy()
    from ..data import load_labeled_samples

    return load_labeled_samples(data)


def simulate_loihi2(graph, x, y=None, steps=None, backend="fast", batch=64, device="cpu", progress=True):
    """Returns a result dict (accuracies, agreement, per-layer spike agreement, steps/s)."""
    import torch
    from tqdm import tqdm

    from ..graph import simulate as float_simulate
    from ..lower.chain import chain_inputs, chain_network, split_windows
    from ..lower.from_nir import lower_graph
    from ..sim import Engine

    x = np.asarray(x, dtype=np.float32)
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
                out = float_simulate(graph, torch.as_tensor(xb[j:j + batch]), T=T, record=first)
                fout, rec = out if first else (out, None)
                float_pred.append(fout.float().mean(0).reshape(len(xb[j:j + batch]), -1).numpy().argmax(1))
                if first:
                    first_rec, first_x = rec, xb[j:j + batch]
        t0 = time.perf_counter()
        if backend == "fast":
            res = engine.run(chain_inputs(chained, inputs_for(xb), batched=True), P, record=[out_pop])
            bar.update(len(xb))
        else:
            from ..lava.run import run_lava_chained
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
        {k: (v[:T] if net.pop(k).input_kind != "bias" else v) for k, v in inputs_for(first_x).items()}, T,
        record=[p.name for p in net.populations if p.kind == "lif"])
    for name, r in sync.items():
        if name in first_rec:
            f = first_rec[name].reshape(T, len(first_x), -1).numpy()
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
    return result


def _check_options(args: argparse.Namespace) -> None:
    import torch

    for opt in ("batch", "limit", "steps"):
        value = getattr(args, opt)
        if value is not None and value < 1:
            raise BadInputError(f"--{opt} must be >= 1, got {value}")
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise BadInputError(f"--device {args.device!r}: {str(exc).splitlines()[0]}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInputError(f"--device {args.device!r}: no CUDA device is available")
    if device.type not in ("cpu", "cuda"):
        raise BadInputError(f"--device {args.device!r}: use cpu or cuda")


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    graph = load_graph(args.model, args.arch)
    x, y = load_data(args.data, graph)
    limit = args.limit if args.limit is not None else (100 if args.backend == "lava" else None)
    if limit is not None:
        x = x[:limit]
        y = None if y is None else y[:limit]
    if len(x) == 0:
        raise BadInputError("no samples to simulate")
    res = simulate_loihi2(graph, x, y, steps=args.steps, backend=args.backend, batch=args.batch,
                          device=args.device)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    if "float_accuracy" in res:
        print(f"float accuracy   {100 * res['float_accuracy']:.2f} %  ({res['samples']} samples)")
        print(f"loihi2 accuracy  {100 * res['loihi2_accuracy']:.2f} %  (backend {res['backend']}, "
              f"{res['steps_per_sample']} steps + {res['latency_steps']} latency)")
    print(f"prediction agreement float vs loihi2: {100 * res['prediction_agreement']:.2f} %")
    for name, a in res["layer_spike_agreement"].items():
        print(f"  spike agreement {name}: {100 * a:.2f} %")
    print(f"{res['steps_per_s']:.1f} steps/s, {res['samples_per_s']:.1f} samples/s")
    if res.get("lava"):
        lv = res["lava"]
        steady = f", steady {lv['steady_steps_per_s']:.1f} steps/s" if lv["steady_steps_per_s"] else ""
        print(f"lava: one process graph for all samples (chained); compile + first "
              f"{lv['first_chunk_steps']} steps {lv['compile_and_first_chunk_s']:.1f} s{steady}")
    return 0
