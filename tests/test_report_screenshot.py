"""examples/report_screenshot.py makes the README's picture of the summary card (headless Chromium)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_summary_card_screenshot_script(tmp_path):
    from PIL import Image

    out = tmp_path / "card.png"
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "report_screenshot.py"), "-o", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"summary card: {out}" in r.stdout
    print(r.stdout.strip())
    im = Image.open(out)
    # the title and the card only (trimmed), a palette image: small enough to commit
    assert im.mode == "P" and 600 < im.width <= 1200 and 150 < im.height < 900
    assert out.stat().st_size < 100_000


def test_readme_shows_the_committed_card():
    img = ROOT / "docs" / "img" / "summary-card.png"
    assert img.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and img.stat().st_size < 100_000
    assert "docs/img/summary-card.png" in (ROOT / "README.md").read_text()


def test_card_page_keeps_title_and_card_only():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from report_screenshot import card_page
    finally:
        sys.path.pop(0)
    page = ('<html><body><h1>T</h1><section id="summary" class="card"><table></table></section>'
            '<section id="side-by-side"></section></body></html>')
    assert card_page(page) == ('<html><body><h1>T</h1><section id="summary" class="card"><table></table></section>'
                               "\n</body></html>\n")
