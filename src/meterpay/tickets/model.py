"""What a work order (报修工单) is and how it moves (plain data, no I/O).

A ticket lives through::

    open -> assigned -> in_progress -> done
      |        |  ^          |
      |        +--+ (reassigned)
      +--------+-------------+---> cancelled

Invariants:
- every move is in ``TRANSITIONS``; anything else raises ``IllegalTicketMove``;
- done and cancelled are final;
- the owner who asked may withdraw the request (cancel it) only before work on it
  starts — while it is open or assigned (``OWNER_MAY_CANCEL``); later only staff can;
- a ticket carries at most ``MAX_PHOTOS`` photos, each a JPEG, PNG or WebP (told by
  its first bytes, never by the name or the browser's word) of at most
  ``MAX_PHOTO_BYTES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from meterpay.kernel.errors import Conflict, InvalidInput


class TicketState(StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


TRANSITIONS: Final[dict[TicketState, frozenset[TicketState]]] = {
    TicketState.OPEN: frozenset({TicketState.ASSIGNED, TicketState.CANCELLED}),
    TicketState.ASSIGNED: frozenset(
        {TicketState.ASSIGNED, TicketState.IN_PROGRESS, TicketState.CANCELLED}
    ),
    TicketState.IN_PROGRESS: frozenset({TicketState.DONE, TicketState.CANCELLED}),
    TicketState.DONE: frozenset(),
    TicketState.CANCELLED: frozenset(),
}
FINAL: Final = frozenset(s for s, onward in TRANSITIONS.items() if not onward)


class IllegalTicketMove(Conflict):
    code = "illegal_ticket_move"


def move(state: TicketState, to: TicketState) -> TicketState:
    """The state after moving ``state`` to ``to``; a move not in the table raises."""
    if to not in TRANSITIONS[state]:
        raise IllegalTicketMove(f"a {state.value} ticket cannot become {to.value}")
    return to


OWNER_MAY_CANCEL: Final = frozenset({TicketState.OPEN, TicketState.ASSIGNED})
"""Until a technician starts the work, the owner's word is enough to call it off."""


class TooLateToCancel(IllegalTicketMove):
    code = "too_late_to_cancel"


def cancelled_by_owner(state: TicketState) -> TicketState:
    """The state after the owner withdraws their request; refused once work has started
    (or the ticket is closed), with words the owner can act on."""
    if state not in OWNER_MAY_CANCEL:
        raise TooLateToCancel(
            f"this repair request is {state.value.replace('_', ' ')}: only a request not yet"
            " started can be cancelled here; please call the property office"
        )
    return move(state, TicketState.CANCELLED)


def moves_from(state: TicketState) -> list[TicketState]:
    """Where a ticket may go next, in the enum's order (for the staff's buttons)."""
    return [s for s in TicketState if s in TRANSITIONS[state]]


# --- what an owner sends --------------------------------------------------------------

MAX_PHOTOS: Final = 3
MAX_PHOTO_BYTES: Final = 5 * 1024 * 1024
MAX_DESCRIPTION: Final = 1000
_MAGIC: Final = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)


class BadPhoto(InvalidInput):
    code = "bad_photo"


def photo_type(data: bytes) -> str:
    """The photo's media type, told by its first bytes; anything else is refused."""
    if not data:
        raise BadPhoto("the photo is empty", field="photos")
    if len(data) > MAX_PHOTO_BYTES:
        raise BadPhoto(
            f"a photo may be at most {MAX_PHOTO_BYTES // (1024 * 1024)} MB "
            f"(this one is {len(data) / (1024 * 1024):.1f} MB)",
            field="photos",
        )
    for magic, media_type in _MAGIC:
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise BadPhoto("only JPEG, PNG or WebP photos are accepted", field="photos")


def checked_request(description: str, photos: list[bytes]) -> tuple[str, list[str]]:
    """The description (trimmed) and each photo's media type, or a clear refusal."""
    text = description.strip()
    if not text:
        raise InvalidInput("describe what needs repairing", field="description")
    if len(text) > MAX_DESCRIPTION:
        raise InvalidInput(
            f"the description may be at most {MAX_DESCRIPTION} characters", field="description"
        )
    if len(photos) > MAX_PHOTOS:
        raise BadPhoto(f"at most {MAX_PHOTOS} photos", field="photos")
    return text, [photo_type(p) for p in photos]


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    site_id: int
    account_id: int
    unit_id: int
    customer_id: int | None
    description: str
    state: TicketState
    filed_by: str
    assignee: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    photo_count: int = 0
    unit_code: str = ""
    account_number: str = ""
    site_timezone: str = "Asia/Shanghai"

    @property
    def is_final(self) -> bool:
        return self.state in FINAL


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """One move of a ticket, with who made it and their note (the owner reads these)."""

    id: int
    ticket_id: int
    at: datetime
    actor: str
    from_state: TicketState | None
    to_state: TicketState
    note: str


@dataclass(frozen=True, slots=True)
class Photo:
    ticket_id: int
    position: int
    media_type: str
    data: bytes
