"""Real Spikingformers at full size on our engine and in Lava (JSON on stdout; issue 11).

* ``cifar``: spikingformer-cifar10-4-384 (random weights, seed 0), 16 random images in [-1, 1] (32x32):
  lowering, then our fixed-point engine through :func:`neurodeploy.sim.batch.simulate_batched` (chunks
  fitting ``--max-memory``) against the float reference simulator of the NIR graph on the same images:
  prediction agreement (argmax of the readout), engine throughput (samples/s, steps/s) and this process's
  peak RSS.
* ``gesture``: spikingformer-gesture-2-256 on random event tensors [B, T, 2, 128, 128] (B 4, T 16,
  10 % events), engine only: throughput and peak RSS.
* ``lava`` (``--lava-steps N``): ONE full-resolution cifar10-4-384 sample through Lava (Loihi2SimCfg
  fixed_pt: a Conv process per conv group, Dense for the head, our attention process), N steps, compared
  bit for bit with our engine on the steps run; build, first step (compile + start) and per-step time.
* ``lava-slices`` (``--slice-processes P``, ``--lava-budget S``, ``--sparse-max C``): ONE full-resolution
  cifar10-4-384 sample (random weights, BatchNorm weights x8 so that the layers fire), all T + latency
  steps, through Lava slice by slice (:func:`neurodeploy.lava.slices.check_slices`: slices of
  consecutive populations of at most P Lava processes, each fed with the messages its outside sources sent
  in our engine's whole-network run, compared bit for bit with that run on every member's spikes / u / v).
  Conv groups run as Lava ``Sparse`` where exact and at most C connections (default 2**26: the 384 <-> 1536 1x1
  convs, 37.7 M connections; the Lava parent then peaks at ~11.4 GiB), the larger ones as Lava
  ``Conv`` (slow in Lava's CPU model: C_in x C_out scipy convolutions per step).  Slices run in topological
  order until S seconds have passed; time per slice, total, slices run / all, bit_exact (of those run).
  Our engine's whole-network run is recorded to disk (int32) in groups of populations of ~1 GiB of
  recordings each (the same deterministic run repeated), in a child of its own; the Lava slices run from a
  second, lean child (Lava forks every process from it).  Progress lines (one per slice) go to stderr.
  ``--work DIR`` keeps the recorded run (reused by a later run with the same DIR), ``--slices I ...`` runs
  only those slices.  ``--network OUT/network.npz --sample I``: a trained model instead (the artifact that
  ``neurodeploy export CKPT -o OUT --target loihi2 --data digits`` wrote, its own configuration) on digits test
  sample I rendered at 32x32 (issue 24).

Each part runs in its own child process (peak RSS per part).  Wall-clock times are inflated when the
machine is shared.

    python benchmarks/bench_full_size.py [--parts cifar gesture lava lava-slices] [--max-memory BYTES]
        [--lava-steps N] [--slice-processes P] [--lava-budget S] [--sparse-max C] [--work DIR] [--slices I ...]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_COMMON = r"""
import json, resource, sys, time
import numpy as np, torch
torch.manual_seed(0)
torch.set_num_threads(2)
from neurodeploy.models.registry import build_model
from neurodeploy.exporters import to_nir
from neurodeploy.lower.loihi2 import lower_graph
def rss(): return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
"""

_CIFAR = _COMMON + r"""
from neurodeploy.graph import simulate as float_simulate
from neurodeploy.sim.batch import simulate_batched, chunk_size
from neurodeploy.sim import Engine
max_memory = int(sys.argv[1])
g = to_nir(build_model("spikingformer-cifar10-4-384").eval())
x = (torch.rand(16, 3, 32, 32) * 2 - 1).numpy()
t0 = time.perf_counter()
net, rep = lower_graph(g, input_range=(-1.0, 1.0))
t_lower = time.perf_counter() - t0
T, L = 4, net.metadata["latency"]
steps = T + L
eng = Engine(net)
chunk = chunk_size(eng, steps, max_memory)
t0 = time.perf_counter()
res = simulate_batched(net, {k: v for k, v in net.encode_inputs(x).items()}, steps, max_memory=max_memory,
                       engine=eng)
t_eng = time.perf_counter() - t0
v = res["readout"]["v"][-1]
fl = []
with torch.no_grad():
    for i in range(0, 16, 4):
        fl.append(float_simulate(g, torch.as_tensor(x[i:i + 4]), T=T).float().mean(0).reshape(4, -1).numpy())
fl = np.concatenate(fl)
print(json.dumps({"part": "cifar", "arch": "spikingformer-cifar10-4-384", "samples": 16, "steps_per_sample": steps,
                  "latency_steps": L, "lower_s": round(t_lower, 2), "chunk": int(chunk), "max_memory": max_memory,
                  "engine_s": round(t_eng, 2), "samples_per_s": round(16 / t_eng, 3),
                  "steps_per_s": round(steps * -(-16 // chunk) / t_eng, 2),
                  "prediction_agreement": float((v.argmax(1) == fl.argmax(1)).mean()),
                  "readout_corr": float(np.corrcoef(v.reshape(-1), fl.reshape(-1))[0, 1]),
                  "neurons": net.counts()["neurons"], "peak_rss_gib": rss()}))
"""

_GESTURE = _COMMON + r"""
from neurodeploy.sim.batch import simulate_batched
max_memory = int(sys.argv[1])
g = to_nir(build_model("spikingformer-gesture-2-256").eval())
net, rep = lower_graph(g, T=16)
B, T = 4, 16
ev = (torch.rand(B, T, 2, 128, 128) < 0.1).to(torch.int64)
L = net.metadata["latency"]
seq = torch.cat([ev.transpose(0, 1), torch.zeros((L, B, 2, 128, 128), dtype=torch.int64)])
t0 = time.perf_counter()
res = simulate_batched(net, {net.inputs[0].name: seq}, T + L, max_memory=max_memory)
dt = time.perf_counter() - t0
print(json.dumps({"part": "gesture", "arch": "spikingformer-gesture-2-256", "input": [B, T, 2, 128, 128],
                  "steps": T + L, "engine_s": round(dt, 2), "samples_per_s": round(B / dt, 3),
                  "readout_nonzero": bool(np.abs(res["readout"]["v"][-1]).max() > 0),
                  "neurons": net.counts()["neurons"], "peak_rss_gib": rss()}))
"""

_LAVA = _COMMON + r"""
from neurodeploy.lava.run import LavaNetwork
from neurodeploy.sim import simulate
n_steps = int(sys.argv[1])
g = to_nir(build_model("spikingformer-cifar10-4-384").eval())
net, rep = lower_graph(g, input_range=(-1.0, 1.0))
x = (torch.rand(1, 3, 32, 32) * 2 - 1).numpy()
inputs = {k: v.numpy() for k, v in net.encode_inputs(x).items()}
deep = [p.name for p in net.populations if p.kind == "lif"][:8]
ours = simulate(net, inputs, n_steps, record=deep)
t0 = time.perf_counter()
lnet = LavaNetwork(net, inputs, n_steps, record=deep)
t_build = time.perf_counter() - t0
lava = lnet.run(chunk=1)
same = all(np.array_equal(lava[n][k], ours[n][k]) for n in deep for k in ours[n])
tm = lnet.timing
print(json.dumps({"part": "lava", "arch": "spikingformer-cifar10-4-384", "input": [1, 3, 32, 32],
                  "steps_run": n_steps, "full_sample_steps": 4 + net.metadata["latency"],
                  "build_s": round(t_build, 1), "first_step_s": round(tm["first_s"], 1),
                  "per_step_s": round(tm["rest_s"] / max(tm["rest_steps"], 1), 1),
                  "bit_exact_with_engine": bool(same), "recorded": deep,
                  "spikes": int(sum(ours[n]["s"].sum() for n in deep)), "peak_rss_gib": rss()}))
"""


_LAVA_SLICES_ENGINE = _COMMON + r"""
import os
from neurodeploy.lower.network_file import load_network, save_network
from neurodeploy.sim import simulate
work, artifact, sample = sys.argv[1].split(",")
if artifact:    # a trained model's exported artifact (network.npz as written by export) and one digits test sample
    from neurodeploy.tasks import task_samples
    t0 = time.perf_counter()
    net = load_network(artifact)
    t_lower = time.perf_counter() - t0
    x, y = task_samples((3, 32, 32), "test", indices=[int(sample)])
else:
    model = build_model("spikingformer-cifar10-4-384").eval()
    with torch.no_grad():   # BatchNorm weights x8 (as tests/test_lava_slices.py): at PyTorch's default init the
        for m in model.modules():   # random network hardly fires, and a comparison of silent layers proves little
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.weight.mul_(8.0)
    g = to_nir(model)
    t0 = time.perf_counter()
    net, rep = lower_graph(g, input_range=(-1.0, 1.0))
    t_lower = time.perf_counter() - t0
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).numpy()
inputs = {k: v.numpy() for k, v in net.encode_inputs(x).items()}
steps = 4 + net.metadata["latency"]
save_network(net, os.path.join(work, "net.npz"))
np.savez(os.path.join(work, "inputs.npz"), **inputs)
# the whole network's run, recorded in groups of populations of at most ~1 GiB of recordings each (the same
# deterministic run each time), saved as int32 .npy per population and key
groups, cur, size = [], [], 0
for n in net.topological_order():
    p = net.pop(n)
    if p.kind == "input" and p.input_kind == "bias":
        continue
    if cur and size + p.size * steps * 3 * 8 > (1 << 30):
        groups.append(cur); cur, size = [], 0
    cur.append(n); size += p.size * steps * 3 * 8
groups.append(cur)
t0 = time.perf_counter()
spikes = 0
for grp in groups:
    ref = simulate(net, inputs, steps, record=grp)
    for n, r in ref.items():
        for k, a in r.items():
            np.save(os.path.join(work, f"{n}.{k}.npy"), a.astype(np.int32))
        spikes += int((r["s"] != 0).sum())
    del ref
print(json.dumps({"steps": steps, "lower_s": round(t_lower, 1), "engine_runs": len(groups),
                  "engine_s": round(time.perf_counter() - t0, 1), "spikes": spikes, "peak_rss_gib": rss()}))
"""

_LAVA_SLICES = _COMMON + r"""
import os
from neurodeploy.lava.slices import check_slices
from neurodeploy.lower.network_file import load_network
from neurodeploy.lower.slices import cut_network, partition
work, max_procs, budget, sparse_max, only = sys.argv[1].split(",")
max_procs, budget, sparse_max = int(max_procs), float(budget), int(sparse_max)
only = {int(i) for i in only.split(":") if i}
net = load_network(os.path.join(work, "net.npz"))
inputs = dict(np.load(os.path.join(work, "inputs.npz")))
steps = 4 + net.metadata["latency"]
slices = partition(net, max_procs)
reps, t0 = [], time.perf_counter()
for i, sl in enumerate(slices):
    if only and i not in only:
        continue
    if time.perf_counter() - t0 > budget:
        break
    need = set(sl) | set(cut_network(net, sl).metadata["slice_inputs"])
    rec = {n: {k: np.load(os.path.join(work, f"{n}.{k}.npy"), mmap_mode="r") for k in "suv"
               if os.path.exists(os.path.join(work, f"{n}.{k}.npy"))} for n in need}
    rec = {n: r for n, r in rec.items() if r}
    r = check_slices(net, inputs, steps, rec, [sl], conv_as_sparse=True, sparse_max=sparse_max)[0]
    reps.append(r)
    r["index"] = i
    print(json.dumps({"slice": i, "of": len(slices), "populations": len(sl), "first": sl[0],
                      "processes": r["processes"], "seconds": r["seconds"], "bit_exact": not r["mismatch"],
                      "mismatch": r["mismatch"]}), file=sys.stderr, flush=True)
t_lava = time.perf_counter() - t0
print(json.dumps({"slices_total": len(slices), "slices_run": len(reps),
                  "populations_checked": sum(len(r["members"]) for r in reps), "populations": len(net.populations),
                  "lava_s": round(t_lava, 1),
                  "per_slice": [{"slice": r["index"], "populations": len(r["members"]), "first": r["members"][0],
                                 "processes": r["processes"], "seconds": r["seconds"],
                                 "build_s": r["build_s"], "first_run_s": r["first_run_s"],
                                 "rest_run_s": r["rest_run_s"], "bit_exact": not r["mismatch"]} for r in reps],
                  "bit_exact": bool(reps) and all(not r["mismatch"] for r in reps),
                  "mismatches": [r["mismatch"] for r in reps if r["mismatch"]], "peak_rss_gib": rss()}))
"""


def _lava_slices(a, env) -> dict:
    """The ``lava-slices`` part: our engine's whole run (recorded to disk) in one child, then the Lava
    slices in another (a lean parent: Lava forks one OS process per process from it)."""
    import contextlib
    import tempfile
    only = ":".join(str(i) for i in a.slices)
    with contextlib.ExitStack() as stack:
        work = a.work or stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-lava-slices-"))
        os.makedirs(work, exist_ok=True)
        outs, done = [], os.path.join(work, "engine.json")
        if a.work and os.path.exists(done):   # the engine's recorded run is reused from an earlier --work run
            with open(done) as f:
                outs.append(json.load(f))
        for code, arg in ((_LAVA_SLICES_ENGINE, f"{work},{a.network or ''},{a.sample}"),
                          (_LAVA_SLICES, f"{work},{a.slice_processes},{a.lava_budget},{a.sparse_max},{only}"))[len(outs):]:
            r = subprocess.run([sys.executable, "-c", code, arg], stdout=subprocess.PIPE, text=True, env=env)
            if r.returncode:
                return {"part": "lava-slices", "error": f"exit {r.returncode} (see stderr)"}
            outs.append(json.loads(r.stdout.strip().splitlines()[-1]))
            if code is _LAVA_SLICES_ENGINE:
                with open(done, "w") as f:
                    json.dump(outs[-1], f)
    eng, lava = outs
    return {"part": "lava-slices", "arch": "spikingformer-cifar10-4-384", "input": [1, 3, 32, 32],
            "weights": f"trained ({a.network}), digits test sample {a.sample}" if a.network
            else "random (seed 0, BatchNorm weights x8), random image",
            "steps": eng["steps"], "sparse_max": a.sparse_max, "lower_s": eng["lower_s"], "engine_whole_run_s": eng["engine_s"],
            "engine_runs": eng["engine_runs"], "spikes": eng["spikes"], "engine_peak_rss_gib": eng["peak_rss_gib"],
            **{k: v for k, v in lava.items() if k != "peak_rss_gib"}, "lava_parent_peak_rss_gib": lava["peak_rss_gib"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", nargs="*", default=["cifar", "gesture"])
    ap.add_argument("--max-memory", type=int, default=4 << 30)
    ap.add_argument("--lava-steps", type=int, default=3)
    ap.add_argument("--slice-processes", type=int, default=40, help="lava-slices: Lava processes per slice")
    ap.add_argument("--sparse-max", type=int, default=1 << 26,
                    help="lava-slices: conv groups with at most this many connections run as Lava Sparse")
    ap.add_argument("--slices", type=int, nargs="*", default=[], help="lava-slices: run only these slice indices")
    ap.add_argument("--work", help="lava-slices: keep the engine's recorded run in this folder (reused when present)")
    ap.add_argument("--network", help="lava-slices: a trained model's network.npz (as `neurodeploy export CKPT -o OUT "
                    "--target loihi2 --data digits` wrote it) instead of random weights; the input is --sample")
    ap.add_argument("--sample", type=int, default=0, help="lava-slices with --network: the digits test sample (32x32)")
    ap.add_argument("--lava-budget", type=int, default=3600, help="lava-slices: seconds, then stop after the slice")
    a = ap.parse_args(argv)
    out = []
    for part in a.parts:
        if part == "lava-slices":
            out.append(_lava_slices(a, dict(os.environ, OMP_NUM_THREADS="2")))
            print(json.dumps(out[-1]), file=sys.stderr)
            continue
        code, arg = {"cifar": (_CIFAR, a.max_memory), "gesture": (_GESTURE, a.max_memory),
                     "lava": (_LAVA, a.lava_steps)}[part]
        env = dict(os.environ, OMP_NUM_THREADS="2")
        r = subprocess.run([sys.executable, "-c", code, str(arg)], capture_output=True, text=True, env=env)
        if r.returncode:
            out.append({"part": part, "error": (r.stderr.strip().splitlines() or ["killed"])[-1]})
        else:
            out.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(json.dumps(out[-1]), file=sys.stderr)
    print(json.dumps({"benchmark": "full_size", "note": "wall-clock on a shared 2-core machine", "parts": out},
                     indent=1))
    return 0 if all("error" not in r for r in out) else 1


if __name__ == "__main__":
    sys.exit(main())
