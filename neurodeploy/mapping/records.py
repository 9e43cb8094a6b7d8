"""What a chip fit answers: the verdict and its violations, the pieces of populations, the cores they fill,
and the summary every fit module (tiled targets here, Speck and Xylo in their own modules) returns."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .boxes import Box


@dataclass
class Violation:
    rule: str          # operation | neuron_model | limit | precision | delay | system | layers
    layer: str
    message: str


@dataclass
class Piece:
    population: str
    layer: str
    box: Box
    usage: dict

    @property
    def neurons(self) -> int:
        c0, c1, h0, h1, w0, w1 = self.box
        return (c1 - c0) * (h1 - h0) * (w1 - w0)


@dataclass
class Core:
    index: int
    chip: int
    pieces: list
    usage: dict


@dataclass
class FitResult:
    target: str
    title: str
    fits: bool
    violations: list
    warnings: list
    cores: list = field(default_factory=list)
    n_cores: int = 0
    n_chips: int = 0
    system: str | None = None
    system_chips: int = 0
    limits: dict = field(default_factory=dict)          # resource -> per-core limit
    totals: dict = field(default_factory=dict)          # resource -> used over all cores
    per_layer: list = field(default_factory=list)       # {layer, cores, neurons, resources...}
    bottleneck: dict | None = None
    latency_steps: int = 0
    pipeline_depth: int = 0
    interchip_spikes_per_step: float = 0.0
    interchip_note: str = ""
    notes: list = field(default_factory=list)

    def to_dict(self, max_cores: int = 200) -> dict:
        d = asdict(self)
        d["cores"] = [{"index": c.index, "chip": c.chip, "usage": c.usage,
                       "pieces": [{"population": p.population, "layer": p.layer, "neurons": p.neurons} for p in c.pieces]}
                      for c in self.cores[:max_cores]]
        d["cores_listed"] = min(len(self.cores), max_cores)
        d["violations"] = [asdict(v) for v in self.violations]
        return d
