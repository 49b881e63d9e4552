"""Top-ups through Alipay (a fake gateway over a real socket that signs as Alipay signs):
the notification credits once, a tampered one changes nothing, the answer is Alipay's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization

from meterpay.control import service as control
from meterpay.kernel.money import Money
from meterpay.payments import service as payments
from meterpay.payments.alipay import AlipayConfig, AlipayProvider
from meterpay.payments.model import OrderState
from meterpay.payments.provider import BadNotification, Channel, ProviderName
from meterpay.runtime import Runtime
from tests.integration.alipay_fake import FakeAlipay, running_alipay
from tests.integration.builders import a_home
from tests.integration.test_alipay_fake import (
    APP_ID,
    Keys,
    _key,
    _private_pem,
    _public_base64,
)
from tests.unit.test_alipay_bill import SELLER_ID

FORM = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(app=_key(), alipay=_key(), other=_key())


@pytest.fixture
def fake(keys: Keys) -> Iterator[FakeAlipay]:
    alipay = FakeAlipay(
        app_id=APP_ID,
        seller_id=SELLER_ID,
        app_public_key=keys.app.public_key(),
        alipay_key=keys.alipay,
    )
    with running_alipay(alipay) as running:
        yield running


def test_an_alipay_notification_credits_once_and_a_tampered_one_changes_nothing(
    rt: Runtime, keys: Keys, fake: FakeAlipay
) -> None:
    config = AlipayConfig(
        app_id=APP_ID,
        seller_id=SELLER_ID,
        app_private_key=_private_pem(keys.app, serialization.PrivateFormat.PKCS8),
        alipay_public_key=_public_base64(keys.alipay),
        gateway_url=fake.gateway_url,
        timeout=5.0,
    )
    rt.payments[ProviderName.ALIPAY] = AlipayProvider(config, clock=rt.clock)
    home = a_home(rt)
    order = payments.create_order(
        rt,
        account_id=home.account.id,
        amount=Money.from_yuan("100.01"),
        provider=ProviderName.ALIPAY,
        channel=Channel.NATIVE,
        requested_by="owner",
        notify_url="http://127.0.0.1:8000/api/v1/payments/notify/alipay",
    )
    assert order.code_url
    fake.scan(order.out_trade_no)
    body = fake.pay(order.out_trade_no, at=rt.clock.now())
    with pytest.raises(BadNotification):
        payments.take_notification(rt, "alipay", FORM, body.replace(b"100.01", b"100.02"))
    assert payments.get_order(rt, order.id).state is OrderState.CREATED
    taken = payments.take_notification(rt, "alipay", FORM, body)
    assert taken.outcome == "credited"
    assert (taken.answer.status, taken.answer.body) == (200, b"success")
    assert payments.take_notification(rt, "alipay", FORM, body).outcome == "duplicate"
    assert control.supply_view(rt, home.account.id).balance == Money.from_yuan("100.01")
