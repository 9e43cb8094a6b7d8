"""The SynSense Xylo targets (``xylo-audio2``, ``xylo-imu``, ``xylo-audio3``): NIR graph -> Xylo's integer
network (:mod:`neurodeploy.lower.xylo`, the *specification* of rockpool's mapper) -> our integer engine
(:mod:`neurodeploy.sim.xylo`) or SynSense's XyloSim -> chip fit with the rules of rockpool's mapper / design-rule
check (:mod:`neurodeploy.mapping.xylo`).

Artifact folder ``OUT/<chip>/``: ``spec.npz`` (the integer specification, rockpool's field names: load it with
``XyloSim.from_specification(**spec)``), ``spec.json`` (the same numbers, the layer table, the chip and notes).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ..errors import BadInputError
from ..fileio import write_bytes_atomic, write_text_atomic
from ..lower import xylo as lower_xylo
from ..lower.xylo import CHIPS, XyloArtifact
from ..mapping import xylo as mapping_xylo
from ..sim.xylo import XyloNetwork, input_counts
from .target import Target
from .xylo_vendor import run_xylosim

__all__ = ["CHIPS", "XyloTarget"]

SPEC_FILE = "spec.npz"
JSON_FILE = "spec.json"
SPEC_INT_KEYS = ("weights_in", "weights_rec", "weights_out", "dash_mem", "dash_mem_out", "dash_syn", "dash_syn_2",
                 "dash_syn_out", "threshold", "threshold_out", "bias", "bias_out")
SPEC_SCALAR_KEYS = ("weight_shift_in", "weight_shift_rec", "weight_shift_out")


class XyloTarget(Target):
    """One class for the three chips; the registry names the instance (``xylo-audio2`` ...)."""

    backends = ("fast", "xylosim")

    def lower(self, deployment, profile=None) -> XyloArtifact:
        return lower_xylo.lower_graph(deployment.graph, self.name or getattr(profile, "name", ""))

    def run(self, artifact: XyloArtifact, counts, backend: str | None = None, record: bool = False) -> dict:
        """Integer counts [B, T, Nin] -> the engine's result dict (``out`` [B, T, Nout], recordings)."""
        if (backend or "fast") == "xylosim":
            runs = [run_xylosim(artifact.chip, artifact.spec, c, record=record) for c in counts]
            return {k: np.stack([r[k] for r in runs]) for k in runs[0]} if runs else {}
        if (backend or "fast") != "fast":
            raise BadInputError(f"--backend {backend!r}: {artifact.chip} has fast, xylosim")

        return XyloNetwork(artifact.spec).run(counts, record=record)

    def simulate(self, artifact: XyloArtifact, graph, x, y=None, backend: str | None = None, progress: bool = False,
                 **options) -> dict:
        """Prediction agreement with the float model (the default), the steps taken from event data [N, T, C]."""
        x = np.asarray(x)
        if options.get("steps") is None and x.ndim == 3:
            options["steps"] = int(x.shape[1])
        res = super().simulate(artifact, graph, x, y, backend=backend or "fast", progress=progress, **options)
        res["steps_per_sample"] = int(x.shape[1]) if x.ndim == 3 else options.get("steps")
        return res

    def predict(self, artifact: XyloArtifact, x, backend: str | None = None, **options):
        counts = input_counts(x, artifact.n_in, options.get("steps"))
        out = self.run(artifact, counts, backend)["out"]
        return out.sum(axis=1).argmax(axis=-1)

    def map(self, artifact: XyloArtifact, profile, rates=None):
        return mapping_xylo.fit(artifact, profile)

    def describe(self, artifact: XyloArtifact) -> dict:
        return {"mapped_from": "the integer Xylo specification", "artifact": artifact.summary}

    # ------------------------------------------------------------------ files
    def write(self, artifact: XyloArtifact, folder: Path) -> list[Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        arrays = {k: np.asarray(artifact.spec[k]) for k in SPEC_INT_KEYS + SPEC_SCALAR_KEYS}
        np.savez(buf, dt=np.float64(artifact.spec["dt"]), **arrays)
        write_bytes_atomic(folder / SPEC_FILE, buf.getvalue())
        doc = {"format": "neurodeploy xylo spec 1", "chip": artifact.chip, "n_in": artifact.n_in,
               "layers": artifact.layers, "recurrent_weights": artifact.recurrent, "notes": artifact.notes,
               "summary": artifact.summary,
               "spec": {k: np.asarray(v).tolist() for k, v in artifact.spec.items()},
               "load_with": "XyloSim.from_specification(**numpy.load('spec.npz')) (rockpool 3.1, "
                            "rockpool.devices.xylo.<chip>.xylo_sim)"}
        write_text_atomic(folder / JSON_FILE, json.dumps(doc, indent=1) + "\n")
        return [folder / SPEC_FILE, folder / JSON_FILE]

    def read(self, folder: Path) -> XyloArtifact:
        folder = Path(folder)
        jp = folder / JSON_FILE
        if not jp.is_file():
            raise BadInputError(f"{folder}: no {JSON_FILE} (not a Xylo artifact folder written by "
                                f"'neurodeploy export --target {self.name}')")
        try:
            doc = json.loads(jp.read_text(encoding="utf-8"))
            spec = {k: np.asarray(v, dtype=np.int64) for k, v in doc["spec"].items() if k != "dt"}
            for k in SPEC_SCALAR_KEYS:
                spec[k] = int(spec[k])
            spec["dt"] = float(doc["spec"]["dt"])
            art = XyloArtifact(str(doc["chip"]), spec, list(doc["layers"]), int(doc["n_in"]),
                               list(doc.get("recurrent_weights", [])), None, list(doc.get("notes", [])))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BadInputError(f"{jp}: not a Xylo spec ({exc})") from None
        missing = [k for k in SPEC_INT_KEYS if k not in spec]
        if missing:
            raise BadInputError(f"{jp}: spec has no {missing[0]}")
        return art
