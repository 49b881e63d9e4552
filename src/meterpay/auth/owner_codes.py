"""Owners sign in with their mobile number and a six-digit code sent by SMS.

Invariants:
- the answer to "send me a code" is the same whether or not the number belongs to a
  customer (nobody learns who lives where); a code is sent only to registered numbers;
- a code is kept only as its SHA-256, is good once, for five minutes and five tries;
- at most one code a minute and five an hour go to one number, twenty an hour to one
  address (SMS costs money and annoys people);
- the code is sent at once by the SMS channel, never written to the notification outbox
  (which staff can read); without an SMS provider it is shown on screen only where the
  settings allow it (``MP_SHOW_SIGN_IN_CODES``: the demo), else refused;
- the first sign-in of a number creates its owner user; what the owner sees is every
  account of every customer registered with that number.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from meterpay.auth import repository as repo
from meterpay.auth import rules
from meterpay.auth import secrets as sec
from meterpay.auth.model import UserKind
from meterpay.auth.service import ANYWHERE, Client, SignedIn, SignInFailed, start_session
from meterpay.db.schema import customers as customers_table
from meterpay.db.schema import sites as sites_table
from meterpay.kernel.errors import InvalidInput, TooManyAttempts
from meterpay.notify.channels import channels_from
from meterpay.notify.model import ChannelName, Language, Message, MessageState, Outgoing, Topic
from meterpay.notify.model import Outcome as SendOutcome
from meterpay.runtime import Runtime

log = logging.getLogger(__name__)


class CodeNotSent(InvalidInput):
    code = "code_not_sent"


@dataclass(frozen=True, slots=True)
class CodeSent:
    phone: str
    shown: str | None = None
    """The code itself, only where codes are shown on screen (the demo)."""


def request_code(rt: Runtime, phone: str, *, client: Client = ANYWHERE) -> CodeSent:
    number = rules.mobile_number(phone)
    now = rt.clock.now()
    code = sec.new_code(rules.CODE_DIGITS)
    with rt.db.write() as conn:
        _within_limits(conn, number, client, now)
        customers = repo.customers_with_phone(conn, number)
        repo.insert_code(
            conn,
            {
                "phone": number,
                "code_hash": sec.digest(f"{number}:{code}"),
                "created_at": now,
                "expires_at": now + rules.CODE_LIFE,
                "source_ip": client.source_ip,
                # an unknown number gets a code row too (the limits count it) that no
                # one receives: it cannot be used
                "tries": 0 if customers else rules.CODE_TRIES,
            },
        )
        site_name = _site_name(conn, customers)
    if not customers:
        log.info("sign-in code asked for an unregistered number %s", rules.masked(number))
        return CodeSent(number)
    if rt.settings.show_sign_in_codes:
        return CodeSent(number, shown=code)
    _send(rt, number, code, site_name, now)
    return CodeSent(number)


def _within_limits(conn: Any, number: str, client: Client, now: datetime) -> None:
    recent = repo.codes_since(conn, now - timedelta(hours=1), phone=number)
    if recent and now - recent[0]["created_at"] < rules.CODE_RESEND_AFTER:
        wait = rules.CODE_RESEND_AFTER - (now - recent[0]["created_at"])
        raise TooManyAttempts(
            f"a code was sent a moment ago: ask again in {int(wait.total_seconds()) + 1} s",
            retry_after_s=int(wait.total_seconds()) + 1,
        )
    if len(recent) >= rules.CODES_PER_HOUR:
        raise TooManyAttempts("too many codes for this number: try in an hour", retry_after_s=3600)
    if client.source_ip is not None:
        hour = repo.codes_since(conn, now - timedelta(hours=1), source_ip=client.source_ip)
        if len(hour) >= rules.CODES_PER_ADDRESS_HOUR:
            raise TooManyAttempts("too many codes from this address", retry_after_s=3600)


def _site_name(conn: Any, customers: frozenset[int]) -> str:
    if not customers:
        return ""
    found = conn.execute(
        select(sites_table.c.name)
        .select_from(
            customers_table.join(sites_table, sites_table.c.id == customers_table.c.site_id)
        )
        .where(customers_table.c.id == min(customers))
    ).scalar_one()
    return str(found)


def _send(rt: Runtime, number: str, code: str, site_name: str, now: datetime) -> None:
    channels = channels_from(rt.settings)
    try:
        sender = channels.sender(ChannelName.SMS)
        if isinstance(sender, str):
            raise CodeNotSent(
                "codes cannot be sent by SMS here: sign in with your password, or ask the"
                " property office"
            )
        result = sender.send(Outgoing(_message(number, code, site_name, now)), now)
    finally:
        channels.close()
    if result.outcome is not SendOutcome.SENT:
        log.warning("sign-in SMS to %s failed: %s", rules.masked(number), result.error)
        raise CodeNotSent("the SMS could not be sent: try again in a minute")


def _message(number: str, code: str, site_name: str, now: datetime) -> Message:
    body = f"【{site_name}】您的登录验证码为 {code}，5 分钟内有效。请勿告诉他人。"
    return Message(
        id=0,
        site_id=0,
        account_id=None,
        customer_id=None,
        endpoint_id=None,
        topic=Topic.SIGN_IN_CODE,
        channel=ChannelName.SMS,
        recipient=number,
        language=Language.ZH_CN,
        dedupe_key=f"sign-in:{number}:{now.timestamp()}",
        params={},
        variables={"code": code, "site": site_name},
        title="登录验证码",
        body=body,
        state=MessageState.SENDING,
        attempts=1,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
        sent_at=None,
        read_at=None,
        provider_id="",
        last_error="",
    )


def sign_in_with_code(rt: Runtime, phone: str, code: str, *, client: Client = ANYWHERE) -> SignedIn:
    number = rules.mobile_number(phone)
    now = rt.clock.now()
    with rt.db.write() as conn:
        found = repo.latest_code(conn, number, lock=True)
        usable = (
            found is not None
            and found["used_at"] is None
            and found["expires_at"] > now
            and found["tries"] < rules.CODE_TRIES
        )
        if found is None or not usable:
            repo.add_attempt(conn, number, client.source_ip, False, now)
            failed = SignInFailed("the code is wrong or expired: ask for a new one")
        elif not sec.same(found["code_hash"], sec.digest(f"{number}:{code.strip()}")):
            repo.save_code(conn, int(found["id"]), tries=int(found["tries"]) + 1)
            repo.add_attempt(conn, number, client.source_ip, False, now)
            failed = SignInFailed("the code is wrong")
        else:
            repo.save_code(conn, int(found["id"]), used_at=now)
            user = repo.user_with_phone(conn, number, lock=True) or _new_owner(conn, number, now)
            if user.disabled_at is not None:
                failed = SignInFailed("this sign-in is disabled: ask the property office")
            else:
                return start_session(rt, conn, user, client, how="sms_code")
    raise failed


def _new_owner(conn: Any, number: str, now: datetime) -> Any:
    user_id = repo.insert_user(
        conn,
        {
            "kind": UserKind.OWNER.value,
            "phone": number,
            "display_name": rules.masked(number),
            "created_at": now,
        },
    )
    return repo.user(conn, user_id)
