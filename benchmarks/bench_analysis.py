"""Benchmark: spike-purity analysis time for Spikingformer ImageNet 8-768 from its exported NIR graph.

The model is built with the official architecture (untrained weights, seed 0: the analysis reads the
structure and the weight values, not trained behaviour), exported with ``neurodeploy.exporters.to_nir``,
optionally written to a .nir file and read back (``--via-file``), then ``check_purity`` (value domains,
classes, verdict with ``--allow encoder,readout``) runs ``--repeats`` times.

Prints one JSON object on stdout.  Exit code 1 if the median analysis time exceeds the limit (5 s) or
the verdict is not "pure apart from the encoder conv and the head".
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import torch

import neurodeploy
from neurodeploy import build_model
from neurodeploy.analysis import check_purity
from neurodeploy.exporters import to_nir

LIMIT_S = 5.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="spikingformer-imagenet-8-768")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--via-file", action="store_true", help="write the graph to .nir (uncompressed) and read it back")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = build_model(args.arch).eval()
    t1 = time.perf_counter()
    graph = to_nir(model)
    t2 = time.perf_counter()
    del model
    io = {}
    if args.via_file:
        from neurodeploy.graph import read_graph, write_graph

        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "model.nir")
            ta = time.perf_counter()
            write_graph(graph, path, compression=None)
            tb = time.perf_counter()
            graph = read_graph(path)
            tc = time.perf_counter()
            io = {"write_s": round(tb - ta, 3), "read_s": round(tc - tb, 3), "file_mb": round(os.path.getsize(path) / 1e6, 1)}
    runs = []
    report = None
    for _ in range(max(1, args.repeats)):
        ta = time.perf_counter()
        report = check_purity(graph, allow=["encoder", "readout"])
        runs.append(time.perf_counter() - ta)
    median = statistics.median(runs)
    exceptions = [o.node for o in report.exceptions]
    ok_verdict = report.pure and len(exceptions) == 2
    out = {
        "benchmark": "purity_analysis",
        "arch": args.arch,
        "neurodeploy": neurodeploy.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "graph_nodes": len(graph.nodes),
        "synaptic_nodes": len(report.ops),
        "build_s": round(t1 - t0, 3),
        "export_s": round(t2 - t1, 3),
        **io,
        "analysis_s_median": round(median, 3),
        "analysis_s_runs": [round(r, 3) for r in runs],
        "limit_s": LIMIT_S,
        "within_limit": median < LIMIT_S,
        "verdict": "spike-pure" if report.pure else "not spike-pure",
        "allowed_exceptions": exceptions,
        "classes": report.summary()["classes"],
    }
    sys.stdout.write(json.dumps(out, indent=2) + "\n")
    return 0 if (median < LIMIT_S and ok_verdict) else 1


if __name__ == "__main__":
    sys.exit(main())
