"""Billing state kept beside the charges: tier cycles (阶梯) per account. Never commits."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, func, select

from meterpay.db.rows import insert_ignoring_conflicts
from meterpay.db.schema import accounts, tier_states
from meterpay.tariffs.rules import TierState


def lock_tier_states(conn: Connection, account_ids: set[int]) -> dict[int, TierState | None]:
    """The latest tier state of each account, under the account's row lock.

    Tiers accumulate per account over all its meters, so two batches pricing
    different meters of one account must take turns here.
    """
    ordered = sorted(account_ids)
    if conn.dialect.name == "postgresql":
        conn.execute(
            select(accounts.c.id)
            .where(accounts.c.id.in_(ordered))
            .order_by(accounts.c.id)
            .with_for_update(key_share=True)
        )
    latest = (
        select(tier_states.c.account_id, func.max(tier_states.c.cycle_start).label("start"))
        .where(tier_states.c.account_id.in_(ordered))
        .group_by(tier_states.c.account_id)
        .subquery()
    )
    query = select(
        tier_states.c.account_id, tier_states.c.cycle_start, tier_states.c.consumed
    ).join(
        latest,
        (latest.c.account_id == tier_states.c.account_id)
        & (latest.c.start == tier_states.c.cycle_start),
    )
    found: dict[int, TierState | None] = dict.fromkeys(ordered)
    for account_id, cycle_start, consumed in conn.execute(query):
        found[int(account_id)] = TierState(cycle_start, consumed)
    return found


def save_tier_states(conn: Connection, states: Mapping[int, TierState | None]) -> None:
    """Write each account's state for its cycle (insert or replace)."""
    rows = [
        {"account_id": aid, "cycle_start": s.cycle_start, "consumed": s.consumed}
        for aid, s in sorted(states.items())
        if s is not None
    ]
    if not rows:
        return
    stmt = insert_ignoring_conflicts(conn, tier_states)
    conn.execute(stmt, rows)
    for row in rows:
        conn.execute(
            tier_states.update()
            .where(
                tier_states.c.account_id == row["account_id"],
                tier_states.c.cycle_start == row["cycle_start"],
            )
            .values(consumed=row["consumed"])
        )
