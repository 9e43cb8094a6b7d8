"""Lowering: NIR graph -> quantized, delay-balanced integer network (:class:`LoweredNetwork`)."""
from .fixed_point import EXCITATORY, INHIBITORY, MIXED
from .network import Attention, Encoder, LoweredNetwork, Population, Synapse, MAX_DELAY

__all__ = ["Attention", "Encoder", "LoweredNetwork", "Population", "Synapse", "MAX_DELAY", "MIXED", "EXCITATORY",
           "INHIBITORY"]
