"""Speed of our fixed-point engine against Lava, in ONE run (JSON on stdout): on the lowered digits
Spikingformer and on lava-dl's pilotnet_lif netx network, steps/s single sample for ours and for Lava
(Loihi2SimCfg fixed_pt, timed after compilation and a first block of steps), ours batched (sample-steps/s at
batch 64), the ratios, peak memory (resource.getrusage of this process: after our runs, before Lava
starts, and at the end), the machine's 1-minute load average around each measurement, and whether ours equals Lava's recorded
output (s, u, v of the output population at every step Lava ran).

    python benchmarks/bench_sim.py [--steps N] [--lava-steps M] [--batch 64] [--threads 1] [--no-lava]
                                   [--no-compile] [--no-native] [--device cpu|cuda]

Each of our runs also reports its CPU time (``cpu_steps_per_s``: ``time.process_time`` of this process,
all its threads, best of the runs), less sensitive to other jobs than wall clock, and whether the native C
kernels ran (``native``; ``--no-native``: the torch / numpy ops).

Ours is timed twice: with eager torch ops (``Engine(net)``) and with the LIF update fused by torch.compile
(``Engine(net, compile=True)``; ``warmup_s`` includes compiling).

The machine is usually shared: compare ratios measured in the same run, and read ``load_avg``.  Our engine
runs with ``--threads`` torch threads (1 by default: on a busy 2-core machine two threads lose much more
to scheduling than they gain); Lava runs one OS process per process model whatever we set.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch


def digits_workload():
    """The lowered digits Spikingformer: demo-out/spikingformer-digits.pt when trained, else the same
    architecture with seeded random weights."""
    from neurodeploy.exporters import to_nir
    from neurodeploy.lower.loihi2 import lower_graph
    ckpt = os.path.join(os.path.dirname(__file__), "..", "demo-out", "spikingformer-digits.pt")
    if os.path.exists(ckpt):
        from neurodeploy.checkpoint import load_model
        model, source = load_model(ckpt).eval(), "demo-out/spikingformer-digits.pt"
    else:
        from neurodeploy.models.registry import build_model
        torch.manual_seed(0)
        model, source = build_model("spikingformer-digits").eval(), "untrained spikingformer-digits (seed 0)"
    g = to_nir(model, arch="spikingformer-digits")
    net, _ = lower_graph(g, input_range=(-1.0, 2.5))
    rng = np.random.default_rng(0)

    def inputs(batch, steps):
        x = rng.random((batch, 1, 8, 8)).astype(np.float32) * 2 - 0.5
        return {k: v for k, v in net.encode_inputs(x).items()}
    return {"name": "spikingformer-digits (lowered)", "source": source, "net": net, "inputs": inputs}


def pilotnet_workload():
    from neurodeploy.sim.netx import netx_test_dir, read_netx
    root = os.path.join(netx_test_dir(), "gts", "pilotnet_lif")
    net = read_netx(os.path.join(root, "network.net"), reset_interval=16)
    img = np.load(os.path.join(root, "image.npy")).transpose(2, 1, 0)[None]

    def inputs(batch, steps):
        return {"input": np.repeat(img, batch, axis=0)}
    return {"name": "pilotnet_lif (netx)", "source": "lava-dl 0.6.0 wheel", "net": net, "inputs": inputs}


def load_avg():
    """1-minute load average of the machine."""
    return round(os.getloadavg()[0], 2)


def time_ours(w, steps, batch, device="cpu", repeats=3, threads=None, compile=False, native=True):
    """Best of ``repeats`` runs of ``steps`` steps (after a 2-step warm-up run, which also compiles the
    fused LIF kernels when ``compile``), wall clock and CPU time of this process (``time.process_time``,
    all its threads: less sensitive to other jobs on a shared machine than wall clock)."""
    import inspect

    from neurodeploy.sim import Engine
    kw = {"native": native} if "native" in inspect.signature(Engine).parameters else {}
    eng = Engine(w["net"], device=device, threads=threads, compile=compile, **kw)
    inp = w["inputs"](batch, steps)
    t0 = time.perf_counter()
    eng.run(inp, 2)                       # warm-up (allocations, first conv call, compiling)
    warmup = time.perf_counter() - t0
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, cpu = [], []
    load0 = load_avg()
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        eng.run(inp, steps)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    best = min(times)
    out = {"steps_per_s": steps / best, "samples_steps_per_s": steps * batch / best, "batch": batch,
           "steps": steps, "runs_s": [round(t, 4) for t in times], "cpu_s": [round(t, 4) for t in cpu],
           "cpu_steps_per_s": steps / min(cpu), "cpu_samples_steps_per_s": steps * batch / min(cpu),
           "warmup_s": round(warmup, 3), "compiled": bool(eng.compile),
           "native": bool(getattr(eng, "native", False) and __import__("neurodeploy.sim.native", fromlist=["lib"]).lib()
                          is not None) if kw else False,
           "load_avg_1min": [load0, load_avg()]}
    if device.startswith("cuda"):
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return out


def time_lava(w, steps):
    """Lava (Loihi2SimCfg fixed_pt), one sample, 2 x ``steps`` steps in two blocks: the first block
    includes compiling and starting the OS processes, the second is timed.  Also returns whether our
    engine gives the same output-population s/u/v at every one of those steps."""
    from neurodeploy.lava.run import LavaNetwork
    from neurodeploy.sim import Engine
    net = w["net"]
    inp = w["inputs"](1, 2 * steps)
    inp = {k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in inp.items()}
    load0 = load_avg()
    lnet = LavaNetwork(net, inp, 2 * steps, record=net.outputs)
    got = lnet.run(chunk=steps)
    tm = lnet.timing
    ours = Engine(net).run(inp, 2 * steps, record=net.outputs)
    exact = all(np.array_equal(ours[n][k].cpu().numpy(), got[n][k]) for n in got for k in got[n])
    return {"lava_steps_per_s": tm["rest_steps"] / tm["rest_s"], "lava_steps_timed": tm["rest_steps"],
            "lava_compile_and_first_block_s": tm["first_s"],
            "lava_processes": len(lnet.procs) + len(lnet.recorders),
            "ours_equals_lava_outputs": bool(exact), "lava_load_avg_1min": [load0, load_avg()]}


def peak_rss_mib(who=resource.RUSAGE_SELF):
    return resource.getrusage(who).ru_maxrss / 1024


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=64, help="steps per timed run of our engine")
    ap.add_argument("--lava-steps", type=int, default=16, help="steps timed in Lava (after as many warm-up steps)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of our engine (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-lava", action="store_true", help="time our engine only")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile'd runs")
    ap.add_argument("--no-native", action="store_true", help="our engine without its native C kernels")
    args = ap.parse_args(argv)
    threads = args.threads or None
    res = {"engine": "neurodeploy.sim (fixed point)", "device": args.device,
           "threads": threads or torch.get_num_threads(), "cpus": os.cpu_count(),
           "torch": torch.__version__, "load_avg_1min_start": load_avg(), "workloads": []}
    works = [make() for make in (digits_workload, pilotnet_workload)]
    B = args.batch
    for w in works:
        r = {"name": w["name"], "source": w["source"], "neurons": w["net"].counts()["neurons"]}
        # eager torch ops, then with the LIF update compiled into one kernel per population (torch.compile)
        for tag, comp in (("", False), ("_compiled", True)):
            if comp and args.no_compile:
                continue
            single = time_ours(w, args.steps, 1, args.device, threads=threads, compile=comp, native=not args.no_native)
            batched = time_ours(w, max(8, args.steps // 4), B, args.device, threads=threads, compile=comp,
                                native=not args.no_native)
            r[f"ours{tag}_single_steps_per_s"] = single["steps_per_s"]
            r[f"ours{tag}_batch{B}_sample_steps_per_s"] = batched["samples_steps_per_s"]
            r[f"ours{tag}_single_cpu_steps_per_s"] = single["cpu_steps_per_s"]
            r[f"ours{tag}_batch{B}_cpu_sample_steps_per_s"] = batched["cpu_samples_steps_per_s"]
            r[f"ours{tag}_single"] = single
            r[f"ours{tag}_batch{B}"] = batched
            if "peak_gpu_mib" in batched:
                r[f"ours{tag}_peak_gpu_mib"] = batched["peak_gpu_mib"]
        res["workloads"].append(r)
    res["ours_peak_rss_mib"] = peak_rss_mib()
    if not args.no_lava:
        from neurodeploy.lava_compat import ensure_lava
        ensure_lava()
        for w, r in zip(works, res["workloads"]):
            lava = time_lava(w, args.lava_steps)
            r.update(lava)
            for tag in ("", "_compiled"):
                if f"ours{tag}_single_steps_per_s" in r:
                    r[f"speedup{tag}_single"] = r[f"ours{tag}_single_steps_per_s"] / lava["lava_steps_per_s"]
                    r[f"speedup{tag}_batch{B}"] = r[f"ours{tag}_batch{B}_sample_steps_per_s"] / lava["lava_steps_per_s"]
    res["peak_rss_mib"] = peak_rss_mib()
    res["load_avg_1min_end"] = load_avg()
    json.dump(res, sys.stdout, indent=2)
    print()
    return res


if __name__ == "__main__":
    main()
