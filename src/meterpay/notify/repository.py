"""Queries of the notification outbox, its delivery log and webhook endpoints.

Repositories never commit: the caller's transaction decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, Select, and_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from meterpay.db.rows import insert_row, to_model
from meterpay.db.schema import (
    accounts,
    customers,
    notification_deliveries,
    notifications,
    sites,
    webhook_endpoints,
)
from meterpay.kernel.errors import NotFound
from meterpay.notify.model import (
    ChannelName,
    Delivery,
    Message,
    MessageState,
    Outcome,
    Topic,
    WebhookEndpoint,
)

OPEN = (MessageState.PENDING.value, MessageState.SENDING.value)


def _one(conn: Connection, query: Select[Any], what: str, row_id: int) -> RowMapping:
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"{what} {row_id} does not exist", id=row_id)
    return row


def site(conn: Connection, site_id: int) -> RowMapping:
    query = select(sites.c.name, sites.c.timezone).where(sites.c.id == site_id)
    return _one(conn, query, "site", site_id)


def account(conn: Connection, account_id: int) -> RowMapping:
    query = select(
        accounts.c.site_id, accounts.c.number, accounts.c.utility, accounts.c.customer_id
    ).where(accounts.c.id == account_id)
    return _one(conn, query, "account", account_id)


def customer(conn: Connection, customer_id: int) -> RowMapping:
    query = select(
        customers.c.phone, customers.c.email, customers.c.wechat_openid, customers.c.language
    ).where(customers.c.id == customer_id)
    return _one(conn, query, "customer", customer_id)


def set_language(conn: Connection, customer_id: int, language: str) -> None:
    done = conn.execute(
        update(customers).where(customers.c.id == customer_id).values(language=language)
    )
    if done.rowcount == 0:
        raise NotFound(f"customer {customer_id} does not exist", id=customer_id)


def endpoints(conn: Connection, site_id: int, *, enabled_only: bool) -> list[WebhookEndpoint]:
    query = select(webhook_endpoints).where(webhook_endpoints.c.site_id == site_id)
    if enabled_only:
        query = query.where(webhook_endpoints.c.enabled.is_(True))
    rows = conn.execute(query.order_by(webhook_endpoints.c.id)).mappings()
    return [to_model(WebhookEndpoint, r) for r in rows]


def endpoint_secret(conn: Connection, endpoint_id: int | None) -> str:
    """The secret of an enabled endpoint; empty when it is gone or disabled."""
    if endpoint_id is None:
        return ""
    query = select(webhook_endpoints.c.secret).where(
        webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.enabled.is_(True)
    )
    return str(conn.execute(query).scalar() or "")


def insert_endpoint(conn: Connection, values: Mapping[str, Any]) -> WebhookEndpoint:
    new_id = insert_row(conn, webhook_endpoints, values)
    query = select(webhook_endpoints).where(webhook_endpoints.c.id == new_id)
    return to_model(WebhookEndpoint, conn.execute(query).mappings().one())


def dedupe_key_used(conn: Connection, dedupe_key: str) -> bool:
    query = select(notifications.c.id).where(notifications.c.dedupe_key == dedupe_key)
    return conn.execute(query.limit(1)).first() is not None


def insert_message(conn: Connection, values: Mapping[str, Any]) -> int | None:
    """The new message's id; None when (dedupe_key, channel, recipient) is taken."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(notifications)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedupe_key", "channel", "recipient"])
        .returning(notifications.c.id)
    )
    found = conn.execute(statement).scalar()
    return None if found is None else int(found)


def insert_delivery(
    conn: Connection,
    message: Message,
    attempt: int,
    outcome: Outcome,
    at: datetime,
    *,
    provider_id: str = "",
    error: str = "",
) -> None:
    insert_row(
        conn,
        notification_deliveries,
        {
            "message_id": message.id,
            "attempt": attempt,
            "channel": message.channel.value,
            "recipient": message.recipient,
            "at": at,
            "outcome": outcome.value,
            "provider_id": provider_id[:200],
            "error": error[:500],
        },
    )


def due_query(now: datetime) -> Select[Any]:
    return (
        select(notifications)
        .where(notifications.c.state.in_(OPEN), notifications.c.next_attempt_at <= now)
        .order_by(notifications.c.next_attempt_at, notifications.c.id)
    )


def due(conn: Connection, now: datetime, limit: int) -> list[Message]:
    query = due_query(now).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [to_model(Message, r) for r in conn.execute(query).mappings()]


def message(conn: Connection, message_id: int) -> Message:
    query = select(notifications).where(notifications.c.id == message_id)
    return to_model(Message, _one(conn, query, "notification", message_id))


def sends_since(
    conn: Connection, channel: ChannelName, recipient: str, since: datetime
) -> list[datetime]:
    """When the recipient was sent something on the channel since ``since``."""
    log = notification_deliveries.c
    query = select(log.at).where(
        log.channel == channel.value,
        log.recipient == recipient,
        log.outcome == Outcome.SENT.value,
        log.at > since,
    )
    return [row.at for row in conn.execute(query)]


def in_flight(conn: Connection, message: Message, now: datetime) -> int:
    """Messages to the same recipient that another claim is sending right now."""
    c = notifications.c
    query = select(c.id).where(
        c.channel == message.channel.value,
        c.recipient == message.recipient,
        c.state == MessageState.SENDING.value,
        c.next_attempt_at > now,
        c.id != message.id,
    )
    return len(conn.execute(query).all())


def newer_topics(conn: Connection, message: Message) -> list[Topic]:
    """Topics of later messages to the same recipient on the same channel (and account)."""
    c = notifications.c
    same_account = (
        c.account_id.is_(None) if message.account_id is None else c.account_id == message.account_id
    )
    query = select(c.topic).where(
        c.channel == message.channel.value,
        c.recipient == message.recipient,
        same_account,
        c.id > message.id,
    )
    return [Topic(row.topic) for row in conn.execute(query)]


def save(
    conn: Connection, message: Message, values: Mapping[str, Any], *, claimed_as: int | None = None
) -> bool:
    """Update a message; with ``claimed_as``, only while it is still that claim's (the
    same attempt, still sending): a late answer to a lapsed claim changes nothing."""
    c = notifications.c
    query = update(notifications).where(c.id == message.id)
    if claimed_as is not None:
        query = query.where(and_(c.state == MessageState.SENDING.value, c.attempts == claimed_as))
    return bool(conn.execute(query.values(**values)).rowcount)


def inbox(conn: Connection, account_id: int, limit: int) -> list[Message]:
    c = notifications.c
    query = (
        select(notifications)
        .where(c.account_id == account_id, c.channel == ChannelName.IN_APP.value)
        .order_by(c.id.desc())
        .limit(limit)
    )
    return [to_model(Message, r) for r in conn.execute(query).mappings()]


def page(
    conn: Connection,
    *,
    account_id: int | None,
    state: MessageState | None,
    after_id: int | None,
    limit: int,
) -> list[Message]:
    c = notifications.c
    query = select(notifications).order_by(c.id).limit(limit)
    if account_id is not None:
        query = query.where(c.account_id == account_id)
    if state is not None:
        query = query.where(c.state == state.value)
    if after_id is not None:
        query = query.where(c.id > after_id)
    return [to_model(Message, r) for r in conn.execute(query).mappings()]


def deliveries(conn: Connection, message_id: int) -> list[Delivery]:
    log = notification_deliveries.c
    query = select(notification_deliveries).where(log.message_id == message_id).order_by(log.id)
    return [to_model(Delivery, r) for r in conn.execute(query).mappings()]


def has_due(conn: Connection, now: datetime) -> bool:
    return conn.execute(due_query(now).limit(1)).first() is not None
