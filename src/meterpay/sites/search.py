"""Finding an account at the counter: by account number, unit code or name, or the
owner's phone (read-only)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select, true

from meterpay.db.schema import accounts, customers, ledger_accounts, units
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.runtime import Runtime


@dataclass(frozen=True, slots=True)
class AccountMatch:
    account_id: int
    number: str
    utility: Utility
    unit_code: str
    unit_name: str
    owner: str | None
    balance: Money
    supply_state: str


def find_accounts(
    rt: Runtime, text: str, *, site_ids: frozenset[int] | None = None, limit: int = 20
) -> list[AccountMatch]:
    """Open accounts whose number, unit code or name, or owner's phone contains ``text``;
    with ``site_ids``, only those sites' (the caller's)."""
    needle = text.strip()
    if not needle:
        return []
    like = f"%{needle.replace('%', '').replace('_', '')}%"
    query = (
        select(
            accounts.c.id,
            accounts.c.number,
            accounts.c.utility,
            units.c.code,
            units.c.name,
            customers.c.name,
            ledger_accounts.c.debits_posted,
            ledger_accounts.c.credits_posted,
            accounts.c.supply_state,
        )
        .join(units, units.c.id == accounts.c.unit_id)
        .join(ledger_accounts, ledger_accounts.c.id == accounts.c.wallet_id)
        .outerjoin(customers, customers.c.id == accounts.c.customer_id)
        .where(
            accounts.c.status == "open",
            or_(
                accounts.c.number.like(like),
                units.c.code.like(like),
                units.c.name.like(like),
                customers.c.phone.like(like),
            ),
        )
        .where(accounts.c.site_id.in_(sorted(site_ids)) if site_ids is not None else true())
        .order_by(units.c.code, accounts.c.utility)
        .limit(limit)
    )
    with rt.db.read() as conn:
        return [
            AccountMatch(
                account_id,
                number,
                Utility(utility),
                unit_code,
                unit_name,
                owner,
                Money(int(credits) - int(debits)),
                state,
            )
            for (
                account_id,
                number,
                utility,
                unit_code,
                unit_name,
                owner,
                debits,
                credits,
                state,
            ) in conn.execute(query)
        ]
