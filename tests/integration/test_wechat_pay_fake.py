"""The WeChat Pay provider against a fake WeChat Pay on a real socket that checks our
request signatures with the merchant public key and signs its answers with a platform
key — in certificate mode and in public-key mode."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from meterpay.kernel.clock import SystemClock
from meterpay.payments.provider import (
    Channel,
    NotificationKind,
    OrderRequest,
    RefundRequest,
    RefundState,
    StatementKind,
    TradeState,
)
from meterpay.payments.wechat import (
    BadStatement,
    UntrustedResponse,
    WechatApiError,
    WechatPay,
)
from tests.integration.wechat_fake import (
    CHINA,
    MCHID,
    FakeKeys,
    WechatFake,
    running_wechat_fake,
)

NOTIFY_URL = "https://meterpay.example.com/api/v1/payments/wechat/notify"


@pytest.fixture(scope="module", params=["certificate", "public_key"])
def keys(request: pytest.FixtureRequest) -> FakeKeys:
    return FakeKeys(mode=request.param)


@pytest.fixture
def fake(keys: FakeKeys) -> Iterator[WechatFake]:
    with running_wechat_fake(keys) as server:
        yield server


@pytest.fixture
def wechat(fake: WechatFake, keys: FakeKeys) -> Iterator[WechatPay]:
    provider = WechatPay(keys.config(fake.url), clock=SystemClock())
    yield provider
    provider.close_client()


def order(no: str, channel: Channel = Channel.NATIVE, amount_fen: int = 10000) -> OrderRequest:
    return OrderRequest(
        out_trade_no=no,
        amount_fen=amount_fen,
        description="阳光花园 1-0101 电费充值",
        channel=channel,
        expires_at=datetime.now(UTC) + timedelta(minutes=30, microseconds=123),
        notify_url=NOTIFY_URL,
        payer_openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" if channel is Channel.JSAPI else None,
    )


def test_a_native_order_gets_a_code_url_and_reaches_wechat_as_sent(
    wechat: WechatPay, fake: WechatFake
) -> None:
    """The fake verified our signature and stored exactly the amount, expiry and notify URL."""
    created = wechat.create_order(order("MPW20261101000001"))
    assert created.code_url is not None and created.code_url.startswith("weixin://wxpay/")
    stored = fake.orders["MPW20261101000001"]
    assert (stored.trade_type, stored.total, stored.notify_url) == ("NATIVE", 10000, NOTIFY_URL)
    assert stored.time_expire.endswith("+08:00") and "." not in stored.time_expire
    assert fake.refused == []


def test_a_jsapi_order_gets_pay_parameters_signed_with_the_merchant_key(
    wechat: WechatPay, fake: WechatFake, keys: FakeKeys
) -> None:
    created = wechat.create_order(order("MPW20261101000002", Channel.JSAPI))
    params = created.jsapi_params
    assert params is not None
    assert params["package"] == f"prepay_id={fake.orders['MPW20261101000002'].prepay_id}"
    message = (
        f"{params['appId']}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
    )
    keys.merchant.public_key().verify(
        base64.b64decode(params["paySign"]), message.encode(), padding.PKCS1v15(), hashes.SHA256()
    )


def test_query_follows_the_order_from_unpaid_to_paid_and_unknown_is_none(
    wechat: WechatPay, fake: WechatFake
) -> None:
    wechat.create_order(order("MPW20261101000003", amount_fen=1234))
    unpaid = wechat.query("MPW20261101000003")
    assert unpaid is not None and unpaid.state is TradeState.NOT_PAID
    fake.pay("MPW20261101000003")
    paid = wechat.query("MPW20261101000003")
    assert paid is not None
    assert (paid.state, paid.amount_fen, paid.merchant_id) == (TradeState.PAID, 1234, MCHID)
    assert paid.transaction_id == fake.orders["MPW20261101000003"].transaction_id
    assert wechat.query("MPW20261101999999") is None


def test_close_closes_an_unpaid_order(wechat: WechatPay) -> None:
    wechat.create_order(order("MPW20261101000004"))
    wechat.close("MPW20261101000004")
    closed = wechat.query("MPW20261101000004")
    assert closed is not None and closed.state is TradeState.CLOSED


def test_closing_a_paid_order_is_wechats_error(wechat: WechatPay, fake: WechatFake) -> None:
    wechat.create_order(order("MPW20261101000005"))
    fake.pay("MPW20261101000005")
    with pytest.raises(WechatApiError) as caught:
        wechat.close("MPW20261101000005")
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (
        400,
        "ORDER_PAID",
        False,
    )


def test_a_refund_is_accepted_and_its_notification_verifies(
    wechat: WechatPay, fake: WechatFake
) -> None:
    wechat.create_order(order("MPW20261101000006"))
    fake.pay("MPW20261101000006")
    refund = wechat.refund(
        RefundRequest(
            "MPW20261101000006", "MPWR2026110100000006", 2000, 10000, "退余额", NOTIFY_URL
        )
    )
    assert (refund.state, refund.refund_fen) == (RefundState.PROCESSING, 2000)
    assert refund.refund_id == fake.refunds["MPWR2026110100000006"].refund_id
    fake.settle_refund("MPWR2026110100000006")
    headers, body = fake.refund_notification("MPWR2026110100000006")
    found = wechat.verify_notification(headers, body, now=datetime.now(UTC))
    assert found.kind is NotificationKind.REFUND
    assert found.refund is not None and found.refund.state is RefundState.SUCCESS


def test_the_fakes_payment_notification_verifies(wechat: WechatPay, fake: WechatFake) -> None:
    wechat.create_order(order("MPW20261101000007", Channel.JSAPI))
    fake.pay("MPW20261101000007")
    headers, body = fake.payment_notification("MPW20261101000007")
    found = wechat.verify_notification(headers, body, now=datetime.now(UTC))
    assert found.trade is not None
    assert (found.trade.out_trade_no, found.trade.amount_fen) == ("MPW20261101000007", 10000)


def test_the_days_statement_is_downloaded_checked_and_read(
    wechat: WechatPay, fake: WechatFake
) -> None:
    """Two payments and a refund on one Beijing day come back as three rows in fen."""
    moment = datetime.now(UTC)
    for no, amount in (("MPW20261101000008", 10000), ("MPW20261101000009", 1234)):
        wechat.create_order(order(no, amount_fen=amount))
        fake.pay(no, at=moment)
    wechat.refund(RefundRequest("MPW20261101000008", "MPWR01", 2000, 10000, "", NOTIFY_URL))
    fake.refunds["MPWR01"].created = moment
    statement = wechat.statement(moment.astimezone(CHINA).date())
    rows = sorted((r.kind, r.out_trade_no, r.amount_fen, r.fee_fen) for r in statement.rows)
    assert rows == [
        (StatementKind.PAYMENT, "MPW20261101000008", 10000, 60),
        (StatementKind.PAYMENT, "MPW20261101000009", 1234, 7),
        (StatementKind.REFUND, "MPW20261101000008", 2000, -12),
    ]
    assert (statement.total_fen, statement.fee_total_fen) == (10000 + 1234 - 2000, 55)


def test_a_day_without_trades_is_an_empty_statement(wechat: WechatPay) -> None:
    statement = wechat.statement(datetime.now(CHINA).date() - timedelta(days=3))
    assert statement.rows == [] and statement.total_fen == 0


def test_a_download_that_does_not_match_its_sha1_is_refused(
    wechat: WechatPay, fake: WechatFake
) -> None:
    wechat.create_order(order("MPW20261101000010"))
    paid_on = fake.pay("MPW20261101000010").success_time
    fake.corrupt_bill = True
    assert paid_on is not None
    with pytest.raises(BadStatement, match="SHA1"):
        wechat.statement(paid_on.astimezone(CHINA).date())


def test_a_bill_offered_on_another_host_is_not_fetched(wechat: WechatPay, fake: WechatFake) -> None:
    """Our signed Authorization header never leaves for a host that is not WeChat's."""
    wechat.create_order(order("MPW20261101000011"))
    paid_on = fake.pay("MPW20261101000011").success_time
    fake.bill_url_base = "http://127.0.0.2:9"
    assert paid_on is not None
    with pytest.raises(UntrustedResponse, match="host"):
        wechat.statement(paid_on.astimezone(CHINA).date())


def test_a_request_signed_with_another_merchant_key_is_refused_by_wechat(
    fake: WechatFake, keys: FakeKeys
) -> None:
    """The fake checks our signature: a wrong key gets WeChat's 401 SIGN_ERROR."""
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    provider = WechatPay(keys.config(fake.url, private_key_pem=pem))
    with pytest.raises(WechatApiError) as caught:
        provider.create_order(order("MPW20261101000012"))
    assert (caught.value.status, caught.value.code) == (401, "SIGN_ERROR")
    assert fake.refused == ["signature does not verify"]
    provider.close_client()


@pytest.mark.parametrize(
    ("knob", "value", "reason"),
    [
        ("tamper_responses", True, "bad signature"),
        ("response_clock_skew", timedelta(minutes=6), "5 minutes"),
        ("probe_responses", True, "SIGNTEST"),
    ],
)
def test_an_answer_without_a_good_fresh_signature_is_not_trusted(
    wechat: WechatPay, fake: WechatFake, knob: str, value: object, reason: str
) -> None:
    """Tampered, stale or probe-signed answers raise instead of being acted on."""
    setattr(fake, knob, value)
    with pytest.raises(UntrustedResponse, match=reason):
        wechat.create_order(order("MPW20261101000013"))
    with pytest.raises(UntrustedResponse):
        wechat.query("MPW20261101999999")  # not even "unknown order" is believed


def test_an_answer_signed_under_a_key_we_do_not_hold_is_not_trusted(
    fake: WechatFake, keys: FakeKeys
) -> None:
    """During a switch both keys are configured; with only the other one, nothing passes."""
    other = FakeKeys(mode="public_key" if keys.mode == "certificate" else "certificate")
    config = replace(
        keys.config(fake.url), platform_keys={other.platform_serial: other.platform_pem}
    )
    provider = WechatPay(config)
    with pytest.raises(UntrustedResponse, match="unknown Wechatpay-Serial"):
        provider.query("MPW20261101999999")
    both = dict(config.platform_keys) | {keys.platform_serial: keys.platform_pem}
    switching = WechatPay(replace(config, platform_keys=both))
    assert switching.query("MPW20261101999999") is None
    switching.close_client()
    provider.close_client()
