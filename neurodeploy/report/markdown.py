"""The report as Markdown: the shared sections, marks as [level], no plots."""
from __future__ import annotations

from .sections import MARK, sections


def _md_cell(text) -> str:
    t = MARK.sub(lambda m: f"[{m.group(2)}]" if m.group(1) == "conf" else "", str(text))
    return t.replace("|", "\\|")


def markdown(doc: dict) -> str:
    out = [f"# Deployment report: {doc['model']['name']}", ""]
    for kind, body in sections(doc):
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
