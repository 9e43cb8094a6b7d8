"""Architecture names used by ``--arch`` and by :func:`neurodeploy.build_model`.

Official Spikingformer variants (facts: shared/reference/spikingformer.md section 1.2):

| name                               | D   | depth | heads | T         | tokenizer        | classes |
|------------------------------------|-----|-------|-------|-----------|------------------|---------|
| spikingformer-cifar10-4-384        | 384 | 4     | 12    | 4         | ConvBN+2SPE+2SPED | 10     |
| spikingformer-cifar100-4-384       | 384 | 4     | 8     | 4         | ConvBN+2SPE+2SPED | 100    |
| spikingformer-imagenet-8-{384,512,768} | D | 8   | 8     | 4         | ConvBN+4SPED     | 1000    |
| spikingformer-cifar10dvs-2-256     | 256 | 2     | 16    | from input| ConvBN+4SPED, tau 1.5 | 10 |
| spikingformer-gesture-2-256        | 256 | 2     | 16    | from input| ConvBN+4SPED, tau 1.5 | 11 |
| spikingformer-digits (demo)        | 64  | 1     | 4     | 4         | ConvBN+SPE+SPED on 8x8 digits | 10 |
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from .baselines import SEWConfig, SEWResNet, Spikformer, SpikformerConfig
from .qkformer import QKFormer, QKFormerConfig
from .sdt import SDTConfig, SpikeDrivenTransformer
from .sdt_v2 import SDTV2Config, SpikeDrivenTransformerV2, official_config as _sdtv2
from .spikingformer import Spikingformer, SpikingformerConfig
from ..errors import BadInputError
from .validate import validate_config


def _cifar(classes: int, heads: int, D: int = 384, depth: int = 4) -> SpikingformerConfig:
    return SpikingformerConfig(
        num_classes=classes, in_channels=3, img_size=32, embed_dim=D, depth=depth, num_heads=heads, T=4, tau=2.0,
        tokenizer_channels=[D // 8, D // 4, D // 2, D, D], tokenizer_pools=[False, False, True, True],
        tokenizer_naming="cifar", attention_order="qk_first",
    )


def _imagenet(D: int) -> SpikingformerConfig:
    return SpikingformerConfig(
        num_classes=1000, in_channels=3, img_size=224, embed_dim=D, depth=8, num_heads=8, T=4, tau=2.0,
        tokenizer_channels=[D // 8, D // 4, D // 2, D, D], tokenizer_pools=[True, True, True, True],
        tokenizer_naming="imagenet", attention_order="kv_first",
    )


def _dvs(classes: int) -> SpikingformerConfig:
    D = 256
    return SpikingformerConfig(
        num_classes=classes, in_channels=2, img_size=128, embed_dim=D, depth=2, num_heads=16, T=None, tau=1.5,
        tokenizer_channels=[D // 8, D // 4, D // 2, D, D], tokenizer_pools=[True, True, True, True],
        tokenizer_naming="imagenet", attention_order="qk_first", event_input=True,
    )


def _digits() -> SpikingformerConfig:
    return SpikingformerConfig(
        num_classes=10, in_channels=1, img_size=8, embed_dim=64, depth=1, num_heads=4, T=4, tau=2.0,
        tokenizer_channels=[16, 32, 64], tokenizer_pools=[False, True], tokenizer_naming="cifar",
        attention_order="kv_first",
    )


SPIKINGFORMER_CONFIGS: dict[str, Callable[[], SpikingformerConfig]] = {
    "spikingformer-cifar10-4-384": lambda: _cifar(10, 12),
    "spikingformer-cifar100-4-384": lambda: _cifar(100, 8),
    "spikingformer-imagenet-8-384": lambda: _imagenet(384),
    "spikingformer-imagenet-8-512": lambda: _imagenet(512),
    "spikingformer-imagenet-8-768": lambda: _imagenet(768),
    "spikingformer-cifar10dvs-2-256": lambda: _dvs(10),
    "spikingformer-gesture-2-256": lambda: _dvs(11),
    "spikingformer-digits": _digits,
}

def _spikformer_cifar(classes: int = 10, D: int = 384, depth: int = 4, heads: int = 12) -> SpikformerConfig:
    """ZK-Zhou/spikformer cifar10/model.py + cifar10.yml (layer 4, dim 384, heads 12, T 4)."""
    return SpikformerConfig(
        num_classes=classes, in_channels=3, img_size=32, embed_dim=D, depth=depth, num_heads=heads, T=4, tau=2.0,
        sps_channels=[D // 8, D // 4, D // 2, D], sps_pools=[False, False, True, True], projection="linear",
        layer_norms=True, attention_order="qk_first",
    )


def _spikformer_imagenet(D: int, depth: int = 8, heads: int = 8) -> SpikformerConfig:
    """ZK-Zhou/spikformer imagenet/model.py (registers 8-512 with 8 heads; T = 4 fixed in forward)."""
    return SpikformerConfig(
        num_classes=1000, in_channels=3, img_size=224, embed_dim=D, depth=depth, num_heads=heads, T=4, tau=2.0,
        sps_channels=[D // 8, D // 4, D // 2, D], sps_pools=[True, True, True, True], projection="conv",
        layer_norms=True, attention_order="kv_first",
    )


#: official Spikformer variants (ZK-Zhou/spikformer; shared/reference/spiking-transformers.md section 2).  The
#: repository registers only ImageNet 8-512 (8 heads); 8-384 and 8-768 are the paper's sizes built with the
#: same code and 8 heads (the head count changes neither keys nor parameters).
SPIKFORMER_CONFIGS: dict[str, Callable[[], SpikformerConfig]] = {
    "spikformer-cifar10-4-384": lambda: _spikformer_cifar(10),
    "spikformer-imagenet-8-384": lambda: _spikformer_imagenet(384),
    "spikformer-imagenet-8-512": lambda: _spikformer_imagenet(512),
    "spikformer-imagenet-8-768": lambda: _spikformer_imagenet(768),
}

def _sdt(D: int, depth: int, classes: int, img: int, stat: str) -> SDTConfig:
    """BICLab/Spike-Driven-Transformer conf/*.yml: heads 8, mlp_ratio 4, T 4, spike_mode lif."""
    return SDTConfig(num_classes=classes, in_channels=3, img_size=img, embed_dim=D, depth=depth, num_heads=8,
                     mlp_ratio=4, T=4, tau=2.0, pooling_stat=stat)


#: official Spike-driven Transformer V1 variants (conf/cifar10/2_{256,512}_300E_t4.yml, conf/imagenet/*.yml)
#: and a digits-size one (pooling "0010": no max-pool on the membrane, so it deploys)
SDT_CONFIGS: dict[str, Callable[[], SDTConfig]] = {
    "sdt-cifar10-2-512": lambda: _sdt(512, 2, 10, 32, "0011"),
    "sdt-cifar10-2-256": lambda: _sdt(256, 2, 10, 32, "0011"),
    "sdt-imagenet-8-384": lambda: _sdt(384, 8, 1000, 224, "1111"),
    "sdt-imagenet-8-768": lambda: _sdt(768, 8, 1000, 224, "1111"),
    "sdt-digits": lambda: SDTConfig(),
}

#: official QKFormer variants (cifar10/model.py + cifar10.yml: 4-384, heads fixed to 8; imagenet/qkformer.py:
#: QKFormer_10_384, 6 heads, trained with --time_step 4) and a digits-size one (the first stage only:
#: PatchEmbedInit + one Q-K token-attention block, no max-pool, so it deploys)
QKFORMER_CONFIGS: dict[str, Callable[[], QKFormerConfig]] = {
    "qkformer-cifar10-4-384": lambda: QKFormerConfig(num_classes=10, in_channels=3, img_size=32, embed_dim=384, depth=4,
                                                     num_heads=8, mlp_ratio=4, T=4, coding="cifar"),
    "qkformer-imagenet-10-384": lambda: QKFormerConfig(num_classes=1000, in_channels=3, img_size=224, embed_dim=384,
                                                       depth=10, num_heads=6, mlp_ratio=4, T=4, coding="imagenet"),
    "qkformer-digits": lambda: QKFormerConfig(num_stages=1),
}

#: official Spike-driven Transformer V2 / Meta-SpikeFormer variants (classification/models.py
#: ``metaspikformer_8_{384,512,768}``: embed dims [96,192,384,480] / [128,256,512,640] / [192,384,768,960]; T 4
#: as trained by train_finetune_from_t1_to_t4.sh), the KD variant of 8-512 (``55M_kd_T4.pth`` holds
#: ``head_kd.*``), and a digits-size one (conv stage 1, then one transformer block on 4x4 tokens)
SDTV2_CONFIGS: dict[str, Callable[[], SDTV2Config]] = {
    "sdtv2-imagenet-8-384": lambda: _sdtv2([96, 192, 384, 480]),
    "sdtv2-imagenet-8-512": lambda: _sdtv2([128, 256, 512, 640]),
    "sdtv2-imagenet-8-512-kd": lambda: _sdtv2([128, 256, 512, 640], kd=True),
    "sdtv2-imagenet-8-768": lambda: _sdtv2([192, 384, 768, 960]),
    "sdtv2-digits": lambda: SDTV2Config(),
}

BASELINE_CONFIGS: dict[str, Callable[[], object]] = {
    "spikformer-digits": lambda: SpikformerConfig(),
    "sew-resnet-digits-add": lambda: SEWConfig(connect_f="ADD"),
    "sew-resnet-digits-and": lambda: SEWConfig(connect_f="AND"),
    "sew-resnet-digits-iand": lambda: SEWConfig(connect_f="IAND"),
}

#: official parameter counts (including the unused LayerNorms), spikingformer.md section 1.2
OFFICIAL_PARAMETER_COUNTS = {
    "spikingformer-cifar10-4-384": 9_326_266,
    "spikingformer-cifar100-4-384": 9_360_916,
    "spikingformer-imagenet-8-384": 16_828_312,
    "spikingformer-imagenet-8-512": 29_705_768,
    "spikingformer-imagenet-8-768": 66_363_208,
    "spikingformer-cifar10dvs-2-256": 2_568_714,
    "spikingformer-gesture-2-256": 2_568_971,
}


#: official parameter counts of the other families: the count of the official model code's module tree
#: (benchmarks/bench_official.py builds both and compares), including parameters the forward never uses
#: (Spikformer's LayerNorms).  The papers' counts (without unused modules) are in FAMILY_PAPER_PARAMETERS.
FAMILY_PARAMETER_COUNTS = {
    "spikformer-cifar10-4-384": 9_330_874,
    "spikformer-imagenet-8-384": 16_828_312,
    "spikformer-imagenet-8-512": 29_705_768,
    "spikformer-imagenet-8-768": 66_363_208,
    "sdt-cifar10-2-512": 10_233_546,
    "sdt-cifar10-2-256": 2_567_082,
    "sdt-imagenet-8-384": 16_816_536,
    "sdt-imagenet-8-768": 66_339_144,
    "qkformer-cifar10-4-384": 6_706_234,
    "qkformer-imagenet-10-384": 16_473_688,
    "sdtv2-imagenet-8-384": 31_333_864,
    "sdtv2-imagenet-8-512": 55_350_248,
    "sdtv2-imagenet-8-512-kd": 55_991_248,
    "sdtv2-imagenet-8-768": 123_741_160,
}

#: the papers' parameter counts in millions (without never-used modules), with their source
FAMILY_PAPER_PARAMETERS = {
    "spikformer-cifar10-4-384": (9.32, "Spikformer, ICLR 2023, Table (CIFAR-10, Spikformer-4-384)"),
    "spikformer-imagenet-8-384": (16.81, "Spikformer, ICLR 2023, Table (ImageNet, Spikformer-8-384)"),
    "spikformer-imagenet-8-512": (29.68, "Spikformer, ICLR 2023, Table (ImageNet, Spikformer-8-512)"),
    "spikformer-imagenet-8-768": (66.34, "Spikformer, ICLR 2023, Table (ImageNet, Spikformer-8-768)"),
    # the paper lists 10.28M; the official code's module tree has 10.23M (reference section 3)
    "sdt-cifar10-2-512": (10.28, "Spike-driven Transformer, NeurIPS 2023, Table (CIFAR-10, 2-512)"),
    "sdt-cifar10-2-256": (2.57, "computed from the official code (the paper lists no CIFAR 2-256 row)"),
    "sdt-imagenet-8-384": (16.81, "Spike-driven Transformer, NeurIPS 2023, Table (ImageNet, 8-384)"),
    "sdt-imagenet-8-768": (66.34, "Spike-driven Transformer, NeurIPS 2023, Table (ImageNet, 8-768)"),
    "qkformer-cifar10-4-384": (6.71, "QKFormer training log cifar10 (HST-4-384)"),
    "qkformer-imagenet-10-384": (16.47, "QKFormer, NeurIPS 2024 / imagenet log (HST-10-384)"),
    # Meta-SpikeFormer's paper gives one decimal; the code's function names do not match the paper's sizes
    "sdtv2-imagenet-8-384": (31.3, "Spike-driven Transformer V2, ICLR 2024, Table (ImageNet, 31.3M)"),
    "sdtv2-imagenet-8-512": (55.4, "Spike-driven Transformer V2, ICLR 2024, Table (ImageNet, 55.4M)"),
    "sdtv2-imagenet-8-512-kd": (56.0, "the 55.4M model plus the distillation head head_kd (0.64M)"),
    "sdtv2-imagenet-8-768": (123.7, "computed from the official code (metaspikformer_8_768; no paper row)"),
}

#: families by architecture-name prefix (what summary.json and the report call the family)
FAMILIES = {
    "spikingformer": "Spikingformer",
    "spikformer": "Spikformer",
    "sdt": "Spike-driven Transformer V1",
    "sdtv2": "Spike-driven Transformer V2",
    "qkformer": "QKFormer",
    "sew-resnet": "SEW ResNet",
}


def family_of(arch: str | None) -> str | None:
    """The family name of an architecture name (``spikformer-cifar10-4-384`` -> ``Spikformer``)."""
    if not arch:
        return None
    for prefix in sorted(FAMILIES, key=len, reverse=True):
        if arch == prefix or arch.startswith(prefix + "-"):
            return FAMILIES[prefix]
    return None


def _all_configs() -> dict:
    return {**SPIKINGFORMER_CONFIGS, **SPIKFORMER_CONFIGS, **SDT_CONFIGS, **SDTV2_CONFIGS, **QKFORMER_CONFIGS, **BASELINE_CONFIGS}


def arch_names() -> list[str]:
    return list(_all_configs())


def default_config(arch: str):
    configs = _all_configs()
    if arch in configs:
        return configs[arch]()
    raise BadInputError(f"unknown architecture {arch!r}; known: {', '.join(arch_names())}")


def model_from_config(config) -> nn.Module:
    if isinstance(config, SpikingformerConfig):
        return Spikingformer(config)
    if isinstance(config, SpikformerConfig):
        return Spikformer(config)
    if isinstance(config, SEWConfig):
        return SEWResNet(config)
    if isinstance(config, SDTConfig):
        return SpikeDrivenTransformer(config)
    if isinstance(config, QKFormerConfig):
        return QKFormer(config)
    if isinstance(config, SDTV2Config):
        return SpikeDrivenTransformerV2(config)
    raise TypeError(f"not a model config: {type(config).__name__}")


def config_from_dict(arch: str, d: dict, where: str = ""):
    """Rebuild the config dataclass for ``arch`` from a saved dict (unknown keys ignored), validated before
    anything is built (types, ranges, parameter count; ``where`` prefixes the error message)."""
    if not isinstance(d, dict):
        raise BadInputError(f"{where}config must be a dict, got {type(d).__name__}")
    base = default_config(arch)
    merged = {**base.to_dict(), **d}
    validate_config(type(base), merged, where)
    return type(base).from_dict(merged)


def build_model(arch: str, config: dict | None = None) -> nn.Module:
    """Build an untrained model of architecture ``arch`` (optionally overriding config fields)."""
    cfg = default_config(arch) if config is None else config_from_dict(arch, config)
    model = model_from_config(cfg)
    model.arch = arch
    return model
