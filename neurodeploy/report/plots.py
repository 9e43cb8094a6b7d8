"""The report's plots: inline SVG drawn by matplotlib, text and axes in the page's current colour (light and dark
schemes)."""
from __future__ import annotations

import io

from .sections import fmt, pareto

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
        ax.set_title(f"{t['target']}: {fmt(t['cores'])} cores", fontsize=9)
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
