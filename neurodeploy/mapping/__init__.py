"""Chip fit: populations and synapse groups onto cores, chips and systems (see ``partition``)."""
from .network import (MapNetwork, MapPopulation, MapSynapses, conv_chain, cxhw, from_graph, from_lowered, mlp,
                      pilotnet_lif, pilotnet_sdnn, yolo_kp)
from .partition import FitResult, Violation, fit

__all__ = ["MapNetwork", "MapPopulation", "MapSynapses", "conv_chain", "cxhw", "from_graph", "from_lowered", "mlp",
           "pilotnet_lif", "pilotnet_sdnn", "yolo_kp", "FitResult", "Violation", "fit"]
