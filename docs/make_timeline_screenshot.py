"""Rebuild docs/timeline-crash.png: the bundled crash's timeline in headless Chromium, the crash tick hovered.

    python docs/make_timeline_screenshot.py [--chromium /usr/bin/chromium]

Needs the test extras (playwright, pillow) and Debian's chromium. The PNG is quantised to 64 colours so
that it stays small (about 30 KB).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.common.browser: the browser test's Chromium setup


def main() -> int:
    from PIL import Image

    from replay.cli import main as cli
    from tests.common.browser import chromium_context, find_chromium

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chromium", default=find_chromium(), help="the Chromium executable (default: on PATH)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        page_path = Path(tmp) / "crash.html"
        shot = Path(tmp) / "crash.png"
        if cli(["view", str(ROOT / "fixtures/recordings/arena-reconnect-crash.nkrec"), "-o", str(page_path)]) != 0:
            return 1
        if not args.chromium:
            print("no Chromium: apt-get install chromium, or pass --chromium PATH", file=sys.stderr)
            return 1
        with chromium_context(args.chromium, viewport=(1100, 720)) as browser:
            page = browser.new_page()
            page.goto(page_path.as_uri())
            page.wait_for_function("window.nkTimeline && window.nkTimeline.ready")
            box = page.locator("#canvas").bounding_box()
            page.mouse.move(box["x"] + page.evaluate("nkTimeline.xOf(58)"), box["y"] + 100)
            page.wait_for_function("document.getElementById('details').dataset.tick === '58'")
            page.screenshot(path=str(shot))
        out = ROOT / "docs" / "timeline-crash.png"
        Image.open(shot).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
