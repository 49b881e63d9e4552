"""The console's read pages as a staff member's browser gets them, on SQLite and
PostgreSQL: the dashboard's figures equal the data, the site's table filters, searches,
sorts and pages on the server and exports to Excel, the unit, account and meter pages show
what happened, names from the database are text, and another site's objects are not
there for a member limited to one site."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import openpyxl  # type: ignore[import-untyped]
from fastapi.testclient import TestClient

from meterpay.alarms import repository as alarms
from meterpay.alarms.model import AlarmState
from meterpay.auth.model import Role
from meterpay.jobs import service as jobs
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger import cash
from meterpay.ledger import service as ledger
from meterpay.metering.ingest import ingest_readings
from meterpay.metering.meters import ReadingIn, ReadingSource
from meterpay.reports.sheets import XLSX
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.sites.model import UnitKind
from meterpay.web.app import create_app
from meterpay.web.console.job_pages import job_handlers
from tests.integration.builders import a_home
from tests.integration.console_builders import SCRIPT_NAME, SITE_NAME, a_compound
from tests.integration.signed import browser, csrf_of, sign_in, staff_user

HTML = {"Accept": "text/html"}
ESCAPED_SCRIPT = "&lt;script&gt;alert(&#34;owner&#34;)&lt;/script&gt;"


def _get(client: TestClient, path: str) -> str:
    response = client.get(path, headers=HTML)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def _n(html: str, name: str) -> str:
    """The figure marked ``data-n="name"`` on a page, as text."""
    found = re.search(rf'data-n="{name}">(.*?)</span>', html, re.S)
    assert found, name
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _rows(html: str) -> list[str]:
    table = re.search(r'<table class="place-rows">.*?</table>', html, re.S)
    if table is None:
        return []
    return [_text(r) for r in re.findall(r"<tr[^>]*>.*?</tr>", table.group(0), re.S)[1:]]


def test_the_dashboard_counts_equal_the_compounds_data(rt: Runtime) -> None:
    """Meters, accounts by state, the money held, today's top-ups and charges and the
    open alarms are the compound's own numbers, aggregated in the database."""
    compound = a_compound(rt)
    with browser(rt, "operator1", Role.OPERATOR) as client:
        html = _get(client, f"/console?site_id={compound.site_id}")
    assert '<html lang="zh-CN">' in html and "仪表盘" in html and "Dashboard" in html
    assert _n(html, "accounts") == "8"
    for state, count in (("normal", 1), ("low", 1), ("very_low", 1), ("cut_off", 1)):
        assert _n(html, f"state-{state}") == str(count), state
    assert _n(html, "state-in_arrears") == "3"  # deferred, protected and water
    assert _n(html, "state-restore_pending") == "1"
    # openings 100 + 30 + 10 * 6 = 190 yuan, plus 50 paid after the cut: 240 in
    assert _n(html, "top-ups") == "¥240.00" and _n(html, "top-up-count") == "9"
    assert _n(html, "charges") == "¥75.00"  # five accounts used 15 units at 1 yuan
    assert _n(html, "balance") == "¥165.00"
    assert _n(html, "meters-unknown") == "8"
    assert _n(html, "alarms") == str(_open_alarms(rt, compound.site_id)) != "0"
    assert "停供需人工决定" in html
    assert 'data-chart="trend-data"' in html and "vendor/echarts.min.js" in html


def _open_alarms(rt: Runtime, site_id: int) -> int:
    with rt.db.read() as conn:
        return sum(
            len(alarms.find(conn, state=state, site_id=site_id))
            for state in (AlarmState.OPEN, AlarmState.ACKNOWLEDGED)
        )


def test_the_dashboard_adds_up_every_site_the_caller_sees(rt: Runtime) -> None:
    a_compound(rt, code="AAA")
    a_compound(rt, code="BBB")
    with browser(rt) as client:
        html = _get(client, "/console")
    assert _n(html, "accounts") == "16"
    assert _n(html, "top-ups") == "¥480.00"
    assert "全部项目" in html


def test_the_root_opens_on_the_dashboard(rt: Runtime) -> None:
    with browser(rt) as client:
        home = client.get("/", headers=HTML, follow_redirects=False)
        assert home.headers["location"] == "/console"
        assert client.get("/console", headers=HTML).status_code == 200


def test_the_sites_page_lists_sites_with_their_sizes(rt: Runtime) -> None:
    compound = a_compound(rt)
    with browser(rt) as client:
        html = _get(client, "/console/sites")
    assert f'href="/console/sites/{compound.site_id}?lang=zh-CN"' in html
    assert "和平&lt;b&gt;小区&lt;/b&gt;" in html and SITE_NAME not in html


def test_the_site_table_filters_by_state_and_searches_owner_unit_and_phone(rt: Runtime) -> None:
    compound = a_compound(rt)
    base = f"/console/sites/{compound.site_id}"
    with browser(rt) as client:
        everything = _get(client, base)
        arrears = _get(client, base + "?state=in_arrears")
        by_phone = _get(client, base + "?q=13800000003")
        by_unit = _get(client, base + "?q=1-0107")
        by_owner = _get(client, base + "?q=%3Cscript")
        nothing = _get(client, base + "?q=100%25")
    assert len(_rows(everything)) == 8 and _n(everything, "total") == "8"
    assert len(_rows(arrears)) == 3 and all("欠费待停" in r for r in _rows(arrears))
    assert len(_rows(by_phone)) == 1 and "1-0103" in _rows(by_phone)[0]
    assert "138****0003" in _rows(by_phone)[0]  # masked, never whole
    assert not any(phone in everything for phone in compound.phones.values())
    assert len(_rows(by_unit)) == 1 and "已停供" in _rows(by_unit)[0]
    assert len(_rows(by_owner)) == 1
    assert ESCAPED_SCRIPT in by_owner and SCRIPT_NAME not in by_owner
    assert _rows(nothing) == []  # % is a character to look for, not a wildcard


def test_the_site_table_sorts_and_pages_on_the_server(rt: Runtime) -> None:
    compound = a_compound(rt)
    base = f"/console/sites/{compound.site_id}"
    for n in range(60):
        sites.create_unit(
            rt,
            site_id=compound.site_id,
            code=f"9-{n:03d}",
            name=f"9栋{n}",
            kind=UnitKind.HOME,
            actor="test",
        )
    with browser(rt) as client:
        first = _get(client, base)
        second = _get(client, base + "?page=2")
        richest = _get(client, base + "?sort=-balance")
        poorest = _get(client, base + "?sort=balance")
        refused = client.get(base + "?sort=nonsense", headers=HTML)
    assert _n(first, "total") == "68"
    assert len(_rows(first)) == 50 and len(_rows(second)) == 18
    assert 'rel="next"' in first and 'rel="prev"' in second
    assert "¥100.00" in _rows(richest)[0]  # the normal account first
    assert "-¥5.00" in _rows(poorest)[0]
    assert "空置" in _rows(poorest)[-1] or "vacant" in _rows(poorest)[-1]
    assert all("空置" in r for r in _rows(second))  # vacant units always last
    assert refused.status_code == 422


def _export(rt: Runtime, client: TestClient, page: str, **fields: str) -> Any:
    """Export a page's table as the console does: start the job, run it, download."""
    started = client.post(
        f"{page}/export", data={"csrf_token": client.csrf, **fields}, follow_redirects=False
    )
    assert started.status_code == 303, started.text
    while jobs.run_next(rt, job_handlers(), runner="test"):
        pass
    return client.get(f"{started.headers['location']}/file")


def test_the_sites_accounts_export_to_excel_with_the_rows_on_screen(rt: Runtime) -> None:
    compound = a_compound(rt)
    with browser(rt) as client:
        response = _export(rt, client, f"/console/sites/{compound.site_id}", state="in_arrears")
    assert response.status_code == 200
    assert response.headers["content-type"] == XLSX
    assert "attachment" in response.headers["content-disposition"]
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][2].startswith("房间") and len(rows) == 4
    assert {r[9] for r in rows[1:]} == {"欠费待停"}
    assert sorted(r[8] for r in rows[1:]) == [Decimal("-5.00")] * 3


def test_the_unit_page_shows_its_accounts_and_meters(rt: Runtime) -> None:
    compound = a_compound(rt)
    meter_id = compound.meters["very_low"]
    with browser(rt) as client:
        account = _get(client, f"/console/accounts/{compound.accounts['very_low']}")
        unit_id = int(re.search(r'href="/console/units/(\d+)', account).group(1))  # type: ignore[union-attr]
        html = _get(client, f"/console/units/{unit_id}")
    assert f'href="/console/meters/{meter_id}' in html
    assert f'href="/console/accounts/{compound.accounts["very_low"]}' in html
    assert ESCAPED_SCRIPT in html and SCRIPT_NAME not in html
    assert "¥10.00" in html and "余额不足" in html


def test_the_account_page_shows_ledger_charges_top_ups_and_messages(rt: Runtime) -> None:
    compound = a_compound(rt)
    account_id = compound.accounts["restore_pending"]
    receipt = ledger_receipt(rt, account_id)
    with browser(rt, "cashier1", Role.CASHIER) as client:
        html = _get(client, f"/console/accounts/{account_id}")
    text = _text(html)
    assert _n(html, "balance") == "¥46.00"  # 10 - 15 + 50 + 1
    assert "账户流水" in text and "扣费明细" in text and "充值记录" in text
    assert "15.0000 × 1.0000" in text  # the tariff component: use times price
    assert f'href="/console/receipts/{receipt}' in html
    assert "欠费停供通知" in text and "短信" in text  # the arrears notice by SMS
    assert re.search(r"138\*{4}\d{4}", text)
    # the ledger newest first, each entry with the balance after it
    amounts = re.findall(r'<td class="num"><span class="money[^"]*">([^<]+)</span></td>', html)
    assert amounts[:2] == ["¥1.00", "¥46.00"]
    assert "¥45.00" in amounts  # after the 50 paid following the cut


def ledger_receipt(rt: Runtime, account_id: int) -> str:
    """A cash payment at the counter; its receipt number."""
    taken = cash.take_payment(
        rt,
        account_id=account_id,
        amount=Money.from_yuan("1.00"),
        method="cash",
        idempotency_key="pages-receipt",
        cashier="cashier1",
    )
    return taken.receipt.receipt_no


def test_the_ledger_pages_newest_first_and_exports_every_entry(rt: Runtime) -> None:
    home = a_home(rt)
    for n in range(60):
        ledger.cash_top_up(
            rt,
            account_id=home.account.id,
            amount=Money.from_yuan(str(n + 1)),
            idempotency_key=f"pages-{n}",
            cashier="cashier",
        )
    with browser(rt) as client:
        first = _get(client, f"/console/accounts/{home.account.id}")
        second = _get(client, f"/console/accounts/{home.account.id}?page=2")
        sheet_response = _export(rt, client, f"/console/accounts/{home.account.id}")
    total = sum(range(1, 61))
    assert f"¥{total:,}.00" in first and "¥60.00" in first
    assert 'rel="next"' in first and "¥1.00" in second
    sheet = openpyxl.load_workbook(io.BytesIO(sheet_response.content)).active
    rows = list(sheet.iter_rows(values_only=True))[1:]
    assert len(rows) == 60
    assert rows[0][2] == Decimal("60.00") and rows[0][3] == Decimal(total)
    assert rows[-1][2] == Decimal("1.00") and rows[-1][3] == Decimal("1.00")


def test_the_meter_page_shows_readings_use_by_day_and_command_lifecycles(rt: Runtime) -> None:
    compound = a_compound(rt)
    meter_id = compound.meters["cut_off"]
    clock = rt.clock
    later = clock.now() + timedelta(days=1)
    with browser(rt) as client:
        ingest_readings(
            rt, [ReadingIn(meter_id, later, Decimal("20"), ReadingSource.MANUAL)], actor="t"
        )
        html = _get(client, f"/console/meters/{meter_id}")
    text = _text(html)
    assert "最新读数" in text and "每日用量" in text and "原始报文" in text
    assert "15.0000" in text
    assert 'data-chart="use-data"' in html
    assert "拉闸" in text and 'class="step-now command-verified"' in html
    assert "kWh" in html


def test_a_member_of_one_site_sees_nothing_of_another(rt: Runtime) -> None:
    a = a_compound(rt, code="AAA")
    b = a_compound(rt, code="BBB")
    staff_user(rt, "only-a", Role.OPERATOR, a.site_id)
    with TestClient(create_app(rt)) as client:
        sign_in(client, "only-a")
        for path in (
            f"/console/sites/{b.site_id}",
            f"/console/accounts/{b.accounts['normal']}",
            f"/console/meters/{b.meters['normal']}",
            f"/console?site_id={b.site_id}",
        ):
            assert client.get(path, headers=HTML).status_code == 404, path
        for path in (f"/console/accounts/{b.accounts['normal']}", f"/console/sites/{b.site_id}"):
            refused = client.post(f"{path}/export", headers={"X-CSRF-Token": csrf_of(client)})
            assert refused.status_code == 404, path
        mine = _get(client, "/console")
        listed = _get(client, "/console/sites")
    assert _n(mine, "accounts") == "8"  # only site A's
    assert f"/console/sites/{a.site_id}?" in listed
    assert f"/console/sites/{b.site_id}?" not in listed


def test_the_pages_speak_english_when_asked(rt: Runtime) -> None:
    compound = a_compound(rt)
    with browser(rt) as client:
        html = _get(client, f"/console/accounts/{compound.accounts['normal']}?lang=en")
    assert '<html lang="en">' in html
    assert "Ledger" in html and Utility.ELECTRICITY.value in html
