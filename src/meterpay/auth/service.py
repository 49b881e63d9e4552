"""Signing in and out, and who a request is: sessions for people, tokens for integrators.

Each sign-in is one transaction that records the attempt whatever its outcome (a
failure is committed before it is reported, so lock-outs and address limits hold), and
writes the audit log. A session is a random token in a cookie whose SHA-256 is stored;
it carries its own CSRF token. Who a request is and what it names are read in one
transaction (``access_of``), so the authorization decision sees one state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import Any, Final

from sqlalchemy import Connection

from meterpay.audit import repository as audit
from meterpay.auth import repository as repo
from meterpay.auth import rules
from meterpay.auth import secrets as sec
from meterpay.auth.model import Principal, PrincipalKind, User, UserKind, grants_of
from meterpay.auth.targets import NOTHING, Resolved, resolve
from meterpay.kernel.errors import DomainError, TooManyAttempts, Unauthorized
from meterpay.runtime import Runtime

log = logging.getLogger(__name__)


class SignInFailed(Unauthorized):
    code = "sign_in_failed"


class SecondFactorNeeded(Unauthorized):
    """The password was right; the authenticator's six digits are needed too."""

    code = "totp_required"


class AccountLocked(TooManyAttempts):
    code = "account_locked"


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str
    """The session cookie's value: shown once, stored only as its SHA-256."""
    principal: Principal
    must_change_password: bool
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Client:
    """Where a request came from, for limits and the audit log."""

    source_ip: str | None = None
    user_agent: str | None = None


ANYWHERE: Final = Client()
"""A caller with no known address (the command line, tests)."""


# --- staff and owners with a password ----------------------------------------------------


def sign_in(
    rt: Runtime, username: str, password: str, *, totp: str = "", client: Client = ANYWHERE
) -> SignedIn:
    """A staff member signs in with user name, password and (when set up) TOTP."""
    name = username.strip().lower()[:40]
    return _with_password(rt, UserKind.STAFF, name, password, totp, client)


def sign_in_owner(rt: Runtime, phone: str, password: str, *, client: Client = ANYWHERE) -> SignedIn:
    """An owner signs in with their mobile number and the password they set."""
    return _with_password(rt, UserKind.OWNER, rules.mobile_number(phone), password, "", client)


def _with_password(  # noqa: PLR0917  the two sign-ins' common path
    rt: Runtime, kind: UserKind, who: str, password: str, totp: str, client: Client
) -> SignedIn:
    now = rt.clock.now()
    problem: DomainError | None = None
    with rt.db.write() as conn:
        _check_address(conn, client, now)
        found = (repo.user_named if kind is UserKind.STAFF else repo.user_with_phone)(
            conn, who, lock=True
        )
        user = found if found is not None and found.kind is kind else None
        problem = _password_problem(user, password, totp, now)
        if problem is None and user is not None:
            return _start(conn, rt, user, client, now, password=password, totp=totp)
        assert problem is not None  # noqa: S101  None returned above
        if not isinstance(problem, SecondFactorNeeded):
            _failed(conn, user, who, client, now, problem)
    raise problem


def _password_problem(
    user: User | None, password: str, totp: str, now: datetime
) -> DomainError | None:
    if user is not None and user.locked_until is not None and user.locked_until > now:
        wait = int((user.locked_until - now).total_seconds()) + 1
        return AccountLocked(
            f"too many wrong passwords: try again in {wait // 60 + 1} minutes or ask an"
            " administrator to unlock",
            retry_after_s=wait,
        )
    good = sec.password_matches(user.password_hash if user else None, password)
    if not good or user is None or user.disabled_at is not None:
        return SignInFailed("wrong user name or password")
    if user.totp_on and not totp.strip():
        return SecondFactorNeeded("enter the six digits of your authenticator app")
    if user.totp_on and _totp_step(user, totp, now) is None:
        return SignInFailed("wrong or used authenticator code")
    return None


def _totp_step(user: User, code: str, now: datetime) -> int | None:
    assert user.totp_secret is not None  # noqa: S101  checked by totp_on
    return sec.totp_step(user.totp_secret, code, now.timestamp(), after=user.totp_last_step)


def _check_address(conn: Connection, client: Client, now: datetime) -> None:
    if client.source_ip is None:
        return
    since = now - rules.ADDRESS_WINDOW
    if repo.failures_from(conn, client.source_ip, since) >= rules.ADDRESS_MAX_FAILURES:
        raise TooManyAttempts(
            "too many failed sign-ins from this address: wait a quarter of an hour",
            retry_after_s=int(rules.ADDRESS_WINDOW.total_seconds()),
        )


def _failed(  # noqa: PLR0917
    conn: Connection,
    user: User | None,
    who: str,
    client: Client,
    now: datetime,
    problem: DomainError,
) -> None:
    repo.add_attempt(conn, who, client.source_ip, False, now)
    if user is not None and not isinstance(problem, AccountLocked):
        failures = user.failed_count + 1
        locked = rules.locked_until(failures, now)
        repo.save_user(conn, user.id, failed_count=failures, locked_until=locked)
        if locked is not None:
            log.warning("user %s locked after %d failed sign-ins", user.actor, failures)
    audit.record(
        conn,
        at=now,
        actor=user.actor if user else "anonymous",
        action="security.sign_in_failed",
        object_type="user",
        object_id=user.id if user else who[:64],
        after={"reason": problem.code},
        reason=problem.message,
        source_ip=client.source_ip,
    )


def _start(
    conn: Connection,
    rt: Runtime,
    user: User,
    client: Client,
    now: datetime,
    *,
    password: str = "",
    totp: str = "",
    how: str = "password",
) -> SignedIn:
    changes: dict[str, Any] = {"failed_count": 0, "locked_until": None, "last_sign_in_at": now}
    if password and user.password_hash and sec.needs_rehash(user.password_hash):
        changes["password_hash"] = sec.hash_password(password)
    if user.totp_on and totp:
        changes["totp_last_step"] = _totp_step(user, totp, now)
    repo.save_user(conn, user.id, **changes)
    repo.add_attempt(conn, user.actor, client.source_ip, True, now)
    life = rules.STAFF_SESSION if user.kind is UserKind.STAFF else rules.OWNER_SESSION
    token, csrf = sec.new_token(), sec.new_token()
    expires = rules.session_expires(life, now, now)
    session_id = repo.insert_session(
        conn,
        {
            "token_hash": sec.digest(token),
            "user_id": user.id,
            "csrf_token": csrf,
            "created_at": now,
            "last_seen_at": now,
            "expires_at": expires,
            "source_ip": client.source_ip,
            "user_agent": (client.user_agent or "")[:300] or None,
        },
    )
    audit.record(
        conn,
        at=now,
        actor=user.actor,
        action="auth.sign_in",
        object_type="user",
        object_id=user.id,
        after={"how": how, "session": session_id},
        source_ip=client.source_ip,
    )
    principal = _principal(conn, user, session_id, csrf)
    return SignedIn(token, principal, user.must_change_password, expires)


def start_session(rt: Runtime, conn: Connection, user: User, client: Client, how: str) -> SignedIn:
    """A session for a user proven another way (an SMS code), inside the caller's
    transaction."""
    return _start(conn, rt, user, client, rt.clock.now(), how=how)


# --- who is asking ----------------------------------------------------------------------


class CredentialKind(StrEnum):
    SESSION = "session"
    """A session cookie's value (a person signed in through a page)."""
    TOKEN = "token"  # noqa: S105  a kind of credential, not one
    """An API token (``Authorization: Bearer …``)."""


@dataclass(frozen=True, slots=True)
class Credential:
    """What a request presents to say who it is."""

    kind: CredentialKind
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Access:
    """Who is asking and what their request names, read together in one transaction."""

    principal: Principal | None
    """None: no credential, or one that is unknown, ended, revoked or expired."""
    named: Resolved = NOTHING
    """The ids in the request's path and query."""
    in_body: Resolved = NOTHING
    """The ids in the request's body."""


@dataclass(frozen=True, slots=True)
class _Caller:
    principal: Principal
    touch: Callable[[Connection], None] | None = None
    """Moves the session's last-seen (the token's last-used) time on, when it is due."""


def access_of(
    rt: Runtime,
    credential: Credential | None,
    named: Sequence[tuple[str, Any]] = (),
    in_body: Sequence[tuple[str, Any]] = (),
) -> Access:
    """The caller behind ``credential`` and the sites of the ids their request names
    (``auth.targets``), in one read transaction; ids are resolved only for a caller.

    A session's last-seen time (a token's last use) moves on at most once a minute, in
    its own write transaction after the read: a read transaction is rolled back."""
    if credential is None or not 0 < len(credential.secret) <= 100:
        return Access(None)
    now = rt.clock.now()
    with rt.db.read() as conn:
        find = _session_caller if credential.kind is CredentialKind.SESSION else _token_caller
        caller = find(conn, credential.secret, now)
        if caller is None:
            return Access(None)
        access = Access(caller.principal, resolve(conn, named), resolve(conn, in_body))
    if caller.touch is not None:
        with rt.db.write() as conn:
            caller.touch(conn)
    return access


def _session_caller(conn: Connection, token: str, now: datetime) -> _Caller | None:
    """The signed-in user of a session cookie, unless the session ended or expired."""
    session = repo.session_by_hash(conn, sec.digest(token))
    if session is None or session["ended_at"] is not None or session["expires_at"] <= now:
        return None
    user = repo.user(conn, int(session["user_id"]))
    if user is None or user.disabled_at is not None:
        return None
    session_id = int(session["id"])
    principal = _principal(conn, user, session_id, str(session["csrf_token"]))
    if now - session["last_seen_at"] < rules.TOUCH_EVERY:
        return _Caller(principal)
    life = rules.STAFF_SESSION if user.kind is UserKind.STAFF else rules.OWNER_SESSION
    expires = rules.session_expires(life, session["created_at"], now)
    touch = partial(repo.save_session, session_id=session_id, last_seen_at=now, expires_at=expires)
    return _Caller(principal, touch)


def _token_caller(conn: Connection, presented: str, now: datetime) -> _Caller | None:
    """The integrator behind an API token, unless it is revoked or expired."""
    found = repo.token_by_hash(conn, sec.digest(presented))
    if found is None or found.revoked_at is not None:
        return None
    if found.expires_at is not None and found.expires_at <= now:
        return None
    if found.last_used_at is not None and now - found.last_used_at < rules.TOUCH_EVERY:
        return _Caller(found.principal())
    return _Caller(found.principal(), partial(repo.save_token, token_id=found.id, last_used_at=now))


def _principal(conn: Connection, user: User, session_id: int | None, csrf: str) -> Principal:
    if user.kind is UserKind.OWNER:
        assert user.phone is not None  # noqa: S101  an owner's identity (a CHECK)
        return Principal(
            kind=PrincipalKind.OWNER,
            id=user.id,
            name=user.actor,
            customer_ids=repo.customers_with_phone(conn, user.phone),
            session_id=session_id,
            csrf_token=csrf,
            language=user.language,
            must_change_password=user.must_change_password,
        )
    roles = tuple(repo.roles_of(conn, [user.id])[user.id])
    return Principal(
        kind=PrincipalKind.STAFF,
        id=user.id,
        name=user.actor,
        grants=grants_of(roles),
        roles=roles,
        session_id=session_id,
        csrf_token=csrf,
        language=user.language,
        must_change_password=user.must_change_password,
    )


def principal_of_user(rt: Runtime, user_id: int) -> Principal:
    """A user as a principal without a session (scripts and tests acting as them)."""
    with rt.db.read() as conn:
        user = repo.user(conn, user_id)
        if user is None:
            raise SignInFailed(f"user {user_id} does not exist")
        return _principal(conn, user, None, "")


def sign_out(rt: Runtime, principal: Principal, *, client: Client = ANYWHERE) -> None:
    if principal.session_id is None:
        return
    now = rt.clock.now()
    with rt.db.write() as conn:
        repo.save_session(conn, principal.session_id, ended_at=now)
        audit.record(
            conn,
            at=now,
            actor=principal.name,
            action="auth.sign_out",
            object_type="user",
            object_id=principal.id,
            source_ip=client.source_ip,
        )
