"""Renderers for a purity report: text table, JSON (versioned schema), JUnit XML, SARIF 2.1.0.

JSON follows ``purity_report.schema.json`` (shipped next to this module, ``schema_version`` 1).
JUnit: one ``testsuite`` per model with one ``testcase`` per synaptic node: a ``failure`` for a
violation, ``skipped`` for an exception allowed with ``--allow``, an ``error`` per internal error of the
dynamic check.  SARIF: one result per violation (level ``error``) and per allowed exception (level
``note`` with an external suppression), rules ``spike-purity/int-x-float`` and ``spike-purity/float-mac``;
the location is the model file, with the source module path as a logical location.
"""
from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from importlib import resources

from .purity import PurityReport, SynapticOp
from ..version import __version__

FORMATS = ("text", "json", "junit", "sarif")
SARIF_SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
RULES = {
    "INTxFLOAT": ("spike-purity/int-x-float", "Synaptic layer reads integers (integer x float multiply)",
                  "A synaptic layer whose input is an integer range (sums of spikes, counts) multiplies each "
                  "integer by a float weight; a spike-driven layer only accumulates weights of binary spikes."),
    "MAC": ("spike-purity/float-mac", "Synaptic layer reads real values (float multiply-accumulate)",
            "A synaptic layer whose input is real-valued does a float multiply-accumulate per synapse."),
    "MAX": ("spike-purity/max-of-reals", "Max-pool of real values (compare-select on membrane potentials)",
            "A max-pool of real values (BN outputs before a LIF) compares membrane potentials: no multiplies, but "
            "not spike-driven (a max of spikes is an OR)."),
}


def report_schema() -> dict:
    """The JSON schema of ``format_json`` output."""
    return json.loads((resources.files(__package__) / "purity_report.schema.json").read_text(encoding="utf-8"))


def _model_name(report: PurityReport) -> str:
    m = report.extra.get("model", {})
    return str(m.get("name") or m.get("path") or m.get("arch") or "model")


def format_json(report: PurityReport) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=False) + "\n"


def _status(op: SynapticOp) -> str:
    if op.pure:
        return "ok"
    if op.allowed:
        return f"allowed ({op.role})" if op.role else "allowed (by name)"
    return "VIOLATION"


def format_text(report: PurityReport) -> str:
    lines = []
    m = report.extra.get("model", {})
    lines.append(f"neurodeploy check: {_model_name(report)}  (arch {m.get('arch', '?')}, input declared "
                 f"{report.analysis.input_domain}, allow: {', '.join(report.allow) or 'nothing'})")
    lines.append("")
    rows = [("node", "op", "class", "input domain", "status")]
    for op in report.ops:
        rows.append((op.node, op.op, op.op_class, op.input_domain.text(), _status(op)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    s = report.summary()
    lines.append("")
    lines.append("classes: " + ", ".join(f"{k} {v}" for k, v in s["classes"].items() if v))
    notes = [op for op in report.ops if op.op == "Attention" or op.op_class in ("SHIFT", "FOLDED")]
    for op in notes:
        lines.append(f"  {op.node}: {op.detail}")
    if report.exceptions:
        lines.append("")
        lines.append(f"allowed exceptions ({len(report.exceptions)}):")
        for op in report.exceptions:
            lines.append(f"  {op.node} [{op.role or 'by name'}]: {op.op_class}, input {op.input_domain.text()}")
    if report.violations:
        lines.append("")
        lines.append(f"violations ({len(report.violations)}):")
        for i, op in enumerate(report.violations, 1):
            lines.append(f"  {i}. {op.node}  (source {op.source}, {op.op}, {op.op_class})")
            lines.append(f"     input: {op.input_domain.text()}")
            lines.append(f"     why:   {op.why}")
            lines.append(f"     fix:   {op.hint}")
    sums = report.integer_sums()
    if sums:
        lines.append("")
        lines.append("integer sums of spikes that reach synaptic layers (where the integers start):")
        for sm in sums:
            lines.append(f"  into {sm['at']}: {' + '.join(sm['edges'])} -> {sm['domain']}; feeds "
                         f"{', '.join(sm['feeds'])}")
    fold = report.extra.get("folding")
    if fold:
        v = fold.get("verification", {})
        lines.append("")
        lines.append(f"readout folded: {len(fold.get('branches', []))} accumulate branches replace "
                     f"{', '.join(r['head'] for r in fold.get('readouts', []))}; logits equal by simulation: "
                     f"{v.get('equal')} (max |diff| {v.get('max_abs_diff', 0):.3g} over {v.get('samples')} samples)")
    dyn = report.extra.get("dynamic")
    if dyn:
        lines.append("")
        lines.append(f"dynamic check: {dyn['samples']} samples x {dyn['time_steps']} steps ({dyn.get('data', '')}); "
                     f"internal errors: {len(dyn['internal_errors'])}")
        for e in dyn["internal_errors"]:
            lines.append(f"  {e}")
        rates = dyn.get("firing_rates", {})
        if rates:
            lines.append("  firing rates (spikes per neuron per step):")
            for n, r in rates.items():
                lines.append(f"    {n:<40s} {r:.4f}")
    lines.append("")
    exc = f" apart from {len(report.exceptions)} allowed exception(s)" if report.exceptions else ""
    if report.pure:
        lines.append(f"verdict: SPIKE-PURE{exc}")
    else:
        lines.append(f"verdict: NOT SPIKE-PURE ({len(report.violations)} violation(s))")
    return "\n".join(lines) + "\n"


def format_junit(report: PurityReport, elapsed: float = 0.0) -> str:
    name = _model_name(report)
    dyn = report.extra.get("dynamic") or {}
    errors = list(dyn.get("internal_errors", []))
    tests = len(report.ops) + len(errors)
    failures = len(report.violations)
    skipped = len(report.exceptions)
    root = ET.Element("testsuites", name="neurodeploy check", tests=str(tests), failures=str(failures),
                      errors=str(len(errors)), skipped=str(skipped), time=f"{elapsed:.3f}")
    suite = ET.SubElement(root, "testsuite", name=f"spike-purity {name}", tests=str(tests), failures=str(failures),
                          errors=str(len(errors)), skipped=str(skipped), time=f"{elapsed:.3f}",
                          timestamp=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                          hostname=socket.gethostname() or "localhost")
    props = ET.SubElement(suite, "properties")
    for k, v in (("input_domain", report.analysis.input_domain), ("allow", ",".join(report.allow)),
                 ("verdict", "spike-pure" if report.pure else "not spike-pure")):
        ET.SubElement(props, "property", name=k, value=v)
    classname = f"spike_purity.{name}"
    for op in report.ops:
        case = ET.SubElement(suite, "testcase", classname=classname, name=op.node, time="0")
        if op.violation:
            fail = ET.SubElement(case, "failure", message=f"{op.op_class}: {op.why}", type=op.op_class)
            fail.text = (f"node {op.node} (source {op.source}, {op.op})\ninput: {op.input_domain.text()}\n"
                         f"why: {op.why}\nfix: {op.hint}\n")
        elif op.allowed:
            ET.SubElement(case, "skipped", message=f"allowed exception ({op.role or 'by name'}): {op.op_class}, "
                                                   f"input {op.input_domain.text()}")
    for i, e in enumerate(errors):
        case = ET.SubElement(suite, "testcase", classname=classname, name=f"dynamic-check-{i}", time="0")
        err = ET.SubElement(case, "error", message=e, type="InternalError")
        err.text = e
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def format_sarif(report: PurityReport, artifact_uri: str | None = None) -> str:
    uri = artifact_uri or str(report.extra.get("model", {}).get("path") or _model_name(report))
    rules = []
    for cls, (rid, short, full) in RULES.items():
        rules.append({"id": rid, "name": rid.split("/")[-1], "shortDescription": {"text": short},
                      "fullDescription": {"text": full}, "defaultConfiguration": {"level": "error"}})
    index = {cls: i for i, cls in enumerate(RULES)}
    results = []
    for op in report.ops:
        if op.pure:
            continue
        rid = RULES[op.op_class if op.op_class in RULES else "MAC"][0]
        text = (f"{op.node} ({op.op}, source {op.source}) is not spike-driven: {op.why}. Fix: {op.hint}")
        res = {
            "ruleId": rid,
            "ruleIndex": index[op.op_class if op.op_class in RULES else "MAC"],
            "level": "note" if op.allowed else "error",
            "message": {"text": text},
            "locations": [{
                "physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": 1}},
                "logicalLocations": [{"fullyQualifiedName": op.source, "name": op.node, "kind": "module"}],
            }],
            "partialFingerprints": {"nodeName/v1": op.node},
            "properties": {"class": op.op_class, "inputDomain": op.input_domain.text(), "role": op.role},
        }
        if op.allowed:
            res["suppressions"] = [{"kind": "external", "justification": f"allowed with --allow {op.role or op.node}"}]
        results.append(res)
    log = {
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "neurodeploy", "version": __version__, "semanticVersion": __version__,
                                "rules": rules}},
            "artifacts": [{"location": {"uri": uri}}],
            "results": results,
            "properties": {"verdict": "spike-pure" if report.pure else "not spike-pure",
                           "inputDomain": report.analysis.input_domain, "allow": list(report.allow)},
        }],
    }
    return json.dumps(log, indent=2) + "\n"


def render(report: PurityReport, fmt: str, artifact_uri: str | None = None, elapsed: float = 0.0) -> str:
    if fmt == "text":
        return format_text(report)
    if fmt == "json":
        return format_json(report)
    if fmt == "junit":
        return format_junit(report, elapsed)
    if fmt == "sarif":
        return format_sarif(report, artifact_uri)
    raise ValueError(f"unknown format {fmt!r}")
