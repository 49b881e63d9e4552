"""Set-based writes for the hot ingest path.

On PostgreSQL, rows go in with ``COPY`` and many-row updates are one
``UPDATE ... FROM unnest(arrays)`` statement, both inside the caller's
transaction (same connection). Values pass through each column's own type
(scaled decimals, UTC times), so what lands is exactly what an ORM insert
would write. On SQLite the same calls fall back to executemany.

``copy_rows`` has no ON CONFLICT: it is for rows the caller knows are new
(under the row locks it holds); a duplicate aborts the whole transaction,
which is the safe failure.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Boolean, Connection, Date, Integer, Table, bindparam, insert, update
from sqlalchemy.dialects import sqlite

from meterpay.db.types import ScaledDecimal, UTCDateTime


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _dbapi(conn: Connection) -> Any:
    return conn.connection.driver_connection


def stored_values(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> list[tuple[Any, ...]]:
    """Rows as the database stores them (TypeDecorators and JSON applied)."""
    dialect = conn.dialect
    convert = [
        (i, p)
        for i, name in enumerate(columns)
        if (p := _processor(table.c[name].type)) is not None
    ]
    pick = itemgetter(*columns)
    result: list[tuple[Any, ...]] = []
    for row in rows:
        values = list(pick(row)) if len(columns) > 1 else [row[columns[0]]]
        for i, process in convert:
            values[i] = process(values[i], dialect)
        result.append(tuple(values))
    return result


Processor = Callable[[Any, Any], Any]


def _processor(column_type: Any) -> Processor | None:
    if isinstance(column_type, JSON):
        return _json
    process: Processor | None = getattr(column_type, "process_bind_param", None)
    return process


def _json(value: Any, _dialect: Any) -> str | None:
    return None if value is None else json.dumps(value)


def copy_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    """Append new rows: COPY on PostgreSQL, executemany INSERT elsewhere."""
    if not rows:
        return
    if not is_postgres(conn):
        conn.execute(insert(table), [{c: r[c] for c in columns} for r in rows])
        return
    values = stored_values(conn, table, columns, rows)
    with (
        _dbapi(conn).cursor() as cursor,
        cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in values:
            copy.write_row(row)


def allocate_ids(conn: Connection, sequence: str, count: int) -> list[int]:
    """Reserve ``count`` ids from a PostgreSQL sequence in one round trip."""
    with _dbapi(conn).cursor() as cursor:
        cursor.execute("SELECT nextval(%s) FROM generate_series(1, %s)", (sequence, count))
        return [int(row[0]) for row in cursor.fetchall()]


def update_many(
    conn: Connection,
    table: Table,
    key: str,
    columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    *,
    increment: bool = False,
    guard: Sequence[str] = (),
) -> int:
    """Set (or with ``increment`` add to) ``columns`` of the rows whose ``key`` matches;
    return how many rows changed.

    With ``guard``, a row changes only if each guarded column still holds the
    value the caller saw, given as ``was_<column>`` (compare-and-set; on
    PostgreSQL a row another transaction changed meanwhile is compared as it
    is after that commit). Rows are locked in key order — the global lock
    order — before they are changed, so concurrent callers never deadlock on them.
    """
    if not rows:
        return 0
    ordered = sorted(rows, key=lambda r: r[key])
    if not is_postgres(conn):
        values = {
            c: (table.c[c] + bindparam(f"v_{c}")) if increment else bindparam(f"v_{c}")
            for c in columns
        }
        where = [table.c[key] == bindparam("k_key")]
        where += [table.c[g].is_not_distinct_from(bindparam(f"was_{g}")) for g in guard]
        stmt = update(table).where(*where).values(**values)
        params = [
            {"k_key": r[key], **{f"v_{c}": r[c] for c in columns}}
            | {f"was_{g}": r[f"was_{g}"] for g in guard}
            for r in ordered
        ]
        if guard:  # counted row by row: a driver may not total an executemany's rowcount
            return sum(conn.execute(stmt, p).rowcount for p in params)
        return conn.execute(stmt, params).rowcount
    names = [key, *columns, *(f"was_{g}" for g in guard)]
    like = {f"was_{g}": g for g in guard}
    arrays = [
        _array_of(table.c[like.get(name, name)].type, [r[name] for r in ordered]) for name in names
    ]
    types = [_array_type(table, name) for name in (key, *columns, *guard)]
    unnest = ", ".join(f"CAST(%s AS {t}[])" for t in types)
    sets = ", ".join(
        f"{c} = {table.name}.{c} + v.{c}" if increment else f"{c} = v.{c}" for c in columns
    )
    checks = "".join(f" AND {table.name}.{g} IS NOT DISTINCT FROM v.was_{g}" for g in guard)
    # Names come from our own Table objects; every value is a bound parameter.
    sql = (
        f"UPDATE {table.name} SET {sets} FROM unnest({unnest}) AS v({', '.join(names)}) "  # noqa: S608
        f"WHERE {table.name}.{key} = v.{key}{checks}"
    )
    # An UPDATE ... FROM unnest locks rows in the planner's order (a hash join scans the
    # table physically), not the keys' order: take the row locks in key order first, so
    # two callers touching the same rows (a top-up and a charge on one cash account and
    # wallet) never wait on each other in a circle. NO KEY UPDATE is the UPDATE's own
    # strength: unlike FOR UPDATE it does not wait for the share locks other
    # transactions' foreign-key checks hold on the row (a transfer just inserted that
    # names it), which may themselves be waiting for us.
    lock = (
        f"SELECT 1 FROM {table.name} WHERE {key} = ANY(CAST(%s AS {types[0]}[])) "  # noqa: S608
        f"ORDER BY {key} FOR NO KEY UPDATE"
    )
    with _dbapi(conn).cursor() as cursor:
        cursor.execute(lock, [arrays[0]])
        cursor.execute(sql, arrays)
        return int(cursor.rowcount)


def upsert_many(
    conn: Connection,
    table: Table,
    keys: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Insert rows, or set ``columns`` of the rows whose ``keys`` exist: one statement
    on PostgreSQL (arrays through ``unnest``), executemany elsewhere. Keys must be
    unique within ``rows``."""
    if not rows:
        return
    if not is_postgres(conn):
        stmt = sqlite.insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c[k] for k in keys],
            set_={c: stmt.excluded[c] for c in columns},
        )
        conn.execute(stmt, [{c: r[c] for c in (*keys, *columns)} for r in rows])
        return
    names = (*keys, *columns)
    arrays = [_array_of(table.c[name].type, [r[name] for r in rows]) for name in names]
    unnest = ", ".join(f"CAST(%s AS {_array_type(table, n)}[])" for n in names)
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
    # Names come from our own Table objects; every value is a bound parameter.
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({unnest}) "  # noqa: S608
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    )
    with _dbapi(conn).cursor() as cursor:
        cursor.execute(sql, arrays)


def _array_of(column_type: Any, values: Sequence[Any]) -> str:
    """A PostgreSQL array literal of a column's values, as the column stores them.

    Only numbers, dates and times (nothing to escape). One converter per column,
    not a type test per value: this is the hot path of every ingest batch.
    """
    text_of = _literal_converter(column_type)
    return "{" + ",".join("NULL" if v is None else text_of(v) for v in values) + "}"


def _literal_converter(column_type: Any) -> Callable[[Any], str]:
    if isinstance(column_type, ScaledDecimal):
        return _scaled(column_type.places)
    if isinstance(column_type, UTCDateTime):
        return _aware_time
    impl = getattr(column_type, "impl", column_type)
    if isinstance(impl, Boolean):
        return lambda v: "true" if v else "false"
    if isinstance(impl, Integer):  # BigInteger too
        return _whole
    if isinstance(impl, Date):
        return _day
    raise TypeError(f"update_many takes numbers and times, not {type(column_type).__name__}")


def _scaled(places: int) -> Callable[[Any], str]:
    def text_of(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(f"a scaled decimal takes Decimal or int, got {value!r}")
        scaled = Decimal(value).scaleb(places)
        whole = int(scaled)
        if whole != scaled:
            raise ValueError(f"{value} has more than {places} decimals")
        return str(whole)

    return text_of


def _aware_time(value: Any) -> str:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{value!r} is not a timezone-aware datetime")
    return '"' + value.isoformat() + '"'


def _whole(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"an integer column takes int, got {value!r}")
    return str(value)


def _day(value: Any) -> str:
    if type(value) is not date:  # a datetime is a date too, and not a day
        raise TypeError(f"a date column takes a date, got {value!r}")
    return _iso_day(value)


@functools.lru_cache(maxsize=1024)
def _iso_day(value: date) -> str:
    """Days repeat (every account in one tier cycle starts on the same one)."""
    return value.isoformat()


def _array_type(table: Table, name: str) -> str:
    impl = table.c[name].type
    impl = getattr(impl, "impl", impl)
    kind = impl.__class__.__name__
    return {
        "BigInteger": "bigint",
        "Integer": "bigint",
        "DateTime": "timestamptz",
        "Date": "date",
        "String": "text",
        "Boolean": "boolean",
    }.get(kind, "text")
