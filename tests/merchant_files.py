"""Merchants files (``MP_PAYMENT_MERCHANTS_FILE``) and their key files, written into a
test's directory the way an operator lays them out."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from meterpay.payments.sandbox import SandboxKeys
from meterpay.payments.sandbox_keys import private_pem, public_pem


def wechat_entry(
    base: Path, code: str, sites: list[str], keys: SandboxKeys, api_base: str = ""
) -> str:
    """A WeChat Pay merchant's table; its key files are written under ``base/code``."""
    folder = base / code
    (folder / "wechatpay").mkdir(parents=True)
    (folder / "apiclient_key.pem").write_text(private_pem(keys.merchant))
    (folder / "apiv3_key").write_text(keys.apiv3_key + "\n")
    (folder / "wechatpay" / f"{keys.platform_serial}.pem").write_text(keys.platform_pem)
    lines = [
        "[[merchants]]",
        f'code = "{code}"',
        'provider = "wechat"',
        f"sites = {sites!r}".replace("'", '"'),
        f'mchid = "{keys.mchid}"',
        f'appid = "{keys.appid}"',
        f'serial_no = "{keys.merchant_serial}"',
        f'private_key_file = "{code}/apiclient_key.pem"',
        f'apiv3_key_file = "{code}/apiv3_key"',
        f'platform_keys_dir = "{code}/wechatpay"',
    ]
    if api_base:
        lines.append(f'api_base = "{api_base}"')
    return "\n".join(lines) + "\n"


def alipay_entry(base: Path, code: str, sites: list[str], app_id: str, seller_id: str) -> str:
    """An Alipay application's table with fresh keys written under ``base/code``."""
    folder = base / code
    folder.mkdir(parents=True)
    app, alipay = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in "ab")
    (folder / "app_private_key.pem").write_text(private_pem(app))
    (folder / "alipay_public_key.pem").write_text(public_pem(alipay))
    return (
        "\n".join(
            [
                "[[merchants]]",
                f'code = "{code}"',
                'provider = "alipay"',
                f"sites = {sites!r}".replace("'", '"'),
                f'app_id = "{app_id}"',
                f'seller_id = "{seller_id}"',
                f'private_key_file = "{code}/app_private_key.pem"',
                f'public_key_file = "{code}/alipay_public_key.pem"',
            ]
        )
        + "\n"
    )


def write(base: Path, *entries: str) -> Path:
    path = base / "merchants.toml"
    path.write_text("# the sites' own merchants\n" + "\n".join(entries), encoding="utf-8")
    return path
