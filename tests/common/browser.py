"""Headless Chromium for the `view` page: Debian's ``chromium`` (never a downloaded browser) driven by
Playwright for Python, shared by the browser test and ``benchmarks/bench_view.py``."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: headless, and nothing that talks to the network on its own
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    """``NKREPLAY_CHROMIUM`` when set (None when it is not a file), else the first Chromium on PATH."""
    wanted = os.environ.get("NKREPLAY_CHROMIUM")
    if wanted:
        return wanted if Path(wanted).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@contextlib.contextmanager
def chromium_context(executable: str, viewport: tuple[int, int] = (1200, 800)) -> Iterator[Any]:
    """A persistent Playwright browser context on a fresh profile folder, removed afterwards."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="nkreplay-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                headless=True,
                args=FLAGS,
                viewport={"width": viewport[0], "height": viewport[1]},
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
