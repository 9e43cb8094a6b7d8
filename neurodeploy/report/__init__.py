"""The deployment report: model summary, spike-purity verdict, firing rates, energy (paper method,
NeuroBench-style metrics, per-target estimates), chip fit per target (hls4ml-style "used / available (pct)"
per resource, per layer and per core, bottleneck, chips, system, latency), fidelity when the lowering ran,
and CI budgets.  :func:`build_report` returns a plain JSON-able dict; :mod:`.render` writes Markdown and
self-contained HTML.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from ..errors import BadInputError, NeurodeployError
from .summary import summarize, target_details
from ..rates import load_firing_rates as load
from ..graph import graph_dt, meta
from ..graph.primitives import primitive_of
from ..deploy import ALLOWED_EXCEPTIONS, Deployment
from ..fileio import write_text_atomic
from .render import render
from ..version import __version__
from ..models.registry import family_of

SCHEMA = "neurodeploy.report"
SCHEMA_VERSION = 1


def load_firing_rates(path: str | Path) -> dict:
    """Moved to :func:`neurodeploy.rates.load_firing_rates` (validated reader); kept as an alias."""
    return load(path)


def _fmt_used(used, avail) -> dict:
    pct = (100.0 * used / avail) if avail else None
    txt = f"{_num(used)} / {_num(avail)}" + (f" ({pct:.1f}%)" if pct is not None else "")
    return {"used": used, "available": avail, "pct": pct, "text": txt}


def _num(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and not x.is_integer():
        return f"{x:,.3g}"
    return f"{int(x):,}"


def _target_section(fit_res, profile, energy_est) -> dict:
    d = {
        "target": fit_res.target,
        "title": fit_res.title,
        "fits": fit_res.fits,
        "verdict": ("fits" if fit_res.fits else "does not fit: " + "; ".join(
            f"[{v.rule}] {v.layer}: {v.message}" for v in fit_res.violations[:3])
            + (f" (+{len(fit_res.violations) - 3} more)" if len(fit_res.violations) > 3 else "")),
        "violations": [{"rule": v.rule, "layer": v.layer, "message": v.message} for v in fit_res.violations],
        "warnings": list(fit_res.warnings),
        "cores": fit_res.n_cores,
        "chips": fit_res.n_chips,
        "system": fit_res.system,
        "system_chips": fit_res.system_chips,
        "latency_steps": fit_res.latency_steps,
        "pipeline_depth": fit_res.pipeline_depth,
        "interchip_spikes_per_step": fit_res.interchip_spikes_per_step,
        "interchip_note": fit_res.interchip_note,
        "bottleneck": fit_res.bottleneck,
        "notes": list(fit_res.notes),
        "energy_estimate": energy_est,
        "resources": [],
        "per_layer": [],
        "per_core": [],
    }
    n = fit_res.n_cores
    if n and fit_res.system:
        cap = fit_res.system_chips * profile.cores_per_chip
        d["resources"].append({"resource": "cores (system)", **_fmt_used(n, cap)})
        d["resources"].append({"resource": "chips (system)", **_fmt_used(fit_res.n_chips, fit_res.system_chips)})
    for r, lim in fit_res.limits.items():
        if lim is None or isinstance(lim, list):
            continue
        if r in fit_res.totals and n:
            peak = max((c.usage.get(r, 0) for c in fit_res.cores), default=0)
            d["resources"].append({"resource": r, **_fmt_used(fit_res.totals[r], n * lim),
                                   "peak_core_pct": 100.0 * peak / lim})
    for L in sorted(fit_res.per_layer, key=lambda L: -L.get("cores", 0)):
        row = {"layer": L["layer"], "cores": L.get("cores", 0), "chips": L.get("chips", [])}
        for r, lim in fit_res.limits.items():
            if r in L and lim and not isinstance(lim, list):
                row[r] = _fmt_used(L[r], L.get("cores", 1) * lim)
        if "neurons" in L and "neurons" not in row:
            row["neurons"] = {"used": L["neurons"], "available": None, "pct": None, "text": _num(L["neurons"])}
        d["per_layer"].append(row)
    for c in fit_res.cores[:200]:
        row = {"core": c.index, "chip": c.chip, "layers": sorted({p.layer for p in c.pieces})}
        lims = (c.pieces[0].usage.get("limits") if c.pieces and "limits" in c.pieces[0].usage else None) or fit_res.limits
        for r, lim in lims.items():
            if r in c.usage and lim and not isinstance(lim, list):
                row[r] = _fmt_used(c.usage[r], lim)
        d["per_core"].append(row)
    d["per_core_listed"] = len(d["per_core"])
    d.update(target_details(fit_res, profile, energy_est))
    return d


def _model_summary(graph, info, ops) -> dict:
    kinds: dict = {}
    for name, node in graph.nodes.items():
        prim = primitive_of(node, name)
        kinds[prim] = kinds.get(prim, 0) + 1
    return {
        "name": info.get("name"),
        "arch": info.get("arch"),
        "family": family_of(info.get("arch")),
        "path": info.get("path"),
        "untrained": bool(info.get("untrained", False)),
        "time_steps": ops.time_steps,
        "time_steps_assumed": ops.time_steps_assumed,
        "dt_s": graph_dt(graph),
        "input_encoding": meta(graph, "neurodeploy.input_encoding"),
        "input_domain": meta(graph, "neurodeploy.input_domain"),
        "nir_nodes": len(graph.nodes),
        "node_types": kinds,
        "synaptic_layers": sum(1 for L in ops.layers if L.kind != "attention"),
        "attention_ops": sum(1 for L in ops.layers if L.kind == "attention"),
        "spiking_neurons": int(sum(ops.neurons.values())),
        "parameters": int(ops.parameters),
    }


def _cannot_deploy_section(t) -> dict:
    return {"target": t.name, "title": t.profile.title, "fits": False, "verdict_kind": "cannot_deploy",
            "cannot_deploy": t.cannot_deploy, "verdict": f"cannot deploy: {t.cannot_deploy}",
            "violations": [{"rule": "lowering", "layer": "", "message": t.cannot_deploy}], "warnings": [],
            "cores": None, "chips": None, "system": None, "system_chips": None, "latency_steps": None,
            "pipeline_depth": None, "interchip_spikes_per_step": None, "interchip_note": "", "bottleneck": None,
            "notes": [], "energy_estimate": t.energy_estimate, "resources": [], "per_layer": [], "per_core": [],
            "per_core_listed": 0, "mapped_from": "nothing (the target's lowering refused the model)"}


def _fidelity_section(dep) -> dict:
    """The Loihi 2 fidelity in the section the report has always had (``lowering``)."""
    for t in dep.targets:
        if t.fidelity is not None:
            f = t.fidelity
            return {"ran": True, "target": t.name, "fidelity": f["prediction_agreement"], "samples": f["samples"],
                    "data": dep.samples_desc, "backend": f.get("backend"),
                    "latency_steps": f.get("latency_steps"), "layer_spike_agreement": f.get("layer_spike_agreement", {}),
                    "layer_agreement_samples": f.get("layer_agreement_samples"),
                    "clipped_weights": f.get("clipped_weights"), "clipped_biases": f.get("clipped_biases"),
                    "float_accuracy": f.get("float_accuracy"), "target_accuracy": f.get("loihi2_accuracy",
                                                                                        f.get("target_accuracy")),
                    "note": "fidelity = share of samples whose fixed-point prediction equals the float model's, "
                            "measured on the artifact that is written and mapped"}
    lowered = [t for t in dep.targets if t.artifact is not None and t.target.backends]
    refused = [t for t in dep.targets if t.cannot_deploy]
    if lowered:
        return {"ran": True, "target": lowered[0].name, "note": lowered[0].fidelity_note or "lowered (fidelity not measured)"}
    if refused:
        return {"ran": False, "note": f"lowering not run: {refused[0].cannot_deploy}"}
    return {"ran": False, "note": "no target with a lowering"}



def build_report(model, targets: list[str] | None = None, profile_files: list[str] | None = None, arch: str | None = None,
                 data=None, firing_rates: dict | None = None, rates_note: str = "", max_chips: int | None = None,
                 max_energy_uj: float | None = None, min_fidelity: float | None = None, samples: int = 64,
                 steps: int | None = None, input_domain: str | None = None, dt: float | None = None,
                 lowering: dict | None = None) -> dict:
    """The report as a dict.  ``model``: architecture name, checkpoint, .nir file, torch model or graph
    (a :class:`neurodeploy.deploy.Deployment` is built and run), or a Deployment already run."""
    _check_budgets(max_chips, max_energy_uj, min_fidelity)      # before any work
    t0 = time.perf_counter()
    if isinstance(model, Deployment):
        dep = model
    else:
        dep = Deployment.build(model, targets=targets, profile_files=profile_files, arch=arch, data=data,
                               samples=samples, firing_rates=firing_rates, rates_note=rates_note, steps=steps,
                               input_domain=input_domain, dt=dt, lowering=lowering).run()
    doc = report_document(dep, max_chips=max_chips, max_energy_uj=max_energy_uj, min_fidelity=min_fidelity)
    doc["elapsed_seconds"] = time.perf_counter() - t0
    return doc


def report_document(dep, max_chips: int | None = None, max_energy_uj: float | None = None,
                    min_fidelity: float | None = None) -> dict:
    """Arrange a run :class:`~neurodeploy.deploy.Deployment` into the report dict (computes nothing new)."""
    _check_budgets(max_chips, max_energy_uj, min_fidelity)
    graph, info, ops, purity = dep.graph, dep.info, dep.ops, dep.purity
    target_secs = []
    for t in dep.targets:
        if not t.deployable:
            target_secs.append(_cannot_deploy_section(t))
            continue
        sec = _target_section(t.fit, t.profile, t.energy_estimate)
        desc = t.target.describe(t.artifact) if t.artifact is not None else {}
        sec["mapped_from"] = desc.get("mapped_from", "")
        sec["verdict_kind"] = "fits" if t.fit.fits else "does_not_fit"
        if desc.get("artifact"):
            sec["artifact"] = desc["artifact"]
        if t.fidelity is not None:
            sec["fidelity"] = {k: v for k, v in t.fidelity.items()
                               if k not in ("layer_spike_agreement", "predictions", "float_predictions")}
        elif t.fidelity_note:
            sec["fidelity"] = {"note": t.fidelity_note}
        target_secs.append(sec)
    lowering = _fidelity_section(dep)
    budgets = _budgets(target_secs, dep.energy, lowering, max_chips, max_energy_uj, min_fidelity)
    doc = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "neurodeploy", "version": __version__},
        "model": _model_summary(graph, info, ops),
        "data": {"samples": None if dep.samples is None else int(len(dep.samples)), "source": dep.samples_desc or None},
        "purity": {"verdict": ("spike-pure apart from allowed exceptions" if purity.exceptions else "spike-pure")
                   if purity.pure else "not spike-pure", "pure": purity.pure,
                   "allowed_roles": list(ALLOWED_EXCEPTIONS), "summary": purity.summary(),
                   "violations": [{"node": o.node, "class": o.op_class, "role": getattr(o, "role", None)}
                                  for o in purity.violations],
                   "allowed": [{"node": o.node, "class": o.op_class, "role": getattr(o, "role", None)}
                               for o in purity.exceptions]},
        "firing_rates": {"source": dep.rates_source, "rates": dep.rates},
        "energy": {"paper": dep.energy, "neurobench": dep.neurobench, "op_count_source": ops.source},
        "lowering": lowering,
        "targets": target_secs,
        "budgets": budgets,
    }
    doc["summary"] = summarize(doc)
    return doc


def _check_budgets(max_chips, max_energy_uj, min_fidelity) -> None:
    """The budgets' own values (the API gets the same checks as the CLI)."""
    import math

    if max_chips is not None and (isinstance(max_chips, bool) or not isinstance(max_chips, int) or max_chips < 1):
        raise BadInputError(f"max_chips must be an integer >= 1, got {max_chips!r}")
    if max_energy_uj is not None and not (isinstance(max_energy_uj, (int, float)) and math.isfinite(max_energy_uj)
                                          and max_energy_uj > 0):
        raise BadInputError(f"max_energy_uj must be a finite number > 0, got {max_energy_uj!r}")
    if min_fidelity is not None and not (isinstance(min_fidelity, (int, float)) and 0.0 <= min_fidelity <= 1.0):
        raise BadInputError(f"min_fidelity must be a fraction in [0, 1], got {min_fidelity!r}")


def _budgets(targets, energy, lowering, max_chips, max_energy_uj, min_fidelity) -> dict:
    checks = []
    if max_chips is not None:
        for t in targets:
            if not t["fits"]:
                checks.append({"budget": "max_chips", "target": t["target"], "limit": max_chips, "value": None,
                               "ok": False, "why": t["verdict"] if t.get("verdict_kind") == "cannot_deploy"
                               else "does not fit the target"})
            else:
                checks.append({"budget": "max_chips", "target": t["target"], "limit": max_chips, "value": t["chips"],
                               "ok": t["chips"] <= max_chips})
    if max_energy_uj is not None:
        est = [t for t in targets if t.get("energy_estimate")]
        if est:
            for t in est:
                v = t["energy_estimate"]["energy_uj"]
                checks.append({"budget": "max_energy_uj", "target": t["target"], "limit": max_energy_uj, "value": v,
                               "ok": v <= max_energy_uj, "why": "target estimate"})
        elif energy is not None:
            v = energy["energy_uj"]
            checks.append({"budget": "max_energy_uj", "target": None, "limit": max_energy_uj, "value": v,
                           "ok": v <= max_energy_uj, "why": "paper method (45 nm E_MAC/E_AC); no target energy figures"})
        else:
            raise BadInputError("--max-energy-uj: no firing rates to compute energy from (give --data or --firing-rates)")
    if min_fidelity is not None:
        if not lowering.get("ran") or lowering.get("fidelity") is None:
            raise BadInputError("--min-fidelity: fidelity needs the Loihi 2 lowering run on sample data "
                                "(give --target loihi2 and --data); " + str(lowering.get("note", "")))
        v = lowering["fidelity"]
        checks.append({"budget": "min_fidelity", "target": lowering.get("target", "loihi2"), "limit": min_fidelity, "value": v, "ok": v >= min_fidelity})
    return {"checks": checks, "ok": all(c["ok"] for c in checks)}


def write_report_files(doc: dict, out_dir: str | Path, formats=("json", "md", "html"), stem: str = "report") -> list[Path]:
    """Write ``doc`` as ``<out_dir>/<stem>.<fmt>`` for each format, each atomically (for ``export --target``)."""
    out = []
    texts = {fmt: render(doc, fmt) for fmt in formats}  # render everything first: no partial set on error
    for fmt, text in texts.items():
        path = Path(out_dir) / f"{stem}.{fmt}"
        write_text_atomic(path, text)
        out.append(path)
    return out
