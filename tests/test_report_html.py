"""The HTML report is one self-contained file that renders in headless Chromium without console errors.

Needs Debian's chromium at /usr/bin/chromium (`apt-get install -y chromium`; the Makefile's test target
installs it)."""
import base64
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


def test_console_detector_catches_errors(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><script>console.error("boom"); undefinedCall();</script></body></html>')
    r = _chromium(bad, tmp_path, "--dump-dom")
    assert any("boom" in m for m in _console_messages(r.stderr)), r.stderr[-2000:]


def test_html_report_renders_without_console_errors(tmp_path):
    page = tmp_path / "report.html"
    assert main(["report", "spikingformer-digits", "--samples", "8", "--target", "loihi2", "--target", "speck",
                 "--format", "html", "-o", str(page)]) == 0
    text = page.read_text()
    # self-contained: no external resources, plots inline
    assert not re.search(r"(src|href)=\"(https?:)?//", text)
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(imgs) == 3
    for b in imgs:
        assert base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n"
    r = _chromium(page, tmp_path, "--dump-dom")
    assert r.returncode == 0, r.stderr[-2000:]
    assert _console_messages(r.stderr) == []
    dom = r.stdout
    assert "Deployment report: spikingformer-digits" in dom and "Target loihi2" in dom and "DOES NOT FIT" in dom
    assert dom.count("<img") == 3
    shot = tmp_path / "shot.png"
    r = _chromium(page, tmp_path, "--window-size=1200,2400", f"--screenshot={shot}")
    assert r.returncode == 0 and _console_messages(r.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
