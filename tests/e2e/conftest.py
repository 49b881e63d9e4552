"""Fixtures for browser tests: meterpay served over a real socket, driven by Debian's Chromium.

Playwright launches ``/usr/bin/chromium`` (the Debian package); it never downloads a
browser of its own, so ``playwright install`` is never needed. Without that binary the
tests skip with a reason, except under CI (``CI=true``), where it is a failure.

Every page fails its test at teardown if the browser logged a console error or an
uncaught exception: a page that works but shouts in the console is not done. The live
server is ``tests.e2e.live``; screenshots go to ``test-artifacts/``
(``tests.e2e.artifacts.screenshot``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    ViewportSize,
    sync_playwright,
)

from tests.e2e.live import LiveApp, serving

CHROMIUM = Path("/usr/bin/chromium")
DESKTOP = ViewportSize(width=1366, height=900)
PHONE = ViewportSize(width=390, height=844)
WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50(0x1800322c) NetType/WIFI"
    " Language/zh_CN"
)


@dataclass
class BrowserComplaints:
    """What a page logged as broken: console errors and uncaught exceptions."""

    seen: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        where = message.location.get("url", "")
        if message.type == "error" and not _implicit_favicon(where):
            self.seen.append(f"console error: {message.text}" + (f" ({where})" if where else ""))

    def uncaught(self, error: Error) -> None:
        self.seen.append(f"uncaught {error.name}: {error.message}")


def _implicit_favicon(url: str) -> bool:
    """Chromium asks every origin for ``/favicon.ico`` by itself and logs a 404 for it as
    a console error; no page asked for it, so it is not the page's error."""
    return urlsplit(url).path == "/favicon.ico"


@pytest.fixture
def live_app(tmp_path: Path) -> Iterator[LiveApp]:
    """meterpay serving an empty, migrated database (``tests.e2e.live``)."""
    with serving(tmp_path / "meterpay.db") as app:
        yield app


# Package scope, not session: Playwright's sync API keeps its asyncio loop marked as
# running on the main thread while it is started, which would break every later test
# that calls asyncio.run(). Tearing it down when tests/e2e ends avoids that.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}")
        pytest.skip(reason)
    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()
    finally:
        playwright.stop()


def _watched(context: BrowserContext) -> Iterator[Page]:
    """A page of ``context`` whose console errors and uncaught exceptions fail the test."""
    complaints = BrowserComplaints()
    page = context.new_page()
    page.on("console", complaints.console)
    page.on("pageerror", complaints.uncaught)
    try:
        yield page
    finally:
        context.close()
    if complaints.seen:
        pytest.fail("the browser complained:\n" + "\n".join(complaints.seen), pytrace=False)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh desktop browser tab in Chinese and China's time zone; watched."""
    context = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
    yield from _watched(context)


@pytest.fixture
def phone_page(browser: Browser) -> Iterator[Page]:
    """A fresh phone tab, as an owner opening a link inside WeChat; watched like ``page``."""
    context = browser.new_context(
        viewport=PHONE,
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
        user_agent=WECHAT_UA,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
    )
    yield from _watched(context)
