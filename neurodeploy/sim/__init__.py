"""Our Loihi 2 fixed-point engine (bit-exact with Lava fixed_pt) and the lava-dl netx reader."""
from .engine import Engine, lava_effective_weights, simulate

__all__ = ["Engine", "lava_effective_weights", "simulate"]
