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

SCHEMA = "neurodeploy.report"
SCHEMA_VERSION = 1


def load_firing_rates(path: str | Path) -> dict:
    """JSON firing rates: ``{node: rate}``, ``{"firing_rates": {...}}`` or a ``neurodeploy check`` JSON
    report (its ``dynamic.firing_rates``).  Rates are fractions in [0, 1]."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"--firing-rates {p}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"--firing-rates {p}: not a JSON file ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("dynamic"), dict):
        data = data["dynamic"]
    if isinstance(data, dict) and isinstance(data.get("firing_rates"), dict):
        data = data["firing_rates"]
    if not isinstance(data, dict) or not data:
        raise BadInputError(f"--firing-rates {p}: expected an object {{node: rate}}")
    out = {}
    for k, v in data.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0 or math.isnan(float(v)):
            raise BadInputError(f"--firing-rates {p}: key {k!r}: rate must be a number in [0, 1], got {v!r}")
        out[str(k)] = float(v)
    return out


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
    return d


def _model_summary(graph, info, ops) -> dict:
    from ..graph import meta

    kinds: dict = {}
    for node in graph.nodes.values():
        kinds[type(node).__name__] = kinds.get(type(node).__name__, 0) + 1
    return {
        "name": info.get("name"),
        "arch": info.get("arch"),
        "path": info.get("path"),
        "untrained": bool(info.get("untrained", False)),
        "time_steps": ops.time_steps,
        "input_encoding": meta(graph, "neurodeploy.input_encoding"),
        "input_domain": meta(graph, "neurodeploy.input_domain"),
        "nir_nodes": len(graph.nodes),
        "node_types": kinds,
        "synaptic_layers": sum(1 for L in ops.layers if L.kind != "attention"),
        "attention_ops": sum(1 for L in ops.layers if L.kind == "attention"),
        "spiking_neurons": int(sum(ops.neurons.values())),
        "parameters": int(ops.parameters),
    }


def _lower_and_fidelity(graph, x, want_fidelity: bool):
    """(lowered network or None, lowering section).  Fidelity = prediction agreement float vs fixed point."""
    from ..lower.from_nir import lower_graph

    sec: dict = {"ran": False}
    try:
        if x is not None and want_fidelity:
            from ..fidelity import simulate_loihi2

            res, low = simulate_loihi2(graph, x.numpy() if hasattr(x, "numpy") else x, progress=False,
                                       return_network=True)
            sec.update(ran=True, fidelity=res["prediction_agreement"], samples=res["samples"],
                       latency_steps=res["latency_steps"], layer_spike_agreement=res["layer_spike_agreement"],
                       clipped_weights=res.get("clipped_weights"), clipped_biases=res.get("clipped_biases"),
                       note="fidelity = share of samples whose fixed-point (Loihi 2) prediction equals the float model's")
        else:  # the same lowering simulate_loihi2 makes (input range of the samples, or [0, 1])
            low, _ = lower_graph(graph, input_range=(float(x.min()), float(x.max())) if x is not None else (0.0, 1.0))
        sec["ran"] = True
        sec.setdefault("note", "lowered (no sample data: fidelity not measured)")
        return low, sec
    except NeurodeployError as exc:
        sec.update(ran=False, note=f"lowering not run: {exc}")
        return None, sec


ALLOWED_EXCEPTIONS = ("encoder", "readout")


def build_report(model, targets: list[str] | None = None, profile_files: list[str] | None = None, arch: str | None = None,
                 data=None, firing_rates: dict | None = None, rates_note: str = "", max_chips: int | None = None,
                 max_energy_uj: float | None = None, min_fidelity: float | None = None, lower: bool | None = None,
                 samples: int = 64) -> dict:
    """The report as a dict.  ``model``: architecture name, checkpoint, .nir file, torch model or graph."""
    from ..analysis.activity import record_activity
    from ..analysis.check import load_graph, resolve_samples
    from ..analysis.purity import check_purity
    from ..energy import neurobench_metrics, ops_from_graph, paper_energy, published_firing_rates, target_energy
    from ..mapping import fit, from_graph, from_lowered
    from ..profiles import load_profiles
    from .. import __version__

    t0 = time.perf_counter()
    profiles = load_profiles(targets or (["loihi2"] if not profile_files else []), profile_files)
    graph, info = load_graph(model, arch)
    ops = ops_from_graph(graph)
    # the verdict the paper argues for: every synaptic op spike-driven apart from the encoder (real input)
    # and a non-spiking readout, which are listed as allowed exceptions
    purity = check_purity(graph, allow=ALLOWED_EXCEPTIONS)
    x, data_desc = resolve_samples(graph, data, info, samples)

    # firing rates: given file > measured on data > published (official architectures)
    rates_src = None
    rates: dict = {}
    if firing_rates:
        from ..energy import rate_of

        if not any(rate_of(firing_rates, n) is not None for n in ops.neurons):
            example = ", ".join(list(ops.neurons)[:3])
            raise BadInputError(f"--firing-rates: no key names a spiking node of the model (expected NIR node names "
                                f"such as {example})")
        rates, rates_src = dict(firing_rates), rates_note or "supplied by the user (--firing-rates)"
    elif x is not None:
        act = record_activity(graph, x, analysis=purity.analysis)
        rates, rates_src = dict(act["firing_rates"]), f"measured on {data_desc} ({act['samples']} samples)"
    else:
        a = info.get("arch") or ""
        try:
            rates, rates_src = published_firing_rates(str(a))
        except NeurodeployError:
            rates, rates_src = {}, None
    from ..graph import topological_order

    order = {n: i for i, n in enumerate(topological_order(graph))}
    rates = dict(sorted(rates.items(), key=lambda kv: (order.get(kv[0], order.get(kv[0] + ".or", len(order))), kv[0])))
    energy = None
    nb = None
    if rates:
        e = paper_energy(ops, rates, rates_note=rates_src or "", strict=False)
        energy = e.to_dict()
        energy["energy_uj"] = e.energy_mj * 1e3
        nb = neurobench_metrics(ops, rates, weight_bits=8)

    # lowering + fidelity (Loihi 2), when data is there or asked for
    lowered, lowering = None, {"ran": False, "note": "not run (no sample data; give --data)"}
    wants_loihi2 = any(p.cost_model == "loihi2" for p in profiles)
    # Loihi 2 maps attention only from what the lowering builds (mapping.network): lower when there is any
    has_attention = any(L.kind == "attention" for L in ops.layers)
    if wants_loihi2 and (lower or (lower is None and (x is not None or has_attention))):
        lowered, lowering = _lower_and_fidelity(graph, x, x is not None)

    nets: dict = {}
    target_secs = []
    for prof in profiles:
        if prof.cost_model == "loihi2" and lowered is not None:
            key = "lowered"
            if key not in nets:
                nets[key] = from_lowered(lowered, name=str(info.get("name")))
                nets[key].time_steps = ops.time_steps
        else:
            key = "relay" if "graded_spikes" in prof.operations else "direct"
            if key not in nets:
                nets[key] = from_graph(graph, residual=key)
                # synaptic nodes fed by non-binary values (integer spike counts, real values) away from the
                # encoder / readout need graded messages (e.g. SEW-ResNet's ADD residual)
                for o in purity.ops:
                    if o.op_class in ("INTxFLOAT", "MAC") and o.role not in ("encoder", "readout"):
                        nets[key].use("graded_spikes", o.node)
        res = fit(nets[key], prof, rates=rates)
        est = target_energy(ops, rates, prof) if rates else None
        sec = _target_section(res, prof, est)
        sec["mapped_from"] = {"lowered": "the lowered integer network", "relay": "the NIR graph (graded residual relays)",
                              "direct": "the NIR graph (binary spikes only)"}[key]
        target_secs.append(sec)

    budgets = _budgets(target_secs, energy, lowering, max_chips, max_energy_uj, min_fidelity)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "neurodeploy", "version": __version__},
        "model": _model_summary(graph, info, ops),
        "purity": {"verdict": ("spike-pure apart from allowed exceptions" if purity.exceptions else "spike-pure")
                   if purity.pure else "not spike-pure", "pure": purity.pure,
                   "allowed_roles": list(ALLOWED_EXCEPTIONS), "summary": purity.summary(),
                   "violations": [{"node": o.node, "class": o.op_class, "role": getattr(o, "role", None)}
                                  for o in purity.violations],
                   "allowed": [{"node": o.node, "class": o.op_class, "role": getattr(o, "role", None)}
                               for o in purity.exceptions]},
        "firing_rates": {"source": rates_src, "rates": rates},
        "energy": {"paper": energy, "neurobench": nb, "op_count_source": ops.source},
        "lowering": lowering,
        "targets": target_secs,
        "budgets": budgets,
        "elapsed_seconds": time.perf_counter() - t0,
    }


def _budgets(targets, energy, lowering, max_chips, max_energy_uj, min_fidelity) -> dict:
    checks = []
    if max_chips is not None:
        for t in targets:
            if not t["fits"]:
                checks.append({"budget": "max_chips", "target": t["target"], "limit": max_chips, "value": None,
                               "ok": False, "why": "does not fit the target"})
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
        checks.append({"budget": "min_fidelity", "target": "loihi2", "limit": min_fidelity, "value": v, "ok": v >= min_fidelity})
    return {"checks": checks, "ok": all(c["ok"] for c in checks)}


def write_report_files(doc: dict, out_dir: str | Path, formats=("json", "md", "html"), stem: str = "report") -> list[Path]:
    """Write ``doc`` as ``<out_dir>/<stem>.<fmt>`` for each format, each atomically (for ``export --target``)."""
    from ..fileio import write_text_atomic
    from .render import render

    out = []
    texts = {fmt: render(doc, fmt) for fmt in formats}  # render everything first: no partial set on error
    for fmt, text in texts.items():
        path = Path(out_dir) / f"{stem}.{fmt}"
        write_text_atomic(path, text)
        out.append(path)
    return out
