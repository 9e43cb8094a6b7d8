"""Render a report dict as JSON, Markdown, or one self-contained HTML file (inline PNG plots, inline CSS, no
scripts, no network access)."""
from __future__ import annotations

import base64
import html
import io
import json

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
def _sections(doc: dict):
    m = doc["model"]
    yield "h2", "Model"
    yield "table", (["item", "value"], [
        ["name", m["name"]], ["architecture", m["arch"]], ["weights", "untrained (random)" if m["untrained"] else "trained"],
        ["time steps T", m["time_steps"]], ["input", f"{m['input_encoding']} ({m['input_domain']})"],
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
        yield "h3", "NeuroBench-style metrics"
        yield "table", (["metric", "value"], [
            ["Effective_ACs", _f(so["Effective_ACs"])], ["Effective_MACs", _f(so["Effective_MACs"])], ["Dense", _f(so["Dense"])],
            ["ActivationSparsity", _f(nb["ActivationSparsity"], 4)], ["MembraneUpdates", _f(nb["MembraneUpdates"])],
            ["Footprint (bytes, float32)", _f(nb["Footprint"])], ["Footprint at 8-bit weights", _f(nb.get("Footprint_at_target_bits"))],
            ["ConnectionSparsity", _f(nb["ConnectionSparsity"])], ["ParameterCount", _f(nb["ParameterCount"])]])
        yield "p", "Notes: " + "; ".join(nb["notes"]) + "."
    lo = doc["lowering"]
    yield "h2", "Fidelity (Loihi 2 fixed point)"
    if lo.get("fidelity") is not None:
        yield "p", f"Prediction agreement float vs fixed point: **{100 * lo['fidelity']:.2f}%** on {lo['samples']} samples ({lo['note']})."
    else:
        yield "p", lo.get("note", "not run")
    for t in doc["targets"]:
        yield "h2", f"Target {t['target']} ({t['title']})"
        yield "p", f"**{'FITS' if t['fits'] else 'DOES NOT FIT'}** - mapped from {t['mapped_from']}."
        if t["violations"]:
            yield "table", (["rule", "layer", "message"], [[v["rule"], v["layer"], v["message"]] for v in t["violations"][:MAX_ROWS]])
        summary = [["cores", _f(t["cores"])], ["chips", _f(t["chips"])],
                   ["system", f"{t['system']} ({t['system_chips']} chips)" if t["system"] else "-"],
                   ["latency", f"{t['latency_steps']} time steps (T + pipeline depth {t['pipeline_depth']})"],
                   ["inter-chip spikes per step", f"{_f(t['interchip_spikes_per_step'])} ({t['interchip_note']})"]]
        if t["bottleneck"]:
            b = t["bottleneck"]
            summary.append(["bottleneck", f"{b['resource']}: the fullest resource on {b.get('binding_cores', '-'):,} of "
                                          f"{t['cores']:,} cores; peak core {b['peak_core_pct']:.1f}%, mean {b['mean_pct']:.1f}%"])
        yield "table", (["item", "value"], summary)
        if t["resources"]:
            yield "table", (["resource", "used / available (pct)"], [[r["resource"], r["text"]] for r in t["resources"]])
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
        est = t.get("energy_estimate")
        if est:
            yield "h3", "Energy estimate"
            yield "p", (f"{est['energy_uj']:.4g} uJ per inference (synaptic {est['breakdown_uj']['synaptic']:.4g}, "
                        f"neuron {est['breakdown_uj']['neuron']:.4g}, static {est['breakdown_uj']['static']:.4g} uJ) from "
                        f"{_f(est['synaptic_ops'])} synaptic ops and {_f(est['neuron_updates'])} neuron updates over "
                        f"{est['time_steps']} steps. Assumptions: " + "; ".join(est["assumptions"]) + ".")
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


def markdown(doc: dict) -> str:
    out = [f"# Deployment report: {doc['model']['name']}", ""]
    for kind, body in _sections(doc):
        if kind == "h2":
            out += [f"## {body}", ""]
        elif kind == "h3":
            out += [f"### {body}", ""]
        elif kind == "p":
            out += [body, ""]
        elif kind == "table":
            head, rows = body
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "---|" * len(head))
            for r in rows:
                out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
            out.append("")
    return "\n".join(out)


# -- plots ------------------------------------------------------------------------------------------------------
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plots(doc: dict) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out = []
    rates = doc["firing_rates"]["rates"]
    if rates:
        names = list(rates)[:60]
        fig, ax = plt.subplots(figsize=(8, max(2.5, 0.18 * len(names))))
        ax.barh(range(len(names)), [100 * rates[n] for n in names], color="#3b7dd8")
        ax.set_yticks(range(len(names)), names, fontsize=6)
        ax.invert_yaxis()
        ax.set_xlabel("firing rate (%)")
        ax.set_title("Firing rate per layer")
        out.append(("Firing rate per layer", _png(fig)))
    mapped = [t for t in doc["targets"] if t["resources"]]
    if mapped:
        fig, axes = plt.subplots(1, len(mapped[:4]), figsize=(4 * len(mapped[:4]), 3), squeeze=False)
        for ax, t in zip(axes[0], mapped[:4]):
            rs = [r for r in t["resources"] if r["pct"] is not None and "(system)" not in r["resource"]]
            ax.bar(range(len(rs)), [r["pct"] for r in rs], color="#2a9d8f")
            peaks = [r.get("peak_core_pct", r["pct"]) for r in rs]
            ax.plot(range(len(rs)), peaks, "v", color="#e76f51", label="fullest core")
            ax.set_xticks(range(len(rs)), [r["resource"] for r in rs], rotation=40, ha="right", fontsize=7)
            ax.set_ylim(0, 105)
            ax.set_ylabel("utilisation (%)")
            ax.set_title(f"{t['target']}: {t['cores']:,} cores", fontsize=9)
            ax.legend(fontsize=7)
        out.append(("Core utilisation", _png(fig)))
    e = doc["energy"]["paper"]
    if e:
        rows = sorted(e["layers"], key=lambda r: -r["energy_pj"])[:30]
        fig, ax = plt.subplots(figsize=(8, max(2.5, 0.2 * len(rows))))
        colors = ["#e9c46a" if r["macs"] else ("#9b5de5" if r["kind"] == "attention" else "#3b7dd8") for r in rows]
        ax.barh(range(len(rows)), [r["energy_pj"] * 1e-6 for r in rows], color=colors)
        ax.set_yticks(range(len(rows)), [r["name"] for r in rows], fontsize=6)
        ax.invert_yaxis()
        ax.set_xlabel("energy per inference (uJ); yellow MAC, blue AC, purple attention")
        ax.set_title(f"Energy breakdown ({e['energy_mj']:.3g} mJ total)")
        out.append(("Energy breakdown per layer", _png(fig)))
    return out


_CSS = """body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f0f0f0}h2{border-bottom:2px solid #3b7dd8;padding-bottom:3px}img{max-width:100%}
.fits{color:#1a7f37;font-weight:bold}.nofit{color:#c62828;font-weight:bold}"""


def _inline_md(text: str) -> str:
    t = html.escape(text)
    parts = t.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def html_page(doc: dict) -> str:
    title = f"Deployment report: {doc['model']['name']}"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    figs = plots(doc)
    if figs:
        out.append("<h2>Plots</h2>")
        for cap, src in figs:
            out.append(f'<figure><img alt="{html.escape(cap)}" src="{src}"><figcaption>{html.escape(cap)}</figcaption></figure>')
    for kind, body in _sections(doc):
        if kind in ("h2", "h3"):
            out.append(f"<{kind}>{html.escape(body)}</{kind}>")
        elif kind == "p":
            cls = ' class="fits"' if body.startswith("**FITS") else (' class="nofit"' if body.startswith("**DOES NOT") else "")
            out.append(f"<p{cls}>{_inline_md(body)}</p>")
        else:
            head, rows = body
            out.append("<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in head) + "</tr>")
            for r in rows:
                out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
            out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
