"""The `view` page in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright for
Python, loading the page from disk (file://). No console errors; the lanes and the crash marker are in
the DOM; hovering the crash tick on the canvas shows its error; a screenshot is written and is not blank;
a diff view marks the first divergence.

Skipped, saying why, when Playwright or a Chromium executable is missing (``.ci/run`` installs Debian's
chromium when it runs as root with apt). ``NKREPLAY_CHROMIUM`` names another executable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from replay.cli import main
from tests.common.browser import chromium_context, find_chromium
from tests.common.paths import ROOT

CRASH = ROOT / "fixtures" / "recordings" / "arena-reconnect-crash.nkrec"
HANDLERS = ROOT / "fixtures" / "handlers"
pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)")
pytest.importorskip("PIL", reason="Pillow is not installed (the screenshot check decodes the PNG with it)")
CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium executable (apt-get install chromium, or set NKREPLAY_CHROMIUM)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert CHROMIUM is not None
    with chromium_context(CHROMIUM) as context:
        yield context


def _open(browser: Any, page_path: Path) -> tuple[Any, list[str]]:
    page = browser.new_page()
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: problems.append(f"request {r.url}") if not r.url.startswith("file://") else None)
    page.goto(page_path.as_uri())
    page.wait_for_function("window.nkTimeline && window.nkTimeline.ready", timeout=30_000)
    return page, problems


def _hover_tick(page: Any, tick: int) -> None:
    box = page.locator("#canvas").bounding_box()
    x = page.evaluate(f"nkTimeline.xOf({tick})")
    page.mouse.move(box["x"] + x, box["y"] + 70)


def test_crash_page_lanes_marker_hover_and_screenshot(browser: Any, tmp_path: Path) -> None:
    out = tmp_path / "crash.html"
    assert main(["view", str(CRASH), "-o", str(out)]) == 0
    page, problems = _open(browser, out)
    try:
        lanes = page.locator("#labels .row-label.lane")
        assert lanes.count() == 3
        assert [lanes.nth(i).inner_text().split()[0] for i in range(3)] == ["alice", "bob", "cho"]
        assert (
            page.locator('#labels .row-label.lane[data-user-id="9c7b5a6e-5d31-5990-9eaa-abe11f2827eb"]').get_attribute(
                "data-sessions"
            )
            == "2"
        )  # bob reconnected
        marker = page.locator("#crash-marker")
        assert marker.get_attribute("data-tick") == "58" and marker.is_visible()
        _hover_tick(page, 30)
        page.wait_for_function("document.getElementById('details').dataset.tick === '30'")
        assert "KeyError" not in page.locator("#details").inner_text()
        _hover_tick(page, 58)
        page.wait_for_function("document.getElementById('details').dataset.tick === '58'")
        text = page.locator("#details").inner_text()
        assert "CRASH in match_loop at tick 58" in text
        assert "KeyError: 'be143068-e8b3-5322-b98d-44347b7899e5'" in text and "arena.py" in text
        assert '"dx": -1' in text  # bob's old session's input, pretty-printed
        _hover_tick(page, 10)
        marker.hover()  # the DOM marker shows the crash too
        page.wait_for_function("document.getElementById('details').dataset.tick === '58'")
        shot = tmp_path / "crash.png"
        page.screenshot(path=str(shot))
        _assert_not_blank(shot)
        assert problems == []
    finally:
        page.close()


def test_zoom_and_pan_keep_drawing(browser: Any, tmp_path: Path) -> None:
    out = tmp_path / "crash.html"
    assert main(["view", str(CRASH), "-o", str(out)]) == 0
    page, problems = _open(browser, out)
    try:
        box = page.locator("#canvas").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 60)
        page.mouse.wheel(0, -600)  # zoom in around the cursor
        view = page.evaluate("({start: nkTimeline.view.start, span: nkTimeline.view.span})")
        assert view["span"] < 59
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2 + 200, box["y"] + 60)
        page.mouse.up()
        assert page.evaluate("nkTimeline.view.start") < view["start"]  # dragged right: earlier ticks
        page.click("#zoom-fit")
        assert page.evaluate("nkTimeline.view.span") == 59
        assert problems == []
    finally:
        page.close()


def test_diff_page_marks_the_first_divergence(browser: Any, tmp_path: Path) -> None:
    out = tmp_path / "diff.html"
    assert (
        main(
            [
                "view",
                str(CRASH),
                "--handler",
                str(HANDLERS / "arena.py"),
                "--against",
                str(HANDLERS / "arena_fixed.py"),
                "--in-process",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    page, problems = _open(browser, out)
    try:
        assert page.locator("#divergence-marker").get_attribute("data-tick") == "58"
        page.locator("#divergence-marker").hover()
        page.wait_for_function("document.getElementById('details').dataset.tick === '58'")
        text = page.locator("#divergence-detail").inner_text()
        assert "FIRST DIVERGENCE in match_join at tick 58" in text and 'sessions["be143068' in text
        assert problems == []
    finally:
        page.close()


def _assert_not_blank(png: Path) -> None:
    from PIL import Image, ImageStat

    with Image.open(png) as im:
        grey = im.convert("L")
        stat = ImageStat.Stat(grey)
        assert grey.size[0] >= 800 and stat.var[0] > 100, f"screenshot looks blank (variance {stat.var[0]:.1f})"
        colours = im.convert("RGB").getcolors(1 << 20)
        assert colours is not None and len(colours) > 20
