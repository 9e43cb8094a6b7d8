"""The HTML report is one self-contained file that renders in headless Chromium without console errors and
without network requests; the summary card comes first and names every target's verdict.

Needs Debian's chromium at /usr/bin/chromium (`apt-get install -y chromium`; the Makefile's test target
installs it)."""
import json
import re
import subprocess
from pathlib import Path

import pytest

from neurodeploy.cli import main

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


def _chromium(page: Path, tmp: Path, *extra) -> subprocess.CompletedProcess:
    assert Path(CHROMIUM).exists(), "chromium is missing: apt-get install -y chromium (make test installs it)"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


def _console_messages(stderr: str) -> list[str]:
    """Chromium logs every console message (and uncaught error) of the page as a CONSOLE line."""
    return [ln for ln in stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln or "net::ERR" in ln]


def _page_requests(netlog: Path) -> list[str]:
    """URLs the page itself asked for (Chromium's own background requests have no file:// isolation key);
    file: and data: URLs are the page and its inline content, not network requests."""
    d = json.loads(netlog.read_text())
    start = d["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [e["params"]["url"] for e in d["events"]
            if e["type"] == start and "file://" in e["params"].get("network_isolation_key", "")
            and not e["params"]["url"].startswith(("file:", "data:"))]


def test_network_detector_catches_requests(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="http://192.0.2.1/x.png"></body></html>')
    _chromium(bad, tmp_path, f"--log-net-log={tmp_path / 'net.json'}", "--dump-dom")
    assert _page_requests(tmp_path / "net.json") == ["http://192.0.2.1/x.png"]


def test_console_detector_catches_errors(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><script>console.error("boom"); undefinedCall();</script></body></html>')
    r = _chromium(bad, tmp_path, "--dump-dom")
    assert any("boom" in m for m in _console_messages(r.stderr)), r.stderr[-2000:]


@pytest.mark.slow
def test_html_report_in_chromium(tmp_path):
    page = tmp_path / "report.html"
    assert main(["report", "spikingformer-digits", "--samples", "8", "--target", "loihi2", "--target", "speck",
                 "--format", "html", "-o", str(page)]) == 0
    text = page.read_text()
    # self-contained: no external resources, plots are inline SVG drawn in the page's colour
    assert not re.search(r"(src|href)=\"(https?:)?//", text) and "<img" not in text
    assert text.count("<svg") == 5 and "currentColor" in text and "prefers-color-scheme:dark" in text
    r = _chromium(page, tmp_path, f"--log-net-log={tmp_path / 'net.json'}", "--dump-dom")
    assert r.returncode == 0, r.stderr[-2000:]
    assert _console_messages(r.stderr) == []
    assert _page_requests(tmp_path / "net.json") == []
    dom = r.stdout
    # the summary card is the first section, right after the title, and holds every target's verdict
    body = dom[dom.index("<body>"):]
    first = re.search(r"<(section|h2|table|figure|p)\b[^>]*>", body)
    assert first.group(0) == '<section id="summary" class="card">', first.group(0)
    card = body[first.start():body.index("</section>")]
    assert re.search(r'<td>loihi2</td><td><span class="fits">fits</span></td>', card)
    assert re.search(r'<td>speck</td><td><span class="cannot">cannot deploy: patch_embed.block1_lif: ', card)
    ids = re.findall(r'<section id="([a-z-]+)"', dom)
    assert ids == ["summary", "side-by-side", "plots", "assumptions", "details"]
    assert dom.count("<svg") == 5 and "Target loihi2" in dom and "CANNOT DEPLOY" in dom
    for scheme, extra in (("light", ()), ("dark", ("--force-dark-mode",))):
        shot = tmp_path / f"report-{scheme}.png"
        r = _chromium(page, tmp_path, "--window-size=1200,1400", "--hide-scrollbars", *extra, f"--screenshot={shot}")
        assert r.returncode == 0 and _console_messages(r.stderr) == []
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
        print(f"screenshot ({scheme} scheme): {shot}")
