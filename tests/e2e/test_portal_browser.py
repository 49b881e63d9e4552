"""An owner on a phone (WeChat's browser): signs in with the SMS code shown on the page,
sees the balance, tops up through the payment sandbox and sees the balance rise — the
sandbox's signed notification credits the account while the owner waits."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from meterpay.kernel.money import Money
from meterpay.ledger.service import cash_top_up
from meterpay.sites import service as sites
from tests.e2e.artifacts import screenshot
from tests.e2e.live import LiveApp
from tests.e2e.steps import owner_signs_in_with_a_code
from tests.integration.builders import ACTOR, a_home

pytestmark = pytest.mark.e2e
PHONE = "13900003333"


def test_an_owner_tops_up_on_a_phone_and_sees_the_balance_rise(
    live_app: LiveApp, phone_page: Page
) -> None:
    rt = live_app.rt
    home = a_home(rt)
    me = sites.create_customer(rt, site_id=home.site.id, name="李四", phone=PHONE, actor=ACTOR)
    sites.update_account(rt, home.account.id, customer_id=me.id, actor=ACTOR)
    cash_top_up(
        rt,
        account_id=home.account.id,
        amount=Money.from_yuan("10.00"),
        idempotency_key="e2e-opening",
        cashier=ACTOR,
    )
    page = phone_page
    owner_signs_in_with_a_code(page, live_app.url, PHONE)
    expect(page.get_by_text("¥10.00").first).to_be_visible()
    screenshot(page, "portal-home")
    page.locator(f'a[href^="/portal/accounts/{home.account.id}"]').first.click()
    expect(page.locator("#balance")).to_have_text("¥10.00")
    page.get_by_label(re.compile("其他金额|其他")).fill("50")
    screenshot(page, "portal-account")
    page.get_by_role("button", name=re.compile("去支付")).click()
    page.get_by_role("button", name=re.compile("确认支付")).click()
    for _ in range(50):  # the notification arrives on its own, signed by the sandbox
        page.goto(f"{live_app.url}/portal/accounts/{home.account.id}")
        if page.locator("#balance").inner_text() == "¥60.00":
            break
        page.wait_for_timeout(200)
    expect(page.locator("#balance")).to_have_text("¥60.00")
    screenshot(page, "portal-after-top-up")
