"""One settings object, read from the environment (``MP_*``) at start-up.

Nothing here is built at import time; ``Settings()`` is constructed by the
entry point and handed to ``bootstrap``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MP_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./meterpay.db",
        description="SQLAlchemy URL; sqlite:///path or postgresql+psycopg://user@host/db",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    default_timezone: str = "Asia/Shanghai"
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="where payment providers reach this deployment (their notify URLs)",
    )
    future_tolerance_seconds: int = Field(
        default=300, ge=0, description="how far ahead of our clock a meter's time may run"
    )
    gap_after_minutes: int = Field(
        default=180, ge=1, description="a billed interval longer than this is flagged a gap"
    )
    clock_skew_tolerance_seconds: int = Field(
        default=300, ge=1, description="a meter clock further off than this is flagged"
    )
    partitions_ahead_months: int = Field(default=3, ge=1, le=24)
    ingest_batch_size: int = Field(default=2000, ge=1, le=50_000)
    push_max_body_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="largest NB-IoT platform push body accepted (413 above)",
    )

    # --- MQTT link (meterpay.links.mqtt; docs/mqtt.md) ---
    mqtt_broker_url: str = Field(
        default="mqtt://127.0.0.1:1883", description="mqtt://[user[:password]@]host[:port]"
    )
    mqtt_client_id: str = Field(
        default="",
        max_length=64,
        description="stable per consumer process (its persistent session); empty: meterpay-<host>",
    )
    mqtt_group: str = Field(
        default="meterpay", pattern=r"^[0-9A-Za-z_.-]{1,64}$", description="shared subscription"
    )
    mqtt_topic_prefix: str = Field(
        default="meterpay/v1", pattern=r"^[^#+$/][^#+]*[^#+/]$", description="topics' prefix"
    )
    mqtt_batch_readings: int = Field(
        default=5000, ge=1, le=50_000, description="readings collected before ingesting them"
    )
    mqtt_batch_ms: int = Field(
        default=200, ge=1, le=60_000, description="longest wait to fill a batch"
    )
    mqtt_receive_maximum: int = Field(
        default=2000, ge=1, le=65_535, description="unacknowledged messages the broker may send"
    )
    mqtt_session_expiry_seconds: int = Field(
        default=7 * 24 * 3600, ge=0, description="how long the broker keeps a consumer's session"
    )
    mqtt_keepalive_seconds: int = Field(default=30, ge=5, le=3600)
    mqtt_ingest_threads: int = Field(
        default=4, ge=1, le=32, description="gateways ingested in parallel within a batch"
    )

    # --- DTU link (meterpay.links.dtu_server; docs/links.md) ---
    dtu_host: str = Field(default="0.0.0.0", description="where the DTU listener binds")  # noqa: S104  DTUs dial in from the carrier's network
    dtu_port: int = Field(default=9000, ge=0, le=65535, description="0: any free port")
    dtu_registration_pattern: str = Field(
        default=r"^\s*([\x21-\x7e]{1,64})\s*$",
        description="regex over the first packet (latin-1); group 1 is the DTU's id",
    )
    dtu_registration_timeout_s: float = Field(default=30.0, gt=0)
    dtu_reply_timeout_s: float = Field(default=3.0, gt=0, description="per request on the bus")
    dtu_retries: int = Field(default=2, ge=0, le=10, description="resends before a meter is silent")
    dtu_idle_timeout_s: float = Field(
        default=300.0, gt=0, description="close a DTU that sends nothing for this long"
    )
    dtu_poll_speed: float = Field(
        default=1.0, gt=0, le=3600, description="poll schedules run this many times faster"
    )
    dtu_log_frames: bool = Field(default=True, description="keep raw frames for the console")

    # --- Modbus TCP polling (meterpay.links.modbus_tcp) ---
    modbus_enabled: bool = Field(
        default=False, description="poll the modbus_tcp gateways (we dial them) with the links"
    )
    modbus_timeout_s: float = Field(
        default=3.0, gt=0, description="per try: connect, or wait for a reply"
    )
    modbus_retries: int = Field(
        default=2, ge=0, le=10, description="resends before a meter is silent"
    )
    modbus_poll_speed: float = Field(
        default=1.0, gt=0, le=3600, description="poll schedules run this many times faster"
    )
    modbus_refresh_s: float = Field(
        default=60.0, gt=0, description="how often gateways and meters are re-read"
    )
    modbus_reconnect_min_s: float = Field(default=1.0, gt=0, description="first reconnect wait")
    modbus_reconnect_max_s: float = Field(
        default=300.0, gt=0, description="reconnect waits double up to this"
    )
    modbus_default_model: str = Field(
        default="generic-dts-modbus-tcp", description="model of a meter that names none"
    )
    modbus_log_frames: bool = Field(default=True, description="keep raw frames for the console")

    # --- notifications (meterpay.notify; docs/notifications.md) ---
    # Nothing configured: only in-app messages and the sites' webhooks are delivered;
    # SMS, email and WeChat messages are recorded as skipped with the reason.
    notify_sms_per_hour: int = Field(default=5, ge=1, description="SMS per phone number per hour")
    notify_email_per_hour: int = Field(default=20, ge=1, description="emails per address per hour")
    notify_wechat_per_hour: int = Field(
        default=20, ge=1, description="WeChat messages per openid per hour"
    )
    notify_http_timeout_s: float = Field(default=10.0, gt=0, le=120)
    sms_provider: Literal["none", "aliyun", "tencent"] = "none"
    aliyun_sms_access_key_id: str = ""
    aliyun_sms_access_key_secret: SecretStr = SecretStr("")
    aliyun_sms_sign_name: str = Field(default="", description="the approved 短信签名")
    aliyun_sms_templates: dict[str, str] = Field(
        default_factory=dict, description='topic -> TemplateCode, JSON: {"warning1": "SMS_1"}'
    )
    aliyun_sms_endpoint: str = "https://dysmsapi.aliyuncs.com/"
    aliyun_sms_region: str = "cn-hangzhou"
    tencent_sms_secret_id: str = ""
    tencent_sms_secret_key: SecretStr = SecretStr("")
    tencent_sms_sdk_app_id: str = ""
    tencent_sms_sign_name: str = ""
    tencent_sms_region: str = "ap-guangzhou"
    tencent_sms_templates: dict[str, str] = Field(
        default_factory=dict, description='topic -> TemplateId, JSON: {"warning1": "123456"}'
    )
    tencent_sms_endpoint: str = "https://sms.tencentcloudapi.com/"
    smtp_host: str = Field(default="", description="empty: no email")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = True
    smtp_ssl: bool = Field(default=False, description="implicit TLS (port 465)")
    smtp_from: str = ""
    wechat_appid: str = ""
    wechat_secret: SecretStr = SecretStr("")
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_templates: dict[str, str] = Field(
        default_factory=dict, description="topic -> template_id of the official account"
    )
    wechat_link_url: str = Field(default="", description="where a template message opens")

    # --- payment providers (meterpay.payments.setup; docs/payments.md) ---
    # Keys are read from files at start-up, never from the database. A provider is on when
    # its first id is set; then all of its settings are required. WeChat Pay's appid is
    # ``wechat_appid`` above: the official account bound to the merchant; that account's
    # AppSecret (``wechat_secret`` above) also lets owners inside WeChat get their openid
    # for JSAPI payments (web authorization, payments.wechat_oauth; WeChat's API at
    # ``wechat_api_base``).
    sandbox_pay: bool = Field(
        default=False,
        description="the local WeChat-Pay-compatible sandbox under /sandbox-pay (demo, tests; "
        "never in production: anyone can pay on its page)",
    )
    wechat_mchid: str = Field(default="", description="WeChat Pay merchant id (商户号)")
    wechat_serial_no: str = Field(default="", description="merchant API certificate serial")
    wechat_private_key_file: Path | None = Field(
        default=None, description="apiclient_key.pem, the merchant API private key (PKCS#8)"
    )
    wechat_apiv3_key: SecretStr = SecretStr("")
    wechat_platform_keys_dir: Path | None = Field(
        default=None,
        description="WeChat Pay's keys, one PEM per file named <serial>.pem (certificate) "
        "or PUB_KEY_ID_….pem (public key)",
    )
    wechat_oauth_authorize_url: str = Field(
        default="https://open.weixin.qq.com/connect/oauth2/authorize",
        pattern=r"^https?://[^?#]+$",
        description="WeChat's web-authorization page, where an owner's browser is sent for "
        "their openid (a fake in tests)",
    )
    alipay_app_id: str = ""
    alipay_seller_id: str = Field(default="", description="the merchant PID, 2088…")
    alipay_private_key_file: Path | None = Field(
        default=None, description="the application's private key (PEM or Alipay's base64)"
    )
    alipay_public_key_file: Path | None = Field(
        default=None, description="Alipay's public key (PEM or base64)"
    )

    show_sign_in_codes: bool = Field(
        default=False,
        description="show owners' SMS sign-in codes on screen instead of sending them "
        "(meterpay demo turns it on; never in production)",
    )
    payment_merchants_file: Path | None = Field(
        default=None,
        description="TOML file naming the sites' own WeChat Pay / Alipay merchants and their "
        "key files (docs/payments.md); sites not named there use the merchants above",
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        if not url.startswith(("sqlite://", "postgresql+psycopg://")):
            raise ValueError("MP_DATABASE_URL must be a sqlite:// or postgresql:// URL")
        return url

    @property
    def future_tolerance(self) -> timedelta:
        return timedelta(seconds=self.future_tolerance_seconds)
