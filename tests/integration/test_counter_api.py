"""The cash counter over HTTP, on SQLite and PostgreSQL: the API a counter client calls,
and the printable receipt and shift report pages a cashier prints."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from tests.integration.builders import ACTOR, Home, a_home

HTML = {"Accept": "text/html"}
SCRIPT = '<script>alert("payer")</script>'


def _pay(
    api: TestClient, home: Home, amount: str, key: str, method: str = "cash"
) -> dict[str, Any]:
    body = {
        "account_id": home.account.id,
        "amount": amount,
        "method": method,
        "idempotency_key": key,
        "note": "<b>备注</b>",
    }
    response = api.post("/api/v1/counter/payments", json=body)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_a_payment_answers_its_receipt_and_a_repeat_the_same_one(
    rt: Runtime, api: TestClient
) -> None:
    home = a_home(rt)
    response = api.post(
        "/api/v1/counter/payments",
        json={
            "account_id": home.account.id,
            "amount": "1000000.00",
            "method": "pos",
            "idempotency_key": "R-1",
        },
    )
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["receipt_no"] == "HOME-2026-000001"
    assert receipt["amount"] == "1000000.00" and receipt["amount_words"] == "壹佰万元整"
    assert receipt["method"] == "pos" and receipt["cashier"] == "token:api"
    assert receipt["balance_after"] == "1000000.00"
    assert receipt["reversed"] is False and receipt["duplicate"] is False
    assert receipt["print_url"] == "/console/receipts/HOME-2026-000001"
    again = api.post(
        "/api/v1/counter/payments",
        json={
            "account_id": home.account.id,
            "amount": "1000000.00",
            "method": "pos",
            "idempotency_key": "R-1",
        },
    )
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["receipt_no"] == receipt["receipt_no"]
    got = api.get("/api/v1/counter/receipts/HOME-2026-000001")
    assert got.status_code == 200 and got.json()["transfer_key"] == "topup:cash:R-1"


def test_bad_payments_are_refused_with_clear_errors(rt: Runtime, api: TestClient) -> None:
    home = a_home(rt)
    base = {"account_id": home.account.id, "amount": "10.00", "idempotency_key": "R-1"}
    for wrong in (
        {**base, "method": "cheque"},
        {**base, "method": "cash", "amount": "0"},
        {**base, "method": "cash", "amount": "1.001"},
        {**base, "method": "cash", "cashier": "someone else"},  # the caller is the cashier
    ):
        response = api.post("/api/v1/counter/payments", json=wrong)
        assert response.status_code == 422, wrong
        assert response.json()["error"]["code"] == "invalid_input"
    missing = api.post(
        "/api/v1/counter/payments", json={**base, "account_id": 999, "method": "cash"}
    )
    assert missing.status_code == 404
    assert api.get("/api/v1/counter/receipts/HOME-2026-000001").status_code == 404


def test_a_receipt_is_reversed_once_with_a_reason(rt: Runtime, api: TestClient) -> None:
    home = a_home(rt)
    no = _pay(api, home, "88.88", "R-1")["receipt_no"]
    path = f"/api/v1/counter/receipts/{no}/reverse"
    assert api.post(path, json={"reason": "   "}).status_code == 422
    assert api.post(path, json={}).status_code == 422
    done = api.post(path, json={"reason": "收错账户"})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["reversed"] is True and body["reversal"]["reason"] == "收错账户"
    assert body["reversal"]["transfer_key"] == "reversal:topup:cash:R-1"
    assert body["reversal"]["balance_after"] == "0.00"
    twice = api.post(path, json={"reason": "again"})
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "already_reversed"
    ledger = api.get(f"/api/v1/accounts/{home.account.id}/ledger").json()["items"]
    assert [e["kind"] for e in ledger] == ["reversal", "top_up"]


def test_the_shift_report_totals_each_method(rt: Runtime, api: TestClient) -> None:
    home = a_home(rt)
    _pay(api, home, "100.01", "R-1")
    _pay(api, home, "0.99", "R-2")
    no = _pay(api, home, "50.00", "R-3", "pos")["receipt_no"]
    api.post(f"/api/v1/counter/receipts/{no}/reverse", json={"reason": "刷错卡"})
    response = api.get(
        "/api/v1/counter/shift",
        params={
            "cashier": "token:api",
            "start": "2026-11-01T08:00:00+08:00",
            "end": "2026-11-02T08:00:00+08:00",
        },
    )
    assert response.status_code == 200, response.text
    shift = response.json()
    assert shift["payments"] == 3 and shift["reversals"] == 1
    assert shift["taken"] == {"cash": "101.00", "pos": "50.00"}
    assert shift["reversed"] == {"cash": "0.00", "pos": "50.00"}
    assert shift["net"] == {"cash": "101.00", "pos": "0.00"}
    assert shift["total_net"] == "101.00"
    assert shift["reversal_lines"][0]["reason"] == "刷错卡"
    naive = api.get(
        "/api/v1/counter/shift",
        params={"start": "2026-11-01T08:00:00", "end": "2026-11-02T08:00:00"},
    )
    assert naive.status_code == 422


def test_the_printed_receipt_shows_the_amount_in_words_and_escapes_names(
    rt: Runtime, api: TestClient
) -> None:
    """Site, receipt number, time on the site's clock, account, unit, utility, ¥ and
    大写, method, cashier, balance after; names from the database are text, never markup."""
    home = a_home(rt)
    sites.update_site(rt, home.site.id, name="和平<b>小区</b>", actor=ACTOR)
    owner = sites.create_customer(rt, site_id=home.site.id, name=SCRIPT, actor=ACTOR)
    sites.update_account(rt, home.account.id, customer_id=owner.id, actor=ACTOR)
    no = _pay(api, home, "10.50", "R-1")["receipt_no"]
    response = api.get(f"/console/receipts/{no}", headers=HTML)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    text = _text(html)
    for shown in (
        "收款收据",
        no,
        "2026年11月1日 08:00:00",
        home.account.number,
        "1-0101 1栋101",
        "电",
        "¥10.50",
        "壹拾元伍角",
        "人民币（大写）",
        "现金",
        "收款员",
        "充值后余额",
    ):
        assert shown in text, shown
    assert SCRIPT not in html and "&lt;script&gt;" in html
    assert "和平<b>小区</b>" not in html and "和平&lt;b&gt;小区&lt;/b&gt;" in html
    assert "<b>备注</b>" not in html
    assert "已冲正" not in text
    assert "size: 80mm auto" in html
    assert "size: A6 portrait" in api.get(f"/console/receipts/{no}?paper=a6").text
    english = _text(api.get(f"/console/receipts/{no}?lang=en").text)
    assert "Receipt" in english and "2026-11-01 08:00:00" in english and "壹拾元伍角" in english


def test_a_reversed_receipt_prints_with_its_stamp_and_reason(rt: Runtime, api: TestClient) -> None:
    home = a_home(rt)
    no = _pay(api, home, "20.00", "R-1", "pos")["receipt_no"]
    api.post(f"/api/v1/counter/receipts/{no}/reverse", json={"reason": "<i>刷错卡</i>"})
    html = api.get(f"/console/receipts/{no}").text
    text = _text(html)
    assert 'class="stamp"' in html and "已冲正" in text
    assert "银行卡 POS" in text and "贰拾元整" in text
    assert "&lt;i&gt;刷错卡&lt;/i&gt;" in html
    assert api.get("/console/receipts/HOME-2026-000404").status_code == 404


def test_the_printed_shift_report_totals_a_cashiers_day(rt: Runtime, api: TestClient) -> None:
    home = a_home(rt)
    _pay(api, home, "100.00", "R-1")
    no = _pay(api, home, "0.50", "R-2", "pos")["receipt_no"]
    api.post(f"/api/v1/counter/receipts/{no}/reverse", json={"reason": "刷错卡"})
    response = api.get("/console/cashier/shift?cashier=token:api&date=2026-11-01", headers=HTML)
    assert response.status_code == 200, response.text
    text = _text(response.text)
    for shown in (
        "收款员交班报表",
        "测试小区",
        "token:api",
        "¥100.00",
        "¥0.50",
        "壹佰元整",
        "刷错卡",
    ):
        assert shown in text, shown
    assert "2026年11月1日 00:00:00" in text  # the day on the site's calendar
    everyone = _text(api.get("/console/cashier/shift").text)  # today, everyone
    assert "全部收款员" in everyone and "¥100.50" in everyone
    empty = _text(api.get("/console/cashier/shift?cashier=nobody&date=2026-11-01").text)
    assert "本时段没有收款" in empty and "零元整" in empty
    assert api.get("/console/cashier/shift?date=11/01/2026").status_code == 422


def test_the_print_stylesheet_names_chinese_fonts_and_print_rules(api: TestClient) -> None:
    css = api.get("/console/static/print.css")
    assert css.status_code == 200
    assert '"Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei"' in css.text
    assert "@media print" in css.text


def test_the_counter_is_in_the_openapi_document(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/counter/payments",
        "/api/v1/counter/receipts/{receipt_no}",
        "/api/v1/counter/receipts/{receipt_no}/reverse",
        "/api/v1/counter/shift",
    ):
        assert path in paths
