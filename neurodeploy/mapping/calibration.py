"""Calibration of the Loihi 2 core model against the Loihi 2 compiler, layer by layer.

The compiler's per-core tables are printed in the outputs of lava-dl's netx tutorial notebooks
(github.com/lava-nc/lava-dl @ d825ac5, ``tutorials/lava/lib/dl/netx/*/``; every column with its cell is in
``tests/data/loihi2_compiler_tables.json``).  Below: the cores and SynMem units per core the compiler gave
each layer (facts from those tables), and :func:`calibrate`, which maps the same networks with our model
and states the error per layer.  The model was fitted on PilotNet (LIF and SDNN) and MNIST; YOLO-KP and
Oxford were held out.
"""
from __future__ import annotations

from functools import lru_cache

from .reference_nets import mlp, pilotnet_lif, pilotnet_sdnn, yolo_kp
from .partition import fit
from ..profiles import load_profile

SOURCE = ("Loihi 2 compiler per-core tables in lava-dl's netx tutorials (github.com/lava-nc/lava-dl @ d825ac5: "
          "pilotnet_snn/benchmark.ipynb cell 15, pilotnet_sdnn/benchmark.ipynb cell 13, mnist/run.ipynb cell 21, "
          "oxford/run.ipynb cell 12, yolo_kp/run.ipynb cell 23)")

MODEL = ("Loihi 2 core model: <= 4,095 neurons, 8 neuron groups, 16,000 input axons, 12,000 SynMem units per core; "
         "dense ceil(n/4) units per input axon; conv kernels stored once per core, one list per (input channel, "
         "tap) of 1.8 units + 1 unit per 17.7 weights, 2 input axons; tiles of C/2^k channels, ceil(H/2^j) rows and "
         "power-of-two x widths, fewest cores first; overflowing layers split again by the overflow ratio")

#: network -> (role, builder, [(layer, compiler cores, compiler SynMem units per core or None)])
COMPILER = {
    "PilotNet-LIF": ("fitted", pilotnet_lif, [
        ("input", 13, 0), ("conv1", 25, 81), ("conv2", 13, 864), ("conv3", 3, 1620), ("conv4", 3, 2160),
        ("conv5", 2, 2880), ("fc1", 12, 7253), ("fc2", 1, 1300), ("fc3", 1, 150), ("fc4", 1, 10)]),
    "PilotNet-SDNN": ("fitted", pilotnet_sdnn, [
        ("conv1", 25, 81), ("conv2", 13, 864), ("conv3", 3, 1620), ("conv4", 3, 2592), ("conv5", 2, 2880),
        ("fc1", 12, 7253), ("fc2", 1, 1500), ("fc3", 1, 150), ("fc4", 1, 10)]),
    # percentages of 12,000 in the notebook (78.40 %, 16.80 %, 1.60 %)
    "MNIST 784-128-64-10": ("fitted", lambda: mlp([784, 128, 64, 10], "mnist"), [
        ("fc0", 3, 9408), ("fc1", 1, 2016), ("fc2", 1, 192)]),
    # percentages of 12,000 (0.34 % ... 86.40 %); weights not public (Git LFS)
    "YOLO-KP (SDNN, 448x448)": ("held out", yolo_kp, [
        ("conv1", 224, 41), ("conv2", 112, 432), ("conv3", 56, 1296), ("conv4", 28, 4752), ("conv5", 56, 9504),
        ("conv6", 16, 8640), ("conv7", 32, 10368), ("conv8", 14, 8064), ("conv9", 32, 10368), ("conv10", 4, 2304)]),
    "Oxford 200-256-200": ("held out", lambda: mlp([200, 256, 200], "oxford"), [
        ("fc0", 3, 5400), ("fc1", 2, 8064)]),
}


@lru_cache(maxsize=4)
def calibrate(profile_name: str = "loihi2") -> dict:
    """Our cores and SynMem per core against the compiler's, per layer and per network."""
    prof = load_profile(profile_name)
    nets, layers = [], []
    for name, (role, build, rows) in COMPILER.items():
        r = fit(build(), prof)
        per = {L["layer"]: L for L in r.per_layer}
        total = 0
        for layer, cores, synmem in rows:
            L = per[layer]
            ours_syn = round(L["synapse_memory"] / L["cores"])
            total += cores
            layers.append({"network": name, "role": role, "layer": layer, "ours": L["cores"], "compiler": cores,
                           "error": L["cores"] - cores, "ours_synmem": ours_syn, "compiler_synmem": synmem,
                           "synmem_error_pct": round(100.0 * (ours_syn - synmem) / synmem, 1) if synmem else 0.0})
        nets.append({"network": name, "role": role, "ours": r.n_cores, "compiler": total,
                     "error": r.n_cores - total})
    return {"model": MODEL, "source": SOURCE, "networks": nets, "per_layer": layers}
