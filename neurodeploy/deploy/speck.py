"""The Speck (DYNAP-CNN) target: NIR chain of conv / sum-pool / IF / linear -> Speck integer network
(:mod:`neurodeploy.lower.speck`, sinabs' discretization) -> our fixed-point simulation
(:mod:`neurodeploy.sim.speck`, spike for spike sinabs' discretized forward) -> chip fit by sinabs' memory
accounting and layer -> core matching (:mod:`neurodeploy.mapping.speck`).

Artifact folder ``OUT/speck/``: ``network.npz`` (per layer: integer weights, bias, threshold, floor, stride,
padding, pool, input shape) and ``summary.json``.  What stays out of reach without samna (no cp311 build):
the samna chip configuration (``DynapcnnNetwork.make_config``), specksim, and running on the dev kit.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ..errors import BadInputError, UnsupportedError
from ..fileio import write_bytes_atomic, write_text_atomic
from .target import Target
from ..lower import speck as lower_speck
from ..lower.speck import SpeckLayer, SpeckNetwork
from ..mapping import speck as mapping_speck
from ..mapping.speck import layer_memory
from ..sim.speck import predict

NETWORK_FILE = "network.npz"
SUMMARY_FILE = "summary.json"


def summarize(net) -> dict:
    return {"target": "speck", "layers": [
        {"name": L.name, "nodes": list(L.nodes), "in_shape": list(L.in_shape), "neuron_shape": list(L.neuron_shape),
         "out_shape": list(L.out_shape), "kernel": int(L.weight.shape[2]), "stride": L.stride, "padding": L.padding,
         "pool": L.pool, "threshold": L.threshold, "min_v_mem": L.min_v_mem, "scale": L.scale,
         "memory": layer_memory(L)} for L in net.layers],
        "input_shape": list(net.input_shape),
        "neuron_model": "IAF: floor(v/threshold) spikes when v > 0, reset by subtraction, v floored at min_v_mem "
                        "(sinabs' reading of NIR IF)",
        "precision": "8-bit weights and biases, 16-bit threshold and floor (sinabs discretize, one scale per layer)",
        "out_of_reach": "samna chip configuration, specksim and the dev kit (no samna for Python 3.11)"}


class SpeckTarget(Target):
    name = "speck"
    backends = ("fast",)

    def lower(self, deployment, profile=None):
        # a profile without one of these keys keeps the Speck docs' limit (lower/speck.py)
        limits = {k: profile.core_limit(k) for k in ("kernel_size", "channels", "input_size")} if profile else {}
        return lower_speck.lower_graph(deployment.graph, limits)

    def predict(self, artifact, x, backend: str | None = None, **options):
        if backend not in (None, "fast"):
            raise UnsupportedError(f"target 'speck': no backend {backend!r} (available: fast)")
        x = np.asarray(x)
        if x.ndim == len(artifact.input_shape) + 1:       # a static frame, repeated over the steps (as the float model)
            x = np.repeat(x[:, None], int(options.get("steps") or 1), axis=1)
        return predict(artifact, x)

    def simulate(self, artifact, graph, x, y=None, backend: str | None = None, progress: bool = False,
                 **options) -> dict:
        x = np.asarray(x, dtype=np.float32)
        if options.get("steps") is None and x.ndim == len(artifact.input_shape) + 2:
            options["steps"] = int(x.shape[1])            # event input [B, T, C, H, W] fixes its steps
        res = super().simulate(artifact, graph, x, y, backend=backend, progress=progress, **options)
        res["note"] = ("float model: NIR IF (one spike, reset to v_reset); Speck: sinabs' reading (multi-spike, "
                       "reset by subtraction) in 8/16-bit integers")
        return res

    def map(self, artifact, profile, rates=None):
        return mapping_speck.fit(artifact, profile)

    def describe(self, artifact) -> dict:
        return {"mapped_from": "the lowered Speck integer network", "artifact": summarize(artifact)}

    def write(self, artifact, folder: Path) -> list[Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"input_shape": np.asarray(artifact.input_shape, dtype=np.int64)}
        for i, L in enumerate(artifact.layers):
            arrays[f"l{i}_weight"] = L.weight
            arrays[f"l{i}_bias"] = L.bias if L.bias is not None else np.zeros(0, np.int32)
            arrays[f"l{i}_has_bias"] = np.asarray(L.bias is not None)
            arrays[f"l{i}_params"] = np.asarray([L.threshold, L.min_v_mem, L.stride, L.padding, L.pool,
                                                 *L.in_shape], dtype=np.int64)
            arrays[f"l{i}_scale"] = np.asarray(L.scale)
        buf = io.BytesIO()
        np.savez(buf, names=np.asarray([L.name for L in artifact.layers]),
                 nodes=np.asarray(["|".join(L.nodes) for L in artifact.layers]), **arrays)
        write_bytes_atomic(folder / NETWORK_FILE, buf.getvalue())
        write_text_atomic(folder / SUMMARY_FILE, json.dumps(summarize(artifact), indent=2) + "\n")
        return [folder / NETWORK_FILE, folder / SUMMARY_FILE]

    def read(self, folder: Path):
        f = Path(folder) / NETWORK_FILE
        if not f.is_file():
            raise BadInputError(f"{folder}: no {NETWORK_FILE} (not a Speck artifact folder written by "
                                "'neurodeploy export --target speck')")
        try:
            with np.load(f, allow_pickle=False) as z:
                names, nodes = [str(s) for s in z["names"]], [str(s).split("|") for s in z["nodes"]]
                layers = []
                for i, (n, nd) in enumerate(zip(names, nodes)):
                    p = [int(v) for v in z[f"l{i}_params"]]
                    layers.append(SpeckLayer(name=n, nodes=nd, in_shape=tuple(p[5:8]),
                                             weight=z[f"l{i}_weight"].astype(np.int32),
                                             bias=z[f"l{i}_bias"].astype(np.int32) if bool(z[f"l{i}_has_bias"]) else None,
                                             threshold=p[0], min_v_mem=p[1], stride=p[2], padding=p[3], pool=p[4],
                                             scale=float(z[f"l{i}_scale"])))
                shape = tuple(int(v) for v in z["input_shape"])
        except (OSError, KeyError, ValueError, IndexError) as exc:
            raise BadInputError(f"{f}: not a Speck network file ({exc})") from None
        return SpeckNetwork(layers=layers, input_shape=shape)
