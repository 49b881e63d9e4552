"""Use cases on work orders (报修): an owner (or staff for them) files one with photos;
staff assign it, start it, finish or cancel it with a note; the owner may withdraw it
before work starts; both read it. One transaction each; every filing and move is in
the audit log and the ticket's own history (which the owner and staff read)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from meterpay.audit import repository as audit
from meterpay.kernel.errors import InvalidInput, NotFound
from meterpay.notify import outbox as notify
from meterpay.notify.model import Topic
from meterpay.runtime import Runtime
from meterpay.sites import repository as sites
from meterpay.sites.model import AccountStatus
from meterpay.tickets import repository as repo
from meterpay.tickets.model import (
    FINAL,
    Photo,
    Ticket,
    TicketEvent,
    TicketState,
    cancelled_by_owner,
    checked_request,
    move,
)

MAX_NOTE = 500


@dataclass(frozen=True, slots=True)
class TicketView:
    """A ticket with its history, oldest move first."""

    ticket: Ticket
    events: list[TicketEvent]


def file_ticket(
    rt: Runtime,
    *,
    account_id: int,
    description: str,
    photos: Sequence[bytes] = (),
    by: str,
    request_key: str = "",
) -> Ticket:
    """A repair request for the account's unit, with up to three photos. Everything is
    checked before anything is written: a refused photo stores nothing. The same
    ``request_key`` again (a form sent twice) gives the first ticket back."""
    text, media_types = checked_request(description, list(photos))
    key = (request_key.strip() or uuid.uuid4().hex)[:64]
    now = rt.clock.now()
    with rt.db.write() as conn:
        account = sites.account(conn, account_id)
        if account.status is not AccountStatus.OPEN:
            raise InvalidInput(f"account {account.number} is closed", field="account_id")
        ticket_id = repo.insert_ticket(
            conn,
            {
                "site_id": account.site_id,
                "account_id": account.id,
                "unit_id": account.unit_id,
                "customer_id": account.customer_id,
                "description": text,
                "state": TicketState.OPEN.value,
                "filed_by": by,
                "request_key": key,
                "created_at": now,
                "updated_at": now,
            },
        )
        if ticket_id is None:
            return repo.ticket(conn, repo.id_by_request_key(conn, key))
        repo.insert_photos(conn, ticket_id, list(zip(media_types, photos, strict=True)), now)
        repo.insert_event(
            conn,
            {
                "ticket_id": ticket_id,
                "at": now,
                "actor": by,
                "from_state": None,
                "to_state": TicketState.OPEN.value,
                "note": "",
            },
        )
        audit.record(
            conn,
            at=now,
            actor=by,
            action="ticket.filed",
            object_type="ticket",
            object_id=ticket_id,
            site_id=account.site_id,
            after={"account_id": account.id, "photos": len(media_types), "description": text},
        )
        return repo.ticket(conn, ticket_id)


def move_ticket(
    rt: Runtime,
    ticket_id: int,
    to: TicketState | str,
    *,
    by: str,
    note: str = "",
    assignee: str | None = None,
) -> Ticket:
    """Move a ticket along its table (an illegal move raises ``IllegalTicketMove``);
    assigning names the person (``assignee``, else the one assigning). The owner hears
    of the move."""
    try:
        target = TicketState(to)
    except ValueError:
        raise InvalidInput(f"{to!r} is not a ticket state", field="to") from None
    text = _note(note, "note")
    now = rt.clock.now()
    with rt.db.write() as conn:
        before = repo.ticket(conn, ticket_id, lock=True)
        after = move(before.state, target)
        event_id = _record_move(conn, before, after, by=by, note=text, now=now, assignee=assignee)
        notify.queue_in(  # the owner hears of it (in-app, and SMS/e-mail/WeChat if set up)
            conn,
            site_id=before.site_id,
            topic=Topic.TICKET_UPDATE,
            dedupe_key=f"ticket:{ticket_id}:{event_id}",
            now=now,
            account_id=before.account_id,
            params={"ticket": f"#{ticket_id}", "ticket_state": after.value, "note": text},
        )
        return repo.ticket(conn, ticket_id)


def cancel_by_owner(
    rt: Runtime,
    ticket_id: int,
    *,
    customer_ids: frozenset[int],
    by: str,
    reason: str = "",
) -> Ticket:
    """The owner withdraws their own request before work on it starts (open or
    assigned; ``TooLateToCancel`` after that, changing nothing). Recorded like a staff
    move — in the ticket's history, which staff read, with the owner's reason, and in
    the audit log. A ticket of another owner's is "not found"."""
    text = _note(reason, "reason")
    now = rt.clock.now()
    with rt.db.write() as conn:
        before = repo.ticket(conn, ticket_id, lock=True)
        if before.customer_id is None or before.customer_id not in customer_ids:
            raise NotFound(f"ticket {ticket_id} does not exist", ticket_id=ticket_id)
        after = cancelled_by_owner(before.state)
        _record_move(conn, before, after, by=by, note=text, now=now)
        return repo.ticket(conn, ticket_id)


def _note(text: str, field: str) -> str:
    found = text.strip()
    if len(found) > MAX_NOTE:
        raise InvalidInput(f"a {field} may be at most {MAX_NOTE} characters", field=field)
    return found


def _record_move(
    conn: Connection,
    before: Ticket,
    after: TicketState,
    *,
    by: str,
    note: str,
    now: datetime,
    assignee: str | None = None,
) -> int:
    """Save the ticket's new state, its history line and the audit entry; the history
    line's id."""
    changes: dict[str, object] = {"state": after.value, "updated_at": now}
    if after is TicketState.ASSIGNED:
        changes["assignee"] = ((assignee or "").strip() or by)[:120]
    if after in FINAL:
        changes["closed_at"] = now
    repo.save(conn, before.id, changes)
    event_id = repo.insert_event(
        conn,
        {
            "ticket_id": before.id,
            "at": now,
            "actor": by,
            "from_state": before.state.value,
            "to_state": after.value,
            "note": note,
        },
    )
    audit.record(
        conn,
        at=now,
        actor=by,
        action=f"ticket.{after.value}",
        object_type="ticket",
        object_id=before.id,
        site_id=before.site_id,
        before={"state": before.state.value, "assignee": before.assignee},
        after={"state": after.value, "assignee": changes.get("assignee", before.assignee)},
        reason=note,
    )
    return event_id


def ticket_view(rt: Runtime, ticket_id: int) -> TicketView:
    with rt.db.read() as conn:
        return TicketView(repo.ticket(conn, ticket_id), repo.events(conn, ticket_id))


def ticket_list(
    rt: Runtime,
    *,
    site_id: int | None,
    states: Sequence[TicketState] = (),
    before_id: int | None = None,
    limit: int = 50,
    visible: frozenset[int] | None = None,
) -> list[Ticket]:
    """The tickets of one site (or of every site the reader sees: ``visible``, None for
    every site), newest first."""
    with rt.db.read() as conn:
        if site_id is not None:
            sites.site(conn, site_id)
        chosen = [site_id] if site_id is not None else None
        if chosen is None and visible is not None:
            chosen = sorted(visible)
        return repo.page(conn, site_ids=chosen, states=states, before_id=before_id, limit=limit)


def tickets_of_account(rt: Runtime, account_id: int, *, limit: int = 50) -> list[Ticket]:
    with rt.db.read() as conn:
        sites.account(conn, account_id)
        return repo.page(conn, account_ids=[account_id], limit=limit)


def photo(rt: Runtime, ticket_id: int, position: int) -> Photo:
    with rt.db.read() as conn:
        return repo.photo(conn, ticket_id, position)
