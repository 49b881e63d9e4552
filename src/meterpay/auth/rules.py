"""The rules of signing in (plain data): how long a session lives, when an account is
locked, what a password and a phone number must look like, how sign-in codes behave.

Invariants:
- a session ends at the first of: its idle time without a request, its absolute
  lifetime, sign-out, or a password reset of its user;
- five failed passwords in a row lock a user for 15 minutes (an admin can unlock);
  many failures from one address slow that address down whatever names it tries;
- a sign-in code is six digits, lives five minutes, allows five tries, and is sent at
  most once a minute and five times an hour to one phone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from meterpay.kernel.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class SessionLife:
    idle: timedelta
    absolute: timedelta


STAFF_SESSION: Final = SessionLife(idle=timedelta(hours=2), absolute=timedelta(hours=12))
OWNER_SESSION: Final = SessionLife(idle=timedelta(days=30), absolute=timedelta(days=90))
TOUCH_EVERY: Final = timedelta(minutes=1)
"""A session's last-seen time is written at most this often (one write per minute)."""

MAX_FAILURES: Final = 5
LOCK_FOR: Final = timedelta(minutes=15)
ADDRESS_WINDOW: Final = timedelta(minutes=15)
ADDRESS_MAX_FAILURES: Final = 30

CODE_DIGITS: Final = 6
CODE_LIFE: Final = timedelta(minutes=5)
CODE_TRIES: Final = 5
CODE_RESEND_AFTER: Final = timedelta(minutes=1)
CODES_PER_HOUR: Final = 5
CODES_PER_ADDRESS_HOUR: Final = 20

MIN_PASSWORD: Final = 10
_COMMON: Final = frozenset(
    {"1234567890", "12345678910", "password123", "qwertyuiop", "a123456789", "1q2w3e4r5t"}
)
_MOBILE: Final = re.compile(r"^1[3-9]\d{9}$")
_USERNAME: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{2,39}$")


def session_expires(life: SessionLife, created: datetime, last_seen: datetime) -> datetime:
    return min(created + life.absolute, last_seen + life.idle)


def locked_until(failures: int, now: datetime) -> datetime | None:
    """After a failure that makes ``failures`` in a row: locked until when, if at all."""
    return now + LOCK_FOR if failures >= MAX_FAILURES else None


def check_password(password: str, *, username: str = "") -> None:
    """Refuse a password that is too easy, naming why."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password has at least {MIN_PASSWORD} characters", field="password")
    if len(password) > 256:
        raise InvalidInput("a password has at most 256 characters", field="password")
    if password.isdigit() or password.lower() in _COMMON:
        raise InvalidInput("this password is too easy to guess", field="password")
    if username and username.lower() in password.lower():
        raise InvalidInput("a password may not contain the user name", field="password")


def check_username(username: str) -> str:
    name = username.strip().lower()
    if not _USERNAME.match(name):
        raise InvalidInput(
            "a user name is 3-40 of a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
            field="username",
        )
    return name


def mobile_number(text: str) -> str:
    """A mainland mobile number as 11 digits (spaces, dashes and +86 dropped)."""
    digits = re.sub(r"[\s-]", "", text or "")
    digits = digits.removeprefix("+86").removeprefix("0086")
    if not _MOBILE.match(digits):
        raise InvalidInput("not a mainland mobile number (11 digits, 1[3-9]…)", field="phone")
    return digits


def masked(phone: str) -> str:
    """138****1234: how a phone number appears in logs and the audit log."""
    return f"{phone[:3]}****{phone[-4:]}" if len(phone) >= 7 else "****"
