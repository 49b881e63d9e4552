"""Who am I, staff users and their roles, integrators' API tokens, and the audit log —
under /api/v1. Parse, call one service, answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from meterpay.audit import service as audit
from meterpay.audit.repository import AuditEntry
from meterpay.auth import tokens, users
from meterpay.auth.model import Permission as P
from meterpay.auth.model import Role
from meterpay.web.api import schemas as s
from meterpay.web.api.deps import Rt
from meterpay.web.guard import Caller, allow

router = APIRouter(tags=["users and audit"])
MANAGE = allow(P.USER_MANAGE, own_filter=True)


class MeOut(s.Out):
    kind: str
    name: str
    roles: list[dict[str, Any]]
    customer_ids: list[int]
    must_change_password: bool


@router.get("/me", response_model=MeOut)
def me(principal: Caller) -> Any:
    """The caller: a staff member with roles per site, an owner, or a token."""
    return MeOut(
        kind=principal.kind.value,
        name=principal.name,
        roles=[{"role": r.value, "site_id": site} for r, site in principal.roles],
        customer_ids=sorted(principal.customer_ids),
        must_change_password=principal.must_change_password,
    )


class RoleIn(s.In):
    role: Role
    site_id: int | None = Field(default=None, description="empty: every site")


class UserIn(s.In):
    username: Annotated[str, Field(min_length=3, max_length=40)]
    display_name: Annotated[str, Field(max_length=100)] = ""
    password: Annotated[str, Field(min_length=10, max_length=256)]
    roles: list[RoleIn] = Field(min_length=1, max_length=50)


class RolesIn(s.In):
    roles: list[RoleIn] = Field(max_length=50)
    reason: Annotated[str, Field(max_length=500)] = ""


class ReasonIn(s.In):
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class UserOut(s.Out):
    id: int
    username: str
    display_name: str
    roles: list[dict[str, Any]]
    totp: bool
    locked_until: datetime | None
    disabled: bool
    must_change_password: bool
    last_sign_in_at: datetime | None


class PasswordOut(s.Out):
    temporary_password: str = Field(description="shown once; to be changed at sign-in")


def _user(member: users.StaffMember) -> UserOut:
    u = member.user
    return UserOut(
        id=u.id,
        username=u.username or "",
        display_name=u.display_name,
        roles=[{"role": r.value, "site_id": site} for r, site in member.roles],
        totp=u.totp_on,
        locked_until=u.locked_until,
        disabled=u.disabled_at is not None,
        must_change_password=u.must_change_password,
        last_sign_in_at=u.last_sign_in_at,
    )


def _roles(items: list[RoleIn]) -> list[tuple[Role, int | None]]:
    return [(item.role, item.site_id) for item in items]


@router.get("/users", dependencies=[MANAGE], response_model=list[UserOut])
def list_users(rt: Rt, principal: Caller) -> Any:
    return [_user(m) for m in users.staff_list(rt, by=principal)]


@router.post("/users", dependencies=[MANAGE], status_code=201, response_model=UserOut)
def create_user(rt: Rt, principal: Caller, body: UserIn) -> Any:
    """A staff member; they choose their own password at the first sign-in."""
    member = users.create_staff(
        rt,
        username=body.username,
        display_name=body.display_name,
        password=body.password,
        roles=_roles(body.roles),
        by=principal,
    )
    return _user(member)


@router.get("/users/{user_id}", dependencies=[MANAGE], response_model=UserOut)
def get_user(rt: Rt, principal: Caller, user_id: int) -> Any:
    return _user(users.staff_member(rt, user_id, by=principal))


@router.put("/users/{user_id}/roles", dependencies=[MANAGE], response_model=UserOut)
def set_roles(rt: Rt, principal: Caller, user_id: int, body: RolesIn) -> Any:
    return _user(users.set_roles(rt, user_id, _roles(body.roles), by=principal, reason=body.reason))


@router.post("/users/{user_id}/password-reset", dependencies=[MANAGE], response_model=PasswordOut)
def reset_password(rt: Rt, principal: Caller, user_id: int, body: ReasonIn) -> Any:
    """A temporary password (shown once); the user's sessions end and TOTP is cleared."""
    word = users.reset_password(rt, user_id, by=principal, reason=body.reason)
    return PasswordOut(temporary_password=word)


@router.post("/users/{user_id}/unlock", dependencies=[MANAGE], response_model=UserOut)
def unlock(rt: Rt, principal: Caller, user_id: int) -> Any:
    return _user(users.unlock(rt, user_id, by=principal))


@router.post("/users/{user_id}/disable", dependencies=[MANAGE], response_model=UserOut)
def disable(rt: Rt, principal: Caller, user_id: int, body: ReasonIn) -> Any:
    return _user(users.set_disabled(rt, user_id, True, by=principal, reason=body.reason))


@router.post("/users/{user_id}/enable", dependencies=[MANAGE], response_model=UserOut)
def enable(rt: Rt, principal: Caller, user_id: int, body: ReasonIn) -> Any:
    return _user(users.set_disabled(rt, user_id, False, by=principal, reason=body.reason))


# --- API tokens -------------------------------------------------------------------------


class TokenIn(s.In):
    name: Annotated[str, Field(min_length=1, max_length=80)]
    scopes: list[P] = Field(min_length=1)
    site_ids: list[int] | None = Field(default=None, description="empty: every site")
    expires_at: datetime | None = None


class TokenOut(s.Out):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    site_ids: list[int] | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


class TokenCreatedOut(TokenOut):
    token: str = Field(description="the secret, shown once: Authorization: Bearer <token>")


def _token(t: Any) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "prefix": t.prefix,
        "scopes": t.scopes,
        "site_ids": t.site_ids,
        "created_by": t.created_by,
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "last_used_at": t.last_used_at,
        "revoked": t.revoked_at is not None,
    }


@router.get(
    "/tokens",
    dependencies=[allow(P.USER_MANAGE, everywhere=True)],
    response_model=list[TokenOut],
)
def list_tokens(rt: Rt) -> Any:
    return [TokenOut(**_token(t)) for t in tokens.list_tokens(rt)]


@router.post("/tokens", dependencies=[MANAGE], status_code=201, response_model=TokenCreatedOut)
def create_token(rt: Rt, principal: Caller, body: TokenIn) -> Any:
    """A token for an integrator, never reaching further than its maker."""
    made, secret = tokens.create_token(
        rt,
        name=body.name,
        scopes=body.scopes,
        site_ids=body.site_ids,
        by=principal,
        expires_at=body.expires_at,
    )
    return TokenCreatedOut(**_token(made), token=secret)


@router.post("/tokens/{token_id}/revoke", dependencies=[MANAGE], response_model=TokenOut)
def revoke_token(rt: Rt, principal: Caller, token_id: int, body: ReasonIn) -> Any:
    return TokenOut(**_token(tokens.revoke_token(rt, token_id, by=principal, reason=body.reason)))


# --- the audit log ------------------------------------------------------------------------


class AuditOut(s.Out):
    id: int
    at: datetime
    actor: str
    source_ip: str | None
    action: str
    object_type: str
    object_id: str
    site_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str


class AuditPage(s.Out):
    items: list[AuditOut]
    next_before_id: int | None


def _entry(e: AuditEntry) -> AuditOut:
    return AuditOut(
        id=e.id,
        at=e.at,
        actor=e.actor,
        source_ip=e.source_ip,
        action=e.action,
        object_type=e.object_type,
        object_id=e.object_id,
        site_id=e.site_id,
        before=e.before,
        after=e.after,
        reason=e.reason,
    )


@router.get(
    "/audit",
    dependencies=[allow(P.AUDIT_READ, own_filter=True)],
    response_model=AuditPage,
)
def search_audit(
    rt: Rt,
    principal: Caller,
    *,
    actor: Annotated[str | None, Query(max_length=120)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    object_type: Annotated[str | None, Query(max_length=32)] = None,
    object_id: Annotated[str | None, Query(max_length=64)] = None,
    site_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    before_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """Who changed what, newest first: money, meters, tariffs, thresholds, protection,
    users and roles, manual commands, sign-ins."""
    query = audit.AuditQuery(actor, action, object_type, object_id, site_id, since, until, q)
    visible = principal.sites_with(P.AUDIT_READ)
    found = audit.search(rt, query, visible_sites=visible, before_id=before_id, limit=limit)
    last = found[-1].id if len(found) == limit else None
    return AuditPage(items=[_entry(e) for e in found], next_before_id=last)
