"""Staff at work in a real browser: a cashier takes cash and prints the receipt; an
operator asks for a group cut and a second operator approves it and sees the commands.
Every page is watched for console errors; screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import Browser, Page, expect

from meterpay.auth.model import Role
from meterpay.control import service as control
from meterpay.kernel.money import Money
from meterpay.metering import service as metering
from meterpay.metering.ingest import ingest_readings
from meterpay.metering.meters import ReadingIn, ReadingSource
from meterpay.sites import service as sites
from tests.e2e.artifacts import screenshot
from tests.e2e.conftest import DESKTOP
from tests.e2e.live import LiveApp
from tests.e2e.steps import staff_signs_in
from tests.integration.builders import ACTOR, a_home
from tests.integration.signed import staff_user

pytestmark = pytest.mark.e2e


def test_a_cashier_finds_an_account_takes_cash_and_prints_the_receipt(
    live_app: LiveApp, page: Page
) -> None:
    rt = live_app.rt
    home = a_home(rt)
    owner = sites.create_customer(
        rt, site_id=home.site.id, name="王芳", phone="13900002222", actor=ACTOR
    )
    sites.update_account(rt, home.account.id, customer_id=owner.id, actor=ACTOR)
    staff_user(rt, "cashier1", Role.CASHIER, home.site.id)
    staff_signs_in(page, live_app.url, "cashier1", then="/console/counter")
    page.goto(f"{live_app.url}/console/counter")
    page.get_by_placeholder("账户号、房号或业主手机号").fill("2222")
    page.get_by_role("button", name="查找").click()
    expect(page.get_by_text("王芳")).to_be_visible()
    page.get_by_label("金额（元）").first.fill("120.50")
    screenshot(page, "console-counter")
    page.get_by_role("button", name="收款并打印收据").first.click()
    expect(page).to_have_url(re.compile(r"/console/receipts/"))
    expect(page.get_by_text("壹佰贰拾元伍角")).to_be_visible()
    expect(page.get_by_text("cashier1")).to_be_visible()
    screenshot(page, "console-receipt")
    assert control.supply_view(rt, home.account.id).balance == Money.from_yuan("120.50")


def test_a_group_cut_needs_a_second_operator_and_then_its_commands_go_out(
    live_app: LiveApp, page: Page, browser: Browser
) -> None:
    rt = live_app.rt
    home = a_home(rt)
    metering.update_meter(rt, home.meter.id, actor=ACTOR, has_switch=True)  # a relay to cut
    staff_user(rt, "operator1", Role.OPERATOR, home.site.id)
    staff_user(rt, "operator2", Role.OPERATOR, home.site.id)
    staff_signs_in(page, live_app.url, "operator1")
    page.goto(f"{live_app.url}/console/control?site_id={home.site.id}")
    whole_site = page.locator("form.target").first
    whole_site.get_by_role("button", name="预览").click()
    expect(page.locator("#count-meters")).to_have_text("1")
    request = page.locator("form.request")
    request.get_by_label("原因").fill("主变检修 transformer maintenance")
    request.get_by_label("我已核对受影响范围").check()
    request.get_by_role("button", name="提交").click()
    expect(page.get_by_text("operator1").first).to_be_visible()
    screenshot(page, "console-control-requested")
    second = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
    try:
        other = second.new_page()
        staff_signs_in(other, live_app.url, "operator2")
        other.goto(f"{live_app.url}/console/control?site_id={home.site.id}")
        other.get_by_role("link", name=re.compile("审批|Decide|处理")).first.click()
        other.get_by_role("button", name=re.compile("批准并执行")).click()
        expect(other.get_by_text(re.compile("待发送|pending|已发送|sent")).first).to_be_visible()
        screenshot(other, "console-control-approved")
    finally:
        second.close()


def test_the_key_console_pages_render_without_console_errors(live_app: LiveApp, page: Page) -> None:
    """Every page an administrator opens in a day, with data on it, logs no browser
    error; a screenshot of each is kept."""
    rt = live_app.rt
    home = a_home(rt)
    at = rt.clock.now() - timedelta(hours=2)
    ingest_readings(
        rt, [ReadingIn(home.meter.id, at, Decimal("12.5"), ReadingSource.MANUAL)], actor=ACTOR
    )
    staff_user(rt, "admin1", Role.ADMIN)
    staff_signs_in(page, live_app.url, "admin1")
    site, account, meter = home.site.id, home.account.id, home.meter.id
    for name, path in (
        ("dashboard", "/console"),
        ("sites", f"/console/sites/{site}"),
        ("account", f"/console/accounts/{account}"),
        ("meter", f"/console/meters/{meter}"),
        ("supply", f"/console/supply?site_id={site}"),
        ("tariffs", f"/console/tariffs?site_id={site}"),
        ("tickets", f"/console/tickets?site_id={site}"),
        ("users", "/console/users"),
        ("audit", "/console/audit"),
        ("import", f"/console/import?site_id={site}"),
    ):
        response = page.goto(live_app.url + path)
        assert response is not None and response.ok, f"{path}: {response and response.status}"
        page.wait_for_load_state("networkidle")
        screenshot(page, f"console-{name}")
