"""Which payment providers this process talks to, built once from the settings at start-up
(``bootstrap.build_runtime``): the sandbox when ``MP_SANDBOX_PAY`` is on, WeChat Pay and
Alipay when their merchant is configured, and the sites' own merchants of
``MP_PAYMENT_MERCHANTS_FILE`` (``payments.merchants_file``).

Invariants:
- keys come from files named in the settings (and the APIv3 key from a secret setting),
  never from the database; they are loaded and checked here, so a bad or missing key
  stops the process at start-up, and no error message carries key material;
- a provider is configured completely or not at all: its first id set with another of
  its settings missing is an error, not a silently absent provider;
- the sandbox's keys live in the ``SandboxPay`` built here, and the web app serves that
  same instance's server (``web.sandbox_routes``): one sandbox per runtime, in memory.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from meterpay.config import Settings
from meterpay.kernel.clock import Clock
from meterpay.payments import merchants_file
from meterpay.payments.alipay import AlipayConfig, AlipayProvider
from meterpay.payments.merchants import MerchantBook
from meterpay.payments.provider import PaymentProvider, ProviderName
from meterpay.payments.sandbox_pay import MOUNT_PATH, SandboxPay
from meterpay.payments.wechat import WechatConfig, WechatPay
from meterpay.runtime import Runtime

log = logging.getLogger(__name__)


class PaymentSetupError(ValueError):
    """A provider's settings are incomplete or its key files unreadable."""


def providers_from(settings: Settings, clock: Clock) -> dict[ProviderName, PaymentProvider]:
    found: dict[ProviderName, PaymentProvider] = {}
    if settings.sandbox_pay:
        found[ProviderName.SANDBOX] = sandbox_from(settings, clock)
    wechat = wechat_config(settings)
    if wechat is not None:
        found[ProviderName.WECHAT] = WechatPay(wechat, clock=clock)
    alipay = alipay_config(settings)
    if alipay is not None:
        found[ProviderName.ALIPAY] = AlipayProvider(alipay, clock=clock)
    return found


def merchants_from(settings: Settings, clock: Clock) -> MerchantBook:
    """The sites' own merchants (``MP_PAYMENT_MERCHANTS_FILE``); none when it is unset."""
    if settings.payment_merchants_file is None:
        return MerchantBook()
    try:
        book = merchants_file.load(settings.payment_merchants_file, clock)
    except merchants_file.MerchantsFileError as exc:
        raise PaymentSetupError(f"MP_PAYMENT_MERCHANTS_FILE: {exc}") from None
    for code, merchant in sorted(book.merchants.items()):
        log.info(
            "merchant %s (%s) takes the payments of sites %s",
            code,
            merchant.provider.name.value,
            ", ".join(sorted(merchant.site_codes)),
        )
    return book


def sandbox_from(settings: Settings, clock: Clock) -> SandboxPay:
    sandbox = SandboxPay(settings.public_url, clock=clock)
    log.warning(
        "the payment sandbox is on at %s%s: anyone who opens its page can top up an account"
        " (demo and tests only)",
        settings.public_url.rstrip("/"),
        MOUNT_PATH,
    )
    return sandbox


def with_sandbox(rt: Runtime) -> Runtime:
    """``rt`` with the sandbox switched on (``meterpay demo``); itself if it has one."""
    if ProviderName.SANDBOX in rt.payments:
        return rt
    settings = rt.settings.model_copy(update={"sandbox_pay": True})
    sandbox = sandbox_from(settings, rt.clock)
    return replace(rt, settings=settings, payments={**rt.payments, ProviderName.SANDBOX: sandbox})


def wechat_config(settings: Settings) -> WechatConfig | None:
    """The WeChat Pay merchant of the settings; None when ``wechat_mchid`` is empty."""
    if not settings.wechat_mchid:
        return None
    _require(
        "WeChat Pay",
        MP_WECHAT_APPID=settings.wechat_appid,
        MP_WECHAT_SERIAL_NO=settings.wechat_serial_no,
        MP_WECHAT_PRIVATE_KEY_FILE=settings.wechat_private_key_file,
        MP_WECHAT_APIV3_KEY=settings.wechat_apiv3_key.get_secret_value(),
        MP_WECHAT_PLATFORM_KEYS_DIR=settings.wechat_platform_keys_dir,
    )
    return WechatConfig(
        mchid=settings.wechat_mchid,
        appid=settings.wechat_appid,
        serial_no=settings.wechat_serial_no,
        private_key_pem=_read(settings.wechat_private_key_file, "MP_WECHAT_PRIVATE_KEY_FILE"),
        apiv3_key=settings.wechat_apiv3_key.get_secret_value(),
        platform_keys=platform_keys(_given(settings.wechat_platform_keys_dir)),
    )


def platform_keys(directory: Path) -> dict[str, str]:
    """WeChat Pay's certificates and public keys: ``<id>.pem`` files, the id being a
    certificate's serial or a public key's ``PUB_KEY_ID_…``."""
    if not directory.is_dir():
        raise PaymentSetupError(f"MP_WECHAT_PLATFORM_KEYS_DIR {directory} is not a directory")
    found = {
        path.stem: _read(path, "a WeChat Pay platform key") for path in directory.glob("*.pem")
    }
    if not found:
        raise PaymentSetupError(f"no <id>.pem file in MP_WECHAT_PLATFORM_KEYS_DIR {directory}")
    return found


def alipay_config(settings: Settings) -> AlipayConfig | None:
    """The Alipay application of the settings; None when ``alipay_app_id`` is empty."""
    if not settings.alipay_app_id:
        return None
    _require(
        "Alipay",
        MP_ALIPAY_SELLER_ID=settings.alipay_seller_id,
        MP_ALIPAY_PRIVATE_KEY_FILE=settings.alipay_private_key_file,
        MP_ALIPAY_PUBLIC_KEY_FILE=settings.alipay_public_key_file,
    )
    return AlipayConfig(
        app_id=settings.alipay_app_id,
        seller_id=settings.alipay_seller_id,
        app_private_key=_read(settings.alipay_private_key_file, "MP_ALIPAY_PRIVATE_KEY_FILE"),
        alipay_public_key=_read(settings.alipay_public_key_file, "MP_ALIPAY_PUBLIC_KEY_FILE"),
    )


def _require(provider: str, **values: object) -> None:
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise PaymentSetupError(f"{provider} is half configured: set {', '.join(missing)}")


def _given(path: Path | None) -> Path:
    if path is None:  # _require has refused this already; this narrows the type
        raise PaymentSetupError("a key file setting is missing")
    return path


def _read(path: Path | None, what: str) -> str:
    try:
        return _given(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeError) as exc:  # the message names the file, never its content
        raise PaymentSetupError(f"{what} ({path}) cannot be read: {type(exc).__name__}") from None
