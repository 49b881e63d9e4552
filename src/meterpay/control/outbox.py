"""The command outbox: queue a command with its decision, claim it after the commit,
record what the meter did. The lifecycle's rules are ``meterpay.control.commands``.

Invariants:
- a command is queued at most once per ``cause_key``: deciding again returns the
  command already queued;
- a dispatcher claims a due command by moving it to ``sent`` (attempt counted,
  next try scheduled) in its own transaction before it talks to the meter; on
  PostgreSQL claims skip rows another process holds, so two processes never send
  one command at once;
- a ``sent`` command whose next try comes without an answer (the process died,
  the link dropped) goes back to ``pending`` and is sent again — with a reason;
  one past its time to live expires instead, and one out of tries fails;
- final states are never left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from meterpay.control.commands import (
    FINAL,
    CommandEvent,
    CommandKind,
    CommandState,
    Schedule,
    due,
    move,
    retry_after,
)
from meterpay.db.rows import fetch, to_model
from meterpay.db.schema import commands
from meterpay.runtime import Runtime

OPEN_STATES = tuple(s.value for s in CommandState if s not in FINAL)


@dataclass(frozen=True, slots=True)
class Command:
    id: int
    meter_id: int
    account_id: int | None
    kind: CommandKind
    state: CommandState
    cause_key: str
    reason: str
    requested_by: str
    created_at: datetime
    expires_at: datetime
    next_attempt_at: datetime
    attempts: int
    updated_at: datetime
    last_error: str

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.created_at, self.expires_at)


def queue_in(
    conn: Connection,
    *,
    meter_id: int,
    kind: CommandKind,
    cause_key: str,
    requested_by: str,
    now: datetime,
    account_id: int | None = None,
    reason: str = "",
    ttl: timedelta | None = None,
) -> Command:
    """Queue a command inside the caller's transaction (the decision's); the command
    already queued under ``cause_key`` if there is one."""
    schedule = Schedule(now, now + ttl) if ttl is not None else Schedule.for_kind(kind, now)
    values = {
        "meter_id": meter_id,
        "account_id": account_id,
        "kind": CommandKind(kind).value,
        "state": CommandState.PENDING.value,
        "cause_key": cause_key,
        "reason": reason[:500],
        "requested_by": requested_by,
        "created_at": now,
        "expires_at": schedule.expires_at,
        "next_attempt_at": now,
        "attempts": 0,
        "updated_at": now,
        "last_error": "",
    }
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(commands)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["cause_key"])
    )
    row = conn.execute(select(commands).where(commands.c.cause_key == cause_key)).mappings()
    return to_model(Command, row.one())


def queue(
    rt: Runtime,
    *,
    meter_id: int,
    kind: CommandKind,
    cause_key: str,
    requested_by: str,
    account_id: int | None = None,
    reason: str = "",
) -> Command:
    """``queue_in`` in a transaction of its own (a manual command)."""
    with rt.db.write() as conn:
        return queue_in(
            conn,
            meter_id=meter_id,
            kind=kind,
            cause_key=cause_key,
            requested_by=requested_by,
            now=rt.clock.now(),
            account_id=account_id,
            reason=reason,
        )


def get(rt: Runtime, command_id: int) -> Command:
    with rt.db.read() as conn:
        return fetch(conn, commands, Command, command_id)


def claim(rt: Runtime, *, limit: int = 100) -> list[Command]:
    """Settle what is overdue (no answer, expired, out of tries), then take the commands
    due now: each moves to ``sent`` with its attempt counted and its next try set."""
    now = rt.clock.now()
    taken: list[Command] = []
    with rt.db.read() as conn:  # the usual answer is "nothing": no write lock for it
        if not conn.execute(_due_query(now).limit(1)).first():
            return taken
    with rt.db.write() as conn:
        for command in _open_and_due(conn, now, limit):
            state = command.state
            if state is CommandState.SENT:  # no answer before its next try
                state = move(state, CommandEvent.NO_ANSWER)
            decision = due(state, command.attempts, command.schedule, command.next_attempt_at, now)
            if decision is None:
                _save(conn, command.id, state, now)
                continue
            after = move(state, decision)
            if decision is CommandEvent.DISPATCHED:
                attempts = command.attempts + 1
                retry = now + retry_after(attempts)
                _save(conn, command.id, after, now, attempts=attempts, next_attempt_at=retry)
                taken.append(fetch(conn, commands, Command, command.id))
            else:
                _save(conn, command.id, after, now, error=decision.value)
    return taken


def record(rt: Runtime, command_id: int, event: CommandEvent, *, error: str = "") -> Command:
    """What the meter did with a command (accepted, refused, confirmed by read-back)."""
    now = rt.clock.now()
    with rt.db.write() as conn:
        command = fetch(conn, commands, Command, command_id, lock=True)
        after = move(command.state, event)
        _save(conn, command_id, after, now, error=error)
        return fetch(conn, commands, Command, command_id)


def _due_query(now: datetime) -> Select[Any]:
    return (
        select(commands)
        .where(
            commands.c.state.in_(OPEN_STATES),
            or_(
                commands.c.expires_at <= now,
                and_(
                    commands.c.state.in_(("pending", "sent")),
                    commands.c.next_attempt_at <= now,
                ),
            ),
        )
        .order_by(commands.c.next_attempt_at, commands.c.id)
    )


def _open_and_due(conn: Connection, now: datetime, limit: int) -> list[Command]:
    query = _due_query(now).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [to_model(Command, row) for row in conn.execute(query).mappings()]


def _save(
    conn: Connection,
    command_id: int,
    state: CommandState,
    now: datetime,
    *,
    attempts: int | None = None,
    next_attempt_at: datetime | None = None,
    error: str | None = None,
) -> None:
    values: dict[str, object] = {"state": state.value, "updated_at": now}
    if attempts is not None:
        values["attempts"] = attempts
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    if error:
        values["last_error"] = error[:500]
    conn.execute(update(commands).where(commands.c.id == command_id).values(**values))
