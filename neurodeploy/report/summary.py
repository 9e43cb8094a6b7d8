"""The report's summary: one row per target (verdict, cores / chips / smallest system, binding resource, latency,
dynamic and total energy, fidelity, spike purity, the weakest confidence among the profile numbers the verdict
used), the same figures side by side, per-layer data for the plots, and the calibration of the Loihi 2 core
model.  :func:`summarize` is a pure function of the report dict; :func:`target_details` adds the per-target
facts that only the fit result and the profile know (which profile numbers were used, with their confidence).
"""
from __future__ import annotations

import re

from ..mapping.calibration import calibrate
from ..profiles import CONFIDENCE_ORDER, WEAK_CONFIDENCE, Profile

def calibration(profile_name: str = "loihi2") -> dict:
    """The Loihi 2 core model against the Loihi 2 compiler (mapping.calibration): per network and per layer,
    cores and SynMem units per core, with the largest errors (fitted and held-out networks)."""
    cal = calibrate(profile_name)
    rows, layers = cal["networks"], cal["per_layer"]
    worst = max(abs(r["error"]) for r in rows)
    held = max((abs(r["error"]) for r in rows if r["role"] == "held out"), default=0)
    worst_layer = max(abs(L["error"]) for L in layers)
    exact = sum(L["error"] == 0 for L in layers)
    syn = [abs(L["synmem_error_pct"]) for L in layers if L["compiler_synmem"]]
    return {"model": cal["model"], "source": cal["source"], "networks": rows, "per_layer": layers,
            "fitted_on": [r["network"] for r in rows if r["role"] == "fitted"],
            "held_out": [r["network"] for r in rows if r["role"] == "held out"],
            "largest_error_cores": worst, "largest_held_out_error_cores": held,
            "largest_layer_error_cores": worst_layer, "layers_exact": exact, "layers": len(layers),
            "largest_synmem_error_pct": max(syn, default=0.0),
            "uncertainty": f"core counts carry an uncertainty of +/-{worst} core(s) per network and +/-{worst_layer} "
                           f"per layer ({exact} of {len(layers)} layers exact; largest error on the calibration "
                           f"networks, held-out error {held}); SynMem per core within "
                           f"{max(syn, default=0.0):.0f} %"}


# -- per target (called from report._target_section) ------------------------------------------------------------
_ENERGY_USED = ("synop_pj", "neuron_update_pj", "static_power_w", "step_time_s", "tick_s")


def _norm(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.lower())


def _verdict_keys(fit_res, profile: Profile) -> list[str]:
    """Profile keys a verdict rests on.  Fits: every limit, chip size, systems, accounting.  Does not fit:
    the limits named by the violations (a system violation: everything that sets the chip count), and for a
    missing operation the feature entry when it has a confidence."""
    limits = [r for r, v in fit_res.limits.items() if v is not None]
    if fit_res.fits:
        return profile.verdict_keys(limits)
    keys: list[str] = []
    core = list(profile.data.get("core", {}))
    for v in fit_res.violations:
        if v.rule == "system":
            keys += profile.verdict_keys(limits)
        elif v.rule == "limit":
            msg = _norm(v.message)
            keys += [f"core.{r}" for r in core if r in msg]
        elif v.rule == "operation" and "activation_product" in v.message:
            keys.append("features.attention")
    return [k for k in dict.fromkeys(keys) if profile.source_of(k) is not None]


def target_details(fit_res, profile: Profile, energy_est: dict | None) -> dict:
    """Extra fields of a report target section: cost model, systems, the profile numbers used (with source and
    confidence), the weakest confidence behind the verdict and behind the energy figure, and per layer the
    cores split by their binding resource (the fullest resource on each core)."""
    used = {k: "verdict" for k in _verdict_keys(fit_res, profile)}
    if energy_est:
        for k in _ENERGY_USED:
            if profile.source_of(f"energy.{k}") is not None:
                used.setdefault(f"energy.{k}", "energy")
    numbers = [dict(profile.source_of(k), used_for=u) for k, u in used.items()]
    verdict_w = Profile.weakest([n for n in numbers if n["used_for"] == "verdict"])
    energy_w = Profile.weakest([n for n in numbers if n["used_for"] == "energy"])
    lims = {r: v for r, v in fit_res.limits.items() if v and not isinstance(v, list)}
    binding: dict[str, dict[str, float]] = {}
    for c in fit_res.cores:
        clims = (c.pieces[0].usage.get("limits") if c.pieces and "limits" in c.pieces[0].usage else None) or lims
        clims = {r: v for r, v in clims.items() if v and not isinstance(v, list) and r in c.usage}
        if not clims or not c.pieces:  # one whole-network core (Xylo): no layers to split it by
            continue
        top = max(clims, key=lambda r: c.usage.get(r, 0) / clims[r])
        layers = sorted({p.layer for p in c.pieces}) or [fit_res.target]
        for L in layers:  # a shared core counts for each of its layers in equal parts
            d = binding.setdefault(L, {})
            d[top] = d.get(top, 0.0) + 1.0 / len(layers)
    return {
        "cost_model": profile.cost_model,
        "cores_per_chip": profile.cores_per_chip,
        "cores_per_chip_confidence": (profile.source_of("chip.cores") or {}).get("confidence"),
        "systems": _systems(profile),
        "profile_numbers": numbers,
        "verdict_confidence": _brief(verdict_w),
        "energy_confidence": _brief(energy_w),
        "limit_confidence": {r: (profile.source_of(f"core.{r}") or {}).get("confidence") for r in fit_res.limits},
        "per_layer_binding": binding,
    }


def _systems(profile: Profile) -> list[dict]:
    """Systems smallest first, each with the confidence of its chip count."""
    out = []
    for i, sy in enumerate(profile.data.get("systems", [])):
        q = profile.source_of(f"systems[{i}].chips") or {}
        out.append({"name": sy["name"], "chips": int(sy["chips"]["value"]), "confidence": q.get("confidence")})
    return sorted(out, key=lambda sy: sy["chips"])


def _brief(entry: dict | None) -> dict | None:
    return None if entry is None else {"confidence": entry["confidence"], "key": entry["key"], "source": entry["source"]}


# -- the summary block -------------------------------------------------------------------------------------------
def _kind(t: dict) -> str:
    if t.get("verdict_kind"):
        return t["verdict_kind"]
    return "fits" if t.get("fits") else "does_not_fit"


def _verdict_text(t: dict) -> str:
    k = _kind(t)
    if k == "cannot_deploy":
        return f"cannot deploy: {t.get('cannot_deploy', '')}".rstrip(": ")
    if k == "fits":
        return "fits"
    v = (t.get("violations") or [{}])[0]
    more = len(t.get("violations") or []) - 1
    # the first violation, short: its layer and the message up to the first ';' without parentheses
    msg = re.sub(r"\s*\([^)]*\)", "", str(v.get("message", "")).split(";")[0]).strip()
    first = f"{v.get('layer')}: {msg}" if v else ""
    return "does not fit" + (f": {first}" if first else "") + (f" (+{more} more)" if more > 0 else "")


def _purity_short(p: dict) -> str:
    if not p.get("pure"):
        return f"not spike-pure ({len(p.get('violations', []))} violation(s))"
    allowed = sorted({a["role"] for a in p.get("allowed", []) if a.get("role")})
    return "pure" + (f" ({', '.join(allowed)} allowed)" if allowed else "")


def _row(t: dict, doc: dict) -> dict:
    kind = _kind(t)
    deployable = kind == "fits"
    # energy per inference only where the model runs: a target that cannot hold it has no inference to price
    est = (t.get("energy_estimate") or None) if kind == "fits" else None
    lo = doc.get("lowering") or {}
    measured = kind != "cannot_deploy" and t.get("mapped_from", "").startswith("the lowered") and lo.get("fidelity") is not None
    b = t.get("bottleneck") or None
    vc = t.get("verdict_confidence")
    return {
        "target": t["target"],
        "title": t.get("title", t["target"]),
        "verdict_kind": kind,
        "verdict": _verdict_text(t),
        "cores": t.get("cores") if kind != "cannot_deploy" and (deployable or t.get("cores")) else None,
        "chips": t.get("chips") if deployable else None,
        "system": t.get("system") if deployable else None,
        "system_chips": t.get("system_chips") if deployable else None,
        "binding_resource": b["resource"] if b and kind != "cannot_deploy" else None,
        "binding_peak_pct": b.get("peak_core_pct") if b and kind != "cannot_deploy" else None,
        "latency_steps": t.get("latency_steps") if deployable else None,
        "dynamic_uj": est["dynamic_uj"] if est else None,
        "static_uj": est["static_uj"] if est else None,
        "total_uj": est["energy_uj"] if est else None,
        "energy_confidence": (t.get("energy_confidence") or {}).get("confidence") if est else None,
        "fidelity": lo["fidelity"] if measured else None,
        "fidelity_samples": lo.get("samples") if measured else None,
        "spike_purity": _purity_short(doc.get("purity") or {}),
        "verdict_confidence": vc.get("confidence") if vc else None,
        "verdict_confidence_key": vc.get("key") if vc else None,
        "firm": not (vc and vc.get("confidence") in WEAK_CONFIDENCE),
    }


def _norm_layer(name: str) -> str:
    """'patch_embed.block1_conv' / 'patch_embed.block1_lif' -> 'patch_embed.block1' (layer stem)."""
    head, _, last = name.rpartition(".")
    if last in ("or", "sum") and head:
        head, _, last = head.rpartition(".")
    stem = last.rsplit("_", 1)[0] if "_" in last else last
    return f"{head}.{stem}" if head else stem


def energy_per_layer(t: dict, doc: dict) -> list[dict]:
    """Energy per inference per core layer of target ``t``, split dynamic / static: static power shared out by
    each layer's share of the cores, neuron updates by its share of the neurons, synaptic ops by the synaptic
    ops of the NIR layers with the same name stem (paper-method op counts); ops of layers that match no core
    layer (e.g. computed off the cores) form one 'other' row."""
    est = t.get("energy_estimate")
    layers = t.get("per_layer") or []
    if not est or not layers or _kind(t) != "fits":
        return []
    br = est["breakdown_uj"]
    n_cores = sum(L["cores"] for L in layers) or 1
    neurons = {L["layer"]: (L.get("neurons") or {}).get("used", 0) or 0 for L in layers}
    n_neu = sum(neurons.values()) or 1
    paper = ((doc.get("energy") or {}).get("paper") or {}).get("layers") or []
    ops = {}
    for P in paper:
        ops[P["name"]] = ops.get(P["name"], 0.0) + float(P.get("acs", 0) or 0) + float(P.get("macs", 0) or 0)
    tot_ops = sum(ops.values())
    by_stem: dict[str, str] = {}
    for L in layers:
        by_stem.setdefault(_norm_layer(L["layer"]), L["layer"])
    syn = {L["layer"]: 0.0 for L in layers}
    other = 0.0
    for name, o in ops.items():
        dst = name if name in syn else by_stem.get(_norm_layer(name))
        share = br["synaptic"] * o / tot_ops if tot_ops else 0.0
        if dst is None:
            other += share
        else:
            syn[dst] += share
    out = []
    for L in layers:
        name = L["layer"]
        out.append({"layer": name, "cores": L["cores"],
                    "dynamic_uj": syn[name] + br["neuron"] * neurons[name] / n_neu,
                    "static_uj": br["static"] * L["cores"] / n_cores})
    if other:
        out.append({"layer": "other (ops of layers off the cores)", "cores": 0, "dynamic_uj": other, "static_uj": 0.0})
    return out


def summarize(doc: dict) -> dict:
    """The summary block of a report dict (JSON-able): card rows, the strict check, side-by-side rows, per-layer
    energy and fidelity for the plots, and the calibration statement when a Loihi 2 target is present."""
    targets = doc.get("targets") or []
    rows = [_row(t, doc) for t in targets]
    weak = [{"target": r["target"], "key": r["verdict_confidence_key"], "confidence": r["verdict_confidence"]}
            for r in rows if not r["firm"]]
    lo = doc.get("lowering") or {}
    out = {
        "model": (doc.get("model") or {}).get("name"),
        "time_steps": (doc.get("model") or {}).get("time_steps"),
        "time_steps_assumed": bool((doc.get("model") or {}).get("time_steps_assumed")),
        "firing_rates_source": (doc.get("firing_rates") or {}).get("source"),
        "confidence_levels": list(CONFIDENCE_ORDER),
        "rows": rows,
        "strict": {"ok": not weak, "weak": weak,
                   "rule": "a verdict is firm unless a profile number it rests on is " + " or ".join(WEAK_CONFIDENCE)},
        "energy_per_layer": {t["target"]: energy_per_layer(t, doc) for t in targets if _kind(t) != "cannot_deploy"},
        "layer_spike_agreement": dict(lo.get("layer_spike_agreement") or {}),
    }
    if any(t.get("cost_model") == "loihi2" for t in targets):
        out["calibration"] = calibration()
    return out
