"""The sites' own merchants, read at start-up from ``MP_PAYMENT_MERCHANTS_FILE`` (TOML).

One ``[[merchants]]`` table per merchant: its code (what its notify URL ends with), its
provider, the codes of the sites whose payments it takes, its ids, and the files its keys
are in — paths relative to the TOML file; a WeChat merchant may name the file of its
official account's AppSecret too (owners' web authorization inside WeChat). The file
holds no key material itself, so it can be reviewed and versioned like any
configuration; the key files stay as locked down as the default merchant's. A file that
does not parse, names a key file that cannot be read, or gives a site two merchants of
one provider stops the process at start-up.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from meterpay.kernel.clock import Clock
from meterpay.payments.alipay import AlipayConfig, AlipayProvider
from meterpay.payments.alipay_gateway import GATEWAY as ALIPAY_GATEWAY
from meterpay.payments.merchants import CODE, Merchant, MerchantBook, MerchantBookError
from meterpay.payments.provider import PaymentProvider
from meterpay.payments.wechat import WechatConfig, WechatPay
from meterpay.payments.wechat_config import DEFAULT_API_BASE
from meterpay.payments.wechat_oauth import WechatApp


class MerchantsFileError(ValueError):
    """The merchants file cannot be used; the message names the file and the problem,
    never a key."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=CODE.pattern)
    sites: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1)


class WechatEntry(_Entry):
    provider: Literal["wechat"]
    mchid: str = Field(pattern=r"^\d{6,32}$")
    appid: str = Field(min_length=1, max_length=32)
    serial_no: str = Field(pattern=r"^[0-9A-Fa-f]{8,64}$")
    private_key_file: Path
    apiv3_key_file: Path
    platform_keys_dir: Path
    api_base: str = Field(default=DEFAULT_API_BASE, pattern=r"^https?://")
    app_secret_file: Path | None = None
    """The official account's AppSecret, alone in a file: owners inside WeChat get their
    openid for JSAPI payments through web authorization (optional)."""


class AlipayEntry(_Entry):
    provider: Literal["alipay"]
    app_id: str = Field(pattern=r"^\d{6,32}$")
    seller_id: str = Field(pattern=r"^2088\d{12}$")
    private_key_file: Path
    public_key_file: Path
    gateway_url: str = Field(default=ALIPAY_GATEWAY, pattern=r"^https?://")


class MerchantsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    merchants: list[Annotated[WechatEntry | AlipayEntry, Field(discriminator="provider")]] = []


def load(path: Path, clock: Clock) -> MerchantBook:
    """The merchants named in ``path``, their keys read and checked."""
    try:
        parsed = MerchantsFile.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeError) as exc:
        raise MerchantsFileError(f"{path} cannot be read: {type(exc).__name__}") from None
    except tomllib.TOMLDecodeError as exc:
        raise MerchantsFileError(f"{path} is not TOML: {exc}") from None
    except ValidationError as exc:
        raise MerchantsFileError(f"{path}: {_first_problem(exc)}") from None
    keys = _Keys(path.parent)
    merchants = [
        Merchant(
            entry.code, _provider(entry, keys, clock), frozenset(entry.sites), _web_app(entry, keys)
        )
        for entry in parsed.merchants
    ]
    try:
        return MerchantBook.of(merchants)
    except MerchantBookError as exc:
        raise MerchantsFileError(f"{path}: {exc}") from None


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}"


class _Keys:
    """Reads key files named relative to the merchants file's directory."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def path(self, named: Path) -> Path:
        return named if named.is_absolute() else self.base / named

    def read(self, named: Path, what: str) -> str:
        path = self.path(named)
        try:
            return path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeError) as exc:  # the message names the file, not its content
            raise MerchantsFileError(
                f"{what} ({path}) cannot be read: {type(exc).__name__}"
            ) from None


def _web_app(entry: WechatEntry | AlipayEntry, keys: _Keys) -> WechatApp | None:
    if not isinstance(entry, WechatEntry) or entry.app_secret_file is None:
        return None
    secret = keys.read(entry.app_secret_file, f"merchant {entry.code}'s app_secret_file")
    if not secret:
        raise MerchantsFileError(f"merchant {entry.code}'s app_secret_file is empty")
    return WechatApp(entry.appid, secret)


def _provider(entry: WechatEntry | AlipayEntry, keys: _Keys, clock: Clock) -> PaymentProvider:
    who = f"merchant {entry.code}"
    if isinstance(entry, WechatEntry):
        found = sorted(keys.path(entry.platform_keys_dir).glob("*.pem"))
        if not found:
            raise MerchantsFileError(
                f"{who}: no <id>.pem file in platform_keys_dir {entry.platform_keys_dir}"
            )
        config = WechatConfig(
            mchid=entry.mchid,
            appid=entry.appid,
            serial_no=entry.serial_no.upper(),
            private_key_pem=keys.read(entry.private_key_file, f"{who}'s private_key_file"),
            apiv3_key=keys.read(entry.apiv3_key_file, f"{who}'s apiv3_key_file"),
            platform_keys={p.stem: keys.read(p, f"{who}'s platform key") for p in found},
            api_base=entry.api_base,
        )
        return WechatPay(config, clock=clock)
    alipay = AlipayConfig(
        app_id=entry.app_id,
        seller_id=entry.seller_id,
        app_private_key=keys.read(entry.private_key_file, f"{who}'s private_key_file"),
        alipay_public_key=keys.read(entry.public_key_file, f"{who}'s public_key_file"),
        gateway_url=entry.gateway_url,
    )
    return AlipayProvider(alipay, clock=clock)
