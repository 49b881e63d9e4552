"""A compound with its own WeChat Pay merchant (``MP_PAYMENT_MERCHANTS_FILE``): its
orders go to its merchant, only its merchant's notifications credit them, and each
merchant's statement is reconciled against that merchant's orders alone. Two fake
WeChat Pay servers on real sockets, each with its own keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from meterpay.config import Settings
from meterpay.db.schema import audit_log, payment_notifications
from meterpay.kernel.clock import SystemClock
from meterpay.kernel.money import Money
from meterpay.ledger.service import verify_ledger
from meterpay.payments import reconcile, refunds
from meterpay.payments import service as payments
from meterpay.payments.model import Order, OrderState
from meterpay.payments.provider import Channel, ProviderName
from meterpay.payments.setup import merchants_from
from meterpay.payments.wechat import WechatPay
from meterpay.runtime import Runtime
from tests.integration.builders import Home, a_home
from tests.integration.http import API
from tests.integration.signed import api_client
from tests.integration.wechat_fake import FakeKeys, WechatFake, running_wechat_fake
from tests.merchant_files import wechat_entry, write


@pytest.fixture(scope="module")
def default_keys() -> FakeKeys:
    return FakeKeys()


@pytest.fixture(scope="module")
def garden_keys() -> FakeKeys:
    return FakeKeys(
        mchid="1900000002",
        appid="wxgarden00000001",
        merchant_serial="4B2C7E10AA55CC3300118899DDEE0011",
        public_key_id="PUB_KEY_ID_0119000000022026110100000000000002",
    )


@pytest.fixture
def fakes(default_keys: FakeKeys, garden_keys: FakeKeys) -> Iterator[tuple[WechatFake, ...]]:
    with running_wechat_fake(default_keys) as default, running_wechat_fake(garden_keys) as own:
        yield default, own


@pytest.fixture
def wired(
    rt: Runtime,
    tmp_path: Path,
    default_keys: FakeKeys,
    garden_keys: FakeKeys,
    fakes: tuple[WechatFake, WechatFake],
) -> Runtime:
    """The default merchant from the settings, the GARDEN site's own from a file."""
    default, own = fakes
    rt.payments[ProviderName.WECHAT] = WechatPay(
        default_keys.config(default.url), clock=SystemClock()
    )
    path = write(tmp_path, wechat_entry(tmp_path, "garden", ["GARDEN"], garden_keys, own.url))
    settings = Settings(database_url="sqlite://", payment_merchants_file=path)
    rt.merchants = merchants_from(settings, SystemClock())
    return rt


def _order(rt: Runtime, home: Home, yuan: str = "50.00") -> Order:
    return payments.create_order(
        rt,
        account_id=home.account.id,
        amount=Money.from_yuan(yuan),
        provider=ProviderName.WECHAT,
        channel=Channel.NATIVE,
        requested_by="owner",
    )


def _paid(rt: Runtime, fake: WechatFake, order: Order) -> tuple[dict[str, str], bytes]:
    fake.pay(order.out_trade_no, at=rt.clock.now())
    return fake.payment_notification(order.out_trade_no, at=rt.clock.now())


def test_a_sites_order_goes_to_its_own_merchant_and_other_sites_to_the_default(
    wired: Runtime, fakes: tuple[WechatFake, WechatFake]
) -> None:
    default, own = fakes
    garden, east = a_home(wired, code="GARDEN"), a_home(wired, code="EAST")
    mine, theirs = _order(wired, garden), _order(wired, east)
    assert (mine.merchant, theirs.merchant) == ("garden", "")
    assert set(own.orders) == {mine.out_trade_no}
    assert set(default.orders) == {theirs.out_trade_no}
    notify = {o: own.orders[o].notify_url for o in own.orders}
    assert notify[mine.out_trade_no].endswith("/api/v1/payments/notify/wechat/garden")
    assert default.orders[theirs.out_trade_no].notify_url.endswith("/payments/notify/wechat")


def test_only_the_merchants_own_address_and_keys_credit_its_order(
    wired: Runtime, fakes: tuple[WechatFake, WechatFake]
) -> None:
    _, own = fakes
    garden = a_home(wired, code="GARDEN")
    order = _order(wired, garden)
    headers, body = _paid(wired, own, order)
    with api_client(wired) as api:
        wrong = api.post(f"{API}/payments/notify/wechat", content=body, headers=headers)
        assert wrong.status_code == 401  # the default merchant does not know this key
        nobody = api.post(f"{API}/payments/notify/wechat/park", content=body, headers=headers)
        assert nobody.status_code == 404
        assert payments.get_order(wired, order.id).state is OrderState.CREATED
        right = api.post(f"{API}/payments/notify/wechat/garden", content=body, headers=headers)
        assert right.status_code == 204
        again = api.post(f"{API}/payments/notify/wechat/garden", content=body, headers=headers)
        assert again.status_code == 204
    assert payments.get_order(wired, order.id).state is OrderState.CREDITED
    with wired.db.read() as conn:
        stored = conn.execute(select(payment_notifications.c.merchant)).scalars().all()
        rejected = (
            conn.execute(
                select(audit_log.c.object_id).where(
                    audit_log.c.action == "security.payment_notification_rejected"
                )
            )
            .scalars()
            .all()
        )
    assert stored == ["garden"] and rejected == ["wechat"]
    assert verify_ledger(wired) == []


def test_a_merchant_cannot_credit_an_order_made_with_another(
    wired: Runtime, fakes: tuple[WechatFake, WechatFake]
) -> None:
    """Even correctly signed by the site's merchant, a payment of an order the default
    merchant made is not ours to credit through that merchant."""
    default, own = fakes
    east = a_home(wired, code="EAST")
    order = _order(wired, east)
    own.orders[order.out_trade_no] = default.orders[order.out_trade_no]  # the same number
    headers, body = _paid(wired, own, order)
    taken = payments.take_notification(wired, "wechat", headers, body, merchant="garden")
    assert taken.outcome == "unknown_order"
    assert payments.get_order(wired, order.id).state is OrderState.CREATED


def test_each_merchant_is_reconciled_against_its_own_orders(
    wired: Runtime, fakes: tuple[WechatFake, WechatFake]
) -> None:
    default, own = fakes
    garden, east = a_home(wired, code="GARDEN"), a_home(wired, code="EAST")
    for home, fake in ((garden, own), (east, default)):
        order = _order(wired, home, "30.00")
        headers, body = _paid(wired, fake, order)
        merchant = order.merchant
        taken = payments.take_notification(wired, "wechat", headers, body, merchant=merchant)
        assert taken.outcome == "credited"
    wired.clock.advance(timedelta(days=1, hours=3))  # type: ignore[attr-defined]
    assert reconcile.reconcile_due(wired) == 2  # yesterday, once for each merchant
    assert reconcile.reconcile_due(wired) == 0
    found = {(r.merchant, r.status, r.matched) for r in reconcile.runs(wired)}
    assert found == {("", "clean", 1), ("garden", "clean", 1)}
    with api_client(wired) as api:
        again = api.post(
            f"{API}/reconciliations",
            json={"provider": "wechat", "merchant": "garden", "day": "2026-11-01"},
        )
        assert again.status_code == 201
        assert (again.json()["merchant"], again.json()["matched"]) == ("garden", 1)


def test_a_refund_goes_back_through_the_merchant_that_was_paid(
    wired: Runtime, fakes: tuple[WechatFake, WechatFake]
) -> None:
    default, own = fakes
    garden = a_home(wired, code="GARDEN")
    order = _order(wired, garden)
    headers, body = _paid(wired, own, order)
    payments.take_notification(wired, "wechat", headers, body, merchant="garden")
    done = refunds.refund(
        wired,
        order_id=order.id,
        amount=Money.from_yuan("20.00"),
        reason="多充",
        by="finance",
        idempotency_key="r1",
    )
    assert done.out_refund_no in own.refunds and not default.refunds
    (asked,) = [
        json.loads(r.body) for r in own.seen if r.target.endswith("/refund/domestic/refunds")
    ]
    assert asked["notify_url"].endswith("/api/v1/payments/notify/wechat/garden")
