"""The console's navigation: each page once, in the order a property office works, shown
only to those whose role opens it (the page itself checks again)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from meterpay.auth.model import Permission, Principal


@dataclass(frozen=True, slots=True)
class NavItem:
    key: str
    """The page's label key (``page.<name>``) and its name for ``active``."""
    href: str
    needs: Permission


NAV: Final = (
    NavItem("dashboard", "/console", Permission.SITE_READ),
    NavItem("sites", "/console/sites", Permission.SITE_READ),
    NavItem("supply", "/console/supply", Permission.SITE_READ),
    NavItem("counter", "/console/counter", Permission.COUNTER),
    NavItem("tickets", "/console/tickets", Permission.SITE_READ),
    NavItem("tariffs", "/console/tariffs", Permission.SITE_READ),
    NavItem("control", "/console/control", Permission.CONTROL_WRITE),
    NavItem("import", "/console/import", Permission.SITE_WRITE),
    NavItem("jobs", "/console/jobs", Permission.SITE_READ),
    NavItem("users", "/console/users", Permission.USER_MANAGE),
    NavItem("audit", "/console/audit", Permission.AUDIT_READ),
)


def nav_for(principal: Principal | None) -> list[NavItem]:
    if principal is None or principal.is_owner:
        return []
    return [item for item in NAV if principal.holds_anywhere(item.needs)]
