"""Who may do what, where: roles scoped to sites, the permissions each role carries, and
the one decision every page and API route asks for (plain data, no I/O).

Invariants:
- a staff member holds roles per site (a role without a site holds on every site); they
  see the sites they hold any role on, and nothing of other sites — an object of a site
  they do not see is "not found", never "forbidden", so ids reveal nothing;
- an owner (业主/租户) sees only the accounts of the customers their phone number is
  registered to, and only through the routes open to owners;
- an API token carries scopes (permissions) on named sites, or on all sites; it never
  carries more than its creator could grant;
- the decision is made from the principal and the target alone: ``decide`` is pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    CASHIER = "cashier"
    TECHNICIAN = "technician"
    OWNER = "owner"


STAFF_ROLES: Final = (Role.ADMIN, Role.OPERATOR, Role.CASHIER, Role.TECHNICIAN)


class Permission(StrEnum):
    SITE_READ = "site.read"
    """See the site: places, customers, accounts, meters, readings, balances, alarms."""
    SITE_WRITE = "site.write"
    """Create and change places, customers and accounts; bulk import."""
    METER_WRITE = "meter.write"
    """Register, change and replace meters and gateways."""
    READING_WRITE = "reading.write"
    """Enter or push readings."""
    TARIFF_WRITE = "tariff.write"
    CONTROL_WRITE = "control.write"
    """Thresholds, protected flags, arrears policies, holidays, group cut/restore requests."""
    CONTROL_APPROVE = "control.approve"
    """The second approval of a group cut/restore (never one's own request)."""
    ALARM_WRITE = "alarm.write"
    COUNTER = "money.counter"
    """Take cash or POS payments, print receipts, reverse with a reason, shift reports."""
    TOPUP = "money.topup"
    """Start an online top-up for an account."""
    REFUND = "money.refund"
    """Refunds and move-out settlements."""
    RECONCILE = "money.reconcile"
    NOTIFY_WRITE = "notify.write"
    """Webhooks and message settings of a site."""
    AUDIT_READ = "audit.read"
    USER_MANAGE = "user.manage"
    """Users, roles, password resets, API tokens."""


_EVERYTHING: Final = frozenset(Permission)
ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    Role.ADMIN: _EVERYTHING,
    Role.OPERATOR: _EVERYTHING - {Permission.USER_MANAGE},
    Role.CASHIER: frozenset({Permission.SITE_READ, Permission.COUNTER, Permission.TOPUP}),
    Role.TECHNICIAN: frozenset(
        {
            Permission.SITE_READ,
            Permission.METER_WRITE,
            Permission.READING_WRITE,
            Permission.ALARM_WRITE,
        }
    ),
    Role.OWNER: frozenset(),  # owners reach their own accounts only, through owner routes
}


class PrincipalKind(StrEnum):
    STAFF = "staff"
    OWNER = "owner"
    TOKEN = "token"  # noqa: S105  a kind of caller, not a secret


@dataclass(frozen=True, slots=True)
class Grant:
    """Permissions on one site, or on every site (``site_id`` None)."""

    permissions: frozenset[Permission]
    site_id: int | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a signed-in staff member or owner, or an integrator's API token."""

    kind: PrincipalKind
    id: int
    name: str
    """What the audit log records as the actor: ``user:alice``, ``owner:138…``, ``token:erp``."""
    grants: tuple[Grant, ...] = ()
    customer_ids: frozenset[int] = frozenset()
    roles: tuple[tuple[Role, int | None], ...] = ()
    session_id: int | None = None
    csrf_token: str = field(default="", repr=False)
    language: str = "zh-CN"
    must_change_password: bool = False

    @property
    def is_owner(self) -> bool:
        return self.kind is PrincipalKind.OWNER

    def permissions_at(self, site_id: int) -> frozenset[Permission]:
        found: set[Permission] = set()
        for grant in self.grants:
            if grant.site_id is None or grant.site_id == site_id:
                found |= grant.permissions
        return frozenset(found)

    def sees_site(self, site_id: int) -> bool:
        return any(g.site_id is None or g.site_id == site_id for g in self.grants)

    def can(self, permission: Permission, site_id: int) -> bool:
        return permission in self.permissions_at(site_id)

    def sites_with(self, permission: Permission) -> frozenset[int] | None:
        """The sites where the principal holds ``permission``; None: every site."""
        sites: set[int] = set()
        for grant in self.grants:
            if permission in grant.permissions:
                if grant.site_id is None:
                    return None
                sites.add(grant.site_id)
        return frozenset(sites)

    def holds_anywhere(self, permission: Permission) -> bool:
        return any(permission in g.permissions for g in self.grants)


def grants_of(roles: Iterable[tuple[Role, int | None]]) -> tuple[Grant, ...]:
    return tuple(Grant(ROLE_PERMISSIONS[role], site) for role, site in roles if role in STAFF_ROLES)


@dataclass(frozen=True, slots=True)
class Target:
    """What a request touches: the site an object belongs to and, for an account, its
    customer (so an owner can be let in)."""

    site_id: int
    customer_id: int | None = None


class Decision(StrEnum):
    ALLOW = "allow"
    HIDE = "hide"
    """Answer "not found": the caller may not know the object exists."""
    FORBID = "forbid"
    """Answer "forbidden": the caller sees the object but may not do this to it."""


def decide(  # noqa: PLR0911  one answer per kind of caller and target, read top-down
    principal: Principal,
    permission: Permission | None,
    targets: Iterable[Target],
    *,
    owners: bool = False,
) -> Decision:
    """May ``principal`` do what needs ``permission`` to ``targets``?

    ``permission`` None: a route for owners only. ``owners``: owners may use the route on
    their own accounts. No targets: a route over a collection or the whole deployment —
    staff need the permission somewhere (lists are then filtered or need a site).
    """
    found = list(targets)
    if principal.is_owner:
        if not found:  # only a route made for owners, which filters by the owner itself
            return Decision.ALLOW if owners and permission is None else Decision.FORBID
        mine = owners and all(t.customer_id in principal.customer_ids for t in found)
        return Decision.ALLOW if mine else Decision.HIDE
    if permission is None:
        return Decision.FORBID if not found else Decision.HIDE
    if not found:
        return Decision.ALLOW if principal.holds_anywhere(permission) else Decision.FORBID
    if not all(principal.sees_site(t.site_id) for t in found):
        return Decision.HIDE
    if all(principal.can(permission, t.site_id) for t in found):
        return Decision.ALLOW
    return Decision.FORBID


class UserKind(StrEnum):
    STAFF = "staff"
    OWNER = "owner"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    kind: UserKind
    username: str | None
    phone: str | None
    display_name: str
    password_hash: str | None = field(repr=False)
    must_change_password: bool
    totp_secret: str | None = field(repr=False)
    totp_last_step: int | None
    failed_count: int
    locked_until: datetime | None
    disabled_at: datetime | None
    language: str
    created_at: datetime
    password_changed_at: datetime | None
    last_sign_in_at: datetime | None

    @property
    def actor(self) -> str:
        """The name the audit log records."""
        if self.kind is UserKind.STAFF:
            return f"user:{self.username}"
        return f"owner:{self.id}"

    @property
    def totp_on(self) -> bool:
        return bool(self.totp_secret)


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: int
    name: str
    prefix: str
    scopes: list[str]
    site_ids: list[int] | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def principal(self) -> Principal:
        scopes = frozenset(Permission(s) for s in self.scopes if s in set(Permission))
        sites: list[int | None] = list(self.site_ids) if self.site_ids is not None else [None]
        return Principal(
            kind=PrincipalKind.TOKEN,
            id=self.id,
            name=f"token:{self.name}",
            grants=tuple(Grant(scopes, site) for site in sites),
        )
