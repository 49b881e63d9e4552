"""The browser harness works end to end: Chromium opens a page of a live meterpay.

The console's pages need a signed-in operator now, so the smoke test opens the one page
everyone may see, the staff sign-in form; real browser tests sign in first.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.artifacts import screenshot
from tests.e2e.live import LiveApp

pytestmark = pytest.mark.e2e


def test_the_sign_in_page_renders_in_a_browser_without_console_errors(
    live_app: LiveApp, page: Page
) -> None:
    """The staff sign-in form shows its title and fields, and the browser logs no error."""
    response = page.goto(f"{live_app.url}/sign-in")
    assert response is not None and response.ok
    expect(page).to_have_title("登录运营控制台 · meterpay")
    expect(page.get_by_role("textbox", name="用户名")).to_be_visible()
    expect(page.get_by_role("button", name="登录")).to_be_visible()
    screenshot(page, "smoke-sign-in")
