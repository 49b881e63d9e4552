"""The console's supply page (供应状态) as an operator's browser gets it, on SQLite and
PostgreSQL: accounts by state, the ones needing attention, the latest supply events,
commands and owners' messages, open alarms — in Chinese with English beside it."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from meterpay.auth.model import Role
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.web.app import create_app
from tests.integration.console_builders import (
    ACTOR,
    PROTECTED_REASON,
    SCRIPT_NAME,
    SITE_NAME,
    a_compound,
)
from tests.integration.signed import sign_in, staff_user

HTML = {"Accept": "text/html"}


def _page(api: TestClient, query: str = "") -> str:
    response = api.get("/console/supply" + query, headers=HTML)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def _accounts_table(html: str) -> str:
    found = re.search(r'<table class="accounts">.*?</table>', html, re.S)
    return _text(found.group(0)) if found else ""


def _text(html: str) -> str:
    """The page's visible words (tags dropped), to look for labels and values."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_supply_page_shows_every_state_the_commands_and_the_owners_messages(
    rt: Runtime, api: TestClient
) -> None:
    """Counts, the accounts not in normal supply with their planned cut-off, commands
    with their lifecycle, and the owners' messages are on one page, in Chinese first."""
    compound = a_compound(rt)
    html = _page(api)
    text = _text(html)
    assert '<html lang="zh-CN">' in html
    for label in ("供应状态", "各状态账户数", "需关注的账户", "最新状态变化", "最新控制命令"):
        assert label in text
    for label in ("业主最新消息", "未关闭告警", "余额偏低", "余额不足", "欠费待停", "已停供"):
        assert label in text
    assert "待恢复" in text
    assert "Accounts not in normal supply" in text  # English in small type beside it
    assert "不自动停供" in text and "needs a person" in text  # protected and water
    assert PROTECTED_REASON in text
    assert "-¥5.00" in text  # money as yuan with the sign
    assert "11月1日 09:30" in text  # the planned cut-off on the site's clock
    assert "拉闸" in text and "已核实" in text  # a verified cut
    assert "合闸" in text and "待发送" in text  # the restore on its way
    assert "欠费停供通知" in text and "短信" in text  # the arrears notice by SMS
    assert re.search(r"138\*{4}\d{4}", text)  # masked phone numbers ...
    assert not any(phone in html for phone in compound.phones.values())  # ... never whole
    assert "停供需人工决定" in text  # the alarm for the protected and the water account


def test_the_supply_page_escapes_names_from_the_database(rt: Runtime, api: TestClient) -> None:
    """An owner or site named with HTML is shown as text, never run as markup."""
    a_compound(rt)
    html = _page(api)
    assert SCRIPT_NAME not in html
    assert "&lt;script&gt;alert(&#34;owner&#34;)&lt;/script&gt;" in html
    assert SITE_NAME not in html
    assert "和平&lt;b&gt;小区&lt;/b&gt;" in html


def test_the_state_filter_and_the_site_picker_narrow_the_page(rt: Runtime, api: TestClient) -> None:
    """``?state=`` lists only that state's accounts; with two sites a picker appears and
    ``?site_id=`` shows the other site."""
    compound = a_compound(rt)
    only_cut = _accounts_table(_page(api, "?state=cut_off"))
    assert "1-0107" in only_cut and "1-0104" not in only_cut
    other = sites.create_site(rt, code="EMPTY", name="空置小区", actor=ACTOR)
    assert 'name="site_id"' in _page(api)
    elsewhere = _page(api, f"?site_id={other.id}")
    assert "空置小区" in elsewhere and "所有账户供应正常" in elsewhere
    assert "1-0107" not in elsewhere
    assert api.get("/console/supply?site_id=999999", headers=HTML).status_code == 404
    assert compound.site_id != other.id


def test_english_comes_first_when_asked(rt: Runtime, api: TestClient) -> None:
    """``?lang=en`` puts English first and Chinese in small type; links keep the choice."""
    a_compound(rt)
    html = _page(api, "?lang=en")
    assert '<html lang="en">' in html
    assert 'in arrears<small class="alt" lang="zh-CN">欠费待停</small>' in html
    assert "1 Nov 09:30" in _text(html)
    assert 'href="/console/supply?lang=en&amp;state=cut_off"' in html


def test_a_database_without_sites_gets_a_page_that_says_so(api: TestClient) -> None:
    assert "还没有项目" in _text(_page(api))


def test_the_stylesheet_and_script_are_served_by_meterpay_itself(api: TestClient) -> None:
    """No CDN: the page links its own static files, and they are there."""
    html = _page(api)
    for path in re.findall(r'(?:href|src)="(/console/static/[^"?]+)', html):
        assert api.get(path).status_code == 200
    assert api.get("/console/static/console.css").headers["content-type"].startswith("text/css")
    assert "https://" not in html


def test_the_root_sends_browsers_to_the_console_and_clients_to_the_json_index(
    api: TestClient,
) -> None:
    browser = api.get("/", headers=HTML, follow_redirects=False)
    assert browser.status_code == 303
    assert browser.headers["location"] == "/console"
    stranger = api.get("/", headers=HTML | {"Authorization": ""}, follow_redirects=False)
    assert stranger.headers["location"] == "/sign-in"
    assert api.get("/").json()["api"] == "/api/v1"
    assert api.get("/", headers={"Accept": "application/json"}).json()["name"] == "meterpay"


def test_the_console_sends_a_stranger_to_the_sign_in_page_and_back(rt: Runtime) -> None:
    """Owners' balances and contacts are never open: a browser without a session is sent
    to sign in, and comes back to the page it asked for."""
    staff_user(rt, "operator1", Role.OPERATOR)
    with TestClient(create_app(rt)) as client:
        asked = client.get("/console/supply?lang=en", headers=HTML, follow_redirects=False)
        assert asked.status_code == 303
        assert asked.headers["location"] == "/sign-in?next=%2Fconsole%2Fsupply%3Flang%3Den"
        sign_in(client, "operator1")
        assert client.get("/console/supply", headers=HTML).status_code == 200
