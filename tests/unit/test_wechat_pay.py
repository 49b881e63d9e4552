"""WeChat Pay API v3: request signatures, JSAPI pay parameters, and notification
verification in certificate and public-key mode, with every way a notification must be
refused. Keys are made here; the expected messages are written out by hand from WeChat's
documentation, not taken from the code under test."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from meterpay.kernel.clock import FixedClock
from meterpay.kernel.errors import InvalidInput
from meterpay.payments.provider import (
    BadNotification,
    NotificationKind,
    RefundState,
    TradeState,
)
from meterpay.payments.sandbox_keys import private_pem, public_pem
from meterpay.payments.wechat import WechatConfig, WechatPay, WechatPayError
from meterpay.payments.wechat_sign import (
    authorization,
    certificate_serial,
    decrypt_resource,
    refund_resource,
    sign_notification,
    transaction_resource,
)

NOW = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
MCHID, APPID = "1900000001", "wx2421b1c4370ec43b"
APIV3_KEY = "0123456789abcdef0123456789abcdef"
PUB_KEY_ID = "PUB_KEY_ID_0119000000012026110100000000000001"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed(key: rsa.RSAPrivateKey, *, days: int = 1825, start: datetime = NOW) -> str:
    """A platform certificate as WeChat issues them, self-signed for the test."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - timedelta(days=1))
        .not_valid_after(start + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {name: new_key() for name in ("merchant", "cert", "pubkey", "stranger")}


@pytest.fixture(scope="module")
def cert_pem(keys: dict[str, rsa.RSAPrivateKey]) -> str:
    return self_signed(keys["cert"])


@pytest.fixture
def config(keys: dict[str, rsa.RSAPrivateKey], cert_pem: str) -> WechatConfig:
    return WechatConfig(
        mchid=MCHID,
        appid=APPID,
        serial_no="3775B6A45ACD588826D15E583A95F5DD",
        private_key_pem=private_pem(keys["merchant"]),
        apiv3_key=APIV3_KEY,
        platform_keys={
            certificate_serial(cert_pem): cert_pem,
            PUB_KEY_ID: public_pem(keys["pubkey"]),
        },
    )


@pytest.fixture
def wechat(config: WechatConfig) -> Iterator[WechatPay]:
    refuse = httpx.MockTransport(lambda request: httpx.Response(599))
    provider = WechatPay(config, client=httpx.Client(transport=refuse), clock=FixedClock(NOW))
    yield provider
    provider.close_client()


def verifies(key: rsa.RSAPrivateKey, message: bytes, signature_b64: str) -> bool:
    try:
        key.public_key().verify(
            base64.b64decode(signature_b64), message, padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        return False
    return True


def payment(**changes: Any) -> dict[str, Any]:
    resource = {
        "mchid": MCHID,
        "appid": APPID,
        "out_trade_no": "MPW20261101000001",
        "transaction_id": "4200002026110100000001",
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "success_time": "2026-11-01T09:59:30+08:00",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {
            "total": 10000,
            "payer_total": 10000,
            "currency": "CNY",
            "payer_currency": "CNY",
        },
    }
    return resource | changes


# --- requests -----------------------------------------------------------------------------------


AUTH = re.compile(
    r'^WECHATPAY2-SHA256-RSA2048 mchid="(?P<mchid>[^"]+)",nonce_str="(?P<nonce>[^"]+)",'
    r'signature="(?P<signature>[^"]+)",timestamp="(?P<timestamp>\d+)",serial_no="(?P<serial>[^"]+)"$'
)


def test_a_signed_post_verifies_with_the_merchant_public_key(
    keys: dict[str, rsa.RSAPrivateKey],
) -> None:
    """The Authorization header signs METHOD, path, timestamp, nonce and body, each line-ended."""
    body = json.dumps({"appid": APPID, "amount": {"total": 1}}, ensure_ascii=False).encode()
    header = authorization(
        mchid=MCHID,
        serial_no="5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        private_key=keys["merchant"],
        method="POST",
        path_and_query="/v3/pay/transactions/native",
        body=body,
        timestamp="1793498400",
        nonce="593BEC0C930BF1AFEB40B4A08C8FB242",
    )
    found = AUTH.match(header)
    assert found is not None
    assert found["mchid"] == MCHID and found["serial"] == "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
    message = (
        b"POST\n/v3/pay/transactions/native\n1793498400\n593BEC0C930BF1AFEB40B4A08C8FB242\n"
        + body
        + b"\n"
    )
    assert verifies(keys["merchant"], message, found["signature"])
    assert not verifies(keys["merchant"], message.replace(b"POST", b"GET"), found["signature"])


def test_a_get_signs_the_query_and_an_empty_body(keys: dict[str, rsa.RSAPrivateKey]) -> None:
    """A GET signs ``PATH?QUERY`` and an empty body line."""
    header = authorization(
        mchid=MCHID,
        serial_no="1",
        private_key=keys["merchant"],
        method="GET",
        path_and_query="/v3/pay/transactions/out-trade-no/MPW20261101000001?mchid=1900000001",
        body=b"",
        timestamp="1793498400",
        nonce="N",
    )
    found = AUTH.match(header)
    assert found is not None
    message = (
        b"GET\n/v3/pay/transactions/out-trade-no/MPW20261101000001?mchid=1900000001\n"
        b"1793498400\nN\n\n"
    )
    assert verifies(keys["merchant"], message, found["signature"])


def test_jsapi_pay_parameters_are_signed_over_appid_time_nonce_and_package(
    wechat: WechatPay, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    """paySign signs ``appId\\ntimeStamp\\nnonceStr\\npackage\\n`` with the merchant key."""
    params = wechat.jsapi_params("wx201410272009395522657a690389285100")
    assert params["appId"] == APPID
    assert params["timeStamp"] == str(int(NOW.timestamp()))
    assert params["package"] == "prepay_id=wx201410272009395522657a690389285100"
    assert params["signType"] == "RSA"
    message = f"{APPID}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
    assert verifies(keys["merchant"], message.encode(), params["paySign"])


# --- notifications: accepted --------------------------------------------------------------------


Signer = Callable[..., tuple[dict[str, str], bytes]]


@pytest.fixture(params=["certificate", "public_key"])
def signer(
    request: pytest.FixtureRequest, keys: dict[str, rsa.RSAPrivateKey], cert_pem: str
) -> Signer:
    """Signs like WeChat in certificate mode or in public-key mode."""
    if request.param == "certificate":
        key, serial = keys["cert"], certificate_serial(cert_pem)
    else:
        key, serial = keys["pubkey"], PUB_KEY_ID

    def sign(
        resource: dict[str, Any] | None = None,
        *,
        event_type: str = "TRANSACTION.SUCCESS",
        at: datetime = NOW,
        apiv3_key: str = APIV3_KEY,
    ) -> tuple[dict[str, str], bytes]:
        return sign_notification(
            platform_key=key,
            serial=serial,
            apiv3_key=apiv3_key,
            event_type=event_type,
            resource=resource if resource is not None else payment(),
            at=at,
            event_id="EV-2026110100000001",
        )

    return sign


def test_a_payment_notification_signed_by_wechat_is_accepted(
    wechat: WechatPay, signer: Signer
) -> None:
    """In both key modes a signed TRANSACTION.SUCCESS becomes a paid Trade, ids carried."""
    headers, body = signer()
    found = wechat.verify_notification(headers, body, now=NOW)
    assert found.key == "EV-2026110100000001"
    assert found.kind is NotificationKind.PAYMENT
    trade = found.trade
    assert trade is not None
    assert trade.state is TradeState.PAID
    assert trade.amount_fen == 10000
    assert (trade.out_trade_no, trade.transaction_id) == (
        "MPW20261101000001",
        "4200002026110100000001",
    )
    assert (trade.merchant_id, trade.app_id) == (MCHID, APPID)
    assert trade.paid_at == datetime(2026, 11, 1, 1, 59, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("event", "status", "state"),
    [
        ("REFUND.SUCCESS", "SUCCESS", RefundState.SUCCESS),
        ("REFUND.ABNORMAL", "ABNORMAL", RefundState.FAILED),
        ("REFUND.CLOSED", "CLOSED", RefundState.FAILED),
    ],
)
def test_a_refund_notification_becomes_a_refund(
    wechat: WechatPay, signer: Signer, event: str, status: str, state: RefundState
) -> None:
    """REFUND.* notifications carry the refund (they have no appid)."""
    resource = {
        "mchid": MCHID,
        "out_trade_no": "MPW20261101000001",
        "transaction_id": "4200002026110100000001",
        "out_refund_no": "MPWR2026110100000001",
        "refund_id": "50300002026110100000001",
        "refund_status": status,
        "success_time": "2026-11-01T09:59:00+08:00",
        "user_received_account": "支付用户零钱",
        "amount": {"total": 10000, "refund": 2000, "payer_total": 10000, "payer_refund": 2000},
    }
    found = wechat.verify_notification(*signer(resource, event_type=event), now=NOW)
    assert found.kind is NotificationKind.REFUND
    assert found.refund is not None
    assert found.refund.state is state
    assert found.refund.refund_fen == 2000
    assert found.refund.out_refund_no == "MPWR2026110100000001"


def test_a_notification_built_by_hand_from_the_documentation_is_accepted(
    wechat: WechatPay, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    """Independent of ``sign_notification``: encrypt and sign exactly as the docs say."""
    plaintext = json.dumps(payment()).encode()
    sealed = AESGCM(APIV3_KEY.encode()).encrypt(b"fdasflkja484", plaintext, b"transaction")
    body = json.dumps(
        {
            "id": "EV-018352c2-8f2d-4e95-b4bd-2a6b2ba3b1cb",
            "create_time": "2026-11-01T10:00:00+08:00",
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(sealed).decode(),
                "associated_data": "transaction",
                "nonce": "fdasflkja484",
            },
        },
        ensure_ascii=False,
        indent=2,  # WeChat's bytes, whatever their layout, are what is signed
    ).encode()
    timestamp = str(int(NOW.timestamp()) - 30)
    signature = keys["pubkey"].sign(
        f"{timestamp}\nnonce-1\n".encode() + body + b"\n", padding.PKCS1v15(), hashes.SHA256()
    )
    headers = {
        "wechatpay-timestamp": timestamp,
        "WECHATPAY-NONCE": "nonce-1",
        "Wechatpay-Signature": base64.b64encode(signature).decode(),
        "wechatpay-serial": PUB_KEY_ID,
    }
    found = wechat.verify_notification(headers, body, now=NOW)
    assert found.key == "EV-018352c2-8f2d-4e95-b4bd-2a6b2ba3b1cb"


def test_the_sandbox_resources_verify_as_payment_and_refund(
    wechat: WechatPay, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    """What the sandbox signs with ``*_resource`` + ``sign_notification`` is what we accept."""
    paid = transaction_resource(
        mchid=MCHID,
        appid=APPID,
        out_trade_no="MPW20261101000009",
        transaction_id="4200002026110100000009",
        amount_fen=4321,
        paid_at=NOW,
    )
    refunded = refund_resource(
        mchid=MCHID,
        out_trade_no="MPW20261101000009",
        transaction_id="4200002026110100000009",
        out_refund_no="MPWR2026110100000009",
        refund_id="50300002026110100000009",
        refund_fen=321,
        total_fen=4321,
        done_at=NOW,
    )
    found = []
    for event, resource in (("TRANSACTION.SUCCESS", paid), ("REFUND.SUCCESS", refunded)):
        headers, body = sign_notification(
            platform_key=keys["pubkey"],
            serial=PUB_KEY_ID,
            apiv3_key=APIV3_KEY,
            event_type=event,
            resource=resource,
            at=NOW,
        )
        found.append(wechat.verify_notification(headers, body, now=NOW))
    assert found[0].trade is not None and found[0].trade.amount_fen == 4321
    assert found[0].trade.paid_at == NOW
    assert found[1].refund is not None and found[1].refund.refund_fen == 321
    assert found[0].key != found[1].key


def test_the_timestamp_window_is_five_minutes_inclusive(wechat: WechatPay, signer: Signer) -> None:
    """Exactly five minutes either way is still fresh."""
    for delta in (timedelta(minutes=5), -timedelta(minutes=5)):
        headers, body = signer(at=NOW + delta)
        assert wechat.verify_notification(headers, body, now=NOW).trade is not None


def test_the_reference_decryption_vector_decrypts(wechat: WechatPay) -> None:
    """The known-answer vector of docs/reference payments.md, byte for byte."""
    plaintext = (
        b'{"mchid":"1900000001","out_trade_no":"R20261101000001",'
        b'"transaction_id":"4200000000000000000000000001","trade_state":"SUCCESS",'
        b'"amount":{"total":10000,"payer_total":10000,"currency":"CNY","payer_currency":"CNY"}}'
    )
    ciphertext = (
        "Eu6k3KOMCfFZPsMoOqloD2wBiy6brE00a8ph6KA9qo8zps/eFHagkXpIppE/o7btrmWMhIp8WtmqjS4j38zrMaWc"
        "55KTlER3J20xWBlY1A3KxdtEmK8XOeFhQOIRj0oFgb/DisiKZizUvQn7H+8T22rOmXwRcCIvvGfSAOtuYSiwdVl4"
        "Z4tMjrVA82WKZLTKrsUXzPrwcTS0lqG02LhuFYyeUaQ8jt3n2ns5YhfD5EfcLHJ9sKT363K6k//JJ8b2mGQnF/B1"
        "HsggntTTBAm1+scBQ6ePinga4EVzeUbwjSOCTtWX"
    )
    key = b"0123456789abcdef0123456789abcdef"
    assert decrypt_resource(key, ciphertext, "abcdefghijkl", "transaction") == plaintext
    with pytest.raises(ValueError, match="cannot be decrypted"):
        decrypt_resource(key, ciphertext, "abcdefghijkl", "refund")


# --- notifications: refused ---------------------------------------------------------------------


def refused(wechat: WechatPay, headers: dict[str, str], body: bytes) -> str:
    with pytest.raises(BadNotification) as caught:
        wechat.verify_notification(headers, body, now=NOW)
    assert APIV3_KEY not in str(caught.value) and APIV3_KEY not in repr(caught.value.details)
    return str(caught.value.details["reason"])


def test_a_signature_by_another_key_is_refused(
    wechat: WechatPay, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    """A body signed with a key we do not hold, under a serial we know, is refused."""
    headers, body = sign_notification(
        platform_key=keys["stranger"],
        serial=PUB_KEY_ID,
        apiv3_key=APIV3_KEY,
        event_type="TRANSACTION.SUCCESS",
        resource=payment(),
        at=NOW,
    )
    assert refused(wechat, headers, body) == "bad signature"


def test_a_tampered_body_is_refused(wechat: WechatPay, signer: Signer) -> None:
    """One changed byte (or re-serialised JSON) breaks the signature over the raw body."""
    headers, body = signer()
    assert refused(wechat, headers, body.replace(b"EV-2026", b"EV-2027")) == "bad signature"
    reserialised = json.dumps(json.loads(body), indent=1).encode()
    assert refused(wechat, headers, reserialised) == "bad signature"


@pytest.mark.parametrize(
    "skew", [timedelta(minutes=5, seconds=1), -timedelta(minutes=5, seconds=1)]
)
def test_a_stale_or_future_timestamp_is_refused(
    wechat: WechatPay, signer: Signer, skew: timedelta
) -> None:
    """More than five minutes from now, in either direction, is refused."""
    headers, body = signer(at=NOW + skew)
    assert "5 minutes" in refused(wechat, headers, body)


def test_an_unknown_serial_is_refused(wechat: WechatPay, signer: Signer) -> None:
    headers, body = signer()
    headers["Wechatpay-Serial"] = "PUB_KEY_ID_0000000000000000000000000000000000"
    assert refused(wechat, headers, body) == "unknown Wechatpay-Serial"


def test_a_signature_probe_is_refused(wechat: WechatPay, signer: Signer) -> None:
    """WeChat's WECHATPAY/SIGNTEST/ probes must never be accepted."""
    headers, body = signer()
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    assert "SIGNTEST" in refused(wechat, headers, body)


def test_a_resource_sealed_with_another_apiv3_key_is_refused(
    wechat: WechatPay, signer: Signer
) -> None:
    headers, body = signer(apiv3_key="fedcba9876543210fedcba9876543210")
    assert "APIv3" in refused(wechat, headers, body)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"mchid": "1900000002"}, "another mchid"),
        ({"appid": "wx0000000000000000"}, "another appid"),
        ({"trade_state": "NOTPAY"}, "without trade_state SUCCESS"),
        ({"amount": {"total": "100.00"}}, "total"),
        ({"out_trade_no": None}, "out_trade_no"),
    ],
)
def test_a_resource_not_for_this_merchant_or_malformed_is_refused(
    wechat: WechatPay, signer: Signer, changes: dict[str, Any], reason: str
) -> None:
    headers, body = signer(payment(**changes))
    assert reason in refused(wechat, headers, body)


@pytest.mark.parametrize(
    "header",
    ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"],
)
def test_a_missing_signature_header_is_refused(
    wechat: WechatPay, signer: Signer, header: str
) -> None:
    headers, body = signer()
    del headers[header]
    assert refused(wechat, headers, body) == f"missing header {header.lower()}"


def test_another_signature_type_is_refused(wechat: WechatPay, signer: Signer) -> None:
    headers, body = signer()
    headers["Wechatpay-Signature-Type"] = "WECHATPAY2-SM2-WITH-SM3"
    assert "Signature-Type" in refused(wechat, headers, body)


def signed_envelope(
    key: rsa.RSAPrivateKey, serial: str, body: bytes, at: datetime = NOW
) -> dict[str, str]:
    timestamp = str(int(at.timestamp()))
    signature = key.sign(
        f"{timestamp}\nn\n".encode() + body + b"\n", padding.PKCS1v15(), hashes.SHA256()
    )
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": "n",
        "Wechatpay-Signature": base64.b64encode(signature).decode(),
        "Wechatpay-Serial": serial,
    }


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "the body is not JSON"),
        (b"[1, 2]", "the body is not a JSON object"),
        (b'{"event_type": "TRANSACTION.SUCCESS"}', "the notification has no id"),
        (b'{"id": "EV-1", "resource_type": "encrypt-resource"}', "resource is missing"),
        (
            b'{"id": "EV-1", "event_type": "TRANSACTION.SUCCESS", "resource_type": '
            b'"encrypt-resource", "resource": {"algorithm": "AEAD_AES_256_GCM", '
            b'"ciphertext": "bm90IGEgY2lwaGVydGV4dA==", "nonce": "abcdefghijkl", '
            b'"associated_data": "transaction"}}',
            "does not decrypt",
        ),
        (
            b'{"id": "EV-1", "event_type": "TRANSACTION.SUCCESS", "resource_type": '
            b'"plain", "resource": {}}',
            "resource_type",
        ),
    ],
)
def test_a_signed_but_malformed_notification_is_refused(
    wechat: WechatPay, keys: dict[str, rsa.RSAPrivateKey], body: bytes, reason: str
) -> None:
    """Signed by WeChat's key yet unusable: refused with the reason, nothing parsed."""
    assert reason in refused(wechat, signed_envelope(keys["pubkey"], PUB_KEY_ID, body), body)


def test_an_unexpected_event_type_is_refused(wechat: WechatPay, signer: Signer) -> None:
    headers, body = signer(event_type="TRANSACTION.CLOSED")
    assert refused(wechat, headers, body) == "unexpected event_type"


def test_an_expired_platform_certificate_is_refused(
    config: WechatConfig, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    """A certificate past its not-after date no longer vouches for anything."""
    old = self_signed(keys["cert"], days=30, start=NOW - timedelta(days=60))
    serial = certificate_serial(old)
    provider = WechatPay(replace(config, platform_keys={serial: old}), clock=FixedClock(NOW))
    headers, body = sign_notification(
        platform_key=keys["cert"],
        serial=serial,
        apiv3_key=APIV3_KEY,
        event_type="TRANSACTION.SUCCESS",
        resource=payment(),
        at=NOW,
    )
    assert "expired" in refused(provider, headers, body)
    provider.close_client()


# --- configuration and answers ------------------------------------------------------------------


def test_the_configuration_never_shows_its_secrets(config: WechatConfig, wechat: WechatPay) -> None:
    for shown in (repr(config), str(config), repr(wechat)):
        assert "PRIVATE KEY" not in shown and APIV3_KEY not in shown
        assert MCHID in shown


def test_a_certificate_listed_under_the_wrong_serial_fails_at_start(
    config: WechatConfig, cert_pem: str
) -> None:
    with pytest.raises(WechatPayError, match="has serial"):
        WechatPay(replace(config, platform_keys={"ABCDEF": cert_pem}))


def test_an_apiv3_key_of_the_wrong_length_fails_at_start_without_showing_it(
    config: WechatConfig,
) -> None:
    with pytest.raises(WechatPayError) as caught:
        WechatPay(replace(config, apiv3_key="secret-but-short"))
    assert "secret-but-short" not in str(caught.value)


def test_the_answer_is_204_when_accepted_and_a_fail_json_otherwise(wechat: WechatPay) -> None:
    assert wechat.answer(accepted=True).status == 204
    assert wechat.answer(accepted=True).body == b""
    refusal = wechat.answer(accepted=False, message="签名错误")
    assert refusal.status == 500
    assert json.loads(refusal.body) == {"code": "FAIL", "message": "签名错误"}
    assert refusal.content_type == "application/json"


@pytest.mark.parametrize("no", ["../../v3/refund", "MPW2026110100000\n", "short", "x" * 33])
def test_an_out_trade_no_outside_wechats_alphabet_never_reaches_a_url(
    wechat: WechatPay, no: str
) -> None:
    """Checked before any request: WeChat's 6-32 characters of [0-9A-Za-z_-|*]."""
    with pytest.raises(InvalidInput):
        wechat.query(no)
    with pytest.raises(InvalidInput):
        wechat.close(no)
