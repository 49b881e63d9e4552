"""Request signatures, exactly as the providers document them, and ours for webhooks.

- Aliyun RPC signature v1 (HMAC-SHA1), used by SendSms (dysmsapi, version 2017-05-25):
  sort the parameters, percent-encode them per RFC 3986 (space as %20, ``*`` as %2A,
  ``~`` kept), join them, sign ``METHOD&%2F&`` + the encoded query with the AccessKey
  secret followed by ``&``, Base64 the digest.
- Tencent Cloud API 3.0 TC3-HMAC-SHA256, used by SendSms (sms, version 2021-01-11):
  a canonical request hashed into a string to sign, signed with a key derived from the
  secret key, the UTC date and the service.
- meterpay webhooks: ``v1=`` + hex HMAC-SHA256 of ``timestamp + "." + body`` with the
  endpoint's secret; ``verify_webhook`` is what an integrator runs (docs/notifications.md).

Pure: times and nonces are passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from meterpay.kernel.clock import require_aware

TC3 = "TC3-HMAC-SHA256"
WEBHOOK_SCHEME = "v1"
WEBHOOK_TOLERANCE = timedelta(minutes=5)


# --- Aliyun RPC v1 --------------------------------------------------------------------


def percent_encode(value: str) -> str:
    """RFC 3986 as Aliyun wants it: only A-Z a-z 0-9 - _ . ~ stay as they are."""
    return quote(value, safe="-_.~")


def aliyun_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    canonical = "&".join(
        f"{percent_encode(k)}={percent_encode(v)}"
        for k, v in sorted(params.items())
        if k != "Signature"
    )
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical)}"


def aliyun_signature(method: str, params: Mapping[str, str], access_key_secret: str) -> str:
    key = (access_key_secret + "&").encode()
    digest = hmac.new(key, aliyun_string_to_sign(method, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def aliyun_timestamp(now: datetime) -> str:
    """ISO 8601 in UTC, to the second: 2016-02-23T12:46:24Z."""
    return require_aware(now).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- Tencent Cloud TC3-HMAC-SHA256 ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class TencentRequest:
    """What TC3 signs of a POST with a JSON body: host, content type, body and time."""

    host: str
    service: str
    content_type: str
    payload: str
    timestamp: int

    @property
    def date(self) -> str:
        return datetime.fromtimestamp(self.timestamp, UTC).strftime("%Y-%m-%d")

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.service}/tc3_request"


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _hmac256(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def tc3_canonical_request(request: TencentRequest) -> str:
    headers = f"content-type:{request.content_type.lower()}\nhost:{request.host.lower()}\n"
    return "\n".join(("POST", "/", "", headers, "content-type;host", _sha256_hex(request.payload)))


def tc3_string_to_sign(request: TencentRequest) -> str:
    hashed = _sha256_hex(tc3_canonical_request(request))
    return f"{TC3}\n{request.timestamp}\n{request.scope}\n{hashed}"


def tc3_signature(request: TencentRequest, secret_key: str) -> str:
    secret_date = _hmac256(("TC3" + secret_key).encode(), request.date)
    secret_service = _hmac256(secret_date, request.service)
    secret_signing = _hmac256(secret_service, "tc3_request")
    return hmac.new(
        secret_signing, tc3_string_to_sign(request).encode(), hashlib.sha256
    ).hexdigest()


def tc3_authorization(request: TencentRequest, secret_id: str, secret_key: str) -> str:
    return (
        f"{TC3} Credential={secret_id}/{request.scope}, SignedHeaders=content-type;host, "
        f"Signature={tc3_signature(request, secret_key)}"
    )


# --- meterpay webhooks ----------------------------------------------------------------


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``."""
    signed = str(timestamp).encode() + b"." + body
    return f"{WEBHOOK_SCHEME}=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_webhook(
    secret: str,
    *,
    timestamp: str,
    body: bytes,
    signature: str,
    now: datetime,
    tolerance: timedelta = WEBHOOK_TOLERANCE,
) -> bool:
    """True when ``signature`` is ours for this body and time, and the time is recent
    (a replayed old delivery is refused)."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(require_aware(now).timestamp() - sent) > tolerance.total_seconds():
        return False
    return hmac.compare_digest(webhook_signature(secret, sent, body), signature.strip())
