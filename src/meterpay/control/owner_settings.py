"""An owner's own settings for one account, from the portal: the two low-balance
warning levels and how to reach them (e-mail, the language of their messages).

Invariants:
- an owner changes only the warning levels: the credit limit (透支额度), the cut-off
  and restore points and the notice periods stay whatever the site or an operator set
  (they decide when supply is cut, which is the property company's call, not the
  owner's);
- the warnings are checked against the account's other lines as a whole (a warning
  below the cut-off point is refused, naming the field);
- the phone number is who the owner is (they sign in with it): it is not changed here;
- one transaction, audited with before and after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Final

from meterpay.audit import repository as audit
from meterpay.control import repository as repo
from meterpay.control.model import (
    ThresholdOverrides,
    Thresholds,
    WarningLevel,
    effective_thresholds,
)
from meterpay.db.rows import update_row
from meterpay.db.schema import customers
from meterpay.kernel.errors import InvalidInput
from meterpay.notify import repository as notify
from meterpay.notify.model import Language
from meterpay.runtime import Runtime

_EMAIL: Final = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class OwnerSettings:
    """What the settings page shows and saves. A warning ``None``: the site's level."""

    warning1: WarningLevel | None
    warning2: WarningLevel | None
    email: str | None
    language: Language
    phone: str | None = None
    effective: Thresholds | None = None
    """The account's lines as they apply (site values merged with the account's)."""


def owner_settings(rt: Runtime, account_id: int) -> OwnerSettings:
    with rt.db.read() as conn:
        account = repo.account_supply(conn, account_id)
        site = repo.site_policy(conn, account.site_id, account.utility)
        own = account.overrides or ThresholdOverrides()
        contact = notify.customer(conn, account.customer_id) if account.customer_id else None
        return OwnerSettings(
            own.warning1,
            own.warning2,
            contact["email"] if contact else None,
            Language.of(contact["language"] if contact else None),
            contact["phone"] if contact else None,
            effective_thresholds(site.thresholds, account.overrides),
        )


def save_owner_settings(
    rt: Runtime, account_id: int, wanted: OwnerSettings, *, by: str
) -> OwnerSettings:
    """Save the owner's warnings and contact details; nothing else moves."""
    email = _email(wanted.email)
    now = rt.clock.now()
    with rt.db.write() as conn:
        account = repo.account_supply(conn, account_id, lock=True)
        site = repo.site_policy(conn, account.site_id, account.utility)
        before = account.overrides or ThresholdOverrides()
        after = replace(before, warning1=wanted.warning1, warning2=wanted.warning2)
        effective = effective_thresholds(site.thresholds, after)  # refuses contradictions
        repo.save_overrides(conn, account_id, after)
        old_contact = notify.customer(conn, account.customer_id) if account.customer_id else None
        if account.customer_id is not None:
            update_row(conn, customers, account.customer_id, {"email": email})
            notify.set_language(conn, account.customer_id, wanted.language.value)
        audit.record(
            conn,
            at=now,
            actor=by,
            action="control.owner_settings",
            object_type="account",
            object_id=account_id,
            site_id=account.site_id,
            before=_fields(before, old_contact),
            after=_fields(after, {"email": email, "language": wanted.language.value}),
            reason="the owner's own settings (portal)",
        )
        return replace(wanted, email=email, effective=effective)


def _email(value: str | None) -> str | None:
    text = (value or "").strip()
    if not text:
        return None
    if len(text) > 254 or not _EMAIL.match(text):
        raise InvalidInput(f"{text!r} is not an e-mail address", field="email")
    return text


def _level(level: WarningLevel | None) -> str | None:
    if level is None:
        return None
    return f"{level.amount} 元" if level.amount is not None else f"{level.days} days"


def _fields(o: ThresholdOverrides, contact: Any) -> dict[str, Any]:
    return {
        "warning1": _level(o.warning1),
        "warning2": _level(o.warning2),
        "email": contact["email"] if contact else None,
        "language": contact["language"] if contact else None,
    }
