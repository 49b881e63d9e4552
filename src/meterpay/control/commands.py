"""The life of a command to a meter (cut, restore, read status, time sync), as a table.

A command is written to the outbox in the same transaction as the decision
that caused it, then dispatched after the commit through the meter's link.
Its lifecycle::

    pending -> sent -> acknowledged -> verified
       |        |          |
       |        +----------+--> failed     (the meter refused, or tries ran out)
       +--------+----------+--> expired    (its time to live passed first, or withdrawn)
    sent -> pending                         (no answer: try again after a backoff)

Invariants:
- every move is in ``TRANSITIONS``; anything else raises ``IllegalCommandMove``;
- verified, failed and expired are final: a command never comes back from them;
- a command past its time to live is never sent (``due`` says so), so a cut
  decided yesterday cannot land today;
- retries back off exponentially with a cap; the attempt count only grows.

Pure: the clock's reading is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from meterpay.kernel.clock import require_aware
from meterpay.kernel.errors import Conflict


class CommandKind(StrEnum):
    CUT = "cut"
    RESTORE = "restore"
    READ_STATUS = "read_status"
    TIME_SYNC = "time_sync"


class CommandState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    VERIFIED = "verified"
    FAILED = "failed"
    EXPIRED = "expired"


class CommandEvent(StrEnum):
    DISPATCHED = "dispatched"
    """Handed to the meter's link."""
    NO_ANSWER = "no_answer"
    """The link or the meter stayed silent: back to pending for another try."""
    ACCEPTED = "accepted"
    """The meter acknowledged the command (9CH, 84H with ST, a Modbus echo)."""
    CONFIRMED = "confirmed"
    """A later reading shows the relay or valve where the command wanted it."""
    REFUSED = "refused"
    """The meter refused (abnormal reply), or the read-back contradicts the command."""
    GAVE_UP = "gave_up"
    """Every try was used."""
    TIMED_OUT = "timed_out"
    """The time to live passed before the command was verified."""
    WITHDRAWN = "withdrawn"
    """The decision behind it no longer holds (a cut when the owner has paid): never
    carry it out."""


FINAL: Final = frozenset({CommandState.VERIFIED, CommandState.FAILED, CommandState.EXPIRED})

TRANSITIONS: Final[dict[tuple[CommandState, CommandEvent], CommandState]] = {
    (CommandState.PENDING, CommandEvent.DISPATCHED): CommandState.SENT,
    (CommandState.PENDING, CommandEvent.TIMED_OUT): CommandState.EXPIRED,
    (CommandState.PENDING, CommandEvent.GAVE_UP): CommandState.FAILED,
    (CommandState.SENT, CommandEvent.NO_ANSWER): CommandState.PENDING,
    (CommandState.SENT, CommandEvent.ACCEPTED): CommandState.ACKNOWLEDGED,
    (CommandState.SENT, CommandEvent.REFUSED): CommandState.FAILED,
    (CommandState.SENT, CommandEvent.GAVE_UP): CommandState.FAILED,
    (CommandState.SENT, CommandEvent.TIMED_OUT): CommandState.EXPIRED,
    (CommandState.ACKNOWLEDGED, CommandEvent.CONFIRMED): CommandState.VERIFIED,
    (CommandState.ACKNOWLEDGED, CommandEvent.REFUSED): CommandState.FAILED,
    (CommandState.ACKNOWLEDGED, CommandEvent.TIMED_OUT): CommandState.EXPIRED,
    (CommandState.PENDING, CommandEvent.WITHDRAWN): CommandState.EXPIRED,
    (CommandState.SENT, CommandEvent.WITHDRAWN): CommandState.EXPIRED,
    (CommandState.ACKNOWLEDGED, CommandEvent.WITHDRAWN): CommandState.EXPIRED,
}

# How long a command may wait before it is pointless or dangerous to carry out.
DEFAULT_TTL: Final[dict[CommandKind, timedelta]] = {
    CommandKind.CUT: timedelta(hours=1),  # a cut is re-decided rather than carried out late
    CommandKind.RESTORE: timedelta(days=7),  # a restore stays wanted (battery meters wake late)
    CommandKind.READ_STATUS: timedelta(hours=1),
    CommandKind.TIME_SYNC: timedelta(hours=1),
}
READ_BACK_EVERY: Final = timedelta(seconds=15)
"""How often an acknowledged command's meter is read back until it shows the effect
(a read-back lost to a dropped link or a dead process, a relay the owner arms)."""
FIRST_RETRY: Final = timedelta(seconds=30)
MAX_RETRY: Final = timedelta(minutes=30)
MAX_ATTEMPTS: Final = 8


class IllegalCommandMove(Conflict):
    """A command was asked to move in a way its lifecycle does not allow."""

    code = "illegal_command_move"


def move(state: CommandState, event: CommandEvent) -> CommandState:
    """The state after ``event``; raises ``IllegalCommandMove`` for a move not in the table."""
    found = TRANSITIONS.get((state, event))
    if found is None:
        raise IllegalCommandMove(
            f"a {state.value} command cannot take '{event.value}'",
            state=state.value,
            event=event.value,
        )
    return found


def retry_after(attempts: int) -> timedelta:
    """The pause before the next try after ``attempts`` tries: doubling, capped."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    doubled: timedelta = FIRST_RETRY * (1 << min(attempts - 1, 30))
    return min(doubled, MAX_RETRY)


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a command was created and how long it lives."""

    created_at: datetime
    expires_at: datetime

    def __post_init__(self) -> None:
        require_aware(self.created_at)
        require_aware(self.expires_at)
        if self.expires_at <= self.created_at:
            raise ValueError("a command must expire after it is created")

    @classmethod
    def for_kind(cls, kind: CommandKind, now: datetime) -> Schedule:
        return cls(now, now + DEFAULT_TTL[kind])

    def expired(self, now: datetime) -> bool:
        return require_aware(now) >= self.expires_at


def due(
    state: CommandState, attempts: int, schedule: Schedule, next_attempt_at: datetime, now: datetime
) -> CommandEvent | None:
    """What the dispatcher should do with a command now: dispatch it, expire it, give it
    up, or nothing yet (None)."""
    if state in FINAL:
        return None
    if schedule.expired(now):
        return CommandEvent.TIMED_OUT
    if state is not CommandState.PENDING:
        return None  # sent or acknowledged: waiting for the meter or the read-back
    if attempts >= MAX_ATTEMPTS:
        return CommandEvent.GAVE_UP
    return CommandEvent.DISPATCHED if require_aware(now) >= next_attempt_at else None
