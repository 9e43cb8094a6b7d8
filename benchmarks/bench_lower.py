"""Lowering + writing at full size, per variant (JSON on stdout).

For every architecture (random weights, seed 0, the registry's full input size) a first child process
exports the model to a NIR file; a second child reads that file, lowers it (``lower_graph``) and writes
``network.npz`` (``net.save``).  Reported per variant, all measured in the second child:

* ``lower_s`` / ``save_s``: wall-clock seconds of ``lower_graph`` and of ``net.save`` (inflated when the
  machine is shared);
* ``peak_rss_gib``: the child's peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``):
  reading the NIR graph, lowering and writing;
* ``npz_mib``, the network's counts, the synapse group kinds, and the target from issue 11 where there is
  one (``target_s``, ``target_gib``) with ``ok``.

Torch is limited to ``--threads`` threads (default 2, the issue's 2-core budget).  Variants run one at a
time.

    python benchmarks/bench_lower.py [--arch NAME ...] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

TARGETS = {  # issue 11: seconds, GiB of lowering + writing on 2 cores
    "spikingformer-cifar10-4-384": (60, 4),
    "spikingformer-gesture-2-256": (120, 6),
    "spikingformer-imagenet-8-768": (600, 16),
}

_EXPORT = r"""
import sys, torch, nir
torch.manual_seed(0)
from neurodeploy.models.registry import build_model
from neurodeploy.exporters import to_nir
nir.write(sys.argv[2], to_nir(build_model(sys.argv[1]).eval()))
"""

_LOWER = r"""
import json, os, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[3]))
import nir
from neurodeploy.lower.loihi2 import lower_graph
from neurodeploy.lower.network_file import save_network
g = nir.read(sys.argv[1])
t0 = time.perf_counter()
net, rep = lower_graph(g)
t1 = time.perf_counter()
save_network(net, sys.argv[2])
t2 = time.perf_counter()
kinds = {}
for s in net.synapses:
    kinds[s.kind] = kinds.get(s.kind, 0) + 1
print(json.dumps({"lower_s": round(t1 - t0, 2), "save_s": round(t2 - t1, 2),
                  "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
                  "npz_mib": round(os.path.getsize(sys.argv[2]) / 2**20, 2), "counts": net.counts(),
                  "group_kinds": kinds, "relays": sum(p.kind == "relay" for p in net.populations),
                  "latency": net.metadata.get("latency"), "clipped_weights": rep["clipped_weights"]}))
"""


def run_variant(arch: str, out: str, threads: int) -> dict:
    nir_path = os.path.join(out, f"{arch}.nir")
    npz = os.path.join(out, f"{arch}.npz")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    r = subprocess.run([sys.executable, "-c", _EXPORT, arch, nir_path], capture_output=True, text=True, env=env)
    if r.returncode:
        return {"arch": arch, "error": "export: " + r.stderr.strip().splitlines()[-1]}
    r = subprocess.run([sys.executable, "-c", _LOWER, nir_path, npz, str(threads)], capture_output=True, text=True,
                       env=env)
    if r.returncode:
        return {"arch": arch, "error": "lower: " + (r.stderr.strip().splitlines() or ["killed"])[-1]}
    res = {"arch": arch, **json.loads(r.stdout.strip().splitlines()[-1])}
    if arch in TARGETS:
        ts, tg = TARGETS[arch]
        res.update(target_s=ts, target_gib=tg,
                   ok=bool(res["lower_s"] + res["save_s"] < ts and res["peak_rss_gib"] < tg))
    for p in (nir_path, npz):
        os.remove(p)
    return res


def main(argv=None) -> int:
    from neurodeploy import arch_names
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", nargs="*", default=None, help="variants (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="scratch folder (default: a temporary one)")
    a = ap.parse_args(argv)
    archs = a.arch or arch_names()
    out = a.out or tempfile.mkdtemp(prefix="bench-lower-")
    os.makedirs(out, exist_ok=True)
    results = []
    for arch in archs:
        results.append(run_variant(arch, out, a.threads))
        print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({"benchmark": "lower", "threads": a.threads,
                      "note": "wall-clock on a shared machine; peak RSS of the lowering child (read NIR, lower, "
                              "save)", "variants": results}, indent=1))
    return 0 if all("error" not in r and r.get("ok", True) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
