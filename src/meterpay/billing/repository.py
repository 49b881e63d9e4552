"""Billing state kept beside the charges: each account's tier position (阶梯). Never commits.

Tiers accumulate per account over all its meters. Ingest reads an account's position
under the account's row lock (``FOR NO KEY UPDATE``, after the ledger rows: the
product's lock order) and writes the new one back before it commits, so two batches
billing meters of one account take turns. The write keeps a compare-and-set on the
position it read, as a guard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Date, Integer, bindparam, column, func, literal, update
from sqlalchemy.dialects import postgresql

from meterpay.db.bulk import is_postgres
from meterpay.db.schema import accounts
from meterpay.kernel.errors import Conflict
from meterpay.tariffs.usage import TierState


class TierStateMoved(Conflict):
    """Another transaction moved an account's tier position since this one read it.

    Ingest reads the position under the account's row lock, so this only happens to
    a writer that skipped the lock; its transaction rolls back and nothing is lost.
    """

    code = "tier_state_moved"


def save_tier_states(
    conn: Connection,
    before: Mapping[int, TierState | None],
    after: Mapping[int, TierState | None],
) -> None:
    """Move each account's tier position from ``before`` (as read under the account's
    row lock) to ``after``, all or nothing; raise ``TierStateMoved`` if one moved
    meanwhile.

    No lock is taken here: the caller holds the rows, and a plain UPDATE takes the
    same ``FOR NO KEY UPDATE`` it holds. (Asking for ``FOR UPDATE`` now would
    strengthen it, and wait for any other transaction's foreign-key check on the
    account, e.g. a top-up's transfer, which may itself be waiting for our wallet.)
    """
    rows = []
    for account_id, state in sorted(after.items()):
        was = before.get(account_id)
        if state is None or state == was:
            continue
        rows.append(
            (
                account_id,
                state.cycle_start,
                state.consumed,
                was.cycle_start if was else None,
                was.consumed if was else Decimal(0),
            )
        )
    if not rows:
        return
    changed = (_update_at_once if is_postgres(conn) else _update_one_by_one)(conn, rows)
    if changed != len(rows):
        raise TierStateMoved(
            f"{len(rows) - changed} of {len(rows)} accounts' tier positions moved meanwhile"
        )


_Row = tuple[int, date, Decimal, date | None, Decimal]


def _update_at_once(conn: Connection, rows: Sequence[_Row]) -> int:
    """One UPDATE ... FROM unnest(arrays) for the whole batch (PostgreSQL)."""
    ids, cycles, consumed, was_cycles, was_consumed = (list(c) for c in zip(*rows, strict=True))
    quantity: Any = accounts.c.tier_consumed.type
    v = (
        func.unnest(
            literal(ids, type_=postgresql.ARRAY(Integer)),
            literal(cycles, type_=postgresql.ARRAY(Date)),
            literal(consumed, type_=postgresql.ARRAY(quantity)),
            literal(was_cycles, type_=postgresql.ARRAY(Date)),
            literal(was_consumed, type_=postgresql.ARRAY(quantity)),
        )
        .table_valued(
            column("id", Integer),
            column("cycle_start", Date),
            column("consumed", quantity),
            column("was_cycle_start", Date),
            column("was_consumed", quantity),
        )
        .render_derived(name="v")
    )
    stmt = (
        update(accounts)
        .where(
            accounts.c.id == v.c.id,
            accounts.c.tier_cycle_start.is_not_distinct_from(v.c.was_cycle_start),
            accounts.c.tier_consumed == v.c.was_consumed,
        )
        .values(tier_cycle_start=v.c.cycle_start, tier_consumed=v.c.consumed)
    )
    return int(conn.execute(stmt).rowcount)


def _update_one_by_one(conn: Connection, rows: Sequence[_Row]) -> int:
    """Row by row, counted each (SQLite: its single writer serializes the batch)."""
    stmt = (
        update(accounts)
        .where(
            accounts.c.id == bindparam("k"),
            accounts.c.tier_cycle_start.is_not_distinct_from(bindparam("was_cycle_start")),
            accounts.c.tier_consumed == bindparam("was_consumed"),
        )
        .values(tier_cycle_start=bindparam("cycle_start"), tier_consumed=bindparam("consumed"))
    )
    names = ("k", "cycle_start", "consumed", "was_cycle_start", "was_consumed")
    return sum(conn.execute(stmt, dict(zip(names, row, strict=True))).rowcount for row in rows)
