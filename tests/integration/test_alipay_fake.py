"""The Alipay provider against a fake Alipay gateway on a real socket, which checks our
request signatures with our app public key and signs its answers with its own key."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from meterpay.kernel.clock import FixedClock
from meterpay.payments.alipay import (
    AlipayConfig,
    AlipayError,
    AlipayProvider,
    AlipayUnavailable,
    AlipayUntrusted,
    StatementNotReady,
)
from meterpay.payments.provider import (
    Channel,
    NotificationKind,
    OrderRequest,
    PaymentProvider,
    RefundRequest,
    RefundState,
    StatementKind,
    TradeState,
)
from tests.integration.alipay_fake import FakeAlipay, running_alipay
from tests.unit.test_alipay_bill import DAY, SELLER_ID, bill_zip

APP_ID = "2021000000000001"
NOW = datetime(2026, 11, 1, 2, 0, 0, tzinfo=UTC)
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _private_pem(key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def _public_base64(key: rsa.RSAPrivateKey) -> str:
    """The Alipay console shows its public key as bare base64, without PEM armour."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


@dataclass(frozen=True)
class Keys:
    app: rsa.RSAPrivateKey
    alipay: rsa.RSAPrivateKey
    other: rsa.RSAPrivateKey


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
        bills={DAY: bill_zip()},
    )
    with running_alipay(alipay) as running:
        yield running


def _provider(
    fake: FakeAlipay, keys: Keys, *, app_key: rsa.RSAPrivateKey | None = None
) -> AlipayProvider:
    pkcs1 = serialization.PrivateFormat.TraditionalOpenSSL  # as Alipay's key tool writes it
    config = AlipayConfig(
        app_id=APP_ID,
        seller_id=SELLER_ID,
        app_private_key=_private_pem(app_key or keys.app, pkcs1),
        alipay_public_key=_public_base64(keys.alipay),
        gateway_url=fake.gateway_url,
        timeout=5.0,
    )
    return AlipayProvider(config, clock=FixedClock(NOW))


@pytest.fixture
def alipay(fake: FakeAlipay, keys: Keys) -> Iterator[AlipayProvider]:
    provider = _provider(fake, keys)
    yield provider
    provider.close_client()


def _order(out_trade_no: str = "R20261101000001", amount_fen: int = 10000) -> OrderRequest:
    return OrderRequest(
        out_trade_no=out_trade_no,
        amount_fen=amount_fen,
        description="阳光花园 1-0101 电费充值",
        channel=Channel.NATIVE,
        expires_at=NOW + timedelta(minutes=30),
        notify_url="https://pay.example.com/notify/alipay",
    )


def _refund(out_refund_no: str, fen: int) -> RefundRequest:
    return RefundRequest("R20261101000001", out_refund_no, fen, 10000, "误充退款", "")


def test_the_provider_satisfies_the_payment_provider_protocol(alipay: AlipayProvider) -> None:
    """It can stand wherever a PaymentProvider is expected."""
    provider: PaymentProvider = alipay
    assert provider.name == "alipay"


def test_a_qr_order_is_created_with_a_signature_alipay_accepts(
    alipay: AlipayProvider, fake: FakeAlipay
) -> None:
    """precreate: the fake checked our signature, recorded exact yuan, returned a QR code."""
    order = alipay.create_order(_order(amount_fen=12345))
    assert order.code_url is not None and order.code_url.startswith("https://qr.alipay.com/")
    call = fake.calls[0]
    biz = json.loads(call["biz_content"])
    assert biz["total_amount"] == "123.45"
    assert biz["subject"] == "阳光花园 1-0101 电费充值"
    assert call["notify_url"] == "https://pay.example.com/notify/alipay"
    assert fake.trades["R20261101000001"].total.as_tuple().exponent == -2


def test_a_wrong_app_key_is_refused_with_invalid_signature(fake: FakeAlipay, keys: Keys) -> None:
    """Signed with a key Alipay does not know: Alipay's isv.invalid-signature, unsigned."""
    provider = _provider(fake, keys, app_key=keys.other)
    with pytest.raises(AlipayError) as raised:
        provider.create_order(_order())
    assert raised.value.sub_code == "isv.invalid-signature"
    assert not raised.value.signed
    assert fake.calls == []


def test_an_order_unknown_until_scanned_then_paid_then_notified(
    alipay: AlipayProvider, fake: FakeAlipay
) -> None:
    """Query: None before the scan, NOT_PAID after, PAID after paying; the notification
    the fake posts verifies and says the same."""
    alipay.create_order(_order())
    assert alipay.query("R20261101000001") is None
    fake.scan("R20261101000001")
    waiting = alipay.query("R20261101000001")
    assert waiting is not None and waiting.state is TradeState.NOT_PAID
    body = fake.pay("R20261101000001", at=NOW + timedelta(seconds=40))
    paid = alipay.query("R20261101000001")
    assert paid is not None
    assert (paid.state, paid.amount_fen) == (TradeState.PAID, 10000)
    assert paid.paid_at == NOW + timedelta(seconds=40)
    notification = alipay.verify_notification(FORM, body, now=NOW + timedelta(minutes=1))
    assert notification.kind is NotificationKind.PAYMENT
    assert notification.trade is not None
    assert notification.trade.transaction_id == paid.transaction_id
    assert alipay.answer(accepted=True).body == b"success"


def test_closing_an_unscanned_or_waiting_order(alipay: AlipayProvider, fake: FakeAlipay) -> None:
    """Nothing to close before the scan is fine; a scanned, unpaid order ends CLOSED."""
    alipay.create_order(_order())
    alipay.close("R20261101000001")
    fake.scan("R20261101000001")
    alipay.close("R20261101000001")
    closed = alipay.query("R20261101000001")
    assert closed is not None and closed.state is TradeState.CLOSED


def test_closing_a_paid_order_is_refused(alipay: AlipayProvider, fake: FakeAlipay) -> None:
    """A paid trade cannot be closed: Alipay's refusal reaches the caller."""
    alipay.create_order(_order())
    fake.scan("R20261101000001")
    fake.pay("R20261101000001", at=NOW)
    with pytest.raises(AlipayError) as raised:
        alipay.close("R20261101000001")
    assert raised.value.said("ACQ.TRADE_STATUS_ERROR")


def test_refunds_are_exact_idempotent_and_bounded(alipay: AlipayProvider, fake: FakeAlipay) -> None:
    """A partial refund succeeds; its retry moves no money; too much is refused."""
    alipay.create_order(_order())
    fake.scan("R20261101000001")
    fake.pay("R20261101000001", at=NOW)
    first = alipay.refund(_refund("RF1", 3005))
    again = alipay.refund(_refund("RF1", 3005))
    assert (first.state, again.state) == (RefundState.SUCCESS, RefundState.SUCCESS)
    assert sum(fake.trades["R20261101000001"].refunds.values()) == Decimal("30.05")
    assert alipay.refund(_refund("RF2", 7000)).state is RefundState.FAILED
    assert alipay.refund(_refund("RF3", 6995)).state is RefundState.SUCCESS
    closed = alipay.query("R20261101000001")
    assert closed is not None and closed.state is TradeState.CLOSED


def test_the_day_s_statement_is_downloaded_and_parsed(alipay: AlipayProvider) -> None:
    """The signed bill URL leads to the GBK ZIP, parsed and cross-checked."""
    statement = alipay.statement(DAY)
    assert len(statement.rows) == 4
    assert statement.rows[-1].kind is StatementKind.REFUND
    assert (statement.total_fen, statement.fee_total_fen) == (130457, 783)


def test_a_day_without_a_bill_is_not_ready(alipay: AlipayProvider) -> None:
    """isp.bill_not_exist becomes StatementNotReady, for the reconciler to try later."""
    with pytest.raises(StatementNotReady):
        alipay.statement(DAY + timedelta(days=1))


def test_answers_signed_by_someone_else_are_untrusted(
    alipay: AlipayProvider, fake: FakeAlipay, keys: Keys
) -> None:
    """If the gateway's answers are not signed by the Alipay key we hold, nothing is believed."""
    fake.alipay_key = keys.other
    with pytest.raises(AlipayUntrusted):
        alipay.create_order(_order())


def test_an_unreachable_gateway_is_unavailable_and_a_refund_stays_pending(
    keys: Keys, fake: FakeAlipay
) -> None:
    """Connection refused: AlipayUnavailable; a refund's outcome is unknown, so PROCESSING."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    fake.url = f"http://127.0.0.1:{closed_port}"
    provider = _provider(fake, keys)
    with pytest.raises(AlipayUnavailable):
        provider.query("R20261101000001")
    assert provider.refund(_refund("RF1", 100)).state is RefundState.PROCESSING
