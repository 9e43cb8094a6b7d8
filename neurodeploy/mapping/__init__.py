"""Chip fit: populations and synapse groups onto cores, chips and systems (see ``partition``); one fit module
per chip that fits its own lowered network (``speck``, ``xylo``)."""
from .network import MapNetwork, MapPopulation, MapSynapses, cxhw, from_graph, from_lowered
from .partition import fit
from .records import FitResult, Violation

__all__ = ["MapNetwork", "MapPopulation", "MapSynapses", "cxhw", "from_graph", "from_lowered", "FitResult", "Violation",
           "fit"]
