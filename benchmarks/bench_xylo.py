"""Our Xylo integer engine vs SynSense's XyloSim on the braille-shaped RNN (12-38rec-7 CubaLIF, Xylo Audio 2):
wall time for the same samples (ours: one batched run; XyloSim: one sample at a time, as its API takes), and
whether every output spike, hidden spike and Vmem agree.  Prints one JSON object."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from xylo_helpers import braille_graph  # noqa: E402

from neurodeploy.deploy.xylo import lower_graph  # noqa: E402
from neurodeploy.deploy.xylo_vendor import run_xylosim  # noqa: E402
from neurodeploy.sim.xylo import XyloNetwork  # noqa: E402


def main(n=64, T=256):
    art = lower_graph(braille_graph(), "xylo-audio2")
    x = (np.random.default_rng(0).random((n, T, 12)) < 0.2).astype(np.int64)
    t0 = time.perf_counter()
    ours = XyloNetwork(art.spec).run(x)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    refs = [run_xylosim("xylo-audio2", art.spec, x[b]) for b in range(n)]
    t_ref = time.perf_counter() - t0
    equal = all(np.array_equal(ours[k][b], refs[b][k]) for b in range(n) for k in ("out", "spikes", "vmem"))
    print(json.dumps({"network": "braille-shaped 12-38rec-7 CubaLIF on xylo-audio2", "samples": n, "steps": T,
                      "ours_s": round(t_ours, 3), "xylosim_s": round(t_ref, 3),
                      "ours_sample_steps_per_s": round(n * T / t_ours), "xylosim_sample_steps_per_s": round(n * T / t_ref),
                      "bit_exact": equal, "measures": "wall time incl. recording Vmem/Isyn; shared 2-core machine"}))


if __name__ == "__main__":
    main()
