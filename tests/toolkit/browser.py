"""A real browser for tests: Debian's chromium driven by Playwright for Python.

Playwright's own browser download is not used (and not reachable on our machines): chromium is
launched from CHROMIUM. Without it or without playwright a browser test skips with the reason,
unless MLRM_REQUIRE_BROWSER=1 (CI sets it), where it fails instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.toolkit.files import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path(os.environ.get("MLRM_CHROMIUM", "/usr/bin/chromium"))
WAIT_MS = 30_000  # how long an expect() on the page may wait
ARTIFACTS = ROOT / "test-artifacts"  # git-ignored: screenshots a test leaves for people to look at


def require_browser() -> None:
    """Skip (or, with MLRM_REQUIRE_BROWSER=1, fail) when chromium or playwright is missing."""
    missing = None
    if not (CHROMIUM.is_file() or shutil.which(str(CHROMIUM))):
        missing = f"no chromium at {CHROMIUM} (Debian: apt-get install chromium; or set MLRM_CHROMIUM)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "playwright is not installed (pip install -e '.[dev]')"
    if missing is None:
        return
    if os.environ.get("MLRM_REQUIRE_BROWSER") == "1":
        pytest.fail(f"MLRM_REQUIRE_BROWSER=1, but {missing}")
    pytest.skip(missing)


@dataclass
class Console:
    """What the page said: console errors and uncaught exceptions."""

    errors: list[str] = field(default_factory=list)

    def on_message(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location})")

    def on_error(self, error: Any) -> None:
        self.errors.append(f"uncaught: {error}")


@contextmanager
def page(width: int = 1400, height: int = 1000) -> Iterator[tuple[Page, Console]]:
    """A fresh chromium page that records its console errors."""
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    # Each expect() ends as soon as it holds; the bound is for a busy CI machine (5 s by default).
    expect.set_options(timeout=WAIT_MS)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            opened = browser.new_page(viewport={"width": width, "height": height})
            console = Console()
            opened.on("console", console.on_message)
            opened.on("pageerror", console.on_error)
            yield opened, console
        finally:
            browser.close()


def screenshot(opened: Page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/ and say where (pytest -s shows it; -ra lists it)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    opened.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path
