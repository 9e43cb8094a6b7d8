"""Lowering: NIR graph -> quantized, delay-balanced integer network (:class:`LoweredNetwork`)."""
from .network import (Attention, Encoder, LoweredNetwork, Population, Synapse, MAX_DELAY, MIXED, EXCITATORY,
                      INHIBITORY)

__all__ = ["Attention", "Encoder", "LoweredNetwork", "Population", "Synapse", "MAX_DELAY", "MIXED", "EXCITATORY",
           "INHIBITORY"]
