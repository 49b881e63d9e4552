"""The secrets of signing in: argon2id password hashes, random tokens kept only as their
SHA-256, TOTP (RFC 6238) checks that refuse a code used before.

Tokens are 32 random bytes (URL-safe base64); their SHA-256 is what the database keeps,
so a copy of the tables opens no session. Passwords use argon2-cffi's defaults
(argon2id, RFC 9106 low-memory profile); a hash made with older parameters is replaced
at the next good sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER: Final = PasswordHasher()
TOTP_ISSUER: Final = "meterpay"


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def password_matches(stored: str | None, password: str) -> bool:
    if not stored:
        _HASHER.hash(password)  # spend the same time, so timing does not tell who exists
        return False
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def new_code(digits: int) -> str:
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, account: str) -> str:
    """The otpauth:// URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=TOTP_ISSUER)


def totp_step(secret: str, code: str, at_unix: float, *, after: int | None) -> int | None:
    """The 30-second step ``code`` belongs to (one step of drift either way), if it is
    right and newer than step ``after`` (a code is good once); else None."""
    totp = pyotp.TOTP(secret)
    code = code.strip().replace(" ", "")
    if not code.isdigit():
        return None
    now_step = int(at_unix // totp.interval)
    for step in (now_step - 1, now_step, now_step + 1):
        if (after is None or step > after) and same(totp.generate_otp(step), code):
            return step
    return None
