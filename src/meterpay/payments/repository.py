"""Queries for top-up orders, the notification inbox and limits. Never commits."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from meterpay.db.rows import to_model
from meterpay.db.schema import payment_notifications, topup_limits, topup_orders
from meterpay.kernel.errors import NotFound
from meterpay.kernel.money import Money
from meterpay.payments.model import Limits, Order, OrderState


def insert_order(conn: Connection, values: Mapping[str, Any]) -> int:
    stmt = insert(topup_orders).values(**values).returning(topup_orders.c.id)
    return int(conn.execute(stmt).scalar_one())


def order(conn: Connection, order_id: int, *, lock: bool = False) -> Order:
    return _one(conn, topup_orders.c.id == order_id, f"order {order_id}", lock=lock)


def order_by_trade_no(conn: Connection, out_trade_no: str, *, lock: bool = False) -> Order | None:
    query = select(topup_orders).where(topup_orders.c.out_trade_no == out_trade_no)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return to_model(Order, row) if row else None


def _one(conn: Connection, where: Any, what: str, *, lock: bool) -> Order:
    query = select(topup_orders).where(where)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"{what} does not exist")
    return to_model(Order, row)


def save_order(conn: Connection, order_id: int, **values: Any) -> None:
    conn.execute(update(topup_orders).where(topup_orders.c.id == order_id).values(**values))


def orders_of(conn: Connection, account_id: int, *, limit: int = 50) -> list[Order]:
    query = (
        select(topup_orders)
        .where(topup_orders.c.account_id == account_id)
        .order_by(topup_orders.c.id.desc())
        .limit(limit)
    )
    return [to_model(Order, row) for row in conn.execute(query).mappings()]


def topped_up_since(conn: Connection, account_id: int, since: datetime) -> Money:
    """What the account's open or paid orders since ``since`` add up to (closed ones
    do not count against the daily cap)."""
    query = select(func.coalesce(func.sum(topup_orders.c.amount_fen), 0)).where(
        topup_orders.c.account_id == account_id,
        topup_orders.c.created_at >= since,
        topup_orders.c.state != OrderState.CLOSED.value,
    )
    return Money(int(conn.execute(query).scalar_one()))


def due_for_query(conn: Connection, now: datetime, *, limit: int) -> list[Order]:
    query = (
        select(topup_orders)
        .where(
            topup_orders.c.state == OrderState.CREATED.value,
            topup_orders.c.next_query_at <= now,
        )
        .order_by(topup_orders.c.next_query_at, topup_orders.c.id)
        .limit(limit)
    )
    return [to_model(Order, row) for row in conn.execute(query).mappings()]


def limits(conn: Connection, site_id: int) -> Limits:
    row = conn.execute(select(topup_limits).where(topup_limits.c.site_id == site_id)).first()
    if row is None:
        return Limits()
    return Limits(Money(row.min_fen), Money(row.max_fen), Money(row.daily_cap_fen))


def save_limits(conn: Connection, site_id: int, found: Limits, *, by: str, now: datetime) -> None:
    values = {
        "min_fen": found.minimum.fen,
        "max_fen": found.maximum.fen,
        "daily_cap_fen": found.daily_cap.fen,
        "updated_at": now,
        "updated_by": by,
    }
    where = topup_limits.c.site_id == site_id
    if conn.execute(update(topup_limits).where(where).values(**values)).rowcount == 0:
        conn.execute(insert(topup_limits).values(site_id=site_id, **values))


def store_notification(conn: Connection, values: Mapping[str, Any]) -> int | None:
    """Insert a notification under its (provider, key); None if that key is stored already."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(payment_notifications)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["provider", "key"])
        .returning(payment_notifications.c.id)
    )
    found = conn.execute(stmt).scalar_one_or_none()
    return int(found) if found is not None else None


def set_outcome(conn: Connection, notification_id: int, outcome: str, detail: str = "") -> None:
    conn.execute(
        update(payment_notifications)
        .where(payment_notifications.c.id == notification_id)
        .values(outcome=outcome, detail=detail[:500])
    )


def notifications_of(conn: Connection, out_trade_no: str) -> list[dict[str, Any]]:
    query = (
        select(payment_notifications)
        .where(payment_notifications.c.out_trade_no == out_trade_no)
        .order_by(payment_notifications.c.id)
    )
    return [dict(row) for row in conn.execute(query).mappings()]
