"""Online top-ups through WeChat Pay (a fake server over a real socket that signs and
encrypts exactly as WeChat does): credited exactly once, whatever arrives how often and
when; a paid-up account's supply is restored in the same transaction; anything not to be
trusted changes nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from meterpay.alarms import service as alarm_service
from meterpay.alarms.model import AlarmKind
from meterpay.control import outbox
from meterpay.control import service as control
from meterpay.control.commands import CommandKind
from meterpay.control.model import SupplyState
from meterpay.db.schema import audit_log, payment_notifications
from meterpay.kernel.clock import FixedClock, SystemClock
from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.money import Money
from meterpay.ledger import repository as ledger_repo
from meterpay.ledger.model import LedgerAccountKind
from meterpay.ledger.service import verify_ledger
from meterpay.metering.ingest import ingest_readings
from meterpay.metering.meters import ReadingIn, ReadingSource
from meterpay.payments import reconcile, refunds
from meterpay.payments import service as payments
from meterpay.payments.model import Order, OrderState
from meterpay.payments.provider import BadNotification, Channel, ProviderName
from meterpay.payments.reconcile_rules import Finding
from meterpay.payments.wechat import WechatPay
from meterpay.payments.wechat_sign import sign_notification, transaction_resource
from meterpay.runtime import Runtime
from tests.integration.builders import ACTOR, Home, a_home
from tests.integration.http import API, error
from tests.integration.signed import api_client
from tests.integration.wechat_fake import (
    APIV3_KEY,
    APPID,
    MCHID,
    FakeKeys,
    WechatFake,
    running_wechat_fake,
)

NOTIFY_URL = "http://127.0.0.1:8000/api/v1/payments/notify/wechat"


@pytest.fixture(scope="module")
def keys() -> FakeKeys:
    return FakeKeys()


@pytest.fixture
def fake(keys: FakeKeys) -> Iterator[WechatFake]:
    with running_wechat_fake(keys) as server:
        yield server


def _wire(rt: Runtime, keys: FakeKeys, fake: WechatFake) -> None:
    # The fake signs its answers with the real time; our own clock is the test's.
    rt.payments[ProviderName.WECHAT] = WechatPay(keys.config(fake.url), clock=SystemClock())


def _in_arrears(rt: Runtime) -> Home:
    """An account 5 元 in arrears (price 1 元/kWh, 5 kWh used)."""
    home = a_home(rt, price="1.0000")
    at = rt.clock.now() + timedelta(hours=1)
    rt.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    ingest_readings(
        rt, [ReadingIn(home.meter.id, at, Decimal(5), ReadingSource.MANUAL)], actor=ACTOR
    )
    assert control.supply_view(rt, home.account.id).account.state is SupplyState.IN_ARREARS
    return home


def _order(rt: Runtime, home: Home, yuan: str = "100.00") -> Order:
    return payments.create_order(
        rt,
        account_id=home.account.id,
        amount=Money.from_yuan(yuan),
        provider=ProviderName.WECHAT,
        channel=Channel.NATIVE,
        requested_by="owner",
        notify_url=NOTIFY_URL,
    )


def _paid(rt: Runtime, fake: WechatFake, order: Order) -> tuple[dict[str, str], bytes]:
    fake.pay(order.out_trade_no, at=rt.clock.now())
    return fake.payment_notification(order.out_trade_no, at=rt.clock.now())


def _inbox(rt: Runtime) -> int:
    with rt.db.read() as conn:
        return int(
            conn.execute(select(func.count()).select_from(payment_notifications)).scalar_one()
        )


def test_a_paid_order_is_credited_once_and_the_supply_restored_at_once(
    rt: Runtime, keys: FakeKeys, fake: WechatFake
) -> None:
    _wire(rt, keys, fake)
    home = _in_arrears(rt)
    order = _order(rt, home)
    assert order.state is OrderState.CREATED and order.code_url
    headers, body = _paid(rt, fake, order)
    taken = payments.take_notification(rt, "wechat", headers, body)
    assert taken.outcome == "credited" and taken.answer.status == 204
    again = payments.take_notification(rt, "wechat", headers, body)
    assert again.outcome == "duplicate" and again.answer.status == 204
    view = control.supply_view(rt, home.account.id)
    assert view.balance == Money.from_yuan("95.00")
    assert view.account.state is SupplyState.RESTORE_PENDING
    (restore,) = [c for c in outbox.find(rt, account_id=home.account.id)]
    assert restore.kind is CommandKind.RESTORE
    credited = payments.get_order(rt, order.id)
    assert credited.state is OrderState.CREDITED and credited.transaction_id
    assert _inbox(rt) == 1
    assert verify_ledger(rt) == []


@pytest.mark.parametrize(
    "spoil",
    [
        "tampered body",
        "stale timestamp",
        "another key",
        "a probe",
        "unknown serial",
        "wrong APIv3 key",
        "another merchant",
    ],
)
def test_a_notification_not_to_be_trusted_changes_nothing_and_is_logged(
    rt: Runtime, keys: FakeKeys, fake: WechatFake, spoil: str
) -> None:
    _wire(rt, keys, fake)
    home = _in_arrears(rt)
    order = _order(rt, home)
    fake.pay(order.out_trade_no)
    at = rt.clock.now() - timedelta(minutes=6) if spoil == "stale timestamp" else rt.clock.now()
    headers, body = fake.payment_notification(order.out_trade_no, at=at)
    if spoil == "tampered body":
        body = body.replace(b'"id":"', b'"id":"X', 1)
    if spoil == "another key":
        other = FakeKeys()
        with running_wechat_fake(other) as stranger:
            stranger.orders = fake.orders
            headers, body = stranger.payment_notification(order.out_trade_no, at=at)
    if spoil == "a probe":
        headers = {**headers, "Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + "A" * 300}
    if spoil == "unknown serial":
        headers = {**headers, "Wechatpay-Serial": "PUB_KEY_ID_0000000000000000000000000000"}
    if spoil in ("wrong APIv3 key", "another merchant"):
        resource = transaction_resource(
            mchid="1900000999" if spoil == "another merchant" else MCHID,
            appid=APPID,
            out_trade_no=order.out_trade_no,
            transaction_id="4200000000000000000000000042",
            amount_fen=order.amount_fen,
            paid_at=at,
        )
        headers, body = sign_notification(
            platform_key=keys.platform,
            serial=keys.platform_serial,
            apiv3_key="f" * 32 if spoil == "wrong APIv3 key" else APIV3_KEY,
            event_type="TRANSACTION.SUCCESS",
            resource=resource,
            at=at,
        )
    with pytest.raises(BadNotification):
        payments.take_notification(rt, "wechat", headers, body, remote_addr="203.0.113.9")
    assert payments.get_order(rt, order.id).state is OrderState.CREATED
    assert control.supply_view(rt, home.account.id).balance == Money.from_yuan("-5.00")
    assert _inbox(rt) == 0
    with rt.db.read() as conn:
        logged = conn.execute(
            select(audit_log.c.action, audit_log.c.source_ip).where(
                audit_log.c.action == "security.payment_notification_rejected"
            )
        ).all()
    assert logged == [("security.payment_notification_rejected", "203.0.113.9")]


def test_a_payment_that_does_not_match_the_order_is_refused_and_calls_a_person(
    rt: Runtime, keys: FakeKeys, fake: WechatFake
) -> None:
    _wire(rt, keys, fake)
    home = _in_arrears(rt)
    order = _order(rt, home)
    fake.pay(order.out_trade_no, at=rt.clock.now())
    fake.orders[order.out_trade_no].total = 1  # 0.01 元 paid for a 100 元 order
    headers, body = fake.payment_notification(order.out_trade_no, at=rt.clock.now())
    with pytest.raises(BadNotification, match=r"0\.01"):
        payments.take_notification(rt, "wechat", headers, body, remote_addr="203.0.113.7")
    assert payments.get_order(rt, order.id).state is OrderState.CREATED
    assert control.supply_view(rt, home.account.id).balance == Money.from_yuan("-5.00")
    assert _inbox(rt) == 0
    (alarm,) = alarm_service.list_alarms(rt, kind=AlarmKind.PAYMENT_MISMATCH)
    assert order.out_trade_no in alarm.message
    # The query path finds the same: paid, nothing credited.
    rt.clock.advance(payments.FIRST_QUERY)  # type: ignore[attr-defined]
    payments.settle_unpaid(rt)
    assert payments.get_order(rt, order.id).state is OrderState.PAID
    assert control.supply_view(rt, home.account.id).balance == Money.from_yuan("-5.00")


def test_without_a_notification_the_query_credits_a_paid_order_and_closes_an_unpaid_one(
    rt: Runtime, keys: FakeKeys, fake: WechatFake
) -> None:
    _wire(rt, keys, fake)
    home = _in_arrears(rt)
    paid, unpaid = _order(rt, home, "50.00"), _order(rt, home, "20.00")
    fake.pay(paid.out_trade_no)
    assert payments.settle_unpaid(rt) == 0  # nothing asked before its first query time
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    clock.advance(payments.FIRST_QUERY)
    payments.settle_unpaid(rt)
    assert payments.get_order(rt, paid.id).state is OrderState.CREDITED
    assert payments.get_order(rt, unpaid.id).state is OrderState.CREATED
    clock.advance(payments.ORDER_TTL)
    payments.settle_unpaid(rt)
    assert payments.get_order(rt, unpaid.id).state is OrderState.CLOSED
    assert fake.orders[unpaid.out_trade_no].trade_state == "CLOSED"
    # The notification for the paid order comes a day late: nothing more is credited.
    clock.advance(timedelta(days=1))
    headers, body = fake.payment_notification(paid.out_trade_no, at=clock.now())
    assert payments.take_notification(rt, "wechat", headers, body).outcome == "already_credited"
    assert control.supply_view(rt, home.account.id).balance == Money.from_yuan("45.00")
    assert verify_ledger(rt) == []


def test_concurrent_deliveries_and_the_query_credit_exactly_once(
    pg_rt: Runtime, keys: FakeKeys, fake: WechatFake
) -> None:
    rt = pg_rt
    _wire(rt, keys, fake)
    home = _in_arrears(rt)
    order = _order(rt, home)
    headers, body = _paid(rt, fake, order)
    rt.clock.advance(payments.FIRST_QUERY)  # type: ignore[attr-defined]
    resent = [fake.payment_notification(order.out_trade_no, at=rt.clock.now()) for _ in range(3)]

    def deliver(n: int) -> str:
        if n == 0:
            payments.settle_unpaid(rt)
            return "query"
        h, b = (headers, body) if n % 2 else resent[n % 3]
        return payments.take_notification(rt, "wechat", h, b).outcome

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(deliver, range(16)))
    assert (
        outcomes.count("credited")
        + (
            payments.get_order(rt, order.id).state is OrderState.CREDITED
            and "credited" not in outcomes
        )
        == 1
    )
    assert control.supply_view(rt, home.account.id).balance == Money.from_yuan("95.00")
    restores = [
        c for c in outbox.find(rt, account_id=home.account.id) if c.kind is CommandKind.RESTORE
    ]
    assert len(restores) == 1
    assert verify_ledger(rt) == []


def test_the_site_limits_refuse_an_order_and_name_the_limit(
    rt: Runtime, keys: FakeKeys, fake: WechatFake
) -> None:
    _wire(rt, keys, fake)
    home = a_home(rt)
    with pytest.raises(Exception, match="at least"):
        _order(rt, home, "0.50")
    with api_client(rt) as api:
        response = api.post(
            f"{API}/accounts/{home.account.id}/topup-orders",
            json={"amount": "6000.00", "provider": "wechat"},
        )
        error(response, 422, "outside_topup_limits")
        made = api.post(
            f"{API}/accounts/{home.account.id}/topup-orders",
            json={"amount": "100.00", "provider": "wechat"},
        )
        assert made.status_code == 201, made.text
        assert made.json()["code_url"].startswith("weixin://")


def test_the_notify_endpoint_answers_in_the_providers_words(
    rt: Runtime, keys: FakeKeys, fake: WechatFake
) -> None:
    _wire(rt, keys, fake)
    home = _in_arrears(rt)
    order = _order(rt, home)
    headers, body = _paid(rt, fake, order)
    with api_client(rt) as api:
        bad = api.post(f"{API}/payments/notify/wechat", content=body + b" ", headers=headers)
        assert bad.status_code == 401 and bad.json()["code"] == "FAIL"
        good = api.post(f"{API}/payments/notify/wechat", content=body, headers=headers)
        assert good.status_code == 204
        again = api.post(f"{API}/payments/notify/wechat", content=body, headers=headers)
        assert again.status_code == 204
        unknown = api.post(f"{API}/payments/notify/unionpay", content=body, headers=headers)
        assert unknown.status_code == 422
    assert payments.get_order(rt, order.id).state is OrderState.CREDITED


def test_the_daily_reconciliation_finds_each_difference_and_credits_what_was_paid(
    rt: Runtime, keys: FakeKeys, fake: WechatFake
) -> None:
    _wire(rt, keys, fake)
    home = _in_arrears(rt)
    a, b, c, d = (_order(rt, home, yuan) for yuan in ("10.00", "20.00", "30.00", "40.00"))
    for order in (a, c, d):  # paid and notified
        headers, body = _paid(rt, fake, order)
        assert payments.take_notification(rt, "wechat", headers, body).outcome == "credited"
    fake.pay(b.out_trade_no, at=rt.clock.now())  # paid; the notification never came
    fake.orders[c.out_trade_no].success_time = None  # not on the statement after all
    fake.orders[d.out_trade_no].total = 3_900  # the statement says 39 元
    day = rt.clock.now().astimezone(reconcile.CHINA).date()
    run = reconcile.reconcile(rt, "wechat", day, by="finance")
    assert run.status == "discrepancies" and run.matched == 1
    found = {i.out_trade_no: (i.finding, i.action) for i in run.items}
    assert found == {
        b.out_trade_no: (Finding.PAID_NOT_CREDITED, "credited"),
        c.out_trade_no: (Finding.CREDITED_NOT_PAID, "alarm"),
        d.out_trade_no: (Finding.AMOUNT_MISMATCH, "alarm"),
    }
    assert run.totals["paid_total_fen"] == 1_000 + 2_000 + 3_900
    assert run.totals["credited_total_fen"] == 1_000 + 3_000 + 4_000
    assert payments.get_order(rt, b.id).state is OrderState.CREDITED
    assert control.supply_view(rt, home.account.id).balance == Money.from_yuan("95.00")
    assert len(alarm_service.list_alarms(rt, kind=AlarmKind.RECONCILIATION)) == 2
    again = reconcile.reconcile(rt, "wechat", day, by="finance")  # run again: B now matches
    assert {i.out_trade_no for i in again.items} == {c.out_trade_no, d.out_trade_no}
    assert control.supply_view(rt, home.account.id).balance == Money.from_yuan("95.00")
    assert verify_ledger(rt) == []


def test_the_scheduler_reconciles_yesterday_once_the_statements_are_ready(
    rt: Runtime, keys: FakeKeys, fake: WechatFake
) -> None:
    _wire(rt, keys, fake)
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    assert reconcile.reconcile_due(rt) == 0  # 08:00 in Shanghai: too early
    clock.advance(timedelta(hours=3))
    assert reconcile.reconcile_due(rt) == 1
    assert reconcile.reconcile_due(rt) == 0  # done for the day
    (run,) = reconcile.runs(rt)
    assert run.day.isoformat() == "2026-10-31" and run.status == "clean"
    with api_client(rt) as api:
        shown = api.get(f"{API}/reconciliations/{run.id}")
        assert shown.status_code == 200 and shown.json()["totals"]["paid_total"] == "0.00"
        made = api.post(f"{API}/reconciliations", json={"provider": "wechat", "day": "2026-10-31"})
        assert made.status_code == 201 and made.json()["status"] == "clean"
        error(api.get(f"{API}/reconciliations/999"), 404, "not_found")


def test_a_refund_takes_only_unspent_money_and_follows_the_providers_word(
    rt: Runtime, keys: FakeKeys, fake: WechatFake
) -> None:
    _wire(rt, keys, fake)
    home = _in_arrears(rt)  # -5 元
    order = _order(rt, home)
    headers, body = _paid(rt, fake, order)
    payments.take_notification(rt, "wechat", headers, body)  # 95 元 now

    def ask(yuan: str, key: str) -> refunds.TopupRefund:
        return refunds.refund(
            rt,
            order_id=order.id,
            amount=Money.from_yuan(yuan),
            reason="业主搬离 moved out",
            by="finance",
            idempotency_key=key,
            notify_url=NOTIFY_URL,
        )

    with pytest.raises(InvalidInput, match="unspent"):
        ask("96.00", "too-much")
    first = ask("50.00", "r1")
    assert first.state is refunds.RefundStatus.PROCESSING
    assert control.supply_view(rt, home.account.id).balance == Money.from_yuan("45.00")
    assert ask("50.00", "r1").id == first.id  # the same key: the same refund
    with pytest.raises(InvalidInput, match="at most"):
        ask("50.01", "r2")  # 50 元 left of the top-up, 45 元 unspent
    fake.settle_refund(first.out_refund_no)
    headers, body = fake.refund_notification(first.out_refund_no, at=rt.clock.now())
    assert payments.take_notification(rt, "wechat", headers, body).outcome == "refunded"
    assert payments.get_order(rt, order.id).refunded_fen == 5_000
    second = ask("10.00", "r3")
    fake.settle_refund(second.out_refund_no, status="ABNORMAL")
    headers, body = fake.refund_notification(second.out_refund_no, at=rt.clock.now())
    assert payments.take_notification(rt, "wechat", headers, body).outcome == "refund_failed"
    assert control.supply_view(rt, home.account.id).balance == Money.from_yuan("45.00")
    assert [r.state for r in refunds.refunds_of(rt, order.id)] == [
        refunds.RefundStatus.SUCCEEDED,
        refunds.RefundStatus.FAILED,
    ]
    assert verify_ledger(rt) == []


def test_a_sites_first_payments_arriving_at_once_share_one_clearing_account(
    pg_rt: Runtime,
) -> None:
    """``ensure_ledger_account`` raced by eight first payments: one account, no error."""
    rt = pg_rt
    gate = threading.Barrier(8)

    def first(_: int) -> int:
        with rt.db.write() as conn:
            gate.wait()
            return ledger_repo.ensure_ledger_account(
                conn, "clearing:RACE:wechat", LedgerAccountKind.ASSET, None, rt.clock.now()
            )

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(first, range(8)))
    assert len(ids) == 1


def test_an_order_paid_at_the_last_moment_is_credited_not_closed(
    rt: Runtime, keys: FakeKeys, fake: WechatFake
) -> None:
    """Past its time, with no notification: the provider says paid, so it is credited."""
    _wire(rt, keys, fake)
    home = _in_arrears(rt)
    order = _order(rt, home, "30.00")
    fake.pay(order.out_trade_no, at=rt.clock.now())
    rt.clock.advance(payments.ORDER_TTL + payments.FIRST_QUERY)  # type: ignore[attr-defined]
    payments.settle_unpaid(rt)
    assert payments.get_order(rt, order.id).state is OrderState.CREDITED
    assert control.supply_view(rt, home.account.id).balance == Money.from_yuan("25.00")


def test_a_jsapi_order_hands_the_payers_page_what_weixinjsbridge_needs(
    rt: Runtime, keys: FakeKeys, fake: WechatFake
) -> None:
    _wire(rt, keys, fake)
    home = a_home(rt)
    order = payments.create_order(
        rt,
        account_id=home.account.id,
        amount=Money.from_yuan("30.00"),
        provider=ProviderName.WECHAT,
        channel=Channel.JSAPI,
        requested_by="owner",
        notify_url=NOTIFY_URL,
        payer_openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
    )
    params = order.jsapi_params
    assert params is not None and params["package"].startswith("prepay_id=")
    assert params["signType"] == "RSA" and params["paySign"] and params["appId"] == APPID
    assert payments.get_order(rt, order.id).jsapi_params is None  # never stored
