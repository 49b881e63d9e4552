"""Billing state kept beside the charges: tier cycles (阶梯) per account. Never commits."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, func, select, text

from meterpay.db.bulk import upsert_many
from meterpay.db.schema import tier_states
from meterpay.tariffs.rules import TierState


def lock_tier_states(conn: Connection, account_ids: set[int]) -> dict[int, TierState | None]:
    """The latest tier state of each account, under the account's row lock.

    Tiers accumulate per account over all its meters, so two batches pricing
    different meters of one account must take turns here.
    """
    ordered = sorted(account_ids)
    if conn.dialect.name == "postgresql":
        return _lock_and_read_postgres(conn, ordered)
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


_LOCK = text("SELECT id FROM accounts WHERE id = ANY(:ids) ORDER BY id FOR NO KEY UPDATE")
_LATEST = text(
    "SELECT DISTINCT ON (account_id) account_id, cycle_start, consumed FROM tier_states"
    " WHERE account_id = ANY(:ids) ORDER BY account_id, cycle_start DESC"
).columns(tier_states.c.account_id, tier_states.c.cycle_start, tier_states.c.consumed)


def _lock_and_read_postgres(conn: Connection, ordered: list[int]) -> dict[int, TierState | None]:
    """Lock (id order), then read in a second statement: only a statement that starts
    after the locks are held sees what the previous holder committed."""
    conn.execute(_LOCK, {"ids": ordered})
    found: dict[int, TierState | None] = dict.fromkeys(ordered)
    for account_id, cycle_start, consumed in conn.execute(_LATEST, {"ids": ordered}):
        found[int(account_id)] = TierState(cycle_start, consumed)
    return found


def save_tier_states(conn: Connection, states: Mapping[int, TierState | None]) -> None:
    """Write each account's state for its cycle (insert or replace), in one statement."""
    rows = [
        {"account_id": aid, "cycle_start": s.cycle_start, "consumed": s.consumed}
        for aid, s in sorted(states.items())
        if s is not None
    ]
    upsert_many(conn, tier_states, ("account_id", "cycle_start"), ("consumed",), rows)
