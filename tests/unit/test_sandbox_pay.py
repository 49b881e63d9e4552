"""The payment sandbox without a socket: its v3 answers to requests signed by our own
client code, its notifications and bill read by our own verifier and parser, the pay
rules, and the providers built from the settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from meterpay.config import Settings
from meterpay.kernel.clock import FixedClock
from meterpay.kernel.errors import Conflict, InvalidInput, NotFound
from meterpay.payments.alipay import AlipayProvider
from meterpay.payments.provider import (
    Channel,
    NotificationKind,
    OrderRequest,
    ProviderName,
    StatementKind,
)
from meterpay.payments.sandbox import ApiRequest, SandboxKeys, WechatSandbox
from meterpay.payments.sandbox_pay import SandboxPay
from meterpay.payments.setup import PaymentSetupError, providers_from
from meterpay.payments.wechat import WechatApiError, WechatPay
from meterpay.payments.wechat_bill import parse_trade_bill
from meterpay.payments.wechat_config import load_keys
from meterpay.payments.wechat_notification import NotificationVerifier
from meterpay.payments.wechat_sign import (
    CHINA,
    authorization,
    check_signature,
    china_time,
    new_nonce,
)

NOW = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
MOUNT = "/sandbox-pay"


@pytest.fixture(scope="module")
def keys() -> SandboxKeys:
    return SandboxKeys.generate()


@pytest.fixture
def sandbox(keys: SandboxKeys) -> WechatSandbox:
    return WechatSandbox(
        keys,
        url=f"http://pay.test{MOUNT}",
        clock=FixedClock(NOW),
        mount_path=MOUNT,
        pay_page_url=f"http://pay.test{MOUNT}/pay",
    )


def _request(
    keys: SandboxKeys,
    method: str,
    target: str,
    body: dict[str, object] | None = None,
    *,
    merchant: rsa.RSAPrivateKey | None = None,
    at: datetime = NOW,
) -> ApiRequest:
    raw = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
    signed = authorization(
        mchid=keys.mchid,
        serial_no=keys.merchant_serial,
        private_key=merchant or keys.merchant,
        method=method,
        path_and_query=target,
        body=raw,
        timestamp=str(int(at.timestamp())),
        nonce=new_nonce(),
    )
    return ApiRequest(method, target, {"authorization": signed}, raw)


def _native(keys: SandboxKeys, no: str = "MPS20261101000000000001") -> dict[str, object]:
    return {
        "appid": keys.appid,
        "mchid": keys.mchid,
        "description": "阳光花园 E-1-0101 电费充值",
        "out_trade_no": no,
        "time_expire": china_time(NOW + timedelta(minutes=15)),
        "notify_url": "http://pay.test/api/v1/payments/notify/sandbox",
        "amount": {"total": 10000, "currency": "CNY"},
    }


def test_generated_keys_have_wechat_shaped_ids_and_stay_out_of_the_repr() -> None:
    keys = SandboxKeys.generate()
    assert (keys.mchid, keys.appid) == ("1900000109", "wxsandbox000000")
    assert keys.platform_serial.startswith("PUB_KEY_ID_01") and len(keys.merchant_serial) == 40
    assert keys.apiv3_key not in repr(keys) and "PRIVATE" not in repr(keys)
    assert keys.apiv3_key != SandboxKeys.generate().apiv3_key
    load_keys(keys.merchant_config("http://pay.test"))  # our client accepts them


def test_a_native_order_signed_by_our_client_gets_the_pay_page_as_code_url(
    sandbox: WechatSandbox, keys: SandboxKeys
) -> None:
    """The answer is signed with the platform key, fresh on the sandbox's clock."""
    target = f"{MOUNT}/v3/pay/transactions/native"
    reply = sandbox.handle(_request(keys, "POST", target, _native(keys)))
    assert reply.status == 200
    code_url = json.loads(reply.body)["code_url"]
    assert code_url == f"http://pay.test{MOUNT}/pay/MPS20261101000000000001"
    platform = load_keys(keys.merchant_config("http://pay.test")).platform
    assert check_signature(platform, reply.headers, reply.body, NOW) is None


@pytest.mark.parametrize(
    ("spoil", "problem"),
    [
        ("another_key", "signature does not verify"),
        ("stale", "timestamp out of window"),
        ("path", "signature does not verify"),
    ],
)
def test_a_request_not_signed_by_the_merchant_is_refused_401(
    sandbox: WechatSandbox, keys: SandboxKeys, spoil: str, problem: str
) -> None:
    target = f"{MOUNT}/v3/pay/transactions/native"
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    request = _request(
        keys,
        "POST",
        target,
        _native(keys),
        merchant=stranger if spoil == "another_key" else None,
        at=NOW - timedelta(minutes=6) if spoil == "stale" else NOW,
    )
    if spoil == "path":  # signed for one path, sent to another
        request = ApiRequest("POST", "/v3/pay/transactions/native", request.headers, request.body)
    reply = sandbox.handle(request)
    assert (reply.status, json.loads(reply.body)["code"]) == (401, "SIGN_ERROR")
    assert sandbox.refused == [problem] and sandbox.orders == {}


def test_a_paid_orders_notification_verifies_and_a_resend_keeps_its_event_id(
    sandbox: WechatSandbox, keys: SandboxKeys
) -> None:
    sandbox.handle(_request(keys, "POST", f"{MOUNT}/v3/pay/transactions/native", _native(keys)))
    sandbox.pay("MPS20261101000000000001")
    config = keys.merchant_config("http://pay.test")
    verifier = NotificationVerifier(keys.mchid, keys.appid, load_keys(config))
    first = sandbox.payment_notification("MPS20261101000000000001", event_id="EV-1")
    again = sandbox.payment_notification("MPS20261101000000000001", event_id="EV-1")
    assert first[1] != again[1]  # freshly encrypted and signed
    for headers, body in (first, again):
        found = verifier.verify(headers, body, now=NOW)
        assert (found.key, found.kind) == ("EV-1", NotificationKind.PAYMENT)
        assert found.trade is not None and found.trade.amount_fen == 10000


def test_the_sandboxs_bill_reads_back_with_our_parser(
    sandbox: WechatSandbox, keys: SandboxKeys
) -> None:
    sandbox.handle(_request(keys, "POST", f"{MOUNT}/v3/pay/transactions/native", _native(keys)))
    sandbox.pay("MPS20261101000000000001")
    day = NOW.astimezone(CHINA).date()
    statement = parse_trade_bill(sandbox.bill(day), day)
    assert [(r.kind, r.amount_fen, r.fee_fen) for r in statement.rows] == [
        (StatementKind.PAYMENT, 10000, 60)
    ]
    assert sandbox.bill(day - timedelta(days=1)) == b""


def _sandbox_pay(keys: SandboxKeys) -> SandboxPay:
    return SandboxPay("http://pay.test", clock=FixedClock(NOW), keys=keys)


def test_the_sandbox_provider_is_named_sandbox_and_paid_at_most_once(keys: SandboxKeys) -> None:
    provider = _sandbox_pay(keys)
    sandbox = provider.sandbox
    assert provider.name is ProviderName.SANDBOX
    assert provider.pay_url("MPS1") == f"http://pay.test{MOUNT}/pay/MPS1"
    with pytest.raises(NotFound):
        provider.pay_and_notify("MPS20261101999999")
    sandbox.handle(_request(keys, "POST", f"{MOUNT}/v3/pay/transactions/native", _native(keys)))
    for wrong in ({"duplicates": 4}, {"duplicates": -1}, {"delay_s": 121}):
        with pytest.raises(InvalidInput):
            provider.pay_and_notify("MPS20261101000000000001", **wrong)
    sandbox.pay("MPS20261101000000000001")
    with pytest.raises(Conflict, match="SUCCESS"):
        provider.pay_and_notify("MPS20261101000000000001")
    provider.close_client()


def _wired(keys: SandboxKeys) -> SandboxPay:
    """A sandbox provider whose client reaches its own sandbox without a socket."""
    holder: list[SandboxPay] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen = ApiRequest(
            request.method,
            request.url.raw_path.decode("ascii"),
            {k.lower(): v for k, v in request.headers.items()},
            request.content,
        )
        status, body, headers = holder[0].sandbox.handle(seen)
        return httpx.Response(status, content=body, headers=headers)

    client = httpx.Client(transport=httpx.MockTransport(answer))
    holder.append(SandboxPay("http://pay.test", clock=FixedClock(NOW), keys=keys, client=client))
    return holder[0]


def test_a_sandbox_order_is_paid_on_its_page_and_closing_a_forgotten_one_is_quiet(
    keys: SandboxKeys,
) -> None:
    provider = _wired(keys)
    request = OrderRequest(
        "MPS20261101000000000002",
        1000,
        "阳光花园 E-1-0101 电费充值",
        Channel.NATIVE,
        NOW + timedelta(minutes=15),
        "http://pay.test/api/v1/payments/notify/sandbox",
    )
    made = provider.create_order(request)
    page = f"http://pay.test{MOUNT}/pay/MPS20261101000000000002"
    assert made.code_url == made.pay_url == page
    provider.close("MPS20261101999999")  # unknown after a restart: nothing to close
    assert provider.query("MPS20261101999999") is None
    provider.sandbox.pay("MPS20261101000000000002")
    with pytest.raises(WechatApiError, match="ORDER_PAID"):
        provider.close("MPS20261101000000000002")


def test_an_expired_order_cannot_be_paid(keys: SandboxKeys) -> None:
    clock = FixedClock(NOW)
    provider = SandboxPay("http://pay.test", clock=clock, keys=keys)
    provider.sandbox.handle(
        _request(keys, "POST", f"{MOUNT}/v3/pay/transactions/native", _native(keys))
    )
    clock.advance(timedelta(minutes=15))
    with pytest.raises(Conflict, match="expired"):
        provider.pay_and_notify("MPS20261101000000000001")
    provider.close_client()


# --- providers from the settings -------------------------------------------------------------


def _pem_files(tmp_path: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "private.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = tmp_path / "public.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def test_no_settings_no_providers_and_the_sandbox_only_when_asked() -> None:
    clock = FixedClock(NOW)
    assert providers_from(Settings(database_url="sqlite://"), clock) == {}
    found = providers_from(Settings(database_url="sqlite://", sandbox_pay=True), clock)
    assert list(found) == [ProviderName.SANDBOX] and isinstance(
        found[ProviderName.SANDBOX], SandboxPay
    )


def test_wechat_and_alipay_come_from_key_files(tmp_path: Path) -> None:
    private, public = _pem_files(tmp_path)
    platform = tmp_path / "wechatpay"
    platform.mkdir()
    (platform / "PUB_KEY_ID_0119000001092026110100000000000001.pem").write_text(public.read_text())
    settings = Settings(
        database_url="sqlite://",
        wechat_mchid="1900000109",
        wechat_appid="wx2421b1c4370ec43b",
        wechat_serial_no="3775B6A45ACD588826D15E583A95F5DD",
        wechat_private_key_file=private,
        wechat_apiv3_key="0123456789abcdef0123456789abcdef",
        wechat_platform_keys_dir=platform,
        alipay_app_id="2021000000000001",
        alipay_seller_id="2088000000000001",
        alipay_private_key_file=private,
        alipay_public_key_file=public,
    )
    found = providers_from(settings, FixedClock(NOW))
    assert isinstance(found[ProviderName.WECHAT], WechatPay)
    assert isinstance(found[ProviderName.ALIPAY], AlipayProvider)
    assert "0123456789abcdef" not in repr(settings) + repr(found)


def test_a_half_configured_provider_stops_the_start_naming_what_is_missing(
    tmp_path: Path,
) -> None:
    with pytest.raises(PaymentSetupError, match=r"MP_WECHAT_SERIAL_NO.*MP_WECHAT_APIV3_KEY"):
        providers_from(
            Settings(database_url="sqlite://", wechat_mchid="1900000109", wechat_appid="wx1"),
            FixedClock(NOW),
        )
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(PaymentSetupError, match=r"nowhere\.pem"):
        providers_from(
            Settings(
                database_url="sqlite://",
                alipay_app_id="2021000000000001",
                alipay_seller_id="2088000000000001",
                alipay_private_key_file=missing,
                alipay_public_key_file=missing,
            ),
            FixedClock(NOW),
        )
