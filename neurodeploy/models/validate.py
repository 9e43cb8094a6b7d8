"""Config validation before a model is built: every field's type, finiteness and range, and a cap on the
parameter count, so that a small checkpoint whose config asks for a huge model is refused without
allocating it (``heads = 0``, a string, ``embed_dim = 10**9``, ``depth = 10**6``)."""
from __future__ import annotations

import math
import typing
from dataclasses import fields

from .. import limits
from ..errors import BadInputError, ResourceLimitError

#: field -> (lowest, highest) for integers; a field not listed: >= 1 and <= limits.MAX_DIM
INT_RANGES = {
    "num_classes": (1, limits.MAX_CLASSES),
    "in_channels": (1, limits.MAX_CHANNELS),
    "img_size": (1, limits.MAX_IMG_SIZE),
    "embed_dim": (1, limits.MAX_EMBED_DIM),
    "depth": (1, limits.MAX_DEPTH),
    "num_heads": (1, limits.MAX_HEADS),
    "mlp_ratio": (1, limits.MAX_MLP_RATIO),
    "T": (1, limits.MAX_TIME_STEPS),
    "channels": (1, limits.MAX_CHANNELS),
    "num_blocks": (1, limits.MAX_DEPTH),
    "num_stages": (1, 3),
    "depths": (0, limits.MAX_DEPTH),
    "strides": (1, 16),
    "first_kernel": (1, 15),
}
CHOICES = {
    "tokenizer_naming": ("cifar", "imagenet"),
    "attention_order": ("kv_first", "qk_first"),
    "connect_f": ("ADD", "AND", "IAND"),
    "projection": ("conv", "linear"),
    "coding": ("cifar", "imagenet"),
}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_value(name: str, hint, v, where: str) -> None:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and type(None) in args:
        if v is None:
            return
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        if not isinstance(v, (list, tuple)) or len(v) > limits.MAX_DEPTH:
            raise BadInputError(f"{where}key {name!r}: expected a list of at most {limits.MAX_DEPTH} entries, "
                                f"got {type(v).__name__}")
        for i, item in enumerate(v):
            _check_value(f"{name}[{i}]", args[0] if args else object, item, where)
        return
    if hint is bool:
        if not isinstance(v, bool):
            raise BadInputError(f"{where}key {name!r}: expected true/false, got {v!r}"[:200])
        return
    if hint is int:
        if not _is_int(v):
            raise BadInputError(f"{where}key {name!r}: expected an integer, got {type(v).__name__} {v!r}"[:200])
        lo, hi = INT_RANGES.get(name.split("[")[0] if not name.startswith("tokenizer_channels") else "channels",
                                (1, limits.MAX_DIM))
        if name.startswith(("tokenizer_channels", "sps_channels")):
            lo, hi = 1, limits.MAX_CHANNELS
        if not lo <= v <= hi:
            err = ResourceLimitError if v > hi else BadInputError
            raise err(f"{where}key {name!r}: {v} is outside [{lo}, {hi}]")
        return
    if hint is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise BadInputError(f"{where}key {name!r}: expected a finite number, got {v!r}"[:200])
        if name == "tau" and not v >= 1.0:
            raise BadInputError(f"{where}key 'tau': a LIF time constant must be >= 1, got {v!r}")
        return
    if hint is str:
        if not isinstance(v, str):
            raise BadInputError(f"{where}key {name!r}: expected a string, got {type(v).__name__}")
        if name in CHOICES and v not in CHOICES[name]:
            raise BadInputError(f"{where}key {name!r}: {v!r} is not one of {', '.join(CHOICES[name])}"[:200])


def estimated_parameters(cfg: dict) -> int:
    """An upper-bound estimate of the parameter count from the config alone (no allocation)."""
    D = int(cfg.get("embed_dim", cfg.get("channels", 1)) or 1)
    depth = int(cfg.get("depth", cfg.get("num_blocks", 1)) or 1)
    if isinstance(cfg.get("embed_dims"), (list, tuple)) and cfg["embed_dims"]:  # SDT V2: per-stage widths
        D = max(int(v) for v in cfg["embed_dims"])
        depth = sum(int(v) for v in cfg.get("depths", [1])) + 4  # the transformer blocks and the conv blocks
    mlp = int(cfg.get("mlp_ratio", 4) or 4)
    chans = [int(cfg.get("in_channels", 1))] + [int(c) for c in cfg.get("tokenizer_channels", cfg.get("sps_channels", []))]
    tok = sum(a * b * 9 for a, b in zip(chans, chans[1:]))
    return depth * (4 + 2 * mlp) * D * D + tok + D * int(cfg.get("num_classes", 1)) + 9 * D * D * depth


def validate_config(cls, d: dict, where: str = "") -> None:
    """Check the fields of ``d`` that ``cls`` (a config dataclass) knows, then cross-field rules."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.name in d:
            _check_value(f.name, hints[f.name], d[f.name], where)
    if "num_heads" in d and "embed_dim" in d and d["embed_dim"] % d["num_heads"]:
        raise BadInputError(f"{where}key 'num_heads': {d['num_heads']} does not divide embed_dim {d['embed_dim']}")
    for chans, pools in (("tokenizer_channels", "tokenizer_pools"), ("sps_channels", "sps_pools")):
        if chans in d and pools in d:
            want = len(d[chans]) - 1 if chans == "tokenizer_channels" else len(d[chans])
            if len(d[pools]) != want:
                raise BadInputError(f"{where}key {pools!r}: needs {want} entries (one per stage), got {len(d[pools])}")
            if not d[chans]:
                raise BadInputError(f"{where}key {chans!r}: empty")
    for chans in ("tokenizer_channels", "sps_channels"):
        if d.get(chans) and "embed_dim" in d and d[chans][-1] != d["embed_dim"]:
            raise BadInputError(f"{where}key {chans!r}: the last entry must equal embed_dim {d['embed_dim']}")
    dims = d.get("embed_dims")
    if dims is not None:  # SDT V2: four stage widths, two transformer depths, five strides
        for key, n in (("embed_dims", 4), ("depths", 2), ("strides", 5)):
            if key in d and len(d[key]) != n:
                raise BadInputError(f"{where}key {key!r}: needs {n} entries, got {len(d[key])}")
        if "depths" in d and d["depths"][0] < 1:
            raise BadInputError(f"{where}key 'depths': stage 3 needs at least one block")
        if dims[0] % 2:
            raise BadInputError(f"{where}key 'embed_dims': the first width must be even (stage 1 starts at half)")
        if "num_heads" in d:
            for w in dims[2:]:
                if w % d["num_heads"]:
                    raise BadInputError(f"{where}key 'num_heads': {d['num_heads']} does not divide the "
                                        f"transformer width {w}")
    stat = d.get("pooling_stat")
    if stat is not None and (not isinstance(stat, str) or len(stat) != 4 or set(stat) - {"0", "1"}):
        raise BadInputError(f"{where}key 'pooling_stat': expected 4 characters 0/1 (one per tokenizer stage), "
                            f"got {stat!r}"[:200])
    n = estimated_parameters(d)
    if n > limits.MAX_PARAMETERS:
        raise ResourceLimitError(f"{where}config asks for about {n:,} parameters (limit {limits.MAX_PARAMETERS:,})")
