"""Long work in a real browser: an operator uploads a sheet, watches its check run as a
background job, leaves, comes back through "后台任务" and imports it; and exports the
site's table to Excel and downloads it. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from meterpay.auth.model import Role
from meterpay.sites import service as sites
from tests.e2e.artifacts import screenshot
from tests.e2e.live import LiveApp
from tests.e2e.steps import staff_signs_in
from tests.integration.builders import a_home
from tests.integration.signed import staff_user

pytestmark = pytest.mark.e2e
SHEET = "房号,类型,业主姓名,手机号\nB-201,住宅,赵六,13900003333\nB-202,住宅,钱七,13900004444\n"


def test_an_import_runs_as_a_job_that_can_be_left_and_revisited(
    live_app: LiveApp, page: Page, tmp_path: Path
) -> None:
    rt = live_app.rt
    home = a_home(rt)
    staff_user(rt, "operator1", Role.OPERATOR, home.site.id)
    staff_signs_in(page, live_app.url, "operator1")
    sheet = tmp_path / "units.csv"
    sheet.write_text(SHEET, encoding="utf-8")
    page.goto(f"{live_app.url}/console/import?site_id={home.site.id}")
    page.get_by_label("文件").set_input_files(str(sheet))
    page.get_by_role("button", name="试运行检查").click()
    expect(page).to_have_url(re.compile(r"/console/jobs/\d+$"))
    check_url = page.url
    expect(page.locator("#job-status")).to_have_attribute("data-state", "done", timeout=15_000)
    expect(page.locator("#created-units")).to_have_text("2")
    screenshot(page, "console-import-check")
    page.goto(f"{live_app.url}/console")  # leave, and come back through the list
    page.goto(f"{live_app.url}/console/jobs")
    page.locator(f'a[href="{check_url.removeprefix(live_app.url)}"]').first.click()
    page.get_by_role("button", name="确认导入").click()
    expect(page.locator("#job-status")).to_have_attribute("data-state", "done", timeout=15_000)
    expect(page.get_by_text("导入完成")).to_be_visible()
    codes = {u.code for u in sites.page(rt, "units", site_id=home.site.id, after_id=None, limit=50)}
    assert {"B-201", "B-202"} <= codes


def test_the_site_table_exports_through_a_job_and_downloads(live_app: LiveApp, page: Page) -> None:
    rt = live_app.rt
    home = a_home(rt)
    staff_user(rt, "operator2", Role.OPERATOR, home.site.id)
    staff_signs_in(page, live_app.url, "operator2")
    page.goto(f"{live_app.url}/console/sites/{home.site.id}")
    page.get_by_role("button", name="导出 Excel").click()
    expect(page).to_have_url(re.compile(r"/console/jobs/\d+$"))
    download_link = page.locator("#job-download")
    expect(download_link).to_be_visible(timeout=15_000)
    screenshot(page, "console-export-job")
    with page.expect_download() as downloading:
        download_link.click()
    assert downloading.value.suggested_filename.endswith("-accounts.xlsx")
