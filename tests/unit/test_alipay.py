"""Alipay: notifications verified as Alipay signs them, requests signed as Alipay checks
them, answers trusted only over their exact signed text. Keys are generated here."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from meterpay.kernel.clock import FixedClock
from meterpay.kernel.errors import InvalidInput
from meterpay.payments.alipay import (
    AlipayConfig,
    AlipayError,
    AlipayProvider,
    AlipayUntrusted,
    yuan,
)
from meterpay.payments.alipay_gateway import response_spans
from meterpay.payments.alipay_sign import sign_content, sign_notification
from meterpay.payments.provider import (
    BadNotification,
    Channel,
    Notification,
    NotificationKind,
    OrderRequest,
    RefundRequest,
    RefundState,
    TradeState,
)
from meterpay.payments.sandbox_keys import private_pem, public_pem

APP_ID = "2021000000000001"
SELLER_ID = "2088102180000001"
NOW = datetime(2026, 11, 1, 2, 0, 30, tzinfo=UTC)  # 10:00:30 in Beijing
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class Keys:
    app: rsa.RSAPrivateKey
    alipay: rsa.RSAPrivateKey
    impostor: rsa.RSAPrivateKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(app=_key(), alipay=_key(), impostor=_key())


Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Wire:
    """What the provider sent, and what the stand-in gateway answers next."""

    sent: list[httpx.Request]
    reply: Handler


@pytest.fixture
def wire() -> Wire:
    return Wire(sent=[], reply=lambda request: httpx.Response(500))


@pytest.fixture
def provider(keys: Keys, wire: Wire) -> Iterator[AlipayProvider]:
    def handle(request: httpx.Request) -> httpx.Response:
        wire.sent.append(request)
        return wire.reply(request)

    config = AlipayConfig(
        app_id=APP_ID,
        seller_id=SELLER_ID,
        app_private_key=private_pem(keys.app),
        alipay_public_key=public_pem(keys.alipay),
        gateway_url="https://alipay.invalid/gateway.do",
    )
    alipay = AlipayProvider(config, clock=FixedClock(NOW), transport=httpx.MockTransport(handle))
    yield alipay
    alipay.close_client()


def _paid_form(**changes: str) -> dict[str, str]:
    form = {
        "gmt_create": "2026-11-01 10:00:05",
        "charset": "utf-8",
        "seller_email": "meter***@example.com",
        "subject": "阳光花园 1-0101 电费充值",
        "buyer_id": "2088002600000001",
        "invoice_amount": "100.00",
        "notify_id": "2026110100222100012345678901234567",
        "fund_bill_list": '[{"amount":"100.00","fundChannel":"ALIPAYACCOUNT"}]',
        "notify_type": "trade_status_sync",
        "trade_status": "TRADE_SUCCESS",
        "receipt_amount": "100.00",
        "app_id": APP_ID,
        "buyer_pay_amount": "100.00",
        "notify_time": "2026-11-01 10:00:10",
        "point_amount": "0.00",
        "total_amount": "100.00",
        "seller_id": SELLER_ID,
        "trade_no": "2026110122001400001000000001",
        "auth_app_id": APP_ID,
        "gmt_payment": "2026-11-01 10:00:09",
        "out_trade_no": "R20261101000001",
        "version": "1.0",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v != "<drop>"}


def _verify(
    provider: AlipayProvider, body: bytes, headers: dict[str, str] | None = None
) -> Notification:
    return provider.verify_notification(headers or FORM_HEADERS, body, now=NOW)


# --- notifications --------------------------------------------------------------------


def test_a_correctly_signed_payment_notification_is_accepted(
    provider: AlipayProvider, keys: Keys
) -> None:
    """TRADE_SUCCESS becomes a paid trade in exact fen, keyed by notify_id."""
    notification = _verify(provider, sign_notification(_paid_form(), keys.alipay))
    assert notification.kind is NotificationKind.PAYMENT
    assert notification.key == "2026110100222100012345678901234567"
    trade = notification.trade
    assert trade is not None
    assert trade.state is TradeState.PAID
    assert trade.amount_fen == 10000
    assert trade.out_trade_no == "R20261101000001"
    assert trade.transaction_id == "2026110122001400001000000001"
    assert trade.paid_at == datetime(2026, 11, 1, 2, 0, 9, tzinfo=UTC)
    assert (trade.merchant_id, trade.app_id) == (SELLER_ID, APP_ID)


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("TRADE_FINISHED", TradeState.PAID),
        ("WAIT_BUYER_PAY", TradeState.NOT_PAID),
        ("TRADE_CLOSED", TradeState.CLOSED),
    ],
)
def test_each_trade_status_maps_to_our_state(
    provider: AlipayProvider, keys: Keys, status: str, state: TradeState
) -> None:
    """Only TRADE_SUCCESS and TRADE_FINISHED mean paid."""
    body = sign_notification(_paid_form(trade_status=status), keys.alipay)
    trade = _verify(provider, body).trade
    assert trade is not None and trade.state is state


def test_a_full_refund_closing_the_trade_is_a_refund_notification(
    provider: AlipayProvider, keys: Keys
) -> None:
    """TRADE_CLOSED with refund_fee/gmt_refund is the refund, not an unpaid close."""
    form = _paid_form(
        trade_status="TRADE_CLOSED",
        refund_fee="100.00",
        gmt_refund="2026-11-01 10:00:08.123",
        out_biz_no="RF20261101000001",
        notify_id="2026110100222100012345678909999999",
    )
    notification = _verify(provider, sign_notification(form, keys.alipay))
    assert notification.kind is NotificationKind.REFUND
    assert notification.refund is not None and notification.trade is not None
    assert notification.refund.out_refund_no == "RF20261101000001"
    assert notification.refund.refund_fen == 10000
    assert notification.refund.state is RefundState.SUCCESS
    assert notification.refund.done_at == datetime(2026, 11, 1, 2, 0, 8, tzinfo=UTC)
    assert notification.trade.state is TradeState.REFUNDED


def test_a_partial_refund_keeps_the_trade_paid(provider: AlipayProvider, keys: Keys) -> None:
    """A partial refund arrives as TRADE_SUCCESS with refund_fee: a refund, trade still paid."""
    form = _paid_form(refund_fee="30.00", gmt_refund="2026-11-01 10:00:08", out_biz_no="RF1")
    notification = _verify(provider, sign_notification(form, keys.alipay))
    assert notification.kind is NotificationKind.REFUND
    assert notification.refund is not None and notification.refund.refund_fen == 3000
    assert notification.trade is not None and notification.trade.state is TradeState.PAID


def test_a_gbk_notification_is_verified_over_its_gbk_bytes(
    provider: AlipayProvider, keys: Keys
) -> None:
    """charset=gbk: the values are GBK percent-encoded and signed as GBK."""
    body = sign_notification(_paid_form(charset="gbk"), keys.alipay)
    assert "%D1%F4%B9%E2" in body.decode()  # 阳光 in GBK
    headers = {"content-type": "application/x-www-form-urlencoded; charset=GBK"}
    trade = _verify(provider, body, headers).trade
    assert trade is not None and trade.amount_fen == 10000


def test_sign_notification_signs_the_documented_string(keys: Keys) -> None:
    """Sorted k=v without sign and sign_type, empties skipped, SHA256withRSA over UTF-8."""
    form = {"b": "2", "a": "阳 光", "sign_type": "RSA", "empty": "", "c": "x+y"}
    fields = dict(parse_qsl(sign_notification(form, keys.alipay).decode(), keep_blank_values=True))
    assert fields["sign_type"] == "RSA2"
    signature = base64.b64decode(fields["sign"])
    expected = "a=阳 光&b=2&c=x+y".encode()
    keys.alipay.public_key().verify(signature, expected, padding.PKCS1v15(), hashes.SHA256())


def _tamper(body: bytes, field: str, value: str) -> bytes:
    fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
    fields[field] = value
    return urlencode(fields).encode()


@pytest.mark.parametrize(
    ("build", "complaint"),
    [
        (lambda k: sign_notification(_paid_form(), k.impostor), "signature"),
        (lambda k: _tamper(sign_notification(_paid_form(), k.alipay), "total_amount", "1.00"),
         "signature"),
        (lambda k: _tamper(sign_notification(_paid_form(), k.alipay), "sign", ""), "not signed"),
        (lambda k: sign_notification(_paid_form(app_id="2021999999999999"), k.alipay), "app"),
        (lambda k: sign_notification(_paid_form(seller_id="2088999999999999"), k.alipay),
         "seller"),
        (lambda k: _tamper(sign_notification(_paid_form(), k.alipay), "sign_type", "RSA"),
         "sign_type"),
        (lambda k: sign_notification(_paid_form(notify_type="trade_refund"), k.alipay),
         "notify_type"),
        (lambda k: sign_notification(_paid_form(total_amount="1e2"), k.alipay), "total_amount"),
        (lambda k: sign_notification(_paid_form(total_amount="100.001"), k.alipay),
         "total_amount"),
        (lambda k: sign_notification(_paid_form(receipt_amount="-1.00"), k.alipay),
         "receipt_amount"),
        (lambda k: sign_notification(_paid_form(trade_status="TRADE_PENDING"), k.alipay),
         "trade_status"),
        (lambda k: sign_notification(_paid_form(notify_id="<drop>"), k.alipay), "notify_id"),
        (lambda k: sign_notification(_paid_form(notify_time="<drop>"), k.alipay),
         "notify_time"),
        (lambda k: sign_notification(_paid_form(), k.alipay) + b"&app_id=2021999999999999",
         "repeats"),
    ],
)  # fmt: skip
def test_an_untrustworthy_notification_is_refused(
    provider: AlipayProvider,
    keys: Keys,
    build: Callable[[Keys], bytes],
    complaint: str,
) -> None:
    """Bad or missing signature, tampering, another app or seller, RSA1, malformed fields."""
    with pytest.raises(BadNotification, match=complaint):
        _verify(provider, build(keys))


def _fields_with_a_plus_in_the_sign(keys: Keys) -> dict[str, str]:
    """A signature without '+' cannot show the trap (about 1 in 250 do not have one)."""
    for attempt in range(50):
        form = _paid_form(notify_id=f"2026110100222100012345678{attempt:09d}")
        fields = dict(parse_qsl(sign_notification(form, keys.alipay).decode()))
        if "+" in fields["sign"]:
            return fields
    raise AssertionError("no signature with a '+' in 50 tries")


def test_a_plus_mangled_signature_is_refused(provider: AlipayProvider, keys: Keys) -> None:
    """A form built without encoding the sign turns its '+' into spaces: refused, not fixed."""
    fields = _fields_with_a_plus_in_the_sign(keys)
    mangled = "&".join(
        f"{k}={v}" if k == "sign" else urlencode({k: v}) for k, v in fields.items()
    ).encode()
    with pytest.raises(BadNotification, match="signature"):
        _verify(provider, mangled)
    assert _verify(provider, urlencode(fields).encode()).trade is not None


@pytest.mark.parametrize(
    ("notify_time", "accepted"),
    [
        ("2026-10-31 08:00:31", True),  # 26 h old: Alipay is still resending
        ("2026-10-31 08:00:29", False),  # older than 26 h
        ("2026-11-01 10:05:30", True),  # 5 minutes ahead: clock skew
        ("2026-11-01 10:05:31", False),  # further ahead
    ],
)
def test_notify_time_must_be_within_the_resend_window(
    provider: AlipayProvider, keys: Keys, notify_time: str, accepted: bool
) -> None:
    """Up to 26 hours old and 5 minutes ahead, read in Beijing time."""
    body = sign_notification(_paid_form(notify_time=notify_time), keys.alipay)
    if accepted:
        assert _verify(provider, body).trade is not None
    else:
        with pytest.raises(BadNotification, match="notify_time"):
            _verify(provider, body)


@pytest.mark.parametrize(
    ("content_type", "complaint"),
    [
        ("application/json", "Content-Type"),
        ("application/x-www-form-urlencoded; charset=gbk", "disagree"),
        ("application/x-www-form-urlencoded; charset=latin-1", "unsupported"),
    ],
)
def test_the_body_must_be_a_form_in_the_signed_charset(
    provider: AlipayProvider, keys: Keys, content_type: str, complaint: str
) -> None:
    """A JSON body, a header charset other than the form's, or an unknown charset."""
    body = sign_notification(_paid_form(), keys.alipay)
    with pytest.raises(BadNotification, match=complaint):
        _verify(provider, body, {"Content-Type": content_type})


def test_answers_are_plain_success_or_fail(provider: AlipayProvider) -> None:
    """Only the seven letters 'success' stop Alipay resending."""
    assert provider.answer(accepted=True).body == b"success"
    refused = provider.answer(accepted=False, message="order locked")
    assert (refused.status, refused.body) == (200, b"fail")
    assert refused.content_type.startswith("text/plain")


# --- requests and answers ---------------------------------------------------------------


def _answer(
    method: str, node: Mapping[str, object], key: rsa.RSAPrivateKey | None, *, pretty: bool = False
) -> httpx.Response:
    """An answer as Alipay sends it: the node's text, then a sign over exactly that text."""
    text = json.dumps(node, ensure_ascii=False, indent=1 if pretty else None)
    name = method.replace(".", "_") + "_response"
    body = f'{{"{name}":{text}'
    if key is not None:
        signature = key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
        body += f',"sign":"{base64.b64encode(signature).decode()}"'
    return httpx.Response(200, content=(body + "}").encode())


def _params(request: httpx.Request) -> dict[str, str]:
    params = dict(request.url.params)
    params.update(parse_qsl(request.content.decode()))
    return params


def _order(amount_fen: int, channel: Channel = Channel.NATIVE) -> OrderRequest:
    return OrderRequest(
        out_trade_no="R20261101000001",
        amount_fen=amount_fen,
        description="阳光花园 1-0101 电费充值",
        channel=channel,
        expires_at=NOW + timedelta(minutes=30),
        notify_url="https://pay.example.com/notify/alipay",
    )


QR = {
    "code": "10000",
    "msg": "Success",
    "out_trade_no": "R1",
    "qr_code": "https://qr.alipay.com/bax01",
}


def test_requests_are_signed_as_alipay_checks_them(
    provider: AlipayProvider, wire: Wire, keys: Keys
) -> None:
    """Common params in the query, biz_content in the body; sign_type inside the signed text."""
    wire.reply = lambda request: _answer("alipay.trade.precreate", QR, keys.alipay)
    provider.create_order(_order(10000))
    params = _params(wire.sent[0])
    assert params["method"] == "alipay.trade.precreate"
    assert params["timestamp"] == "2026-11-01 10:00:30"
    assert (params["sign_type"], params["charset"], params["version"]) == ("RSA2", "utf-8", "1.0")
    assert "biz_content" in parse_qsl(wire.sent[0].content.decode())[0]
    signed = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign")
    assert "sign_type=RSA2" in signed
    keys.app.public_key().verify(
        base64.b64decode(params["sign"]), signed.encode(), padding.PKCS1v15(), hashes.SHA256()
    )


def test_empty_parameters_are_left_out_of_a_request(provider: AlipayProvider) -> None:
    """A query has no notify_url, and an empty value is neither sent nor signed."""
    params = provider.gateway.signed_params("alipay.trade.query", {"out_trade_no": "R1"})
    assert "notify_url" not in params
    assert sign_content({"a": "1", "b": "", "sign": "x"}, include_sign_type=True) == "a=1"


@pytest.mark.parametrize(
    ("fen", "text"), [(10000, "100.00"), (1, "0.01"), (10001, "100.01"), (123456789, "1234567.89")]
)
def test_precreate_sends_the_amount_as_an_exact_yuan_string(
    provider: AlipayProvider, wire: Wire, keys: Keys, fen: int, text: str
) -> None:
    """total_amount is built from fen, never through a float; the QR code comes back."""
    wire.reply = lambda request: _answer("alipay.trade.precreate", QR, keys.alipay)
    order = provider.create_order(_order(fen))
    biz = json.loads(_params(wire.sent[0])["biz_content"])
    assert biz["total_amount"] == text
    assert biz["time_expire"] == "2026-11-01 10:30:30"
    assert _params(wire.sent[0])["notify_url"] == "https://pay.example.com/notify/alipay"
    assert order.code_url == "https://qr.alipay.com/bax01"


def test_refund_sends_an_exact_yuan_amount_and_our_refund_number(
    provider: AlipayProvider, wire: Wire, keys: Keys
) -> None:
    """out_request_no is our out_refund_no, so a retry is idempotent at Alipay."""
    node = {"code": "10000", "msg": "Success", "fund_change": "Y", "refund_fee": "30.05",
            "gmt_refund_pay": "2026-11-01 10:00:31"}  # fmt: skip
    wire.reply = lambda request: _answer("alipay.trade.refund", node, keys.alipay)
    refund = provider.refund(
        RefundRequest("R1", "RF1", refund_fen=3005, total_fen=10000, reason="误充", notify_url="")
    )
    biz = json.loads(_params(wire.sent[0])["biz_content"])
    assert (biz["refund_amount"], biz["out_request_no"]) == ("30.05", "RF1")
    assert (refund.state, refund.refund_fen) == (RefundState.SUCCESS, 3005)


def test_jsapi_is_refused_as_wechat_only(provider: AlipayProvider, wire: Wire) -> None:
    """Alipay has no JSAPI channel here; nothing is sent."""
    with pytest.raises(InvalidInput, match="Native"):
        provider.create_order(_order(100, Channel.JSAPI))
    assert wire.sent == []


def test_an_answer_is_verified_over_its_exact_text(
    provider: AlipayProvider, wire: Wire, keys: Keys
) -> None:
    """Indented JSON verifies: the signature covers the bytes as sent, not a re-dump."""
    node = {"code": "10000", "msg": "Success", "out_trade_no": "R1", "trade_no": "2026",
            "trade_status": "TRADE_SUCCESS", "total_amount": "88.80",
            "send_pay_date": "2026-11-01 10:00:09"}  # fmt: skip
    wire.reply = lambda request: _answer("alipay.trade.query", node, keys.alipay, pretty=True)
    trade = provider.query("R1")
    assert trade is not None and (trade.state, trade.amount_fen) == (TradeState.PAID, 8880)


def test_an_answer_signed_by_another_key_is_untrusted(
    provider: AlipayProvider, wire: Wire, keys: Keys
) -> None:
    """A man in the middle cannot say 'paid'."""
    node = {"code": "10000", "trade_status": "TRADE_SUCCESS", "total_amount": "1.00"}
    wire.reply = lambda request: _answer("alipay.trade.query", node, keys.impostor)
    with pytest.raises(AlipayUntrusted):
        provider.query("R1")


def test_an_unsigned_success_is_untrusted(provider: AlipayProvider, wire: Wire) -> None:
    """A success must carry Alipay's signature."""
    wire.reply = lambda request: _answer("alipay.trade.precreate", QR, None)
    with pytest.raises(AlipayUntrusted, match="without a signature"):
        provider.create_order(_order(100))


def test_trade_not_exist_means_none_only_when_alipay_signed_it(
    provider: AlipayProvider, wire: Wire, keys: Keys
) -> None:
    """Signed ACQ.TRADE_NOT_EXIST: None; the same refusal unsigned only raises."""
    node = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST"}
    wire.reply = lambda request: _answer("alipay.trade.query", node, keys.alipay)
    assert provider.query("R1") is None
    wire.reply = lambda request: _answer("alipay.trade.query", node, None)
    with pytest.raises(AlipayError) as raised:
        provider.query("R1")
    assert not raised.value.signed


def test_a_signature_over_unescaped_slashes_verifies(
    provider: AlipayProvider, wire: Wire, keys: Keys
) -> None:
    """Alipay may send 'https:\\/\\/…' yet sign 'https://…'; its SDK accepts that, so do we."""
    signed_text = json.dumps(QR, ensure_ascii=False)
    signature = base64.b64encode(
        keys.alipay.sign(signed_text.encode(), padding.PKCS1v15(), hashes.SHA256())
    ).decode()
    sent = signed_text.replace("/", "\\/")
    body = f'{{"alipay_trade_precreate_response":{sent},"sign":"{signature}"}}'
    wire.reply = lambda request: httpx.Response(200, content=body.encode())
    assert provider.create_order(_order(100)).code_url == "https://qr.alipay.com/bax01"


@pytest.mark.parametrize(
    "text",
    ['{"a":1,"a":2}', '{"a":1 "b":2}', '{"a":1}x', "[1]", '{"a":'],
)
def test_a_malformed_answer_is_untrusted(text: str) -> None:
    """Repeated keys, missing commas, trailing text: the signed span would be ambiguous."""
    with pytest.raises(AlipayUntrusted):
        response_spans(text)


def test_yuan_is_exact_and_refuses_what_is_not_fen() -> None:
    """Integer fen in, a two-decimal yuan string out."""
    assert [yuan(0), yuan(5), yuan(120), yuan(100_000_000_00)] == [
        "0.00",
        "0.05",
        "1.20",
        "100000000.00",
    ]
    for bad in (-1, 1.5, True):
        with pytest.raises(InvalidInput):
            yuan(bad)  # type: ignore[arg-type]


def test_secrets_stay_out_of_reprs(keys: Keys, provider: AlipayProvider) -> None:
    """Neither the config nor the provider shows a key."""
    config = AlipayConfig(APP_ID, SELLER_ID, private_pem(keys.app), public_pem(keys.alipay))
    for text in (repr(config), str(config), repr(provider), repr(provider.gateway)):
        assert "PRIVATE" not in text and "PUBLIC" not in text and "MII" not in text
    assert APP_ID in repr(config)
