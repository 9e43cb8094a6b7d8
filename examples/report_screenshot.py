"""Screenshot of the deployment report's summary card (the README's docs/img/summary-card.png).

    python examples/report_screenshot.py [-o docs/img/summary-card.png] [--model spikingformer-digits]
                                         [--target loihi2 --target speck] [--samples 8] [--dark]

Builds the report, renders the HTML page, keeps the title and the summary card, and lets headless Chromium
(Debian's /usr/bin/chromium; `make chromium` installs it) take the picture; the PNG is trimmed to the card and
stored with a 64-colour palette to stay small.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def card_page(html_text: str) -> str:
    """The report page cut after the summary card (title + card)."""
    end = html_text.index("</section>") + len("</section>")
    return html_text[:end] + "\n</body></html>\n"


def screenshot(html_text: str, out: Path, width: int = 1200, dark: bool = False) -> Path:
    from PIL import Image, ImageChops  # matplotlib's dependency

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium (or make chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        page, raw = Path(tmp) / "card.html", Path(tmp) / "raw.png"
        page.write_text(card_page(html_text), encoding="utf-8")
        cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}", f"--window-size={width},1000",
               *(["--force-dark-mode"] if dark else []), f"--screenshot={raw}", page.as_uri()]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0 or not raw.exists():
            raise SystemExit(f"chromium failed ({r.returncode}): {r.stderr[-500:]}")
        im = Image.open(raw).convert("RGB")
        bg = Image.new("RGB", im.size, im.getpixel((0, 0)))
        box = ImageChops.difference(im, bg).getbbox()  # trim the empty page below and beside the card
        if box:
            pad = 12
            im = im.crop((max(0, box[0] - pad), max(0, box[1] - pad), min(im.width, box[2] + pad),
                          min(im.height, box[3] + pad)))
        out.parent.mkdir(parents=True, exist_ok=True)
        im.quantize(colors=64).save(out, optimize=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default="docs/img/summary-card.png")
    ap.add_argument("--model", default="spikingformer-digits")
    ap.add_argument("--target", action="append", default=[])
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--dark", action="store_true", help="the dark colour scheme")
    args = ap.parse_args(argv)
    from neurodeploy.report import build_report
    from neurodeploy.report.render import render

    doc = build_report(args.model, targets=args.target or ["loihi2", "speck"], samples=args.samples)
    out = screenshot(render(doc, "html"), Path(args.output), dark=args.dark)
    from PIL import Image

    w, h = Image.open(out).size
    print(f"summary card: {out} ({w}x{h} px, {out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
