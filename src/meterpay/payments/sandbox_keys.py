"""The sandbox's keys and ids (``SandboxKeys``): the merchant's key pair and serial, the
APIv3 key, and the platform key the sandbox signs with — WeChat's public-key mode
(``PUB_KEY_ID_…``) or certificate mode (a self-signed platform certificate).

Generated when a sandbox is built and kept in memory only: none of them appears in a
repr, and nothing here logs.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from meterpay.payments.wechat_config import WechatConfig
from meterpay.payments.wechat_sign import CHINA

SANDBOX_MCHID: Final = "1900000109"
SANDBOX_APPID: Final = "wxsandbox000000"


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    pkcs8, none = serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, pkcs8, none).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(serialization.Encoding.PEM, spki).decode()


def _certificate_pem(key: rsa.RSAPrivateKey) -> tuple[str, str]:
    """A self-signed platform certificate for ``key``: its serial (hex, upper) and PEM."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    now = datetime.now(CHINA)  # a certificate's validity is real time, whatever the clock
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=3650))
        .not_valid_after(now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return format(cert.serial_number, "X"), cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class SandboxKeys:
    """The merchant's ids and key pair, the APIv3 key, and the platform key the sandbox
    signs with — in WeChat's public-key mode (``PUB_KEY_ID_…``) or certificate mode."""

    mode: Literal["certificate", "public_key"] = "public_key"
    mchid: str = SANDBOX_MCHID
    appid: str = SANDBOX_APPID
    merchant_serial: str = field(default_factory=lambda: secrets.token_hex(20).upper())
    apiv3_key: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    public_key_id: str = field(
        default_factory=lambda: f"PUB_KEY_ID_01{SANDBOX_MCHID}{secrets.randbelow(10**22):022d}"
    )
    merchant: rsa.RSAPrivateKey = field(default_factory=_new_key, repr=False)
    platform: rsa.RSAPrivateKey = field(default_factory=_new_key, repr=False)
    platform_serial: str = ""
    """The id in ``Wechatpay-Serial``: the public key id, or the certificate's serial."""
    platform_pem: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.mode == "public_key":
            self.platform_serial, self.platform_pem = self.public_key_id, public_pem(self.platform)
        else:
            self.platform_serial, self.platform_pem = _certificate_pem(self.platform)

    @classmethod
    def generate(cls, mode: Literal["certificate", "public_key"] = "public_key") -> SandboxKeys:
        """New keys and ids for one run of the sandbox."""
        return cls(mode=mode)

    def merchant_config(self, api_base: str, **changes: Any) -> WechatConfig:
        """The merchant's ``WechatConfig`` for this sandbox at ``api_base``."""
        fields: dict[str, Any] = {
            "mchid": self.mchid,
            "appid": self.appid,
            "serial_no": self.merchant_serial,
            "private_key_pem": private_pem(self.merchant),
            "apiv3_key": self.apiv3_key,
            "platform_keys": {self.platform_serial: self.platform_pem},
            "api_base": api_base,
        }
        return WechatConfig(**(fields | changes))
