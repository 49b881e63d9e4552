"""The accounts that need a person's attention: a site's open accounts that are not in
normal supply, most urgent state first and longest in it first, each with what the
scheduler would decide now for it (the planned cut-off, why it is not now, or that a
person must decide).

Read-only: repository-style queries (a connection in, plain dataclasses out) that the
supply overview (``control.overview``) runs in its one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, case, select

from meterpay.control import effects
from meterpay.control import repository as repo
from meterpay.control.model import SupplyState
from meterpay.control.rules import CutoffReason, CutoffVerdict, decide_cutoff
from meterpay.db.schema import accounts, customers, units
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger.repository import wallet_balances

# Most urgent first: what a person should look at before anything else.
ATTENTION_ORDER: Final = (
    SupplyState.CUT_OFF,
    SupplyState.IN_ARREARS,
    SupplyState.RESTORE_PENDING,
    SupplyState.VERY_LOW,
    SupplyState.LOW,
)
MAX_PAGE: Final = 500


@dataclass(frozen=True, slots=True)
class AttentionRow:
    """An account that is not in normal supply, with what will happen to it."""

    account_id: int
    number: str
    utility: Utility
    unit_code: str
    unit_name: str
    owner_name: str | None
    balance: Money
    state: SupplyState
    since: datetime | None
    protected_reason: str | None
    planned_cutoff_at: datetime | None = None
    """In arrears: when the cut-off will happen (the scheduler's current decision)."""
    cutoff_reason: CutoffReason | None = None
    """In arrears: why it is not now (notice period, friendly hours, protected, ...)."""
    needs_person: bool = False
    """In arrears and never cut automatically (protected, water): a person decides."""


def attention_rows(
    conn: Connection,
    site_id: int,
    states: Sequence[SupplyState],
    *,
    now: datetime,
    offset: int,
    limit: int,
) -> list[AttentionRow]:
    """Open accounts in ``states``, most urgent state first, then longest in it."""
    urgency = case(
        {s.value: rank for rank, s in enumerate(ATTENTION_ORDER)},
        value=accounts.c.supply_state,
        else_=len(ATTENTION_ORDER),
    )
    query = (
        select(
            accounts.c.id,
            accounts.c.number,
            accounts.c.utility,
            accounts.c.wallet_id,
            accounts.c.supply_state,
            accounts.c.supply_changed_at,
            accounts.c.protected_reason,
            units.c.code.label("unit_code"),
            units.c.name.label("unit_name"),
            customers.c.name.label("owner_name"),
        )
        .join(units, units.c.id == accounts.c.unit_id)
        .outerjoin(customers, customers.c.id == accounts.c.customer_id)
        .where(
            accounts.c.site_id == site_id,
            accounts.c.status == "open",
            accounts.c.supply_state.in_([s.value for s in states]),
        )
        .order_by(urgency, accounts.c.supply_changed_at, accounts.c.id)
        .offset(max(0, offset))
        .limit(min(max(1, limit), MAX_PAGE))
    )
    rows = conn.execute(query).mappings().all()
    balances = wallet_balances(conn, [r["wallet_id"] for r in rows])
    plans = _cutoff_plans(
        conn, [r["id"] for r in rows if r["supply_state"] == SupplyState.IN_ARREARS], now
    )
    return [_attention(r, Money(balances.get(r["wallet_id"], 0)), plans.get(r["id"])) for r in rows]


def _attention(row: Any, balance: Money, plan: _Plan | None) -> AttentionRow:
    return AttentionRow(
        account_id=row["id"],
        number=row["number"],
        utility=Utility(row["utility"]),
        unit_code=row["unit_code"],
        unit_name=row["unit_name"],
        owner_name=row["owner_name"],
        balance=balance,
        state=SupplyState(row["supply_state"]),
        since=row["supply_changed_at"],
        protected_reason=row["protected_reason"],
        planned_cutoff_at=plan.at if plan else None,
        cutoff_reason=plan.reason if plan else None,
        needs_person=plan.needs_person if plan else False,
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    at: datetime | None
    reason: CutoffReason
    needs_person: bool


def _cutoff_plans(conn: Connection, account_ids: list[int], now: datetime) -> dict[int, _Plan]:
    """What the scheduler would decide now for each account in arrears (as
    ``control.service.supply_view`` shows it for one account)."""
    supplies = repo.account_supplies(conn, account_ids)
    if not supplies:
        return {}
    policies = repo.site_policies(conn, {a.site_id for a in supplies.values()})
    day_type = repo.day_type_source(conn)
    plans: dict[int, _Plan] = {}
    for account in supplies.values():
        if account.notice_given_at is None:
            continue
        site = policies[(account.site_id, account.utility)]
        decision = decide_cutoff(
            now,
            notice_given_at=account.notice_given_at,
            final_notice_given_at=account.final_notice_given_at,
            thresholds=effects.thresholds_for(account, site),
            policy=site.policy,
            day_type=day_type,
            protection=account.protection,
        )
        never = decision.verdict is CutoffVerdict.NEVER_AUTOMATIC
        plans[account.id] = _Plan(decision.at, decision.reason, never)
    return plans
