"""The demo's people: one staff login per role and one owner, printed when the demo
starts and listed in the README. Made once; a demo database that has them keeps them.

These passwords are public (they are in the README): a demo is never a deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from meterpay.auth import repository as auth_repo
from meterpay.auth import users
from meterpay.auth.model import Role
from meterpay.runtime import Runtime
from meterpay.sites import service as sites

OWNER_UNIT: Final = "1-0301"
OWNER_PHONE: Final = "13800138000"


@dataclass(frozen=True, slots=True)
class Login:
    who: str
    role: Role
    password: str
    every_site: bool = False


STAFF: Final = (
    Login("admin", Role.ADMIN, "demo-guanli-2026", every_site=True),
    Login("operator", Role.OPERATOR, "demo-caozuo-2026"),
    Login("cashier", Role.CASHIER, "demo-shoufei-2026"),
    Login("technician", Role.TECHNICIAN, "demo-weixiu-2026"),
)
OWNER: Final = Login(OWNER_PHONE, Role.OWNER, "demo-yezhu-2026")


def seed_people(rt: Runtime, site_id: int) -> None:
    """The staff logins and the owner of unit ``OWNER_UNIT`` (phone ``OWNER_PHONE``)."""
    for login in STAFF:
        with rt.db.read() as conn:
            if auth_repo.user_named(conn, login.who) is not None:
                continue
        users.create_staff(
            rt,
            username=login.who,
            display_name=login.who,
            password=login.password,
            roles=[(login.role, None if login.every_site else site_id)],
            by=None,
            must_change_password=False,
        )
    unit = next(
        u
        for u in sites.page(rt, "units", after_id=None, limit=1000, site_id=site_id)
        if u.code == OWNER_UNIT
    )
    accounts = sites.page(rt, "accounts", after_id=None, limit=10, unit_id=unit.id)
    for customer_id in {a.customer_id for a in accounts if a.customer_id is not None}:
        sites.update_place(rt, "customers", customer_id, actor="demo", phone=OWNER_PHONE)
    with rt.db.read() as conn:
        has_owner = auth_repo.user_with_phone(conn, OWNER_PHONE) is not None
    if not has_owner:
        users.set_owner_password(rt, OWNER_PHONE, OWNER.password, by="demo")


def logins_text(base_url: str) -> str:
    """The block the demo prints at start."""
    lines = [f"demo logins — console {base_url}/sign-in, owners' portal {base_url}/portal"]
    for login in STAFF:
        where = "every site" if login.every_site else "site DEMO"
        lines.append(f"  {login.role.value:<11} {login.who:<11} {login.password:<22} ({where})")
    lines.append(
        f"  {'owner':<11} {OWNER.who:<11} {OWNER.password:<22} (or an SMS code, shown on screen)"
    )
    return "\n".join(lines)
