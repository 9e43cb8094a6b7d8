"""The deployment object: everything one command knows about one model, built once and read by ``export``,
``simulate`` and ``report`` (and the report renderer, which computes nothing).

``Deployment.build(model, targets=[...], data=...)`` loads the model's NIR graph and annotates it once:
spike purity (value domains and op classes per node), op counts, sample data, firing rates (given, measured
on the samples, or published) and energy by the paper's method.  :meth:`Deployment.lower` asks each target of
the registry (:mod:`neurodeploy.deploy.registry`) for its artifact; a target whose lowering refuses a node is
recorded as ``cannot deploy: <reason>``.  :meth:`measure_fidelity` simulates each artifact on the samples,
:meth:`map` fits each artifact onto its chip, :meth:`write` writes ``OUT/<target>/``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..analysis.activity import record_activity
from ..analysis.annotate import AnnotatedGraph, annotate
from ..analysis.check import load_graph, resolve_samples
from ..analysis.neurobench import neurobench_from_graph
from ..data import apply_dt, apply_input_domain, float_batch, graph_input_shape, graph_samples, is_task
from ..energy import (attention_products, neurobench_metrics, ops_from_graph, paper_energy, published_firing_rates,
                      rate_of, target_energy)
from ..errors import BadInputError, NeurodeployError, UnsupportedError
from ..fidelity import _num_classes
from ..graph import meta, topological_order
from ..profiles import load_profiles
from ..training import digits_split
from .registry import get_target
from .target import ALLOWED_EXCEPTIONS  # noqa: F401 - re-exported


@dataclass
class TargetDeployment:
    """One target of a deployment: its profile, implementation, artifact and results."""

    name: str
    profile: object                     # neurodeploy.profiles.Profile
    target: object                      # neurodeploy.deploy.registry.Target
    artifact: object = None
    cannot_deploy: str | None = None    # why the lowering refused (then there is no artifact)
    fit: object = None                  # neurodeploy.mapping.FitResult
    fidelity: dict | None = None
    fidelity_note: str = ""
    energy_estimate: dict | None = None

    @property
    def deployable(self) -> bool:
        return self.cannot_deploy is None


@dataclass
class Deployment:
    graph: object                       # nir.NIRGraph
    info: dict
    samples: object = None              # numpy float32 [B, ...] or None
    labels: object = None
    samples_desc: str = ""
    lowering: dict = field(default_factory=dict)   # lowering options, e.g. {"split_signs": True} (--split-signs)
    targets: list = field(default_factory=list)   # [TargetDeployment]
    purity: object = None
    ops: object = None
    rates: dict = field(default_factory=dict)
    rates_source: str | None = None
    energy: dict | None = None          # paper method (45 nm), with energy_uj
    neurobench: dict | None = None
    _annotated: object = field(default=None, repr=False)
    _annotated_key: tuple = field(default=(), repr=False)

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, model, targets: list[str] | None = None, profile_files: list[str] | None = None,
              arch: str | None = None, data=None, samples: int | None = 64, firing_rates: dict | None = None,
              rates_note: str = "", labels=None, annotate: bool = True, steps: int | None = None,
              input_domain: str | None = None, dt: float | None = None,
              lowering: dict | None = None) -> "Deployment":
        """Load ``model`` (architecture name, checkpoint, .nir file, torch model or NIR graph), resolve the
        target profiles and sample data, and annotate the graph (purity, ops, firing rates, paper energy).
        ``steps`` / ``input_domain``: ``-T/--steps`` and ``--input-domain`` as ``simulate`` takes them
        (:func:`neurodeploy.data.graph_samples`: a data file in any layout; the steps the data or ``steps``
        fix become the graph's time steps when the graph has none); ``dt``: ``--dt``, the graph's simulation
        step in seconds (:func:`neurodeploy.data.apply_dt`); ``lowering``: options of the targets' lowerings
        (``split_signs``: Loihi 2 spike groups split by sign, ``--split-signs``)."""
        profiles = load_profiles(targets or (["loihi2"] if not profile_files else []), profile_files)
        graph, info = load_graph(model, arch)
        dep = cls(graph, info, lowering=dict(lowering or {}))
        if steps is not None and int(steps) < 1:
            raise BadInputError(f"-T/--steps must be >= 1, got {steps}")
        apply_input_domain(graph, input_domain)
        apply_dt(graph, dt)
        if data is not None and not isinstance(data, (str, Path)) and labels is None and isinstance(data, tuple):
            data, labels = data
        T = steps
        if isinstance(data, (str, Path)) and not (is_task(data) and tuple(graph_input_shape(graph)) == (1, 8, 8)):
            # every layout simulate reads (static, [N, T, ...] event tensors, (x, y, t, p) event files)
            x, y, T = graph_samples(graph, data, steps=steps, input_domain=input_domain,
                                    limit=samples if is_task(data) else None)   # only what is used is rendered
            limit = samples or len(x)
            desc = f"{data} (first {limit})" if len(x) > limit else str(data)
            x = float_batch(x, 0, limit)        # in memory (a memory-mapped file: only these rows are read)
            if is_task(data):
                desc = f"bundled digits task at {list(graph_input_shape(graph))} (test split, first {len(x)})"
                # the digits labels belong to a model of 10 or more classes (not to a test model of that input)
                y = y if (_num_classes(graph) or 0) >= 10 else None
            if labels is None and y is not None:
                labels = y
        else:
            x, desc = resolve_samples(graph, data, info, samples or 10 ** 9)
        if T and not int(meta(graph, "neurodeploy.time_steps", 0) or 0):
            graph.metadata = {**(graph.metadata or {}), "neurodeploy.time_steps": int(T)}
        if x is not None:
            dep.samples = np.asarray(x, dtype=np.float32)
            dep.samples_desc = desc
            if labels is not None:
                dep.labels = np.asarray(labels)[:len(dep.samples)]
            elif desc.startswith("bundled digits"):
                # the digits labels belong to a 10-class digits model (not to a test model of the same input)
                if _num_classes(graph) == 10:
                    dep.labels = digits_split()[3].numpy()[:len(dep.samples)]

        dep.targets = [TargetDeployment(p.name, p, get_target(p.name)) for p in profiles]
        if annotate:
            dep.annotate(firing_rates, rates_note)
        return dep

    @property
    def time_steps(self) -> int:
        return int(meta(self.graph, "neurodeploy.time_steps", 0) or 0)

    @property
    def input_domain(self) -> str:
        return str(meta(self.graph, "neurodeploy.input_domain", "binary"))

    @property
    def annotated(self) -> AnnotatedGraph:
        """The one annotated graph (analysis/annotate.py) every stage of this deployment reads: purity, op
        counts, the chip fit of profile-only targets and the Loihi 2 lowering.  Built once; built again only
        if a command changed the graph's time steps or input domain after building the deployment."""
        key = (self.time_steps, self.input_domain)
        if self._annotated is None or self._annotated_key != key:
            # the verdict the paper argues for: every synaptic op spike-driven apart from the encoder (real
            # input) and a non-spiking readout, which are listed as allowed exceptions
            self._annotated, self._annotated_key = annotate(self.graph, allow=ALLOWED_EXCEPTIONS), key
        return self._annotated

    def annotate(self, firing_rates: dict | None = None, rates_note: str = "") -> None:
        """Purity, op counts, firing rates (given > measured on the samples > published) and paper energy."""
        graph = self.graph
        ann = self.annotated
        self.ops = ops_from_graph(ann)
        self.purity = ann.purity
        if firing_rates:
            if not any(rate_of(firing_rates, n) is not None for n in self.ops.neurons):
                example = ", ".join(list(self.ops.neurons)[:3])
                raise BadInputError(f"--firing-rates: no key names a spiking node of the model (expected NIR node "
                                    f"names such as {example})")
            rates, src = dict(firing_rates), rates_note or "supplied by the user (--firing-rates)"
        elif self.samples is not None:
            act = record_activity(graph, torch.as_tensor(self.samples[:64]), analysis=self.purity.analysis)
            rates, src = dict(act["firing_rates"]), f"measured on {self.samples_desc} ({act['samples']} samples)"
        else:
            try:
                rates, src = published_firing_rates(str(self.info.get("arch") or ""))
            except NeurodeployError:
                rates, src = {}, None
        order = {n: i for i, n in enumerate(topological_order(graph))}
        self.rates = dict(sorted(rates.items(), key=lambda kv: (order.get(kv[0], order.get(kv[0] + ".or", len(order))),
                                                                 kv[0])))
        self.rates_source = src
        if self.rates:
            e = paper_energy(self.ops, self.rates, rates_note=src or "", strict=False)
            self.energy = e.to_dict()
            self.energy["energy_uj"] = e.energy_mj * 1e3
            self.neurobench = neurobench_metrics(self.ops, self.rates, weight_bits=8)
        if self.samples is not None:
            self.neurobench = self._neurobench_measured()

    def _neurobench_measured(self) -> dict:
        """NeuroBench metrics measured on the samples (neurodeploy.analysis.neurobench), plus what we count
        beyond them (attention products), said in the notes."""
        nb = neurobench_from_graph(self.graph, self.samples[:64])
        att = attention_products(self.ops, self.rates) if self.rates else 0.0
        has_att = any(L.kind == "attention" for L in self.ops.layers)
        weights = sum(L.weights for L in self.ops.layers if L.kind != "attention")
        nb["Footprint_at_target_bits"] = int(weights)          # one byte per weight at 8 bits
        nb["source"] = f"measured on {self.samples_desc} ({nb['samples']} samples), neurobench 2.3.0 definitions"
        nb["notes"] = [
            "SynapticOperations, ActivationSparsity, MembraneUpdates counted as neurobench 2.3.0 counts them, "
            "per sample, on our reference simulation of the NIR graph",
            "Footprint = synaptic weights and biases at float32; neurobench also adds the framework's neuron "
            "parameters and buffers",
        ]
        if has_att:
            nb["attention_products"] = {"Effective_ACs": att, "counted_in_SynapticOperations": False}
            nb["notes"].append(f"neurodeploy counts {att:,.0f} attention products per sample beyond "
                               "SynapticOperations (expected from firing rates); hook-based tools such as "
                               "neurobench report 0 for them")
        return nb

    # ------------------------------------------------------------------ stages
    def target(self, name: str) -> TargetDeployment:
        for t in self.targets:
            if t.name == name:
                return t
        raise BadInputError(f"target {name!r} is not part of this deployment")

    def lower(self) -> None:
        """Build each target's artifact once; a refusal is recorded, never estimated around."""
        for t in self.targets:
            if t.artifact is not None or t.cannot_deploy is not None:
                continue
            try:
                t.artifact = t.target.lower(self, t.profile)
            except UnsupportedError as exc:
                t.cannot_deploy = str(exc)

    def measure_fidelity(self, backend: str | None = None, progress: bool = False, **options) -> None:
        """Simulate every deployable artifact that has a simulator on the samples (prediction agreement with
        the float model)."""
        for t in self.targets:
            if not t.deployable or t.artifact is None or t.fidelity is not None:
                continue
            if not t.target.backends:
                t.fidelity_note = "no simulator for this target (profile-only)"
                continue
            if self.samples is None:
                t.fidelity_note = "no sample data: fidelity not measured (give --data)"
                continue
            t.fidelity = t.target.simulate(t.artifact, self.graph, self.samples, self.labels,
                                           backend=backend or t.target.backends[0], progress=progress, **options)

    def map(self) -> None:
        """Chip fit of each artifact, and the target's energy estimate."""
        for t in self.targets:
            if t.deployable and t.artifact is not None and t.fit is None:
                t.fit = t.target.map(t.artifact, t.profile, self.rates)
            if self.rates and t.energy_estimate is None:
                t.energy_estimate = target_energy(self.ops, self.rates, t.profile)

    def run(self, fidelity: bool = True, progress: bool = False) -> "Deployment":
        """lower -> fidelity (when there are samples) -> map."""
        self.lower()
        if fidelity:
            self.measure_fidelity(progress=progress)
        self.map()
        return self

    def write(self, folder: Path) -> list[Path]:
        """Each deployable target's artifact into ``folder/<target>/``."""
        out = []
        for t in self.targets:
            if t.deployable and t.artifact is not None:
                files = t.target.write(t.artifact, Path(folder) / t.name)
                out += list(files or [])
        return out
