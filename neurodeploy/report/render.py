"""Render a report dict as JSON, Markdown, or one self-contained HTML file (inline SVG plots drawn by matplotlib,
inline CSS for light and dark schemes, no scripts, no network access).

Order: the summary card (one row per target), the targets side by side, the plots (HTML), the assumptions
(confidence of the profile numbers, calibration of the core model), then the details.  Table cells may carry
``{conf:LEVEL}`` (a confidence badge) and ``{v:KIND}`` (a verdict colour) marks, rendered per format."""
from __future__ import annotations

import html
import io
import json
import re

MAX_ROWS = 40


def render(doc: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=2, default=_default) + "\n"
    if fmt == "md":
        return markdown(doc)
    if fmt == "html":
        return html_page(doc)
    raise ValueError(fmt)


def _default(o):
    if isinstance(o, set):
        return sorted(o)
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def _f(x, digits=3) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x != 0 and (abs(x) >= 1e6 or abs(x) < 1e-3):
            return f"{x:.{digits}g}"
        return f"{x:,.{digits}f}".rstrip("0").rstrip(".") if not x.is_integer() else f"{int(x):,}"
    return str(x)


# -- shared content as (title, rows) tables ----------------------------------------------------------------------
def _c(level) -> str:
    """A confidence mark (rendered as a badge in HTML, [level] in Markdown)."""
    return f" {{conf:{level}}}" if level else ""


def _uj(x) -> str:
    return "-" if x is None else (f"{x:.3g}" if x < 1000 else f"{x:,.0f}")


def _card(summ: dict):
    rows = []
    for r in summ["rows"]:
        kind = r["verdict_kind"]
        sys_ = f"{_f(r['chips'])} chip{'s' if r['chips'] != 1 else ''}, {r['system']}" if r["system"] else "-"
        bind = (f"{r['binding_resource']} (peak core {r['binding_peak_pct']:.0f}%)"
                if r["binding_resource"] and r["binding_peak_pct"] is not None else (r["binding_resource"] or "-"))
        energy = ("-" if r["total_uj"] is None else
                  f"{_uj(r['dynamic_uj'])} / {_uj(r['total_uj'])}" + _c(r["energy_confidence"]))
        fid = (f"{100 * r['fidelity']:.1f}% ({r['fidelity_samples']} samples)" if r["fidelity"] is not None
               else "not measured")
        weakest = (f"{{conf:{r['verdict_confidence']}}} {r['verdict_confidence_key']}" if r["verdict_confidence"]
                   else "- (feature list)")
        rows.append([f"{r['target']}", f"{{v:{kind}}}{r['verdict']}",
                     (_f(r["cores"]) + _c(r["verdict_confidence"])) if r["cores"] is not None else "-",
                     sys_, bind, _f(r["latency_steps"]), energy, fid, r["spike_purity"], weakest])
    return (["target", "verdict", "cores", "chips / smallest system", "binding resource", "latency (steps)",
             "energy per inference, dynamic / total (uJ)", "fidelity", "spike purity", "weakest confidence"], rows)


def _side_by_side(doc: dict):
    summ = doc["summary"]
    rows_by = {r["target"]: r for r in summ["rows"]}
    ts = doc["targets"]
    head = ["", *[t["target"] for t in ts]]

    def line(label, fn):
        return [label, *[fn(t, rows_by[t["target"]]) for t in ts]]

    def peak(t, r):
        return f"{r['binding_peak_pct']:.1f}%" if r["binding_peak_pct"] is not None else "-"

    rows = [
        line("title", lambda t, r: t.get("title", "")),
        line("verdict", lambda t, r: f"{{v:{r['verdict_kind']}}}" + r["verdict"]),
        line("cores", lambda t, r: _f(r["cores"]) + _c(r["verdict_confidence"]) if r["cores"] is not None else "-"),
        line("cores per chip", lambda t, r: _f(t.get("cores_per_chip")) + _c(t.get("cores_per_chip_confidence"))),
        line("chips", lambda t, r: _f(r["chips"])),
        line("smallest system", lambda t, r: f"{r['system']} ({_f(r['system_chips'])}-chip system)" + _c(_system_conf(t, r["system"]))
             if r["system"] else "-"),
        line("binding resource", lambda t, r: r["binding_resource"] or "-"),
        line("peak core use (binding)", peak),
        line("latency (steps)", lambda t, r: _f(r["latency_steps"])),
        line("inter-chip spikes per step", lambda t, r: _f(t.get("interchip_spikes_per_step")) if r["chips"] else "-"),
        line("dynamic energy (uJ)", lambda t, r: _uj(r["dynamic_uj"]) + _c(r["energy_confidence"]) if r["dynamic_uj"] is not None else "-"),
        line("static energy (uJ)", lambda t, r: _uj(r["static_uj"]) + _c(r["energy_confidence"]) if r["static_uj"] is not None else "-"),
        line("total energy (uJ)", lambda t, r: _uj(r["total_uj"]) + _c(r["energy_confidence"]) if r["total_uj"] is not None else "-"),
        line("fidelity", lambda t, r: f"{100 * r['fidelity']:.1f}%" if r["fidelity"] is not None else "not measured"),
        line("weakest confidence (verdict)", lambda t, r: (f"{{conf:{r['verdict_confidence']}}} {r['verdict_confidence_key']}"
                                                           if r["verdict_confidence"] else "-")),
        line("mapped from", lambda t, r: t.get("mapped_from", "-")),
    ]
    return head, rows


def _system_conf(t: dict, name):
    return next((sy.get("confidence") for sy in t.get("systems") or [] if sy["name"] == name), None)


def _assumptions(doc: dict):
    summ = doc["summary"]
    yield "h2", "Assumptions and confidence"
    yield "p", ("Every hardware figure comes from a profile (hardware_profiles/*.toml) and carries a confidence, "
                "strongest first: " + ", ".join(f"{{conf:{c}}}" for c in summ["confidence_levels"])
                + ". Each verdict shows the weakest confidence among the profile numbers it used.")
    st = summ["strict"]
    if st["ok"]:
        yield "p", "Strict check (report --strict): every verdict rests on firm numbers."
    else:
        yield "p", ("Strict check (report --strict) fails: " + "; ".join(
            f"{w['target']} rests on {w['key']} ({w['confidence']})" for w in st["weak"]) + ".")
    cal = summ.get("calibration")
    if cal:
        yield "h3", "Calibration of the Loihi 2 core model"
        yield "p", (f"{cal['model']}. Fitted on: {', '.join(cal['fitted_on'])}. Held out (not used for fitting): "
                    f"{', '.join(cal['held_out'])}. Largest error: {cal['largest_error_cores']} core(s) "
                    f"(held out: {cal['largest_held_out_error_cores']}); {cal['uncertainty']}. Source: {cal['source']}.")
        yield "table", (["network", "role", "our cores", "compiler cores", "error (cores)"],
                        [[r["network"], r["role"], r["ours"], r["compiler"], f"{r['error']:+d}"] for r in cal["networks"]])
        if cal.get("per_layer"):
            yield "p", (f"Per layer: {cal['layers_exact']} of {cal['layers']} layers get the compiler's core count "
                        f"(largest error {cal['largest_layer_error_cores']} core(s)); SynMem units per core within "
                        f"{cal['largest_synmem_error_pct']:.0f} %.")
            yield "table", (["network", "layer", "our cores", "compiler cores", "error (cores)", "our SynMem / core",
                             "compiler SynMem / core", "SynMem error"],
                            [[L["network"], L["layer"], L["ours"], L["compiler"], f"{L['error']:+d}", L["ours_synmem"],
                              L["compiler_synmem"], f"{L['synmem_error_pct']:+.1f} %"] for L in cal["per_layer"]])


def _sections(doc: dict):
    if "summary" in doc:
        yield "section", "summary"
        yield "h2", "Summary"
        fr = doc["summary"]
        assumed = " (assumed: the model fixes none; give -T/--steps)" if fr.get("time_steps_assumed") else ""
        yield "p", (f"Model {fr['model']}, T = {fr['time_steps']} time steps{assumed}; firing rates: "
                    f"{fr['firing_rates_source'] or 'none (no energy figures)'}.")
        yield "table", _card(fr)
        yield "section", None
        if len(doc["targets"]) > 1:
            yield "section", "side-by-side"
            yield "h2", "Targets side by side"
            yield "p", "Same model, same firing rates; each chip's figures."
            yield "table", _side_by_side(doc)
            yield "section", None
        yield "plots", None
        yield "section", "assumptions"
        yield from _assumptions(doc)
        yield "section", None
    yield "section", "details"
    m = doc["model"]
    yield "h2", "Model"
    yield "table", (["item", "value"], [
        ["name", m["name"]], ["architecture", m["arch"]], ["family", m.get("family") or "-"], ["weights", "untrained (random)" if m["untrained"] else "trained"],
        ["time steps T", f"{m['time_steps']} (assumed: the model fixes none; give -T/--steps)"
         if m.get("time_steps_assumed") else m["time_steps"]],
        ["time step dt", f"{m['dt_s']:g} s" if m.get("dt_s") else "-"], ["input", f"{m['input_encoding']} ({m['input_domain']})"],
        ["NIR nodes", m["nir_nodes"]], ["synaptic layers", m["synaptic_layers"]], ["attention ops", m["attention_ops"]],
        ["spiking neurons", m["spiking_neurons"]], ["parameters", m["parameters"]]])
    p = doc["purity"]
    yield "h2", "Spike purity"
    s = p["summary"]
    yield "p", (f"Verdict: **{p['verdict']}** - {s['synaptic_nodes']} synaptic nodes, classes "
                + ", ".join(f"{k} {v}" for k, v in s["classes"].items() if v) + f"; {s['violations']} violation(s).")
    rows = [[v["node"], v["class"], v["role"] or "", "violation"] for v in p["violations"]]
    rows += [[v["node"], v["class"], v["role"] or "", "allowed exception"] for v in p.get("allowed", [])]
    if rows:
        yield "table", (["node", "class", "role", "status"], rows[:MAX_ROWS])
    fr = doc["firing_rates"]
    yield "h2", "Firing rates"
    yield "p", f"Source: {fr['source'] or 'none (give --data or --firing-rates)'}."
    e = doc["energy"]["paper"]
    yield "h2", "Energy (paper method)"
    if e is None:
        yield "p", "Not computed: no firing rates."
    else:
        yield "p", (f"{e['method']}. E_MAC = {e['e_mac_pj']} pJ, E_AC = {e['e_ac_pj']} pJ. "
                    f"Op counts from: {doc['energy']['op_count_source']}.")
        yield "table", (["total", "value"], [["MACs", _f(e["macs"])], ["ACs (SOPs)", _f(e["acs"])],
                                             ["energy", f"{e['energy_mj']:.4g} mJ ({e['energy_uj']:.4g} uJ)"]])
        rows = sorted(e["layers"], key=lambda r: -r["energy_pj"])[:MAX_ROWS]
        tot = sum(r["energy_pj"] for r in e["layers"]) or 1.0
        yield "table", (["layer", "kind", "input rate", "MACs", "ACs", "energy (uJ)", "share"],
                        [[r["name"], r["kind"], _f(r["input_rate"]), _f(r["macs"]), _f(r["acs"]),
                          _f(r["energy_pj"] * 1e-6), f"{100 * r['energy_pj'] / tot:.1f}%"] for r in rows])
        if e["missing_rates"]:
            yield "p", "No rate for: " + ", ".join(e["missing_rates"]) + " (counted at rate 1)."
        nb = doc["energy"]["neurobench"]
        so = nb["SynapticOperations"]
        yield "h3", "NeuroBench metrics" if nb.get("source") else "NeuroBench-style metrics (expected from firing rates)"
        yield "table", (["metric", "value"], [
            ["Effective_ACs", _f(so["Effective_ACs"])], ["Effective_MACs", _f(so["Effective_MACs"])], ["Dense", _f(so["Dense"])],
            ["ActivationSparsity", _f(nb["ActivationSparsity"], 4)], ["MembraneUpdates", _f(nb["MembraneUpdates"])],
            ["Footprint (bytes, float32)", _f(nb["Footprint"])], ["Footprint at 8-bit weights", _f(nb.get("Footprint_at_target_bits"))],
            ["ConnectionSparsity", _f(nb["ConnectionSparsity"])], ["ParameterCount", _f(nb["ParameterCount"])]]
            + ([["attention products (beyond NeuroBench)", _f(nb["attention_products"]["Effective_ACs"])]]
               if nb.get("attention_products") else []))
        if nb.get("source"):
            yield "p", f"Source: {nb['source']}."
        yield "p", "Notes: " + "; ".join(nb["notes"]) + "."
    lo = doc["lowering"]
    yield "h2", "Fidelity (Loihi 2 fixed point)"
    if lo.get("fidelity") is not None:
        yield "p", f"Prediction agreement float vs fixed point: **{100 * lo['fidelity']:.2f}%** on {lo['samples']} samples ({lo['note']})."
        if lo.get("float_accuracy") is not None and lo.get("target_accuracy") is not None:
            fa, ta = 100 * lo["float_accuracy"], 100 * lo["target_accuracy"]
            yield "p", (f"Accuracy on the same labelled samples: float **{fa:.2f}%**, {lo.get('target', 'target')} fixed "
                        f"point **{ta:.2f}%** ({ta - fa:+.2f} points).")
        layers = lo.get("layer_spike_agreement") or {}
        if layers:
            worst = sorted(layers.items(), key=lambda kv: kv[1])[:5]
            yield "p", (f"Per-layer spike agreement float vs fixed point (first batch; {len(layers)} layers, "
                        f"{100 * worst[0][1]:.2f}% to {100 * max(layers.values()):.2f}%), the lowest:")
            yield "table", (["layer", "spike agreement"], [[n, f"{100 * a:.2f}%"] for n, a in worst])
    else:
        yield "p", lo.get("note", "not run")
    for t in doc["targets"]:
        yield "h2", f"Target {t['target']} ({t.get('title', t['target'])})"
        if t.get("verdict_kind") == "cannot_deploy":
            yield "p", f"**CANNOT DEPLOY** - {t.get('cannot_deploy', '')}"
            continue
        yield "p", f"**{'FITS' if t['fits'] else 'DOES NOT FIT'}** - mapped from {t.get('mapped_from', '-')}."
        if t["violations"]:
            yield "table", (["rule", "layer", "message"], [[v["rule"], v["layer"], v["message"]] for v in t["violations"][:MAX_ROWS]])
        summary = [["cores", _f(t["cores"])], ["chips", _f(t["chips"])],
                   ["system", f"{t['system']} ({t['system_chips']} chips)" if t["system"] else "-"],
                   ["latency", f"{t['latency_steps']} time steps (T + pipeline depth {t['pipeline_depth']})"],
                   ["inter-chip spikes per step", f"{_f(t['interchip_spikes_per_step'])} ({t['interchip_note']})"]]
        if t["bottleneck"]:
            b = t["bottleneck"]
            summary.append(["bottleneck", f"{b['resource']}: the fullest resource on {_f(b.get('binding_cores'))} of "
                                          f"{_f(t['cores'])} cores; peak core {b['peak_core_pct']:.1f}%, mean {b['mean_pct']:.1f}%"])
        yield "table", (["item", "value"], summary)
        if t["resources"]:
            lc = t.get("limit_confidence") or {}
            yield "table", (["resource", "used / available (pct)", "limit confidence"],
                            [[r["resource"], r["text"], _c(lc.get(r["resource"])).strip() or "-"] for r in t["resources"]])
        if t["per_layer"]:
            res_keys = [k for k in t["per_layer"][0] if k not in ("layer", "cores", "chips")]
            yield "h3", "Per layer"
            yield "table", (["layer", "cores"] + res_keys,
                            [[L["layer"], _f(L["cores"])] + [L[k]["text"] if k in L else "" for k in res_keys]
                             for L in t["per_layer"][:MAX_ROWS]])
            if len(t["per_layer"]) > MAX_ROWS:
                yield "p", f"({len(t['per_layer']) - MAX_ROWS} more layers in the JSON report)"
        if t["per_core"]:
            res_keys = [k for k in t["per_core"][0] if k not in ("core", "chip", "layers")]
            yield "h3", "Per core"
            yield "table", (["core", "chip", "layers"] + res_keys,
                            [[c["core"], c["chip"], ", ".join(c["layers"])] + [c[k]["text"] if k in c else "" for k in res_keys]
                             for c in t["per_core"][:MAX_ROWS]])
            if t["cores"] > MAX_ROWS:
                yield "p", f"(first {MAX_ROWS} of {t['cores']:,} cores; the JSON lists {t['per_core_listed']})"
        art = t.get("artifact") or {}
        if art.get("lava_processes"):
            only = art.get("lava_standard_library_only")
            yield "h3", "Lava processes of the deployed network"
            yield "p", ("**Lava standard library only**: every process has a Loihi 2 implementation."
                        if only else "**Not standard library only**: the classes marked neurodeploy custom run "
                        "in Lava's CPU simulation but have no chip implementation.")
            yield "table", (["class", "module", "origin", "count"],
                            [[d["class"], d["module"], d["origin"], _f(d["count"])] for d in art["lava_processes"]])
        if art.get("passes"):
            yield "p", "Lowering passes, in order: " + ", ".join(art["passes"]) + "."
        yield from _config_sections(art)
        est = t.get("energy_estimate")
        if est:
            yield "h3", "Energy estimate"
            yield "p", (f"Dynamic **{est['dynamic_uj']:.4g} uJ** per inference (the figure to compare chips by), "
                        f"static {est['static_uj']:.4g} uJ, total {est['energy_uj']:.4g} uJ.")
            yield "p", (f"{est['energy_uj']:.4g} uJ per inference (synaptic {est['breakdown_uj']['synaptic']:.4g}, "
                        f"neuron {est['breakdown_uj']['neuron']:.4g}, static {est['breakdown_uj']['static']:.4g} uJ) from "
                        f"{_f(est['synaptic_ops'])} synaptic ops and {_f(est['neuron_updates'])} neuron updates over "
                        f"{est['time_steps']} steps. Assumptions: " + "; ".join(est["assumptions"]) + ".")
        if t.get("profile_numbers"):
            yield "h3", "Profile numbers used"
            yield "table", (["key", "value", "used for", "confidence", "source"],
                            [[n["key"], _f(n["value"]) if not isinstance(n["value"], list) else f"list of {len(n['value'])}",
                              n["used_for"], f"{{conf:{n['confidence']}}}", n["source"]] for n in t["profile_numbers"]])
        for w in t["warnings"]:
            yield "p", f"Warning: {w}"
        for n in t["notes"]:
            yield "p", f"Note: {n}"
    b = doc["budgets"]
    if b["checks"]:
        yield "h2", "Budgets"
        yield "table", (["budget", "target", "limit", "value", "result"],
                        [[c["budget"], c["target"] or "-", _f(c["limit"]), _f(c["value"]),
                          "ok" if c["ok"] else "EXCEEDED" + (f" ({c['why']})" if c.get("why") and not c["ok"] else "")]
                         for c in b["checks"]])
    yield "section", None


def pareto(rows: list) -> list:
    """Names of the configurations no other one beats in chips, latency and energy at once (lower is better;
    a missing energy counts as equal)."""
    ok = [r for r in rows if r.get("fits")]

    def key(r):
        return (r["chips"], r["latency_steps"], r.get("energy_uj") if r.get("energy_uj") is not None else 0.0)

    out = []
    for r in ok:
        if not any(all(a <= b for a, b in zip(key(o), key(r))) and key(o) != key(r) for o in ok):
            out.append(r["name"])
    return out


def _config_sections(art: dict):
    """The lowering configuration of the artifact, and the configurations a budget search tried."""
    cfg = art.get("lowering_config")
    if cfg:
        opts = ", ".join(f"{k} {v}" for k, v in cfg.items() if k not in ("name", "chosen_by"))
        yield "p", f"Lowering configuration: **{cfg['name']}** ({opts}); {cfg.get('chosen_by', '')}."
    bound = art.get("attention_full_rate_bound")
    if bound:
        yield "p", (f"Full-rate bound: the attention alone needs at least **{_f(bound['product_neurons'])} product "
                    f"neurons ({_f(bound['cores'])} cores, {_f(bound['chips'])} chip{'s' if bound['chips'] != 1 else ''})** in any exact schedule at full "
                    f"sample rate built from Lava's standard processes; this network has "
                    f"{_f(bound.get('built_product_neurons', 0))}. The resource that sets it: {bound['resource']}. "
                    f"It holds for {bound['holds_for']}; {bound['note']}.")
    tried = (art.get("configurations") or {}).get("tried")
    if not tried:
        return
    front = set(pareto(tried))
    yield "h3", "Lowering configurations tried"
    yield "p", (f"Budget: {art['configurations']['budget']}. Each configuration was lowered and mapped; the chosen "
                "one (the lowest latency within the budget) is the network written. Latency per inference: T + "
                "pipeline depth. Pareto: no other configuration has fewer or equal chips, steps and energy.")
    rows = []
    for r in tried:
        if r.get("refused"):
            rows.append([r["name"], "refused: " + r["refused"]] + ["-"] * 9)
            continue
        rows.append([r["name"] + (" (chosen)" if r.get("chosen") else ""),
                     "{v:fits}fits" if r["fits"] else "{v:does_not_fit}does not fit",
                     _f(r["cores"]), _f(r["chips"]), r["system"] or "-", _f(r["latency_steps"]),
                     _f(r["latency_ms"]) if r.get("latency_ms") is not None else "-",
                     _f(r["energy_uj"]) if r.get("energy_uj") is not None else "-",
                     "yes" if r["within_budget"] else "no", "yes" if r["name"] in front else "no",
                     _f(r.get("lowering_s"))])
    yield "table", (["configuration", "verdict", "cores", "chips", "smallest system", "latency (steps)",
                     "latency (ms)", "energy (uJ)", "within budget", "Pareto", "lowering + mapping (s)"], rows)


_MARK = re.compile(r"\{(conf|v):([a-z_]+)\}")


def _md_cell(text) -> str:
    t = _MARK.sub(lambda m: f"[{m.group(2)}]" if m.group(1) == "conf" else "", str(text))
    return t.replace("|", "\\|")


def markdown(doc: dict) -> str:
    out = [f"# Deployment report: {doc['model']['name']}", ""]
    for kind, body in _sections(doc):
        if kind == "h2":
            out += [f"## {body}", ""]
        elif kind == "h3":
            out += [f"### {body}", ""]
        elif kind == "p":
            out += [_md_cell(body).replace("\\|", "|"), ""]
        elif kind == "table":
            head, rows = body
            out.append("| " + " | ".join(_md_cell(h) for h in head) + " |")
            out.append("|" + "---|" * len(head))
            for r in rows:
                out.append("| " + " | ".join(_md_cell(c) for c in r) + " |")
            out.append("")
        elif kind == "plots":
            out += ["(Plots: see the HTML report.)", ""]
    return "\n".join(out)


# -- plots: inline SVG, text and axes in the page's current colour (light and dark schemes) ------------------------
_INK = "#010203"  # drawn by matplotlib, replaced by currentColor in the SVG
_PALETTE = ["#4c8bf5", "#e8a33d", "#2eb67d", "#d9534f", "#9b6bd6", "#8a8f98", "#17becf"]
MAX_PLOT_LAYERS = 30


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", transparent=True)
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = text.replace(_INK, "currentColor")
    return text


def _style():
    import matplotlib

    matplotlib.use("Agg", force=True)
    return {"text.color": _INK, "axes.labelcolor": _INK, "axes.edgecolor": _INK, "xtick.color": _INK,
            "ytick.color": _INK, "axes.facecolor": "none", "figure.facecolor": "none", "savefig.facecolor": "none",
            "legend.frameon": False, "svg.fonttype": "none", "svg.hashsalt": "neurodeploy", "font.size": 8,
            "axes.spines.top": False, "axes.spines.right": False, "grid.color": "#8a8f98", "grid.alpha": 0.3}


def _hbar_height(n: int) -> float:
    return max(1.6, 0.22 * n + 0.8)


def _plot_resources(doc):
    import matplotlib.pyplot as plt

    ts = [t for t in doc["targets"] if t.get("per_layer_binding")][:4]
    if not ts:
        return None
    n = max(min(len(t["per_layer_binding"]), MAX_PLOT_LAYERS) for t in ts)
    fig, axes = plt.subplots(1, len(ts), figsize=(4.6 * len(ts), _hbar_height(n)), squeeze=False)
    for ax, t in zip(axes[0], ts):
        b = t["per_layer_binding"]
        layers = sorted(b, key=lambda L: -sum(b[L].values()))[:MAX_PLOT_LAYERS]
        res = sorted({r for L in layers for r in b[L]})
        left = [0.0] * len(layers)
        for i, r in enumerate(res):
            vals = [b[L].get(r, 0.0) for L in layers]
            ax.barh(range(len(layers)), vals, left=left, color=_PALETTE[i % len(_PALETTE)], label=r)
            left = [a + v for a, v in zip(left, vals)]
        ax.set_yticks(range(len(layers)), layers, fontsize=6)
        ax.invert_yaxis()
        ax.set_xlabel("cores (colour: binding resource of the core)")
        ax.set_title(f"{t['target']}: {_f(t['cores'])} cores", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    return "Resource use per layer: cores, stacked by the binding resource", _svg(fig)


def _plot_fidelity(doc):
    import matplotlib.pyplot as plt

    agr = doc.get("summary", {}).get("layer_spike_agreement") or {}
    if not agr:
        return None
    names = list(agr)[:MAX_PLOT_LAYERS]
    fig, ax = plt.subplots(figsize=(7.5, _hbar_height(len(names))))
    vals = [100 * agr[n] for n in names]
    ax.barh(range(len(names)), vals, color=_PALETTE[2])
    for i, v in enumerate(vals):
        ax.text(min(v, 100), i, f" {v:.2f}%", va="center", fontsize=6)
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, 112)
    ax.set_xlabel("spike agreement, float vs Loihi 2 fixed point (%)")
    ax.set_title("Fidelity per layer", fontsize=9)
    return "Fidelity per layer: share of equal spikes, float model vs fixed point", _svg(fig)


def _plot_energy(doc):
    import matplotlib.pyplot as plt

    epl = {k: v for k, v in (doc.get("summary", {}).get("energy_per_layer") or {}).items() if v}
    if not epl:
        return None
    ts = list(epl)[:3]
    n = max(min(len(epl[t]), MAX_PLOT_LAYERS) for t in ts)
    fig, axes = plt.subplots(len(ts), 2, figsize=(9, _hbar_height(n) * len(ts)), squeeze=False)
    for row, t in zip(axes, ts):
        rows = sorted(epl[t], key=lambda r: -(r["dynamic_uj"] + r["static_uj"]))[:MAX_PLOT_LAYERS]
        names = [r["layer"] for r in rows]
        for ax, key, col, what in ((row[0], "dynamic_uj", _PALETTE[0], "dynamic"), (row[1], "static_uj", _PALETTE[5], "static")):
            vals = [r[key] for r in rows]
            total = sum(r[key] for r in epl[t])
            ax.barh(range(len(rows)), vals, color=col)
            ax.set_yticks(range(len(rows)), names if ax is row[0] else [""] * len(rows), fontsize=6)
            ax.invert_yaxis()
            ax.set_xlabel(f"{what} energy per inference (uJ)")
            ax.set_title(f"{t}: {what} {total:.4g} uJ in all" + (f" (largest {len(rows)} of {len(epl[t])} layers)"
                                                                   if len(rows) < len(epl[t]) else ""), fontsize=9)
    return "Energy per layer, dynamic (left) and static (right), per inference", _svg(fig)


def _plot_systems(doc):
    import matplotlib.pyplot as plt

    ts = [t for t in doc["targets"] if t.get("systems")]
    if not ts:
        return None
    rows = {r["target"]: r for r in doc["summary"]["rows"]}
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(ts) + 1.0))
    for i, t in enumerate(ts):
        caps = [s["chips"] for s in t["systems"]]
        ax.plot(caps, [i] * len(caps), "|", color=_INK, markersize=14)
        for s in t["systems"]:
            ax.annotate(s["name"], (s["chips"], i), xytext=(0, 7), textcoords="offset points", ha="center", fontsize=6)
        r = rows.get(t["target"], {})
        if r.get("verdict_kind") == "fits":
            ax.plot([r["chips"]], [i], "D", color=_PALETTE[2], markersize=7)
            ax.annotate(f"needs {r['chips']}", (r["chips"], i), xytext=(0, -11), textcoords="offset points",
                        ha="center", fontsize=6, color=_PALETTE[2])
        else:
            ax.annotate("does not fit" if r.get("verdict_kind") != "cannot_deploy" else "cannot deploy",
                        (min(caps), i), xytext=(4, -11), textcoords="offset points", fontsize=6, color=_PALETTE[3])
    ax.set_xscale("log")
    ax.set_xlim(0.5, max(max(s["chips"] for s in t["systems"]) for t in ts) * 3)
    ax.set_yticks(range(len(ts)), [t["target"] for t in ts])
    ax.set_ylim(len(ts) - 0.4, -0.6)
    ax.set_xlabel("chips (ticks: each system's capacity; diamond: chips needed)")
    ax.set_title("Fit against system size", fontsize=9)
    return "Fit against system size: chips needed against each system's capacity", _svg(fig)


def _plot_rates(doc):
    import matplotlib.pyplot as plt

    rates = doc["firing_rates"]["rates"]
    if not rates:
        return None
    names = list(rates)[:MAX_PLOT_LAYERS]
    fig, ax = plt.subplots(figsize=(7.5, _hbar_height(len(names))))
    ax.barh(range(len(names)), [100 * rates[n] for n in names], color=_PALETTE[0])
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("firing rate (%)")
    ax.set_title("Firing rate per layer", fontsize=9)
    return "Firing rate per layer (the rates every target's figures use)", _svg(fig)


def _plot_configs(doc):
    """Chips against latency for the configurations a budget search tried (colour: energy; ring: the chosen
    one; line: the Pareto front)."""
    import matplotlib.pyplot as plt

    ts = [(t["target"], ((t.get("artifact") or {}).get("configurations") or {}).get("tried") or []) for t in doc["targets"]]
    ts = [(name, [r for r in rows if r.get("fits")]) for name, rows in ts]
    ts = [(name, rows) for name, rows in ts if rows][:2]
    if not ts:
        return None
    fig, axes = plt.subplots(1, len(ts), figsize=(5.2 * len(ts), 3.2), squeeze=False)
    for ax, (name, rows) in zip(axes[0], ts):
        x = [r["latency_steps"] for r in rows]
        y = [r["chips"] for r in rows]
        e = [r.get("energy_uj") for r in rows]
        if all(v is not None for v in e):
            sc = ax.scatter(x, y, c=e, cmap="viridis", s=40, zorder=3)
            fig.colorbar(sc, ax=ax, label="energy per inference (uJ)")
        else:
            ax.scatter(x, y, color=_PALETTE[0], s=40, zorder=3)
        front = set(pareto(rows))
        fr = sorted((r["latency_steps"], r["chips"]) for r in rows if r["name"] in front)
        if len(fr) > 1:
            ax.plot([a for a, _ in fr], [b for _, b in fr], "--", color=_PALETTE[5], zorder=2, label="Pareto front")
        for r in rows:
            ax.annotate(r["name"], (r["latency_steps"], r["chips"]), xytext=(4, 4), textcoords="offset points",
                        fontsize=6)
            if r.get("chosen"):
                ax.scatter([r["latency_steps"]], [r["chips"]], s=160, facecolors="none", edgecolors=_PALETTE[3],
                           linewidths=1.5, zorder=4, label="chosen")
        ax.set_yscale("log")
        ax.set_xlabel("latency per inference (steps)")
        ax.set_ylabel("chips")
        ax.set_title(f"{name}: configurations tried", fontsize=9)
        ax.legend(fontsize=6, loc="upper right")
    return ("Lowering configurations tried: chips against latency (colour: energy per inference; ring: chosen; "
            "dashed: Pareto front)", _svg(fig))


def plots(doc: dict) -> list[tuple[str, str]]:
    """(caption, inline SVG) per plot."""
    import matplotlib.pyplot as plt

    out = []
    with plt.rc_context(_style()):
        for fn in (_plot_resources, _plot_systems, _plot_configs, _plot_energy, _plot_fidelity, _plot_rates):
            r = fn(doc)
            if r:
                out.append(r)
    return out


_CSS = """:root{color-scheme:light dark;--fg:#1f2328;--bg:#ffffff;--muted:#59636e;--line:#d1d9e0;--head:#f6f8fa;
--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--accent:#0969da;--card:#f6f8fa}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--muted:#9198a1;--line:#3d444d;--head:#151b23;
--ok:#3fb950;--bad:#f85149;--warn:#d29922;--accent:#4493f8;--card:#151b23}}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;
color:var(--fg);background:var(--bg)}
h1{font-size:1.5em;margin:.2em 0 .6em}h2{border-bottom:2px solid var(--accent);padding-bottom:3px;font-size:1.2em}
table{border-collapse:collapse;margin:.5em 0 1em 0;font-size:13px}td,th{border:1px solid var(--line);padding:4px 8px;
text-align:left;vertical-align:top;overflow-wrap:break-word}th{background:var(--head)}
section.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.2em 1em .6em}
section.card table{width:100%}section.card h2{margin-top:.5em}
figure{margin:1em 0}figure svg{max-width:100%;height:auto;color:var(--fg)}figcaption{color:var(--muted);font-size:12px}
.fits{color:var(--ok);font-weight:bold}.nofit{color:var(--bad);font-weight:bold}.cannot{color:var(--warn);font-weight:bold}
.conf{display:inline-block;border-radius:4px;padding:0 5px;font-size:11px;border:1px solid currentColor;white-space:nowrap}
.conf-measured,.conf-source{color:var(--ok)}.conf-documented{color:var(--accent)}.conf-derived{color:var(--muted)}
.conf-unverified{color:var(--warn)}.conf-assumption{color:var(--bad)}"""

_VCLASS = {"fits": "fits", "does_not_fit": "nofit", "cannot_deploy": "cannot"}


def _html_cell(text) -> str:
    t = html.escape(str(text))

    def sub(m):
        if m.group(1) == "conf":
            return f'<span class="conf conf-{m.group(2)}" title="confidence">{m.group(2)}</span>'
        return ""

    cls = re.match(r"\{v:([a-z_]+)\}", str(text))
    body = _MARK.sub(sub, t)
    return f'<span class="{_VCLASS.get(cls.group(1), "")}">{body}</span>' if cls else body


def _inline_md(text: str) -> str:
    parts = _html_cell(text).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def html_page(doc: dict) -> str:
    title = f"Deployment report: {doc['model']['name']}"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="color-scheme" content="light dark">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    open_section = False
    for kind, body in _sections(doc):
        if kind == "section":
            if open_section:
                out.append("</section>")
            open_section = body is not None
            if body is not None:
                cls = ' class="card"' if body == "summary" else ""
                out.append(f'<section id="{body}"{cls}>')
        elif kind == "plots":
            figs = plots(doc)
            if figs:
                out.append('<section id="plots"><h2>Plots</h2>')
                for cap, svg in figs:
                    out.append(f'<figure role="img" aria-label="{html.escape(cap)}">{svg}'
                               f"<figcaption>{html.escape(cap)}</figcaption></figure>")
                out.append("</section>")
        elif kind in ("h2", "h3"):
            out.append(f"<{kind}>{html.escape(body)}</{kind}>")
        elif kind == "p":
            cls = ' class="fits"' if body.startswith("**FITS") else (
                ' class="nofit"' if body.startswith("**DOES NOT") else (' class="cannot"' if body.startswith("**CANNOT") else ""))
            out.append(f"<p{cls}>{_inline_md(body)}</p>")
        else:
            head, rows = body
            out.append("<table><tr>" + "".join(f"<th>{_html_cell(h)}</th>" for h in head) + "</tr>")
            for r in rows:
                out.append("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in r) + "</tr>")
            out.append("</table>")
    if open_section:
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
