"""The payment sandbox end to end, over a real socket, on SQLite and PostgreSQL: the API
creates a top-up order at the sandbox, the payer pays on its page, and the sandbox's
signed notifications (with duplicates) come back through the real verification path."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa

from meterpay.control import outbox
from meterpay.control import service as control
from meterpay.control.commands import CommandKind, CommandState
from meterpay.control.model import SupplyState
from meterpay.kernel.money import Money
from meterpay.ledger.service import account_balance, verify_ledger
from meterpay.payments import repository as payments_repo
from meterpay.payments.provider import ProviderName
from meterpay.payments.sandbox_pay import Delivery, SandboxPay
from meterpay.payments.setup import providers_from
from meterpay.payments.wechat_sign import sign_notification, transaction_resource
from meterpay.runtime import Runtime
from meterpay.web.app import create_app
from tests.integration.builders import a_home
from tests.integration.console_builders import a_compound
from tests.integration.signed import token_for


@dataclass
class Live:
    """meterpay serving on a free port, its public_url pointing at that port."""

    rt: Runtime
    url: str
    sandbox: SandboxPay
    http: httpx.Client


@pytest.fixture
def live(rt: Runtime) -> Iterator[Live]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings = rt.settings.model_copy(update={"public_url": url, "sandbox_pay": True})
    served = Runtime(rt.db, rt.clock, settings, payments=providers_from(settings, rt.clock))
    sandbox = served.payments[ProviderName.SANDBOX]
    assert isinstance(sandbox, SandboxPay)
    config = uvicorn.Config(create_app(served), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    token = {"Authorization": f"Bearer {token_for(rt, name='api')}"}
    with httpx.Client(base_url=url, timeout=10, headers=token) as http:
        yield Live(served, url, sandbox, http)
    server.should_exit = True
    thread.join(10)
    listener.close()
    sandbox.close_client()


def _order(live: Live, account_id: int, amount: str = "100.00") -> dict[str, Any]:
    response = live.http.post(
        f"/api/v1/accounts/{account_id}/topup-orders",
        json={"amount": amount, "provider": "sandbox"},
    )
    assert response.status_code == 201, response.text
    found: dict[str, Any] = response.json()
    return found


def _pay(live: Live, order: dict[str, Any], duplicates: int = 0) -> list[Delivery]:
    """Pay on the sandbox's page and wait for every notification to be answered."""
    form = {"duplicates": str(duplicates), "delay": "0", "back": "/console/supply"}
    paid = live.http.post(order["pay_url"], data=form)
    assert paid.status_code == 303, paid.text
    assert paid.headers["location"].endswith("?back=/console/supply")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        sent = live.sandbox.deliveries(order["out_trade_no"])
        if len(sent) == 1 + duplicates:
            return sent
        time.sleep(0.05)
    raise AssertionError(f"only {live.sandbox.deliveries(order['out_trade_no'])} were sent")


def _inbox(rt: Runtime, out_trade_no: str) -> list[dict[str, Any]]:
    with rt.db.read() as conn:
        return payments_repo.notifications_of(conn, out_trade_no)


def _text(html: str) -> str:
    """What a reader sees: no style, no tags, single spaces."""
    visible = re.sub(r"<style>.*?</style>", " ", html, flags=re.DOTALL)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", visible))


def test_a_payment_in_the_sandbox_with_duplicates_credits_the_account_once(live: Live) -> None:
    """Three deliveries of one event: one row in the inbox, one credit, three 204s."""
    home = a_home(live.rt)
    order = _order(live, home.account.id)
    pay_url = f"{live.url}/sandbox-pay/pay/{order['out_trade_no']}"
    assert order["pay_url"] == order["code_url"] == pay_url
    page = live.http.get(pay_url)
    assert page.status_code == 200
    shown = _text(page.text)
    for words in ("确认支付 Pay", "¥100.00", "测试小区 E-1-0101 电费充值", "1900000109", "不支付"):
        assert words in shown
    sent = _pay(live, order, duplicates=2)
    assert [(d.attempt, d.status) for d in sent] == [(1, 204), (2, 204), (3, 204)]
    assert len({d.event_id for d in sent}) == 1  # a resend keeps the event id
    assert account_balance(live.rt, home.account.id) == Money.from_yuan("100.00")
    assert verify_ledger(live.rt) == []
    credited = live.http.get(f"/api/v1/topup-orders/{order['id']}").json()
    paid_in_sandbox = live.sandbox.sandbox.orders[order["out_trade_no"]]
    assert credited["state"] == "credited"
    assert credited["transaction_id"] == paid_in_sandbox.transaction_id
    (row,) = _inbox(live.rt, order["out_trade_no"])
    assert (row["provider"], row["key"], row["outcome"]) == (
        "sandbox",
        sent[0].event_id,
        "credited",
    )
    after = _text(live.http.get(pay_url, params={"back": "/console/supply"}).text)
    assert "已支付 Paid" in after and "重复 duplicate" in after and "确认支付" not in after


def test_paying_a_cut_off_account_queues_its_restore(live: Live) -> None:
    compound = a_compound(live.rt, code="PAY")
    account_id = compound.accounts["cut_off"]
    assert control.supply_view(live.rt, account_id).account.state is SupplyState.CUT_OFF
    order = _order(live, account_id, "50.00")
    assert [d.status for d in _pay(live, order)] == [204]
    restores = [
        c
        for c in outbox.find(live.rt, account_id=account_id)
        if c.kind is CommandKind.RESTORE and c.state is CommandState.PENDING
    ]
    assert len(restores) == 1
    assert control.supply_view(live.rt, account_id).account.state is SupplyState.RESTORE_PENDING
    assert verify_ledger(live.rt) == []


def test_a_notification_signed_with_another_key_is_refused_and_changes_nothing(
    live: Live,
) -> None:
    home = a_home(live.rt)
    order = _order(live, home.account.id)
    keys = live.sandbox.sandbox.keys
    now = live.rt.clock.now()
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers, body = sign_notification(
        platform_key=forger,
        serial=keys.platform_serial,
        apiv3_key=keys.apiv3_key,
        event_type="TRANSACTION.SUCCESS",
        resource=transaction_resource(
            mchid=keys.mchid,
            appid=keys.appid,
            out_trade_no=order["out_trade_no"],
            transaction_id="4200000000000000000000000001",
            amount_fen=10000,
            paid_at=now,
        ),
        at=now,
    )
    refused = live.http.post("/api/v1/payments/notify/sandbox", content=body, headers=headers)
    assert refused.status_code == 401 and refused.json()["code"] == "FAIL"
    assert account_balance(live.rt, home.account.id) == Money(0)
    assert live.http.get(f"/api/v1/topup-orders/{order['id']}").json()["state"] == "created"
    assert _inbox(live.rt, order["out_trade_no"]) == []
    assert verify_ledger(live.rt) == []


def test_the_pay_page_refuses_a_second_payment_and_foreign_back_links(live: Live) -> None:
    home = a_home(live.rt)
    order = _order(live, home.account.id, "20.00")
    _pay(live, order)
    again = live.http.post(order["pay_url"], data={"duplicates": "0", "delay": "0"})
    assert again.status_code == 409 and "SUCCESS" in again.text
    page = live.http.get(order["pay_url"], params={"back": "//evil.example.com/"})
    assert 'href="//evil.example.com/"' not in page.text and 'href="/"' in page.text
    assert live.http.get(f"{live.url}/sandbox-pay/pay/MPS20261101999999").status_code == 404
    assert account_balance(live.rt, home.account.id) == Money.from_yuan("20.00")


def test_the_counter_page_starts_an_owners_online_top_up_on_the_sandbox(live: Live) -> None:
    """The demo's path: the console's top-up form -> the sandbox's pay page -> paid ->
    the account is credited through the real notification endpoint."""
    home = a_home(live.rt)
    form = {"account_id": str(home.account.id), "amount": "66.00"}
    started = live.http.post("/console/topup", data=form)
    assert started.status_code == 303
    pay_url = started.headers["location"]
    assert "/sandbox-pay/pay/" in pay_url
    order = {"pay_url": pay_url, "out_trade_no": pay_url.rstrip("/").rsplit("/", 1)[-1]}
    _pay(live, order)
    deadline = time.monotonic() + 20
    while account_balance(live.rt, home.account.id).fen != 6_600 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert account_balance(live.rt, home.account.id).fen == 6_600
