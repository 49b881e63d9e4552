"""Raising and reading alarms. Never commits."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from meterpay.alarms.model import SEVERITY, Alarm, AlarmKind, AlarmState
from meterpay.db.rows import to_model
from meterpay.db.schema import alarms


def raise_in(
    conn: Connection,
    *,
    kind: AlarmKind,
    object_type: str,
    object_id: object,
    dedupe_key: str,
    message: str,
    now: datetime,
    site_id: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Open an alarm inside the caller's transaction, or count another occurrence of
    the one open under ``dedupe_key`` (reopening it if it was closed)."""
    values = {
        "site_id": site_id,
        "kind": kind.value,
        "severity": SEVERITY[kind].value,
        "object_type": object_type,
        "object_id": str(object_id),
        "dedupe_key": dedupe_key[:200],
        "message": message[:500],
        "details": dict(details) if details is not None else None,
        "state": AlarmState.OPEN.value,
        "opened_at": now,
        "last_seen_at": now,
        "occurrences": 1,
    }
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(alarms).values(**values)
    reopened = {
        "last_seen_at": stmt.excluded.last_seen_at,
        "occurrences": alarms.c.occurrences + 1,
        "details": stmt.excluded.details,
        "state": AlarmState.OPEN.value,
        "closed_at": None,
        "closed_by": None,
    }
    conn.execute(stmt.on_conflict_do_update(index_elements=["dedupe_key"], set_=reopened))


def get(conn: Connection, alarm_id: int, *, lock: bool = False) -> Alarm | None:
    query = select(alarms).where(alarms.c.id == alarm_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return to_model(Alarm, row) if row else None


def find(
    conn: Connection,
    *,
    state: AlarmState | None = None,
    site_id: int | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    kind: AlarmKind | None = None,
    limit: int = 100,
) -> list[Alarm]:
    query = select(alarms).order_by(alarms.c.last_seen_at.desc(), alarms.c.id.desc()).limit(limit)
    if state is not None:
        query = query.where(alarms.c.state == state.value)
    if site_id is not None:
        query = query.where(alarms.c.site_id == site_id)
    if object_type is not None:
        query = query.where(alarms.c.object_type == object_type)
    if object_id is not None:
        query = query.where(alarms.c.object_id == object_id)
    if kind is not None:
        query = query.where(alarms.c.kind == kind.value)
    return [to_model(Alarm, row) for row in conn.execute(query).mappings()]


def move(conn: Connection, alarm_id: int, to: AlarmState, *, by: str, now: datetime) -> None:
    values: dict[str, Any] = {"state": to.value}
    if to is AlarmState.CLOSED:
        values.update(closed_at=now, closed_by=by)
    conn.execute(update(alarms).where(alarms.c.id == alarm_id).values(**values))
