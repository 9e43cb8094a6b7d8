"""A test set larger than memory through `neurodeploy simulate` (issue 15), one JSON object on stdout.

The model: an imported NIR graph (the ``nir`` package) reading 3x64x64 real-valued images: Flatten -> Affine
12288->128 -> LIF -> Affine 128->10 -> LIF, T = 8 (``-T 8``).  The data: ``--gib`` GiB (default 2) of random
images in an uncompressed .npz (``np.savez``: x float32 [N, 3, 64, 64], y int64 [N]), written once into a
temporary folder.

Figures, each from one child process running the CLI (``python -m neurodeploy simulate MODEL --data FILE -T 8
--json``):

* ``mapped``: the whole file, memory-mapped: samples/s and sample-steps/s as simulate reports them (fixed
  point only), end-to-end wall seconds, the child's peak RSS (``ru_maxrss``);
* ``in_memory``: the first ``--compare`` samples of the same file saved compressed (``np.savez_compressed``,
  read whole): the same figures, the throughput reference;
* ``throughput_ratio``: mapped / in-memory sample-steps per second (the target: about 1), and ``rss_ok``:
  mapped peak RSS under 3 GiB.

    python benchmarks/bench_streaming.py [--gib 2] [--compare 4096]

Wall-clock figures on a shared machine are inflated by other jobs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import nir
import numpy as np

SHAPE = (3, 64, 64)


def _graph(path):
    rng = np.random.default_rng(0)
    n_in = int(np.prod(SHAPE))
    nodes = {"input": nir.Input(input_type=np.array(SHAPE)),
             "flat": nir.Flatten(input_type={"input": np.array(SHAPE)}, start_dim=0, end_dim=-1),
             "fc1": nir.Affine(weight=rng.normal(0, 1 / np.sqrt(n_in), (128, n_in)), bias=np.zeros(128)),
             "lif1": nir.LIF(tau=np.full(128, 2e-3), r=np.ones(128), v_leak=np.zeros(128), v_threshold=np.full(128, 0.5)),
             "fc2": nir.Affine(weight=rng.normal(0, 1.0, (10, 128)), bias=np.zeros(10)),
             "lif2": nir.LIF(tau=np.full(10, 2e-3), r=np.ones(10), v_leak=np.zeros(10), v_threshold=np.full(10, 1.0)),
             "output": nir.Output(output_type=np.array([10]))}
    edges = [("input", "flat"), ("flat", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    g = nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-3})
    nir.write(path, g)


def _write_big(path, gib):
    """np.savez of ~gib GiB random images, written in slices through a memory map (never all in memory)."""
    per = int(np.prod(SHAPE)) * 4
    n = int(gib * (1 << 30)) // per
    rng = np.random.default_rng(1)
    # x and y as .npy files, then stored (uncompressed) members of one zip: what np.savez writes
    import zipfile
    tmp = path + ".x.npy"
    xm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n,) + SHAPE)
    for i in range(0, n, 4096):
        xm[i:i + 4096] = rng.random((min(4096, n - i),) + SHAPE, dtype=np.float32) * 2 - 1
    xm.flush()
    del xm
    ytmp = path + ".y.npy"
    np.save(ytmp, rng.integers(0, 10, n))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        z.write(tmp, "x.npy")
        z.write(ytmp, "y.npy")
    os.remove(tmp)
    os.remove(ytmp)
    return n


_CHILD = r"""
import sys
from neurodeploy.cli import main
rc = main(sys.argv[1:])
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
sys.stderr.write(f"VmHWM_KB {hwm}\n")
sys.exit(rc)
"""


def _simulate(model, data, extra=()):
    # the CLI in a child that reports its own peak RSS (VmHWM of its address space: ru_maxrss of a child would
    # include this parent's resident memory at fork time)
    cmd = [sys.executable, "-c", _CHILD, "simulate", model, "--data", data, "-T", "8", "--json", *extra]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, text=True)
        proc.wait()
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    wall = time.perf_counter() - t0
    if proc.returncode:
        return {"error": (err.strip().splitlines() or ["?"])[-1]}
    res = json.loads(out)
    return {"samples": res["samples"], "samples_per_s": round(res["samples_per_s"], 1),
            "sample_steps_per_s": round(res["sample_steps_per_s"], 1), "batch": res["batch"],
            "prediction_agreement": res["prediction_agreement"], "wall_s": round(wall, 1),
            "peak_rss_gib": round(int(err.rsplit("VmHWM_KB", 1)[1].split()[0]) / 2 ** 20, 3)}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--compare", type=int, default=4096)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as d:
        model = os.path.join(d, "mlp.nir")
        _graph(model)
        big = os.path.join(d, "big.npz")
        t0 = time.perf_counter()
        n = _write_big(big, a.gib)
        write_s = time.perf_counter() - t0
        from pathlib import Path

        from neurodeploy.data import _read
        small = os.path.join(d, "small.npz")
        x, y = _read(Path(big))
        np.savez_compressed(small, x=np.array(x[:a.compare]), y=y[:a.compare])
        del x
        # in-memory first (its child's RSS is the smaller one, so the mapped child's maximum is its own)
        mem = _simulate(model, small)
        mapped = _simulate(model, big)
        out = {"what": "neurodeploy simulate (CLI, fast engine) on a memory-mapped uncompressed .npz vs the same "
                       "model on a small compressed .npz read whole",
               "file_gib": round(os.path.getsize(big) / 2 ** 30, 3), "file_samples": n, "write_s": round(write_s, 1),
               "mapped": mapped, "in_memory": mem,
               "throughput_ratio": (round(mapped["sample_steps_per_s"] / mem["sample_steps_per_s"], 3)
                                    if "error" not in mapped and "error" not in mem else None),
               "rss_ok": bool(mapped.get("peak_rss_gib") and mapped["peak_rss_gib"] < 3.0),
               "load_avg_1min": os.getloadavg()[0]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
