"""Benchmark (issue 26): a checkpoint whose config asks for a huge model is refused before it is built.

Writes a 326 KB checkpoint: the (untrained) digits weights under a config that claims ``embed_dim`` 8192
(``tokenizer_channels`` [16, 32, 8192], 8 heads: 3.9 GB of weights if built, under the 2e9-parameter cap,
so only the shape check refuses it).  Runs ``neurodeploy export BOMB -o OUT`` in a fresh process and, as
the peer in the same run, ``neurodeploy export MISSING.pt -o OUT`` (refused at once: the CLI's import
footprint), and prints one JSON object: each run's exit code, error line, peak resident memory
(``ru_maxrss`` from ``wait4``) and wall time; ``over_baseline_mib`` is the bomb's peak minus the peer's;
``ok``: exit 2 for the bomb and a peak under the target (1 GiB).
Usage: ``python benchmarks/bench_config_bomb.py``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_GIB = 1.0


def forge(path: Path) -> Path:
    import torch

    from neurodeploy.checkpoint import FORMAT
    from neurodeploy.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("spikingformer-digits").eval()
    cfg = dict(model.cfg.to_dict(), embed_dim=8192, tokenizer_channels=[16, 32, 8192], num_heads=8)
    torch.save({"format": FORMAT, "format_version": 1, "arch": "spikingformer-digits", "config": cfg,
                "state_dict": model.state_dict(), "metrics": {}}, path)
    return path


def run(model: Path, out: Path) -> dict:
    cmd = [sys.executable, "-m", "neurodeploy", "export", str(model), "-o", str(out)]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        err.seek(0)
        text = err.read().decode(errors="replace").strip()
    return {"exit": os.waitstatus_to_exitcode(status), "stderr": text, "peak_rss_gib": round(usage.ru_maxrss / 2**20, 3),
            "wall_s": round(wall, 1), "output_written": out.exists()}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bomb = forge(tmp / "bomb.pt")
        size = bomb.stat().st_size
        refused = run(bomb, tmp / "out")
        peer = run(tmp / "missing.pt", tmp / "out2")
    ok = refused["exit"] == 2 and refused["peak_rss_gib"] < TARGET_GIB and not refused["output_written"]
    print(json.dumps({"checkpoint_bytes": size, "bomb": refused, "peer_missing_file": peer,
                      "over_baseline_mib": round((refused["peak_rss_gib"] - peer["peak_rss_gib"]) * 1024, 1),
                      "target_gib": TARGET_GIB, "ok": ok}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
