"""Users and roles, managed by administrators: create, give roles, reset a password,
unlock, disable; and what a user does to their own sign-in (change password, TOTP).

Invariants:
- an administrator grants only within their own reach: a role on a site they administer,
  or a role on every site only if they administer every site;
- nobody changes their own roles or disables themselves (a second admin must);
- a password reset ends the user's sessions, clears the lock and TOTP, and makes the
  user choose a new password at the next sign-in; the temporary password is shown once;
- every change is in the audit log with before and after (never a hash or a secret).
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from meterpay.audit import repository as audit
from meterpay.auth import repository as repo
from meterpay.auth import rules
from meterpay.auth import secrets as sec
from meterpay.auth.model import STAFF_ROLES, Permission, Principal, Role, User, UserKind
from meterpay.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from meterpay.runtime import Runtime
from meterpay.sites import repository as sites

RoleAt = tuple[Role, int | None]


@dataclass(frozen=True, slots=True)
class StaffMember:
    user: User
    roles: tuple[RoleAt, ...]


def temporary_password() -> str:
    """12 characters an administrator can read out: no 0/O, 1/l/I."""
    alphabet = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")
    while True:
        word = "".join(secrets.choice(alphabet) for _ in range(12))
        if any(c.isdigit() for c in word) and any(c.isalpha() for c in word):
            return word


def create_staff(
    rt: Runtime,
    *,
    username: str,
    display_name: str,
    password: str,
    roles: Iterable[RoleAt],
    by: Principal | None,
    must_change_password: bool = True,
) -> StaffMember:
    """A new staff member. ``by`` None: the command line (``meterpay users add``), which
    runs with the machine's own authority."""
    name = rules.check_username(username)
    rules.check_password(password, username=name)
    wanted = _roles(roles)
    now = rt.clock.now()
    with rt.db.write() as conn:
        _may_grant(conn, by, wanted)
        if repo.user_named(conn, name) is not None:
            raise Conflict(f"user name {name} is taken", field="username")
        user_id = repo.insert_user(
            conn,
            {
                "kind": UserKind.STAFF.value,
                "username": name,
                "display_name": display_name.strip()[:100] or name,
                "password_hash": sec.hash_password(password),
                "must_change_password": must_change_password,
                "created_at": now,
                "password_changed_at": now,
            },
        )
        repo.replace_roles(conn, user_id, wanted)
        _audit(conn, by, now, "user.create", user_id, None, {"username": name, **_shown(wanted)})
        return _member(conn, user_id)


def set_roles(
    rt: Runtime, user_id: int, roles: Iterable[RoleAt], *, by: Principal, reason: str = ""
) -> StaffMember:
    wanted = _roles(roles)
    now = rt.clock.now()
    with rt.db.write() as conn:
        member = _visible(conn, user_id, by)
        if member.user.id == by.id and by.kind.value == "staff":
            raise Forbidden("nobody changes their own roles: ask another administrator")
        _may_grant(conn, by, set(member.roles) | wanted)
        repo.replace_roles(conn, user_id, wanted)
        _audit(conn, by, now, "user.roles", user_id, _shown(member.roles), _shown(wanted), reason)
        return _member(conn, user_id)


def reset_password(rt: Runtime, user_id: int, *, by: Principal | None, reason: str = "") -> str:
    """A temporary password for the user (shown once); their sessions end. ``by`` None:
    the command line."""
    word = temporary_password()
    now = rt.clock.now()
    with rt.db.write() as conn:
        if by is not None:
            member = _visible(conn, user_id, by)
            _may_grant(conn, by, set(member.roles))
        repo.save_user(
            conn,
            user_id,
            password_hash=sec.hash_password(word),
            must_change_password=True,
            failed_count=0,
            locked_until=None,
            totp_secret=None,
            totp_last_step=None,
            password_changed_at=now,
        )
        repo.end_sessions_of(conn, user_id, now)
        _audit(conn, by, now, "user.password_reset", user_id, None, {"totp": "cleared"}, reason)
    return word


def unlock(rt: Runtime, user_id: int, *, by: Principal) -> StaffMember:
    now = rt.clock.now()
    with rt.db.write() as conn:
        member = _visible(conn, user_id, by)
        repo.save_user(conn, user_id, failed_count=0, locked_until=None)
        before = {"locked_until": member.user.locked_until}
        _audit(conn, by, now, "user.unlock", user_id, before, {"locked_until": None})
        return _member(conn, user_id)


def set_disabled(
    rt: Runtime, user_id: int, disabled: bool, *, by: Principal, reason: str
) -> StaffMember:
    if not reason.strip():
        raise InvalidInput("say why", field="reason")
    now = rt.clock.now()
    with rt.db.write() as conn:
        member = _visible(conn, user_id, by)
        if member.user.id == by.id:
            raise Forbidden("nobody disables themselves")
        _may_grant(conn, by, set(member.roles))
        repo.save_user(conn, user_id, disabled_at=now if disabled else None)
        if disabled:
            repo.end_sessions_of(conn, user_id, now)
        action = "user.disable" if disabled else "user.enable"
        before = {"disabled": member.user.disabled_at is not None}
        _audit(conn, by, now, action, user_id, before, {"disabled": disabled}, reason)
        return _member(conn, user_id)


def change_own_password(rt: Runtime, principal: Principal, old: str, new: str) -> None:
    """The user's own new password (old one required); other sessions end."""
    now = rt.clock.now()
    with rt.db.write() as conn:
        user = repo.user(conn, principal.id, lock=True)
        if user is None or not sec.password_matches(user.password_hash, old):
            raise InvalidInput("the current password is wrong", field="old_password")
        rules.check_password(new, username=user.username or "")
        if sec.password_matches(user.password_hash, new):
            raise InvalidInput("choose a password you did not use now", field="password")
        repo.save_user(
            conn,
            user.id,
            password_hash=sec.hash_password(new),
            must_change_password=False,
            password_changed_at=now,
        )
        repo.end_sessions_of(conn, user.id, now, keep=principal.session_id)
        _audit(conn, principal, now, "user.password_change", user.id, None, None)


def turn_on_totp(rt: Runtime, principal: Principal, secret: str, code: str) -> None:
    """Bind an authenticator app: ``secret`` was shown as a QR code, ``code`` proves the
    app has it."""
    now = rt.clock.now()
    step = sec.totp_step(secret, code, now.timestamp(), after=None)
    if step is None:
        raise InvalidInput("the six digits do not match: scan the code again", field="code")
    with rt.db.write() as conn:
        repo.save_user(conn, principal.id, totp_secret=secret, totp_last_step=step)
        _audit(conn, principal, now, "user.totp_on", principal.id, None, None)


def staff_list(rt: Runtime, *, by: Principal) -> list[StaffMember]:
    """The staff an administrator may see: everyone for an all-sites administrator, else
    those holding a role on the administrator's sites."""
    reach = by.sites_with(Permission.USER_MANAGE)
    with rt.db.read() as conn:
        found = repo.staff(conn, site_ids=reach)
        roles = repo.roles_of(conn, [u.id for u in found])
    return [StaffMember(u, tuple(roles[u.id])) for u in found]


def staff_member(rt: Runtime, user_id: int, *, by: Principal) -> StaffMember:
    with rt.db.read() as conn:
        return _visible(conn, user_id, by)


# --- helpers ------------------------------------------------------------------------------


def _roles(roles: Iterable[RoleAt]) -> set[RoleAt]:
    wanted = {(Role(role), site) for role, site in roles}
    if any(role not in STAFF_ROLES for role, _ in wanted):
        raise InvalidInput(
            "owners sign in with their phone; they hold no staff role", field="roles"
        )
    return wanted


def _may_grant(conn: Connection, by: Principal | None, roles: set[RoleAt]) -> None:
    if by is None:
        return
    reach = by.sites_with(Permission.USER_MANAGE)
    for role, site_id in roles:
        if site_id is not None:
            sites.site(conn, site_id)  # NotFound for a site that does not exist
        if reach is None:
            continue
        if site_id is None or site_id not in reach:
            where = "every site" if site_id is None else f"site {site_id}"
            raise Forbidden(f"you cannot grant {role.value} on {where}")


def _visible(conn: Connection, user_id: int, by: Principal) -> StaffMember:
    member = _member(conn, user_id)
    reach = by.sites_with(Permission.USER_MANAGE)
    if reach is not None and not any(site in reach for _, site in member.roles if site):
        raise NotFound(f"user {user_id} does not exist", user_id=user_id)
    return member


def _member(conn: Connection, user_id: int) -> StaffMember:
    user = repo.user(conn, user_id)
    if user is None or user.kind is not UserKind.STAFF:
        raise NotFound(f"user {user_id} does not exist", user_id=user_id)
    return StaffMember(user, tuple(repo.roles_of(conn, [user_id])[user_id]))


def _shown(roles: Iterable[RoleAt]) -> dict[str, Any]:
    return {"roles": ", ".join(sorted(f"{r.value}@{s or '*'}" for r, s in roles))}


def _audit(  # noqa: PLR0917  the audit entry's fields, in the log's order
    conn: Connection,
    by: Principal | None,
    now: Any,
    action: str,
    user_id: int,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str = "",
) -> None:
    audit.record(
        conn,
        at=now,
        actor=by.name if by else "cli",
        action=action,
        object_type="user",
        object_id=user_id,
        before=before,
        after=after,
        reason=reason,
    )


def set_owner_password(rt: Runtime, phone: str, password: str, *, by: str) -> User:
    """An owner's password for their number (their own choice in the portal, or the
    demo's), making their sign-in user if this is their first."""
    number = rules.mobile_number(phone)
    rules.check_password(password)
    now = rt.clock.now()
    with rt.db.write() as conn:
        found = repo.user_with_phone(conn, number, lock=True)
        if found is None:
            user_id = repo.insert_user(
                conn,
                {
                    "kind": UserKind.OWNER.value,
                    "phone": number,
                    "display_name": rules.masked(number),
                    "created_at": now,
                },
            )
        else:
            user_id = found.id
        repo.save_user(
            conn, user_id, password_hash=sec.hash_password(password), password_changed_at=now
        )
        audit.record(
            conn,
            at=now,
            actor=by,
            action="user.owner_password",
            object_type="user",
            object_id=user_id,
            after={"phone": rules.masked(number)},
        )
        owner = repo.user(conn, user_id)
    assert owner is not None  # noqa: S101  written above
    return owner
