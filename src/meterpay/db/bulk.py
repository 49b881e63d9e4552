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

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Connection, Table, bindparam, insert, update
from sqlalchemy.dialects import sqlite


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
) -> None:
    """Set (or with ``increment`` add to) ``columns`` of the rows whose ``key`` matches.

    Rows are applied in key order — the global lock order — so concurrent
    callers never deadlock on them.
    """
    if not rows:
        return
    ordered = sorted(rows, key=lambda r: r[key])
    if not is_postgres(conn):
        values = {
            c: (table.c[c] + bindparam(f"v_{c}")) if increment else bindparam(f"v_{c}")
            for c in columns
        }
        stmt = update(table).where(table.c[key] == bindparam("k_key")).values(**values)
        conn.execute(
            stmt, [{"k_key": r[key], **{f"v_{c}": r[c] for c in columns}} for r in ordered]
        )
        return
    stored = stored_values(conn, table, [key, *columns], ordered)
    arrays = [_array_literal(col) for col in zip(*stored, strict=True)]
    types = [_array_type(table, name) for name in (key, *columns)]
    unnest = ", ".join(f"CAST(%s AS {t}[])" for t in types)
    names = ", ".join((key, *columns))
    sets = ", ".join(
        f"{c} = {table.name}.{c} + v.{c}" if increment else f"{c} = v.{c}" for c in columns
    )
    # Names come from our own Table objects; every value is a bound parameter.
    sql = (
        f"UPDATE {table.name} SET {sets} FROM unnest({unnest}) AS v({names}) "  # noqa: S608
        f"WHERE {table.name}.{key} = v.{key}"
    )
    with _dbapi(conn).cursor() as cursor:
        cursor.execute(sql, arrays)


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
    stored = stored_values(conn, table, names, rows)
    arrays = [_array_literal(col) for col in zip(*stored, strict=True)]
    unnest = ", ".join(f"CAST(%s AS {_array_type(table, n)}[])" for n in names)
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
    # Names come from our own Table objects; every value is a bound parameter.
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({unnest}) "  # noqa: S608
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    )
    with _dbapi(conn).cursor() as cursor:
        cursor.execute(sql, arrays)


def _array_literal(values: Sequence[Any]) -> str:
    """A PostgreSQL array literal of ints or times (no strings: nothing to escape)."""
    items = []
    for value in values:
        if value is None:
            items.append("NULL")
        elif isinstance(value, bool):
            items.append("true" if value else "false")
        elif isinstance(value, int):
            items.append(str(value))
        elif isinstance(value, date):  # datetimes too (a datetime is a date)
            items.append('"' + value.isoformat() + '"')
        else:
            raise TypeError(f"update_many takes ints and times, not {type(value).__name__}")
    return "{" + ",".join(items) + "}"


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
