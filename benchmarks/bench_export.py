"""Benchmark: export spikingformer-imagenet-8-768 (66M parameters, 224x224 input) with random weights.

Prints one JSON object: seconds to build the NIR graph (``to_nir``), seconds to write it
(``write_graph``, gzip), file size, and peak resident memory of the process (includes the torch model).
Usage: ``python benchmarks/bench_export.py [--arch A] [--no-write]``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time

import torch


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--arch", default="spikingformer-imagenet-8-768")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    import neurodeploy
    from neurodeploy.exporters import to_nir
    from neurodeploy.graph import write_graph

    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = neurodeploy.build_model(args.arch).eval()
    build_model_s = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    rss_model = peak_rss_gib()
    t0 = time.perf_counter()
    graph = to_nir(model)
    export_s = time.perf_counter() - t0
    result = {
        "arch": args.arch,
        "parameters": params,
        "input_shape": [model.cfg.in_channels, model.cfg.img_size, model.cfg.img_size],
        "nodes": len(graph.nodes),
        "edges": len(graph.edges),
        "model_build_s": round(build_model_s, 2),
        "export_s": round(export_s, 2),
    }
    if not args.no_write:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            path = write_graph(graph, os.path.join(tmp, "model.nir"))
            result["write_s"] = round(time.perf_counter() - t0, 2)
            result["file_mib"] = round(os.path.getsize(path) / 2**20, 1)
    result["peak_rss_gib_after_model"] = round(rss_model, 2)
    result["peak_rss_gib"] = round(peak_rss_gib(), 2)
    result["export_plus_write_s"] = round(export_s + result.get("write_s", 0.0), 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
