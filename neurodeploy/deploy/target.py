"""The interface every deployable chip implements (see :mod:`neurodeploy.deploy.registry`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import BadInputError, UnsupportedError
from ..fidelity import float_predictions

#: roles whose non-spike-driven ops are allowed exceptions to spike purity (real-valued encoder, readout)
ALLOWED_EXCEPTIONS = ("encoder", "readout")


class Target:
    """What a deployable chip provides.  Subclasses override what they support; every method receives
    plain data (the deployment, the artifact) and returns plain data.

    * ``lower(deployment, profile) -> artifact``: build what runs on the chip; raise
      :class:`~neurodeploy.errors.UnsupportedError` naming the node when a node cannot be deployed (the
      report then says ``cannot deploy: <reason>``).
    * ``predict(artifact, x, backend) -> int array [B]``: class predictions of the artifact on samples
      ``x`` (the default :meth:`simulate` compares them with the float model); or override
      :meth:`simulate` for richer results.
    * ``map(artifact, profile, rates) -> FitResult``: cores, chips, system (``neurodeploy.mapping.fit``).
    * ``write(artifact, folder) -> [paths]`` / ``read(folder) -> artifact``: the artifact on disk
      (``OUT/<target name>/``).
    """

    name: str = ""
    #: simulator back-ends, the first is the default ('' entries mean: no simulator)
    backends: tuple[str, ...] = ()

    def lower(self, deployment, profile) -> Any:
        raise UnsupportedError(f"target '{self.name}': no lowering")

    def predict(self, artifact, x, backend: str | None = None, **options):
        raise UnsupportedError(f"target '{self.name}': no simulator (profile-only target)")

    def simulate(self, artifact, graph, x, y=None, backend: str | None = None, progress: bool = False,
                 **options) -> dict:
        """Fidelity of the artifact on samples ``x``: its predictions against the float model's."""
        import numpy as np

        x = np.asarray(x, dtype=np.float32)
        ref = options.pop("reference", None)        # the deployment's float run, when it made one
        pred = np.asarray(self.predict(artifact, x, backend=backend, **options)).reshape(-1)
        if ref is None:
            ref = float_predictions(graph, x, steps=options.get("steps"))
        ref = np.asarray(ref)
        if pred.shape != ref.shape:
            raise UnsupportedError(f"target '{self.name}': {pred.shape[0]} predictions for {ref.shape[0]} samples")
        res = {"backend": backend or (self.backends[0] if self.backends else ""), "samples": int(len(x)),
               "prediction_agreement": float((pred == ref).mean())}
        if y is not None:
            y = np.asarray(y)[:len(x)]
            res["float_accuracy"] = float((ref == y).mean())
            res["target_accuracy"] = float((pred == y).mean())
        return res

    def map(self, artifact, profile, rates: dict | None = None):
        raise UnsupportedError(f"target '{self.name}': no chip-fit mapping")

    def write(self, artifact, folder: Path) -> list[Path]:
        return []

    def read(self, folder: Path):
        raise BadInputError(f"target '{self.name}': no artifact format to read from {folder}")

    def describe(self, artifact) -> dict:
        """A JSON-able summary of the artifact for the report (counts, latency, options)."""
        return {}
