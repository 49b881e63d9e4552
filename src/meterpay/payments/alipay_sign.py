"""Alipay's RSA2 signatures (open platform, v2 gateway), as Alipay computes them.

One content rule serves both directions: the parameters, minus ``sign`` (and, for what
Alipay signs, minus ``sign_type``), with empty values skipped, sorted by key (ASCII), joined
as ``k=v`` with ``&``, raw (not URL-encoded), encoded in the form's ``charset``; then
SHA256withRSA (PKCS#1 v1.5), base64. The asymmetry trips people up:

- a request *we* sign includes ``sign_type`` in the content;
- a notification *Alipay* signs excludes ``sign_type``.

Empty values are skipped in both directions: that is what Alipay's own SDKs do
(``AlipaySignature.getSignContent``), so an empty field never changes a signature.

``sign_notification`` is the one place that builds a notification exactly as Alipay
sends it — signed, then the *whole* form URL-encoded (a ``+`` in the base64 signature left
raw would arrive as a space). The sandbox provider and the tests use it; keys are
arguments here, never read from configuration.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import TypeVar
from urllib.parse import urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

SIGN_TYPE = "RSA2"
"""SHA256withRSA; the only sign type we send or accept (``RSA`` is SHA1withRSA)."""

PrivateKeyInput = RSAPrivateKey | str | bytes
_Key = TypeVar("_Key", RSAPrivateKey, RSAPublicKey)
PublicKeyInput = RSAPublicKey | str | bytes


class KeyFormatError(ValueError):
    """A key that is neither PEM nor bare base64 DER of an RSA key of at least 2048 bits."""


def sign_content(params: Mapping[str, str], *, include_sign_type: bool) -> str:
    """The string Alipay signs: sorted non-empty ``k=v`` pairs joined with ``&``."""
    dropped = {"sign"} if include_sign_type else {"sign", "sign_type"}
    pairs = sorted((k, v) for k, v in params.items() if k not in dropped and v != "")
    return "&".join(f"{k}={v}" for k, v in pairs)


def rsa2_sign(content: str, key: RSAPrivateKey, *, charset: str = "utf-8") -> str:
    """Base64 SHA256withRSA of ``content`` encoded in ``charset``."""
    signature = key.sign(content.encode(charset), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def rsa2_verify(
    content: str, signature_b64: str, key: RSAPublicKey, *, charset: str = "utf-8"
) -> bool:
    """True only for a well-formed base64 SHA256withRSA signature of ``content``."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, content.encode(charset), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def load_private_key(key: PrivateKeyInput) -> RSAPrivateKey:
    """An RSA private key from PEM (PKCS#8 or PKCS#1) or from the bare base64 that the
    Alipay key tool prints."""
    if isinstance(key, RSAPrivateKey):
        return _strong(key)
    text = key.decode("ascii") if isinstance(key, bytes) else key
    try:
        if "-----BEGIN" in text:
            loaded = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        else:
            der = base64.b64decode("".join(text.split()), validate=True)
            loaded = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise KeyFormatError("not an unencrypted RSA private key in PEM or base64 DER") from exc
    if not isinstance(loaded, RSAPrivateKey):
        raise KeyFormatError("the private key is not an RSA key")
    return _strong(loaded)


def load_public_key(key: PublicKeyInput) -> RSAPublicKey:
    """An RSA public key from PEM (SubjectPublicKeyInfo) or from the bare base64 that the
    Alipay console shows as 支付宝公钥."""
    if isinstance(key, RSAPublicKey):
        return _strong(key)
    text = key.decode("ascii") if isinstance(key, bytes) else key
    try:
        if "-----BEGIN" in text:
            loaded = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            der = base64.b64decode("".join(text.split()), validate=True)
            loaded = serialization.load_der_public_key(der)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise KeyFormatError("not an RSA public key in PEM or base64 DER") from exc
    if not isinstance(loaded, RSAPublicKey):
        raise KeyFormatError("the public key is not an RSA key")
    return _strong(loaded)


def _strong(key: _Key) -> _Key:
    if key.key_size < 2048:
        raise KeyFormatError(f"RSA2 needs a key of at least 2048 bits, got {key.key_size}")
    return key


def sign_notification(form: Mapping[str, str], private_key: PrivateKeyInput) -> bytes:
    """The body of an asynchronous notification exactly as Alipay POSTs it: ``sign_type``
    set to RSA2, ``sign`` over the content without ``sign``/``sign_type``, and the whole
    form URL-encoded in the form's ``charset`` (default utf-8)."""
    charset = form.get("charset") or "utf-8"
    signed = {k: v for k, v in form.items() if k not in {"sign", "sign_type"}}
    signature = rsa2_sign(
        sign_content(signed, include_sign_type=False),
        load_private_key(private_key),
        charset=charset,
    )
    return urlencode(
        {**signed, "sign_type": SIGN_TYPE, "sign": signature}, encoding=charset
    ).encode("ascii")
