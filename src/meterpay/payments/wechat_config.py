"""A WeChat Pay merchant's configuration, the keys it loads, and what can go wrong.

Invariants:
- secrets (the merchant private key, the APIv3 key) never appear in a ``repr``, a log
  line or an exception message: the dataclass hides them and every loading error names
  the key, never its content;
- the keys are loaded and checked once, when the provider is built (``load_keys``), so a
  bad key fails at start-up, not at the first payment;
- the platform keys may mix both of WeChat's modes during a switch: platform
  certificates (id = the certificate's serial, hex upper case) and WeChat Pay public
  keys (id = ``PUB_KEY_ID_…``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from meterpay.payments.wechat_sign import (
    KeyMaterialError,
    PlatformKey,
    apiv3_key_bytes,
    load_platform_key,
    load_private_key,
)

DEFAULT_API_BASE: Final = "https://api.mch.weixin.qq.com"


class WechatPayError(Exception):
    """Talking to WeChat Pay failed: an error answer, an untrusted response, an unusable
    statement or configuration. Messages never carry key material."""


@dataclass(frozen=True, slots=True)
class WechatConfig:
    """One merchant (直连商户): its ids, its keys and WeChat's keys.

    ``platform_keys`` maps a key id to a PEM: a platform certificate under its serial,
    or a WeChat Pay public key under its ``PUB_KEY_ID_…``; both may be present at once."""

    mchid: str
    appid: str
    serial_no: str
    """Serial of the merchant API certificate (sent in every Authorization header)."""
    private_key_pem: str = field(repr=False)
    """The merchant API private key, PKCS#8 (``BEGIN PRIVATE KEY``)."""
    apiv3_key: str = field(repr=False)
    """32 ASCII characters; decrypts notification resources."""
    platform_keys: Mapping[str, str] = field(repr=False)
    api_base: str = DEFAULT_API_BASE
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("mchid", "appid", "serial_no"):
            if not getattr(self, name).strip():
                raise WechatPayError(f"WeChat Pay {name} is empty")
        if not self.platform_keys:
            raise WechatPayError("WeChat Pay needs at least one platform certificate or key")
        if not self.api_base.startswith(("https://", "http://")):
            raise WechatPayError("WeChat Pay api_base must be an http(s) URL")


@dataclass(frozen=True, slots=True)
class WechatKeys:
    """The loaded keys of one ``WechatConfig``."""

    merchant: RSAPrivateKey = field(repr=False)
    apiv3: bytes = field(repr=False)
    platform: Mapping[str, PlatformKey] = field(repr=False)


def load_keys(config: WechatConfig) -> WechatKeys:
    """Load and check every key of ``config``; ``WechatPayError`` naming what is wrong."""
    try:
        merchant = load_private_key(config.private_key_pem)
        apiv3 = apiv3_key_bytes(config.apiv3_key)
        platform = {
            key.key_id: key
            for key in (load_platform_key(k, pem) for k, pem in config.platform_keys.items())
        }
    except KeyMaterialError as exc:
        raise WechatPayError(f"WeChat Pay configuration: {exc}") from None
    return WechatKeys(merchant, apiv3, platform)
