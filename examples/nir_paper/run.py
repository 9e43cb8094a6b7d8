"""The NIR paper's three tasks through neurodeploy, as far as each goes today (prints one JSON object).

    .venv/bin/python examples/nir_paper/run.py [--data-dir tests/data/nir-paper]

1. LIF neuron (01_lif/lif_norse.nir): reference simulator vs the paper's lif_norse.csv (float), and the
   Loihi 2 lowering with the paper's Lava conversion (scale 25, truncated decay) on our fixed-point engine
   vs lif_lava_cpu_fixed.csv (every step of v and spikes).
2. Braille RNN: the paper's file is not in the repository; we build a graph of its shape (12 inputs ->
   38 CubaLIF with a recurrent Affine -> 7 CubaLIF, as snnTorch's RSynaptic exports it; seeded random
   weights, NOT the trained ones), run it in the reference simulator, and show the lowering's refusal
   (recurrence and CubaLIF are not lowered yet, issue 13).
3. cnn_sinabs (02_cnn/cnn_sinabs.nir): reference simulator and Loihi 2 (lowered, our fast engine) on random
   binary event frames, with per-layer spike agreement float vs fixed point.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nir
import numpy as np
import torch

from neurodeploy.errors import NeurodeployError
from neurodeploy.exporters import to_nir
from neurodeploy.graph import simulate as float_simulate

REPO = Path(__file__).resolve().parents[2]


def lif_task(data: Path) -> dict:
    from neurodeploy.lower.from_nir import lower_graph
    from neurodeploy.sim import simulate as fixed_simulate

    g = to_nir(data / "01_lif" / "lif_norse.nir")
    ref = np.loadtxt(data / "01_lif" / "lif_norse.csv", delimiter=",")
    out = float_simulate(g, torch.tensor(ref[:, 0]).reshape(1, -1, 1), dtype=torch.float64)[:, 0, 0].numpy()
    res = {"reference_spikes_equal_csv": bool(np.array_equal(out, ref[:, 2])), "spikes": int(out.sum())}
    cpu = np.loadtxt(data / "01_lif" / "lif_lava_cpu_fixed.csv", delimiter=",")
    net, _ = lower_graph(nir.read(data / "01_lif" / "lif_norse.nir"), scale=25, rounding="floor")
    r = fixed_simulate(net, {"input": cpu[:, 0].astype(np.int64)[:, None, None]}, len(cpu), record="all")["1"]
    res["loihi2_v_and_spikes_equal_lava_cpu_fixed_csv"] = bool(
        np.array_equal(r["v"][:, 0, 0], cpu[:, 1]) and np.array_equal(r["s"][:, 0, 0], cpu[:, 2]))
    return res


def braille_graph(seed: int = 0) -> nir.NIRGraph:
    rng = np.random.default_rng(seed)
    dt = 1e-4
    full = lambda n, v: np.full(n, v, np.float32)  # noqa: E731

    def cuba(n):
        return nir.CubaLIF(tau_syn=full(n, 2 * dt), tau_mem=full(n, 4 * dt), r=full(n, 4.0), v_leak=full(n, 0.0),
                           v_threshold=full(n, 1.0), v_reset=full(n, 0.0), w_in=full(n, 2.0))

    nodes = {"input": nir.Input(input_type={"input": np.array([12])}),
             "fc1": nir.Affine(weight=(rng.standard_normal((38, 12)) * 0.8).astype(np.float32), bias=full(38, 0.0)),
             "lif1": cuba(38),
             "rec": nir.Affine(weight=(rng.standard_normal((38, 38)) * 0.2).astype(np.float32), bias=full(38, 0.0)),
             "fc2": nir.Affine(weight=(rng.standard_normal((7, 38)) * 0.8).astype(np.float32), bias=full(7, 0.0)),
             "lif2": cuba(7),
             "output": nir.Output(output_type={"output": np.array([7])})}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "rec"), ("rec", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
             ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={})


def braille_task() -> dict:
    from neurodeploy.lower.from_nir import lower_graph

    g = to_nir(braille_graph())
    x = (torch.rand(4, 100, 12, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    out, rec = float_simulate(g, x, record=True)
    res = {"weights": "seeded random (the paper's trained file is not in the repository)",
           "reference_output_spikes": int(out.sum()), "reference_hidden_spikes": int(rec["lif1"].sum())}
    try:
        lower_graph(g, T=100)
        res["loihi2"] = "lowered"
    except NeurodeployError as exc:
        res["loihi2"] = f"refused: {exc}"
    return res


def cnn_task(data: Path, n: int = 4, T: int = 8) -> dict:
    from neurodeploy.fidelity import simulate_loihi2

    g = to_nir(data / "02_cnn" / "cnn_sinabs.nir")
    g.metadata["neurodeploy.input_domain"] = "binary"
    x = (np.random.default_rng(0).random((n, T, 2, 34, 34)) < 0.15).astype(np.float32)
    res = simulate_loihi2(g, x, steps=T, progress=False)
    return {"samples": n, "steps": T, "prediction_agreement": res["prediction_agreement"],
            "layer_spike_agreement": {k: round(v, 4) for k, v in res["layer_spike_agreement"].items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(REPO / "tests" / "data" / "nir-paper"))
    args = ap.parse_args(argv)
    data = Path(args.data_dir)
    result = {"lif": lif_task(data), "braille_rnn": braille_task(), "cnn_sinabs": cnn_task(data)}
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
