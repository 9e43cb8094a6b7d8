"""neurodeploy: deploy trained spiking neural networks, above all Spikingformer, to neuromorphic hardware.

Data flows one way: model -> NIR graph -> analysis -> lowered network -> simulators -> reports.
The Python API mirrors the CLI.
"""
from .version import __version__  # noqa: E402
from .checkpoint import load_model, save_checkpoint  # noqa: E402
from .models import arch_names, build_model  # noqa: E402

__all__ = ["__version__", "load_model", "save_checkpoint", "build_model", "arch_names"]
