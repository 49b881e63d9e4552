"""What a person does in the browser, step by step: sign in as staff or as an owner."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.integration.signed import PASSWORD


def staff_signs_in(page: Page, base: str, username: str, then: str = "") -> None:
    page.goto(f"{base}/sign-in" + (f"?next={then}" if then else ""))
    page.get_by_role("textbox", name="用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page).not_to_have_url(re.compile(r"/sign-in"))


def owner_signs_in_with_a_code(page: Page, base: str, phone: str) -> None:
    page.goto(f"{base}/portal/sign-in")
    page.get_by_role("textbox", name="手机号").fill(phone)
    page.get_by_role("button", name="获取验证码").click()
    code = page.locator("#demo-code").inner_text()
    page.get_by_role("textbox", name="短信验证码").fill(code)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(re.compile(r"/portal$"))
