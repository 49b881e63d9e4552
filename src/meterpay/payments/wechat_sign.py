"""WeChat Pay API v3 signatures and encrypted resources, exactly as WeChat makes them.

Both directions use SHA256withRSA (RSASSA-PKCS1-v1_5 over SHA-256), Base64-encoded:
- a request we send signs ``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`` with the
  merchant API private key (``authorization``);
- a response or notification WeChat sends signs ``TIMESTAMP\\nNONCE\\nBODY\\n`` with the
  platform key named by ``Wechatpay-Serial``: a platform certificate's serial, or a
  WeChat Pay public key id ``PUB_KEY_ID_…`` (``check_signature``);
- JSAPI pay parameters sign ``appId\\ntimeStamp\\nnonceStr\\npackage\\n`` (``jsapi_pay_sign``).

Invariants ``check_signature`` keeps: the signature is checked over the raw body bytes,
never re-serialised JSON; a timestamp more than 5 minutes from ``now`` (either way), a
probe signature (``WECHATPAY/SIGNTEST/…``, sent by WeChat on purpose) and a key id we do
not hold are refused before any RSA work.

Notification resources are AES-256-GCM: key = the 32-byte APIv3 key, nonce = the ASCII
``nonce`` field, AAD = ``associated_data``, data = Base64(ciphertext || 16-byte tag).

``sign_notification`` builds a notification the way WeChat does (with
``transaction_resource`` / ``refund_resource`` as its plaintext), for the sandbox provider
and the tests; nothing here does I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from meterpay.kernel.clock import require_aware

SIGNATURE_TYPE: Final = "WECHATPAY2-SHA256-RSA2048"
PROBE_PREFIX: Final = "WECHATPAY/SIGNTEST/"
PUBLIC_KEY_ID_PREFIX: Final = "PUB_KEY_ID_"
MAX_SKEW: Final = timedelta(minutes=5)
CHINA: Final = timezone(timedelta(hours=8), "CST")
"""WeChat Pay's times are Beijing time; China keeps no daylight saving time."""
MIN_RSA_BITS: Final = 2048
APIV3_KEY_BYTES: Final = 32

HEADER_TIMESTAMP: Final = "wechatpay-timestamp"
HEADER_NONCE: Final = "wechatpay-nonce"
HEADER_SIGNATURE: Final = "wechatpay-signature"
HEADER_SERIAL: Final = "wechatpay-serial"
HEADER_SIGNATURE_TYPE: Final = "wechatpay-signature-type"
REQUIRED_HEADERS: Final = (HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE, HEADER_SERIAL)


class KeyMaterialError(ValueError):
    """A key or certificate that cannot be used; the message never contains the key."""


@dataclass(frozen=True, slots=True)
class PlatformKey:
    """A key WeChat signs with: from a platform certificate (``not_after`` set) or a
    WeChat Pay public key (public-key mode, no expiry of its own)."""

    key_id: str
    public_key: RSAPublicKey
    not_after: datetime | None = None


# --- keys -------------------------------------------------------------------------------------


def _pem(text: str | bytes) -> bytes:
    if isinstance(text, bytes):
        return text
    try:
        return text.encode("ascii")
    except UnicodeError:  # the codec's message would quote a character of the key
        raise KeyMaterialError("a PEM must be ASCII text") from None


def load_private_key(pem: str | bytes) -> RSAPrivateKey:
    """The merchant API private key (PKCS#8, ``BEGIN PRIVATE KEY``), RSA of 2048 bits or more."""
    try:
        key = serialization.load_pem_private_key(_pem(pem), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyMaterialError("the merchant private key is not an unencrypted PEM key") from exc
    if not isinstance(key, RSAPrivateKey) or key.key_size < MIN_RSA_BITS:
        raise KeyMaterialError("the merchant private key is not an RSA key of 2048 bits or more")
    return key


def certificate_serial(pem: str | bytes) -> str:
    """A certificate's serial as WeChat writes it in ``Wechatpay-Serial`` (hex, upper case)."""
    return format(_certificate(pem).serial_number, "X")


def _certificate(pem: str | bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_pem(pem))
    except ValueError as exc:
        raise KeyMaterialError("not a PEM X.509 certificate") from exc


def _rsa(key: object, what: str) -> RSAPublicKey:
    if not isinstance(key, RSAPublicKey) or key.key_size < MIN_RSA_BITS:
        raise KeyMaterialError(f"{what} does not hold an RSA key of 2048 bits or more")
    return key


def load_platform_key(key_id: str, pem: str | bytes) -> PlatformKey:
    """A platform certificate (its serial must be ``key_id``) or a WeChat Pay public key
    (SubjectPublicKeyInfo, ``BEGIN PUBLIC KEY``; ``key_id`` is its ``PUB_KEY_ID_…``)."""
    if b"BEGIN CERTIFICATE" in _pem(pem):
        serial = certificate_serial(pem)
        if serial != key_id.upper():
            raise KeyMaterialError(f"the certificate listed as {key_id} has serial {serial}")
        cert = _certificate(pem)
        return PlatformKey(serial, _rsa(cert.public_key(), key_id), cert.not_valid_after_utc)
    if not key_id.startswith(PUBLIC_KEY_ID_PREFIX):
        raise KeyMaterialError(f"the public key listed as {key_id} needs its PUB_KEY_ID_… id")
    try:
        public = serialization.load_pem_public_key(_pem(pem))
    except ValueError as exc:
        raise KeyMaterialError(f"{key_id} is neither a certificate nor a public key") from exc
    return PlatformKey(key_id, _rsa(public, key_id))


def apiv3_key_bytes(key: str | bytes) -> bytes:
    """The APIv3 key as the AES-256 key it is: exactly 32 bytes (32 ASCII characters)."""
    try:
        raw = key.encode("ascii") if isinstance(key, str) else key
    except UnicodeError:  # the codec's message would quote a character of the key
        raise KeyMaterialError("the APIv3 key must be 32 ASCII characters") from None
    if len(raw) != APIV3_KEY_BYTES:
        raise KeyMaterialError("the APIv3 key must be 32 bytes")
    return raw


# --- signing and verifying ---------------------------------------------------------------------


def new_nonce() -> str:
    return secrets.token_hex(16).upper()


def sign(private_key: RSAPrivateKey, message: bytes) -> str:
    signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def signature_valid(public_key: RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def request_message(
    method: str, path_and_query: str, timestamp: str, nonce: str, body: bytes
) -> bytes:
    head = f"{method.upper()}\n{path_and_query}\n{timestamp}\n{nonce}\n"
    return head.encode("utf-8") + body + b"\n"


def response_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What WeChat signs in a response or a notification: the body is the raw bytes."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def authorization(
    *,
    mchid: str,
    serial_no: str,
    private_key: RSAPrivateKey,
    method: str,
    path_and_query: str,
    body: bytes,
    timestamp: str,
    nonce: str,
) -> str:
    """The ``Authorization`` header of one request."""
    message = request_message(method, path_and_query, timestamp, nonce, body)
    signature = sign(private_key, message)
    return (
        f'{SIGNATURE_TYPE} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def jsapi_pay_sign(
    private_key: RSAPrivateKey, app_id: str, timestamp: str, nonce: str, package: str
) -> str:
    """``paySign`` of the parameters handed to ``WeixinJSBridge`` (signType ``RSA``)."""
    return sign(private_key, f"{app_id}\n{timestamp}\n{nonce}\n{package}\n".encode())


def lower_headers(headers: Mapping[str, str]) -> dict[str, str] | str:
    """Header names in lower case; a reason instead when one is repeated with two values."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in found and found[key] != value:
            return f"header {key} given twice"
        found[key] = value
    return found


def check_signature(
    keys: Mapping[str, PlatformKey], headers: Mapping[str, str], body: bytes, now: datetime
) -> str | None:
    """Why a response or notification signed by WeChat is not to be trusted, or None.

    ``headers`` may use any case; ``body`` is the raw body."""
    found = lower_headers(headers)
    if isinstance(found, str):
        return found
    problem = _header_problem(found, now)
    if problem:
        return problem
    key = keys.get(found[HEADER_SERIAL].strip())
    if key is None:
        return "unknown Wechatpay-Serial"
    if key.not_after is not None and now > key.not_after:
        return "the platform certificate has expired"
    timestamp, nonce = found[HEADER_TIMESTAMP].strip(), found[HEADER_NONCE].strip()
    if not signature_valid(
        key.public_key, response_message(timestamp, nonce, body), found[HEADER_SIGNATURE].strip()
    ):
        return "bad signature"
    return None


def _header_problem(found: Mapping[str, str], now: datetime) -> str | None:
    """What is wrong with the signature headers before any key is looked at."""
    missing = [name for name in REQUIRED_HEADERS if not found.get(name, "").strip()]
    if missing:
        return f"missing header {', '.join(missing)}"
    kind = found.get(HEADER_SIGNATURE_TYPE)
    if kind is not None and kind.strip() != SIGNATURE_TYPE:
        return "unsupported Wechatpay-Signature-Type"
    if found[HEADER_SIGNATURE].strip().startswith(PROBE_PREFIX):
        return "signature probe (WECHATPAY/SIGNTEST)"
    return _stale(found[HEADER_TIMESTAMP].strip(), now)


def _stale(timestamp: str, now: datetime) -> str | None:
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return "Wechatpay-Timestamp is not a number of seconds"
    skew = abs(int(timestamp) - require_aware(now).timestamp())
    if skew > MAX_SKEW.total_seconds():
        return "Wechatpay-Timestamp is more than 5 minutes from now"
    return None


# --- encrypted resources ------------------------------------------------------------------------


def decrypt_resource(
    apiv3_key: bytes, ciphertext_b64: str, nonce: str, associated_data: str
) -> bytes:
    """The plaintext; ``ValueError`` when it cannot be decrypted or fails authentication."""
    try:
        data = base64.b64decode(ciphertext_b64, validate=True)
        aad = associated_data.encode("utf-8")
        return AESGCM(apiv3_key).decrypt(nonce.encode("ascii"), data, aad)
    except (InvalidTag, binascii.Error, UnicodeError, ValueError) as exc:
        raise ValueError("the resource cannot be decrypted") from exc


def encrypt_resource(apiv3_key: bytes, plaintext: bytes, nonce: str, associated_data: str) -> str:
    sealed = AESGCM(apiv3_key).encrypt(nonce.encode("ascii"), plaintext, associated_data.encode())
    return base64.b64encode(sealed).decode("ascii")


def china_time(moment: datetime) -> str:
    """RFC 3339 in Beijing time, whole seconds, as WeChat writes times: ``…T10:34:56+08:00``."""
    return require_aware(moment).astimezone(CHINA).replace(microsecond=0).isoformat()


def transaction_resource(
    *,
    mchid: str,
    appid: str,
    out_trade_no: str,
    transaction_id: str,
    amount_fen: int,
    paid_at: datetime,
    trade_type: str = "NATIVE",
    openid: str = "",
) -> dict[str, Any]:
    """The plaintext of a TRANSACTION.SUCCESS notification (also a paid query answer)."""
    return {
        "mchid": mchid,
        "appid": appid,
        "out_trade_no": out_trade_no,
        "transaction_id": transaction_id,
        "trade_type": trade_type,
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "",
        "success_time": china_time(paid_at),
        "payer": {"openid": openid},
        "amount": {
            "total": amount_fen,
            "payer_total": amount_fen,
            "currency": "CNY",
            "payer_currency": "CNY",
        },
    }


def refund_resource(
    *,
    mchid: str,
    out_trade_no: str,
    transaction_id: str,
    out_refund_no: str,
    refund_id: str,
    refund_fen: int,
    total_fen: int,
    done_at: datetime,
    status: str = "SUCCESS",
) -> dict[str, Any]:
    """The plaintext of a REFUND.<status> notification (SUCCESS, ABNORMAL or CLOSED)."""
    return {
        "mchid": mchid,
        "out_trade_no": out_trade_no,
        "transaction_id": transaction_id,
        "out_refund_no": out_refund_no,
        "refund_id": refund_id,
        "refund_status": status,
        "success_time": china_time(done_at),
        "user_received_account": "支付用户零钱",
        "amount": {
            "total": total_fen,
            "refund": refund_fen,
            "payer_total": total_fen,
            "payer_refund": refund_fen,
        },
    }


def sign_notification(
    *,
    platform_key: RSAPrivateKey,
    serial: str,
    apiv3_key: str | bytes,
    event_type: str,
    resource: Mapping[str, Any],
    at: datetime,
    event_id: str | None = None,
    summary: str = "",
) -> tuple[dict[str, str], bytes]:
    """Headers and raw body of a notification as WeChat sends it: ``resource`` encrypted
    with the APIv3 key, the body signed with the platform key named ``serial``.

    ``event_type`` is e.g. ``TRANSACTION.SUCCESS`` or ``REFUND.SUCCESS``; the resource's
    ``original_type`` and ``associated_data`` follow from it (``transaction``/``refund``)."""
    original_type = "refund" if event_type.startswith("REFUND.") else "transaction"
    nonce = secrets.token_urlsafe(9)[:12]
    plaintext = json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode()
    envelope = {
        "id": event_id or f"EV-{secrets.token_hex(12)}",
        "create_time": china_time(at),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary or ("退款成功" if original_type == "refund" else "支付成功"),
        "resource": {
            "original_type": original_type,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": encrypt_resource(
                apiv3_key_bytes(apiv3_key), plaintext, nonce, original_type
            ),
            "associated_data": original_type,
            "nonce": nonce,
        },
    }
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    timestamp, header_nonce = str(int(require_aware(at).timestamp())), new_nonce()
    headers = {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": header_nonce,
        "Wechatpay-Signature": sign(platform_key, response_message(timestamp, header_nonce, body)),
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": SIGNATURE_TYPE,
        "Content-Type": "application/json",
    }
    return headers, body
