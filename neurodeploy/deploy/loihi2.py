"""The Loihi 2 target: NIR graph -> lowered fixed-point network (``neurodeploy.lower``) -> our engine or Lava
``fixed_pt`` -> chip fit of exactly that network.

Artifact folder ``OUT/loihi2/``: ``network.npz`` (the lowered network, format in
:mod:`neurodeploy.lower.network`), ``network.net`` (the netx-expressible sequential prefix of the same
network, when there is one), ``summary.json`` (latency, counts, input handling, attention, quantization,
the input-range calibration, netx coverage).

Input range: real-valued inputs go through a host-side encoder whose bias exponent is sized by the input
range.  It is calibrated from the deployment's samples (``--data``, or the bundled digits for the digits
demo models) when there are any, else :data:`DEFAULT_INPUT_RANGE` (standardised images, mean 0 / std 1,
within 3 sigma).  The choice is recorded in the network metadata and in ``summary.json``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import time

from ..errors import BadInputError, CheckFailed, UnsupportedError
from ..fileio import write_text_atomic
from ..lava.netx_writer import write_netx
from ..lava.processes_used import lava_process_classes, standard_library_only
from .target import Target
from ..lower.attention_graded import full_rate_bound
from ..lower.loihi2 import lower_graph
from ..fidelity import simulate_lowered
from ..mapping import fit, from_lowered
from ..mapping.channels import choose_channel_splits
from ..lower.network_file import load_network, save_network
from ..models.registry import family_of
from .configs import DEFAULT, FALLBACK, LoweringConfig, candidates, chip_budget, with_schedule

DEFAULT_INPUT_RANGE = (-3.0, 3.0)
NETWORK_FILE = "network.npz"
NETX_FILE = "network.net"
SUMMARY_FILE = "summary.json"


@dataclass
class Loihi2Artifact:
    net: object                     # neurodeploy.lower.LoweredNetwork
    quantization: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    fit: object = None              # the chip fit made while choosing the configuration (a budget search)
    fit_profile: str = ""           # ... on this profile
    fit_rates: dict | None = None   # ... with these firing rates (inter-chip traffic)


def summarize(net, quantization: dict | None = None) -> dict:
    """Latency, counts, input handling and attention of a lowered network (``summary.json``)."""
    counts = net.counts()
    lat = int(net.metadata.get("latency", 0))
    T = int(net.metadata.get("time_steps", 0) or 0)
    inputs = []
    for p in net.inputs:
        if p.input_kind == "bias":
            enc = next((e for e in net.encoders if e.name == p.name), None)
            macs = enc.macs(p.size) if enc is not None else 0
            inputs.append({"population": p.name, "mode": "host-side encoder -> neuron bias",
                           "host_macs_per_sample": macs, "chip_cost_per_step": 0,
                           "note": "computed once per sample on the host; the image is held as bias for all steps"})
        else:
            inputs.append({"population": p.name, "mode": f"{p.input_kind} input", "neurons": p.size})
    # attention: the graded form (default: Lava ProdNeuron / GradedVec / graded Sparse, counted on the built
    # records) or process ops (neurodeploy's custom process, lower_graph(..., attention="process"))
    att = [dict(op, lowering="graded", lava_processes="ProdNeuron, GradedVec, Sparse, DelaySparse (standard library)")
           for op in net.metadata.get("attention_graded", [])]
    for a in net.attention:
        dh = a.dim // a.heads
        att.append({"name": a.name, "source": a.source or a.name, "lowering": "process", "heads": a.heads,
                    "tokens": a.tokens, "head_dim": dh,
                    "lava_processes": "neurodeploy SpikingAttention (custom fixed_pt PyProcessModel; no chip form)",
                    "integer_ops_per_step": a.heads * (a.tokens * dh * dh * 2)})
    arch = net.metadata.get("arch")
    s = {"target": "loihi2", "arch": arch, "family": family_of(arch if isinstance(arch, str) else None),
         "latency_steps": lat, "steps_per_sample": T,
         "sample_period_steps": (T + lat) if T else None,
         "populations": counts["populations"], "neurons": counts["neurons"],
         "synapse_groups": counts["synapse_groups"], "synapses": counts["synapses"],
         "attention_ops": counts["attention_ops"],
         "max_delay": max([int(s.balance_delay) for s in net.synapses] + [0]),
         "inputs": inputs, "attention": att, "outputs": list(net.outputs),
         "product_neurons": counts.get("product_neurons", 0), "graded_vec_neurons": counts.get("graded_vec_neurons", 0),
         "attention_latency_added_steps": int(net.metadata.get("attention_latency_added", 0)),
         "readout_scale": net.metadata.get("readout_scale"),
         "input_range": net.metadata.get("input_range"),
         "split_signs": bool(net.metadata.get("split_signs", False)),
         "stream_scale": net.metadata.get("stream_scale", "level"),
         "attention_schedule": net.metadata.get("attention_schedule"),
         "passes": list(net.metadata.get("passes", [])),
         "lava_processes": lava_process_classes(net),
         "lava_standard_library_only": standard_library_only(net)}
    if quantization is not None:
        s["quantization"] = quantization
    return s


def attention_bound(summary: dict, profile) -> dict | None:
    """The full-rate lower bound on the attention's product neurons of a lowered network (its summary's
    attention ops; :func:`neurodeploy.lower.attention_graded.full_rate_bound`), in cores and chips of
    ``profile``, or None without attention."""
    ops = [a for a in summary.get("attention") or [] if a.get("heads") and a.get("tokens")]
    if not ops:
        return None
    n = sum(full_rate_bound(a["heads"], a["tokens"], a["head_dim"]) for a in ops)
    per_core = int(profile.core_limit("product_neurons", 2047) or 2047)
    q = profile.quantity("core", "product_neurons") if hasattr(profile, "quantity") else None
    cores = -(-n // per_core)
    cpc = int(profile.cores_per_chip or 1)
    built = int(summary.get("product_neurons", 0) or 0)
    slots = int(profile.core_limit("neurons", per_core) or per_core)
    alt = -(-n // slots)
    return {"product_neurons": int(n), "cores": int(cores), "chips": int(-(-cores // cpc)),
            "built_product_neurons": built,
            "per_core": per_core, "per_core_confidence": (q or {}).get("confidence", "unknown"),
            "per_core_source": (q or {}).get("source", ""),
            # the same bound if a product neuron took one neuron slot, as a LIF does ([core] neurons)
            "at_neuron_slots": {"per_core": slots, "cores": int(alt), "chips": int(-(-alt // cpc))},
            "resource": "product (gating) neurons: each sends one 24-bit graded word per step, so it carries at "
                        "most floor(23 / bit_length(N)) of an op's 2 H N dh^2 binary products (a stage-1 digit "
                        f"counts up to N tokens); at most {per_core:,} per core ([core] product_neurons)",
            "holds_for": "exact schedules at full sample rate (a new sample every T steps, so every Lava step is a "
                         "model step of some sample) built from Lava's standard processes, whose products' digits "
                         "are summed over tokens in the word (docs/lowering.md, 'Why no micro-step "
                         "clock')",
            "note": "the fewest product neurons any such schedule needs; only a lower sample rate goes below it: "
                    "the token-tiled schedules (tiled-8 .. serial), one sample per period T + latency as every "
                    "deployment runs (docs/lowering.md, 'Token tiles')"}


def _bound_words(bound: dict | None) -> str:
    if not bound:
        return ""
    words = (f"; the attention alone needs at least {bound['product_neurons']:,} product neurons "
             f"({bound['cores']:,} cores, {bound['chips']:,} chips")
    alt = bound.get("at_neuron_slots")
    if bound.get("per_core_confidence") == "assumption" and alt:
        words += (f" at an assumed {bound['per_core']:,} per core; {alt['cores']:,} cores, {alt['chips']:,} "
                  f"chip{'s' if alt['chips'] != 1 else ''} at {alt['per_core']:,}")
    return words + ") at full sample rate (docs/lowering.md)"


def config_row(cfg: LoweringConfig, art: Loihi2Artifact, res, step_s: float | None) -> dict:
    """One configuration as the report's table has it: cores, chips, smallest system, latency (steps per
    inference T + pipeline depth, and ms where the profile has a step time), neurons, synapses."""
    s = art.summary
    return {"name": cfg.name, "config": cfg.to_dict(), "fits": bool(res.fits), "cores": int(res.n_cores),
            "chips": int(res.n_chips), "system": res.system, "latency_steps": int(res.latency_steps),
            "pipeline_depth": int(s.get("latency_steps", 0)),
            "latency_ms": round(res.latency_steps * step_s * 1e3, 4) if step_s else None,
            "neurons": int(s.get("neurons", 0)), "synapses": int(s.get("synapses", 0)),
            "violations": [f"{v.layer}: {v.message}" for v in res.violations[:3]]}


class Loihi2Target(Target):
    name = "loihi2"
    backends = ("fast", "lava")

    # ------------------------------------------------------------------ lower
    def lower(self, deployment, profile=None) -> Loihi2Artifact:
        x = deployment.samples
        if x is not None and deployment.input_domain == "real":
            rng = (float(np.min(x)), float(np.max(x)))
            src = f"calibrated on {deployment.samples_desc} ({len(x)} samples)"
        else:
            rng = DEFAULT_INPUT_RANGE
            src = ("default for standardised images (mean 0, std 1, within 3 sigma)"
                   if deployment.input_domain == "real" else f"not used ({deployment.input_domain} input)")
        lowering = deployment.lowering
        budget = chip_budget(lowering, profile) if profile is not None else None
        if budget is None:
            cfg = lowering.get("config") or with_schedule(DEFAULT, lowering.get("attention_schedule"))
            art = self._lower_one(deployment, cfg, rng, src, profile)
            art.summary["lowering_config"] = dict(cfg.to_dict(), chosen_by="default (no chip budget)")
            if profile is not None:
                art.summary["attention_full_rate_bound"] = attention_bound(art.summary, profile)
            return art
        return self.search(deployment, profile, budget, rng, src)

    def _lower_one(self, deployment, cfg: LoweringConfig, rng, src, profile=None) -> Loihi2Artifact:
        """One configuration lowered; with ``profile``, conv populations are cut by channels where its core model
        fills more of a core that way (``neurodeploy.mapping.channels``; exact, the same latency)."""
        split = bool(deployment.lowering.get("split_signs", False))
        stream_scale = deployment.lowering.get("stream_scale", "level")
        chooser = choose_channel_splits(profile) if profile is not None else None
        net, quant = lower_graph(deployment.annotated, T=deployment.time_steps or None, input_range=rng,
                                 split_signs=split, stream_scale=stream_scale, channel_splits=chooser,
                                 **cfg.lower_kwargs())
        net.metadata["input_range"] = {"range": list(rng), "source": src}
        net.metadata["split_signs"] = split
        net.metadata["stream_scale"] = stream_scale
        net.metadata["lowering_config"] = cfg.to_dict()
        net.metadata["quantization"] = {"clipped_weights": quant["clipped_weights"],
                                        "clipped_biases": quant["clipped_biases"]}
        return Loihi2Artifact(net, quant, summarize(net, quant))

    def search(self, deployment, profile, budget, rng, src) -> Loihi2Artifact:
        """Fit to a chip budget: lower, map and record every candidate configuration
        (:data:`neurodeploy.deploy.configs.CANDIDATES`; when none fits, :data:`~neurodeploy.deploy.configs.FALLBACK`
        too), keep the lowest-latency one that fits within ``budget`` = (chips, label) (ties: fewer chips, then the
        earlier candidate).  Only the kept network
        stays in memory.  Nothing fits: :class:`CheckFailed` naming the smallest fit found."""
        chips, label = budget
        step_s = profile.energy("step_time_s") if hasattr(profile, "energy") else None
        rows, best, best_key, first_refusal, bound = [], None, None, None, None
        fixed = deployment.lowering.get("candidates") or deployment.lowering.get("attention_schedule")
        todo = list(deployment.lowering.get("candidates") or candidates(deployment.lowering.get("attention_schedule")))
        # the fallbacks (configs.FALLBACK: slower than their twins in CANDIDATES, fewer cores) only when nothing
        # of the search fits, so that the refusal names the smallest exact configuration
        fallback = [] if fixed else list(FALLBACK)
        while todo or (fallback and best is None):
            cfg = todo.pop(0) if todo else fallback.pop(0)
            t0 = time.perf_counter()
            try:
                art = self._lower_one(deployment, cfg, rng, src, profile)
            except UnsupportedError as exc:     # an option this model cannot take: recorded, not fatal
                rows.append({"name": cfg.name, "config": cfg.to_dict(), "refused": str(exc).splitlines()[0]})
                first_refusal = first_refusal or exc
                continue
            low_s = time.perf_counter() - t0
            rates = dict(deployment.rates or {}) or None
            res = self.map(art, profile, rates)
            art.fit, art.fit_profile, art.fit_rates = res, profile.name, rates
            row = config_row(cfg, art, res, step_s)
            row["lowering_s"] = round(low_s, 3)
            row["within_budget"] = bool(res.fits and res.n_chips <= chips)
            rows.append(row)
            if row["within_budget"]:
                key = (row["latency_steps"], row["chips"], len(rows))
                if best_key is None or key < best_key:
                    best, best_key = art, key
            bound = bound or attention_bound(art.summary, profile)
            del art
        if best is None and all(r.get("refused") for r in rows) and first_refusal is not None:
            raise first_refusal             # no candidate can be built: the model cannot deploy (as unbudgeted)
        if best is None:
            fitted = [r for r in rows if r.get("fits")]
            if fitted:
                r = min(fitted, key=lambda r_: (r_["chips"], r_["latency_steps"]))
                raise CheckFailed(f"loihi2: no configuration fits {label}: the smallest fit found is "
                                  f"'{r['name']}' with {r['chips']:,} chips ({r['cores']:,} cores, "
                                  f"{r['system'] or 'no system'}), latency {r['latency_steps']} steps"
                                  + _bound_words(bound))
            built = [r for r in rows if not r.get("refused")]
            counted = [r for r in built if r["chips"]]
            if counted:
                r = min(counted, key=lambda r_: (r_["chips"], r_["latency_steps"]))
                what = f"the smallest is '{r['name']}' with {r['chips']:,} chips ({r['cores']:,} cores)"
            else:           # a per-core limit failed before any chip count (e.g. one neuron's fan-in)
                r = built[0]
                what = f"'{r['name']}' does not map: {(r['violations'] or ['no core placement'])[0]}"
            raise CheckFailed(f"loihi2: no configuration fits {label}: none of {len(rows)} fits any "
                              f"{profile.name} system; {what}" + _bound_words(bound))
        chosen = best.net.metadata["lowering_config"]["name"]
        for r in rows:
            r["chosen"] = r["name"] == chosen
        best.summary["lowering_config"] = dict(best.net.metadata["lowering_config"],
                                               chosen_by=f"lowest latency within {label}")
        best.summary["configurations"] = {"budget_chips": chips, "budget": label, "tried": rows,
                                          "attention_full_rate_bound": bound}
        best.summary["attention_full_rate_bound"] = attention_bound(best.summary, profile)
        return best

    # ------------------------------------------------------------------ simulate
    def simulate(self, artifact: Loihi2Artifact, graph, x, y=None, backend: str | None = None,
                 progress: bool = False, **options) -> dict:
        return simulate_lowered(graph, artifact.net, x, y, backend=backend or "fast", progress=progress, **options)

    # ------------------------------------------------------------------ map
    def map(self, artifact: Loihi2Artifact, profile, rates=None):
        if artifact.fit is not None and artifact.fit_profile == profile.name and (artifact.fit_rates or None) == (
                dict(rates or {}) or None):
            return artifact.fit         # mapped once while the configuration was chosen
        net = from_lowered(artifact.net, name=str(artifact.net.metadata.get("arch", "lowered")))
        T = int(artifact.net.metadata.get("time_steps", 0) or 0)
        if T:                       # a graph without time steps keeps the mapper's default (1)
            net.time_steps = T
        return fit(net, profile, rates=rates)

    def describe(self, artifact: Loihi2Artifact) -> dict:
        return {"mapped_from": "the lowered integer network", "artifact": artifact.summary}

    # ------------------------------------------------------------------ files
    def write(self, artifact: Loihi2Artifact, folder: Path) -> list[Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_network(artifact.net, str(folder / NETWORK_FILE))
        info = write_netx(artifact.net, str(folder / NETX_FILE))
        summary = dict(artifact.summary)
        summary["netx"] = {"written": bool(info["layers"]), "layers": info["layers"],
                           "populations": info["populations"], "stopped": info["stopped"],
                           "run_with": f"netx.hdf5.Network(net_config, reset_interval={summary['sample_period_steps']})"}
        summary["files"] = {"lowered": NETWORK_FILE, "netx": NETX_FILE if info["path"] else None,
                            "summary": SUMMARY_FILE}
        artifact.summary = summary
        text = json.dumps(summary, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
        write_text_atomic(folder / SUMMARY_FILE, text + "\n")
        return [folder / NETWORK_FILE] + ([folder / NETX_FILE] if info["path"] else []) + [folder / SUMMARY_FILE]

    def read(self, folder: Path) -> Loihi2Artifact:
        folder = Path(folder)
        npz = folder / NETWORK_FILE
        if not npz.is_file():
            raise BadInputError(f"{folder}: no {NETWORK_FILE} (not a Loihi 2 artifact folder written by "
                                "'neurodeploy export --target loihi2')")
        net = load_network(str(npz))
        summary = {}
        sp = folder / SUMMARY_FILE
        if sp.is_file():
            try:
                summary = json.loads(sp.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise BadInputError(f"{sp}: not a JSON summary ({exc})") from None
        return Loihi2Artifact(net, dict(summary.get("quantization") or {}), summary or summarize(net))
