"""Queries on work orders, their photos and moves. Never commits: the service's
transaction does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping, Select, func, select, update

from meterpay.db.rows import insert_ignoring_conflicts, insert_row, to_model
from meterpay.db.schema import accounts, sites, ticket_events, ticket_photos, tickets, units
from meterpay.kernel.errors import NotFound
from meterpay.tickets.model import Photo, Ticket, TicketEvent, TicketState

_PHOTOS = (
    select(func.count())
    .where(ticket_photos.c.ticket_id == tickets.c.id)
    .correlate(tickets)
    .scalar_subquery()
    .label("photo_count")
)


def _query() -> Select[Any]:
    return (
        select(
            tickets,
            _PHOTOS,
            units.c.code.label("unit_code"),
            accounts.c.number.label("account_number"),
            sites.c.timezone.label("site_timezone"),
        )
        .join(sites, sites.c.id == tickets.c.site_id)
        .join(units, units.c.id == tickets.c.unit_id)
        .join(accounts, accounts.c.id == tickets.c.account_id)
    )


def insert_ticket(conn: Connection, values: Mapping[str, Any]) -> int | None:
    """The new ticket's id; None when its request key was used before (a resubmitted form)."""
    query = insert_ignoring_conflicts(conn, tickets).values(**values).returning(tickets.c.id)
    found = conn.execute(query).scalar_one_or_none()
    return int(found) if found is not None else None


def id_by_request_key(conn: Connection, request_key: str) -> int:
    query = select(tickets.c.id).where(tickets.c.request_key == request_key)
    return int(conn.execute(query).scalar_one())


def insert_photos(
    conn: Connection, ticket_id: int, photos: Sequence[tuple[str, bytes]], now: Any
) -> None:
    rows = [
        {
            "ticket_id": ticket_id,
            "position": n,
            "media_type": media_type,
            "size": len(data),
            "data": data,
            "created_at": now,
        }
        for n, (media_type, data) in enumerate(photos, start=1)
    ]
    if rows:
        conn.execute(ticket_photos.insert(), rows)


def insert_event(conn: Connection, values: Mapping[str, Any]) -> int:
    return insert_row(conn, ticket_events, values)


def ticket(conn: Connection, ticket_id: int, *, lock: bool = False) -> Ticket:
    if lock:  # the photo count is not locked with it: take the row first, count after
        locked = select(tickets.c.id).where(tickets.c.id == ticket_id).with_for_update()
        conn.execute(locked).first()
    row = conn.execute(_query().where(tickets.c.id == ticket_id)).mappings().first()
    if row is None:
        raise NotFound(f"ticket {ticket_id} does not exist", ticket_id=ticket_id)
    return _ticket(row)


def save(conn: Connection, ticket_id: int, values: Mapping[str, Any]) -> None:
    conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(**values))


def page(
    conn: Connection,
    *,
    site_ids: Sequence[int] | None = None,
    account_ids: Sequence[int] | None = None,
    states: Sequence[TicketState] = (),
    before_id: int | None = None,
    limit: int = 50,
) -> list[Ticket]:
    """Newest first, keyset-paged by id; ``None`` filters filter nothing."""
    query = _query().order_by(tickets.c.id.desc()).limit(limit)
    if site_ids is not None:
        query = query.where(tickets.c.site_id.in_(list(site_ids)))
    if account_ids is not None:
        query = query.where(tickets.c.account_id.in_(list(account_ids)))
    if states:
        query = query.where(tickets.c.state.in_([s.value for s in states]))
    if before_id is not None:
        query = query.where(tickets.c.id < before_id)
    return [_ticket(row) for row in conn.execute(query).mappings()]


def events(conn: Connection, ticket_id: int) -> list[TicketEvent]:
    query = (
        select(ticket_events)
        .where(ticket_events.c.ticket_id == ticket_id)
        .order_by(ticket_events.c.id)
    )
    return [to_model(TicketEvent, row) for row in conn.execute(query).mappings()]


def photo(conn: Connection, ticket_id: int, position: int) -> Photo:
    query = select(
        ticket_photos.c.ticket_id,
        ticket_photos.c.position,
        ticket_photos.c.media_type,
        ticket_photos.c.data,
    ).where(ticket_photos.c.ticket_id == ticket_id, ticket_photos.c.position == position)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"ticket {ticket_id} has no photo {position}", ticket_id=ticket_id)
    return Photo(int(row.ticket_id), int(row.position), str(row.media_type), bytes(row.data))


def _ticket(row: RowMapping) -> Ticket:
    return to_model(Ticket, row)
