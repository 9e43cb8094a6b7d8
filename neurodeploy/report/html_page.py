"""The report as one self-contained HTML page: the shared sections, inline SVG plots, inline CSS for light and
dark schemes, no scripts, no network access."""
from __future__ import annotations

import html
import re

from .plots import plots
from .sections import MARK, sections


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
    body = MARK.sub(sub, t)
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
    for kind, body in sections(doc):
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
