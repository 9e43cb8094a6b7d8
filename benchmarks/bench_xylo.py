"""Our Xylo integer engine vs SynSense's XyloSim on the braille-shaped RNN (12-38rec-7 CubaLIF, Xylo Audio 2)
and on a full Audio 2 (16-500rec-500-8, 1000 hidden neurons, 5 % of the weights non-zero):
wall time for the same samples (ours: one batched run; XyloSim: one sample at a time, as its API takes), and
whether every output spike, hidden spike and Vmem agree.  Prints one JSON object."""
from __future__ import annotations

import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from xylo_helpers import braille_graph, nir_net  # noqa: E402

from neurodeploy.lower.xylo import lower_graph  # noqa: E402
from neurodeploy.deploy.xylo_vendor import xylosim_class  # noqa: E402
from neurodeploy.sim.xylo import XyloNetwork  # noqa: E402


def one(name, graph, n, T):
    art = lower_graph(graph, "xylo-audio2")
    x = (np.random.default_rng(0).random((n, T, art.n_in)) < 0.2).astype(np.int64)
    t0 = time.perf_counter()
    ours = XyloNetwork(art.spec).run(x)
    t_ours = time.perf_counter() - t0
    cls = xylosim_class("xylo-audio2")
    sim = cls.from_specification(**{k: v for k, v in art.spec.items()
                                    if k in inspect.signature(cls.from_specification).parameters})
    t0 = time.perf_counter()
    refs = []
    for b in range(n):              # XyloSim runs one sample at a time
        sim.reset_state()
        out, _, rec = sim.evolve(x[b], record=True)
        refs.append({"out": np.asarray(out), "spikes": np.asarray(rec["Spikes"]), "vmem": np.asarray(rec["Vmem"])})
    t_ref = time.perf_counter() - t0
    equal = all(np.array_equal(ours[k][b], refs[b][k]) for b in range(n) for k in ("out", "spikes", "vmem"))
    return {"network": name, "samples": n, "steps": T, "ours_s": round(t_ours, 3), "xylosim_s": round(t_ref, 3),
            "ours_sample_steps_per_s": round(n * T / t_ours), "xylosim_sample_steps_per_s": round(n * T / t_ref),
            "bit_exact": equal}


def main():
    runs = [one("braille-shaped 12-38rec-7 CubaLIF", braille_graph(), 64, 256),
            one("16-500rec-500-8 CubaLIF, 5% weights", nir_net([16, 500, 500, 8], (1,), density=0.05), 16, 100)]
    print(json.dumps({"target": "xylo-audio2", "runs": runs,
                      "measures": "wall time of the runs incl. recording spikes/Vmem/Isyn; XyloSim built once "
                                  "(from_specification) and reset per sample; shared 2-core machine"}))


if __name__ == "__main__":
    main()
