"""Model families: Spikingformer (every official variant and the digits demo), Spikformer, Spike-driven
Transformer V1 and V2 and QKFormer (official sizes and digits-size versions), and the SEW-ResNet baseline."""
from .baselines import SEWConfig, SEWResNet, Spikformer, SpikformerConfig
from .qkformer import QKFormer, QKFormerConfig
from .sdt import SDTConfig, SpikeDrivenTransformer
from .sdt_v2 import SDTV2Config, SpikeDrivenTransformerV2
from .registry import OFFICIAL_PARAMETER_COUNTS, arch_names, build_model, default_config
from .spikingformer import Spikingformer, SpikingformerConfig

__all__ = [
    "Spikingformer", "SpikingformerConfig", "Spikformer", "SpikformerConfig", "SEWResNet", "SEWConfig",
    "SpikeDrivenTransformer", "SDTConfig", "SpikeDrivenTransformerV2", "SDTV2Config", "QKFormer", "QKFormerConfig",
    "build_model", "default_config", "arch_names", "OFFICIAL_PARAMETER_COUNTS",
]
