"""Queries for meters and readings. Never commits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, tuple_, update

from meterpay.db.rows import fetch, insert_ignoring_conflicts, to_model
from meterpay.db.schema import meters, readings
from meterpay.metering.meters import Meter


def meter(conn: Connection, meter_id: int, *, lock: bool = False) -> Meter:
    return fetch(conn, meters, Meter, meter_id, lock=lock)


def lock_meters(conn: Connection, meter_ids: Iterable[int]) -> dict[int, Meter]:
    """Load and row-lock meters in id order; readings of one meter serialize."""
    query = select(meters).where(meters.c.id.in_(sorted(set(meter_ids)))).order_by(meters.c.id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return {int(r["id"]): to_model(Meter, r) for r in conn.execute(query).mappings()}


def existing_reading_times(
    conn: Connection, pairs: Sequence[tuple[int, datetime]]
) -> set[tuple[int, datetime]]:
    if not pairs:
        return set()
    times = [t for _, t in pairs]
    query = select(readings.c.meter_id, readings.c.read_at).where(
        readings.c.read_at >= min(times),
        readings.c.read_at <= max(times),
        tuple_(readings.c.meter_id, readings.c.read_at).in_(list(pairs)),
    )
    return {(int(m), t) for m, t in conn.execute(query)}


def insert_readings(
    conn: Connection, rows: Sequence[dict[str, Any]]
) -> dict[tuple[int, datetime], int]:
    """Insert readings; return the id of each new one by (meter, time)."""
    if not rows:
        return {}
    stmt = insert_ignoring_conflicts(conn, readings).returning(
        readings.c.id, readings.c.meter_id, readings.c.read_at
    )
    return {(int(m), t): int(i) for i, m, t in conn.execute(stmt, list(rows))}


def advance_cursors(conn: Connection, cursors: dict[int, tuple[datetime, Any]]) -> None:
    if not cursors:
        return
    stmt = (
        update(meters)
        .where(meters.c.id == bindparam("mid"))
        .values(last_read_at=bindparam("at"), last_total=bindparam("total"))
    )
    conn.execute(
        stmt,
        [{"mid": mid, "at": at, "total": total} for mid, (at, total) in sorted(cursors.items())],
    )
