"""Model family: Spikingformer (every official variant and the digits demo) plus baselines."""
from .baselines import SEWConfig, SEWResNet, Spikformer, SpikformerConfig
from .registry import OFFICIAL_PARAMETER_COUNTS, arch_names, build_model, default_config
from .spikingformer import Spikingformer, SpikingformerConfig

__all__ = [
    "Spikingformer", "SpikingformerConfig", "Spikformer", "SpikformerConfig", "SEWResNet", "SEWConfig",
    "build_model", "default_config", "arch_names", "OFFICIAL_PARAMETER_COUNTS",
]
