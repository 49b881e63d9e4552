"""Small, typed building blocks that repositories share: insert, fetch, page.

Rows come back as the area's frozen dataclasses, never as live ORM objects.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from meterpay.kernel.errors import NotFound

T = TypeVar("T")


def to_model(model: type[T], row: Mapping[Any, Any]) -> T:
    """Build a dataclass from a row, turning stored strings into their enums."""
    converters = _converters(model)  # type: ignore[arg-type]  # classes are hashable
    return model(
        **{
            name: convert(row[name]) if convert and row[name] is not None else row[name]
            for name, convert in converters.items()
            if name in row
        }
    )


@functools.cache
def _converters(model: type[Any]) -> dict[str, Callable[[Any], Any] | None]:
    hints = typing.get_type_hints(model)
    return {f.name: _enum_in(hints[f.name]) for f in dataclasses.fields(model)}


def _enum_in(hint: Any) -> type[enum.Enum] | None:
    candidates = typing.get_args(hint) or (hint,)
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, enum.Enum)), None)


def insert_row(conn: Connection, table: Table, values: Mapping[str, Any]) -> int:
    result = conn.execute(insert(table).values(**values).returning(table.c.id))
    return int(result.scalar_one())


def fetch(conn: Connection, table: Table, model: type[T], row_id: int, *, lock: bool = False) -> T:
    query = select(table).where(table.c.id == row_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"{table.name} {row_id} does not exist", table=table.name, id=row_id)
    return to_model(model, row)


def fetch_page(
    conn: Connection,
    table: Table,
    model: type[T],
    *,
    where: Sequence[ColumnElement[bool]] = (),
    after_id: int | None = None,
    limit: int = 100,
) -> list[T]:
    """Keyset paging by id: stable under concurrent inserts, cheap at any depth."""
    query = select(table).where(*where).order_by(table.c.id).limit(limit)
    if after_id is not None:
        query = query.where(table.c.id > after_id)
    return [to_model(model, row) for row in conn.execute(query).mappings()]


def update_row(conn: Connection, table: Table, row_id: int, values: Mapping[str, Any]) -> None:
    if values:
        conn.execute(update(table).where(table.c.id == row_id).values(**values))


def insert_ignoring_conflicts(conn: Connection, table: Table) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()
