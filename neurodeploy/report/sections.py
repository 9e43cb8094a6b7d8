"""What a report says, once for every format: the report dict as a stream of (kind, body) items (``section``,
``h2``, ``h3``, ``p``, ``table`` as (head, rows), ``plots``) that the Markdown and HTML writers render.

Order: the summary card (one row per target), the targets side by side, the plots (HTML), the assumptions
(confidence of the profile numbers, calibration of the core model), then the details.  Table cells may carry
``{conf:LEVEL}`` (a confidence badge) and ``{v:KIND}`` (a verdict colour) marks (:data:`MARK`), rendered per
format."""
from __future__ import annotations

import re

MAX_ROWS = 40

def fmt(x, digits=3) -> str:
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
        sys_ = f"{fmt(r['chips'])} chip{'s' if r['chips'] != 1 else ''}, {r['system']}" if r["system"] else "-"
        bind = (f"{r['binding_resource']} (peak core {r['binding_peak_pct']:.0f}%)"
                if r["binding_resource"] and r["binding_peak_pct"] is not None else (r["binding_resource"] or "-"))
        energy = ("-" if r["total_uj"] is None else
                  f"{_uj(r['dynamic_uj'])} / {_uj(r['total_uj'])}" + _c(r["energy_confidence"]))
        fid = (f"{100 * r['fidelity']:.1f}% ({r['fidelity_samples']} samples)" if r["fidelity"] is not None
               else "not measured")
        weakest = (f"{{conf:{r['verdict_confidence']}}} {r['verdict_confidence_key']}" if r["verdict_confidence"]
                   else "- (feature list)")
        rows.append([f"{r['target']}", f"{{v:{kind}}}{r['verdict']}",
                     (fmt(r["cores"]) + _c(r["verdict_confidence"])) if r["cores"] is not None else "-",
                     sys_, bind, fmt(r["latency_steps"]), energy, fid, r["spike_purity"], weakest])
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
        line("cores", lambda t, r: fmt(r["cores"]) + _c(r["verdict_confidence"]) if r["cores"] is not None else "-"),
        line("cores per chip", lambda t, r: fmt(t.get("cores_per_chip")) + _c(t.get("cores_per_chip_confidence"))),
        line("chips", lambda t, r: fmt(r["chips"])),
        line("smallest system", lambda t, r: f"{r['system']} ({fmt(r['system_chips'])}-chip system)" + _c(_system_conf(t, r["system"]))
             if r["system"] else "-"),
        line("binding resource", lambda t, r: r["binding_resource"] or "-"),
        line("peak core use (binding)", peak),
        line("latency (steps)", lambda t, r: fmt(r["latency_steps"])),
        line("inter-chip spikes per step", lambda t, r: fmt(t.get("interchip_spikes_per_step")) if r["chips"] else "-"),
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


def sections(doc: dict):
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
        yield "table", (["total", "value"], [["MACs", fmt(e["macs"])], ["ACs (SOPs)", fmt(e["acs"])],
                                             ["energy", f"{e['energy_mj']:.4g} mJ ({e['energy_uj']:.4g} uJ)"]])
        rows = sorted(e["layers"], key=lambda r: -r["energy_pj"])[:MAX_ROWS]
        tot = sum(r["energy_pj"] for r in e["layers"]) or 1.0
        yield "table", (["layer", "kind", "input rate", "MACs", "ACs", "energy (uJ)", "share"],
                        [[r["name"], r["kind"], fmt(r["input_rate"]), fmt(r["macs"]), fmt(r["acs"]),
                          fmt(r["energy_pj"] * 1e-6), f"{100 * r['energy_pj'] / tot:.1f}%"] for r in rows])
        if e["missing_rates"]:
            yield "p", "No rate for: " + ", ".join(e["missing_rates"]) + " (counted at rate 1)."
        nb = doc["energy"]["neurobench"]
        so = nb["SynapticOperations"]
        yield "h3", "NeuroBench metrics" if nb.get("source") else "NeuroBench-style metrics (expected from firing rates)"
        yield "table", (["metric", "value"], [
            ["Effective_ACs", fmt(so["Effective_ACs"])], ["Effective_MACs", fmt(so["Effective_MACs"])], ["Dense", fmt(so["Dense"])],
            ["ActivationSparsity", fmt(nb["ActivationSparsity"], 4)], ["MembraneUpdates", fmt(nb["MembraneUpdates"])],
            ["Footprint (bytes, float32)", fmt(nb["Footprint"])], ["Footprint at 8-bit weights", fmt(nb.get("Footprint_at_target_bits"))],
            ["ConnectionSparsity", fmt(nb["ConnectionSparsity"])], ["ParameterCount", fmt(nb["ParameterCount"])]]
            + ([["attention products (beyond NeuroBench)", fmt(nb["attention_products"]["Effective_ACs"])]]
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
            k = lo.get("layer_agreement_samples")
            first = ("the first sample" if k == 1 else f"the first {k} samples") if k else "first batch"
            yield "p", (f"Per-layer spike agreement float vs fixed point ({first}; {len(layers)} layers, "
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
        summary = [["cores", fmt(t["cores"])], ["chips", fmt(t["chips"])],
                   ["system", f"{t['system']} ({t['system_chips']} chips)" if t["system"] else "-"],
                   ["latency", f"{t['latency_steps']} time steps (T + pipeline depth {t['pipeline_depth']})"],
                   ["inter-chip spikes per step", f"{fmt(t['interchip_spikes_per_step'])} ({t['interchip_note']})"]]
        if t["bottleneck"]:
            b = t["bottleneck"]
            summary.append(["bottleneck", f"{b['resource']}: the fullest resource on {fmt(b.get('binding_cores'))} of "
                                          f"{fmt(t['cores'])} cores; peak core {b['peak_core_pct']:.1f}%, mean {b['mean_pct']:.1f}%"])
        yield "table", (["item", "value"], summary)
        if t["resources"]:
            lc = t.get("limit_confidence") or {}
            yield "table", (["resource", "used / available (pct)", "limit confidence"],
                            [[r["resource"], r["text"], _c(lc.get(r["resource"])).strip() or "-"] for r in t["resources"]])
        if t["per_layer"]:
            res_keys = [k for k in t["per_layer"][0] if k not in ("layer", "cores", "chips")]
            yield "h3", "Per layer"
            yield "table", (["layer", "cores"] + res_keys,
                            [[L["layer"], fmt(L["cores"])] + [L[k]["text"] if k in L else "" for k in res_keys]
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
                            [[d["class"], d["module"], d["origin"], fmt(d["count"])] for d in art["lava_processes"]])
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
                        f"{fmt(est['synaptic_ops'])} synaptic ops and {fmt(est['neuron_updates'])} neuron updates over "
                        f"{est['time_steps']} steps. Assumptions: " + "; ".join(est["assumptions"]) + ".")
        if t.get("profile_numbers"):
            yield "h3", "Profile numbers used"
            yield "table", (["key", "value", "used for", "confidence", "source"],
                            [[n["key"], fmt(n["value"]) if not isinstance(n["value"], list) else f"list of {len(n['value'])}",
                              n["used_for"], f"{{conf:{n['confidence']}}}", n["source"]] for n in t["profile_numbers"]])
        for w in t["warnings"]:
            yield "p", f"Warning: {w}"
        for n in t["notes"]:
            yield "p", f"Note: {n}"
    b = doc["budgets"]
    if b["checks"]:
        yield "h2", "Budgets"
        yield "table", (["budget", "target", "limit", "value", "result"],
                        [[c["budget"], c["target"] or "-", fmt(c["limit"]), fmt(c["value"]),
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
        yield "p", (f"Full-rate bound: the attention alone needs at least **{fmt(bound['product_neurons'])} product "
                    f"neurons ({fmt(bound['cores'])} cores, {fmt(bound['chips'])} chip{'s' if bound['chips'] != 1 else ''})** in any exact schedule at full "
                    f"sample rate built from Lava's standard processes; this network has "
                    f"{fmt(bound.get('built_product_neurons', 0))}. The resource that sets it: {bound['resource']}. "
                    f"It holds for {bound['holds_for']}; {bound['note']}.")
        alt = bound.get("at_neuron_slots")
        if bound.get("per_core_confidence") == "assumption" and alt:
            yield "p", (f"The {fmt(bound['per_core'])} product neurons per core of this bound are an **assumption** "
                        f"({bound.get('per_core_source', '')}); if a product neuron took one neuron slot "
                        f"({fmt(alt['per_core'])} per core) the bound would be {fmt(alt['cores'])} cores, "
                        f"{fmt(alt['chips'])} chip{'s' if alt['chips'] != 1 else ''}.")
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
                     fmt(r["cores"]), fmt(r["chips"]), r["system"] or "-", fmt(r["latency_steps"]),
                     fmt(r["latency_ms"]) if r.get("latency_ms") is not None else "-",
                     fmt(r["energy_uj"]) if r.get("energy_uj") is not None else "-",
                     "yes" if r["within_budget"] else "no", "yes" if r["name"] in front else "no",
                     fmt(r.get("lowering_s"))])
    yield "table", (["configuration", "verdict", "cores", "chips", "smallest system", "latency (steps)",
                     "latency (ms)", "energy (uJ)", "within budget", "Pareto", "lowering + mapping (s)"], rows)

MARK = re.compile(r"\{(conf|v):([a-z_]+)\}")
