"""Monthly partitions of the readings table on PostgreSQL.

Partitions are created ahead (at migrate and at start-up) and on demand for
any month a batch of readings touches, in a transaction of their own (call
``ensure`` before the caller's transaction touches readings) under an
advisory lock so concurrent processes never race on the DDL. Bounds are UTC months.
On SQLite there is nothing to do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text

_ADVISORY_KEY = 7_245_001  # arbitrary, fixed: "readings partition DDL"

Month = tuple[int, int]


def month_of(moment: datetime) -> Month:
    utc = moment.astimezone(UTC)
    return (utc.year, utc.month)


def next_month(month: Month) -> Month:
    year, mon = month
    return (year + 1, 1) if mon == 12 else (year, mon + 1)


def months_ahead(start: datetime, count: int) -> list[Month]:
    months = [month_of(start)]
    while len(months) < count + 1:
        months.append(next_month(months[-1]))
    return months


class PartitionKeeper:
    """Remembers which months exist so the hot path asks the catalog rarely."""

    def __init__(self) -> None:
        self._known: set[Month] = set()

    def ensure(self, conn: Connection, months: Iterable[Month]) -> None:
        """Create missing months; call before ``conn``'s transaction touches readings."""
        self.ensure_with(conn.engine, months)

    def ensure_with(self, engine: Engine, months: Iterable[Month]) -> None:
        if engine.dialect.name != "postgresql":
            return
        missing = sorted(set(months) - self._known)
        if not missing:
            return
        # DDL in its own short transaction: committed whatever the caller's
        # transaction does, so the cache never believes in a rolled-back table.
        # A caller that already wrote readings in this transaction would block the
        # DDL forever; the lock timeout turns that programming error into an error.
        with engine.begin() as ddl:
            ddl.execute(text("SET LOCAL lock_timeout = '15s'"))
            ddl.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})
            for month in missing:
                ddl.execute(text(_ddl(month)))
        self._known.update(missing)


def partition_name(month: Month) -> str:
    return f"readings_{month[0]:04d}{month[1]:02d}"


def _ddl(month: Month) -> str:
    upper = next_month(month)
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(month)} PARTITION OF readings"
        f" FOR VALUES FROM ('{month[0]:04d}-{month[1]:02d}-01 00:00:00+00')"
        f" TO ('{upper[0]:04d}-{upper[1]:02d}-01 00:00:00+00')"
    )
