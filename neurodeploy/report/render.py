"""Render a report dict as JSON, Markdown (``markdown``) or one self-contained HTML file (``html_page``); what
the report says, in which order, is written once in ``sections``; the plots are drawn in ``plots``."""
from __future__ import annotations

import json

from .html_page import html_page
from .markdown import markdown


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
