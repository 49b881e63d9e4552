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

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from meterpay.control import repository as control_repo
from meterpay.control import verification
from meterpay.control.commands import (
    FINAL,
    READ_BACK_EVERY,
    CommandEvent,
    CommandKind,
    CommandState,
    Schedule,
    due,
    move,
    retry_after,
)
from meterpay.db.rows import fetch, to_model
from meterpay.db.schema import commands, gateways, meters
from meterpay.metering.gateways import Transport
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
    option: str | None = None
    """How a restore closes a DL/T 645 relay (``RestoreStyle``); None: the model's way."""

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
    option: str | None = None,
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
        "option": option,
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


def claim(
    rt: Runtime,
    *,
    limit: int = 100,
    transports: Collection[Transport] | None = None,
    read_backs: bool = False,
) -> list[Command]:
    """Settle what is overdue (no answer, expired, out of tries), then take the commands
    due now: each moves to ``sent`` with its attempt counted and its next try set.

    ``transports``: take (and resend) only commands for meters behind gateways of these
    transports, the ones this dispatcher can route; None takes every due command. A
    command past its time to live is expired whatever its meter's link, so one that no
    running process can route still ends ``expired`` instead of waiting forever.

    ``read_backs``: also take ``acknowledged`` commands whose next read-back is due (a
    dispatcher that can read the meter): they stay acknowledged, their next read-back
    ``READ_BACK_EVERY`` later, until the meter shows the effect or they expire."""
    now = rt.clock.now()
    taken: list[Command] = []
    with rt.db.read() as conn:  # the usual answer is "nothing": no write lock for it
        if not conn.execute(_due_query(now, transports, read_backs).limit(1)).first():
            return taken
    with rt.db.write() as conn:
        for command in _open_and_due(conn, now, limit, transports, read_backs):
            state = command.state
            if state is CommandState.ACKNOWLEDGED and not command.schedule.expired(now):
                _save(conn, command.id, state, now, next_attempt_at=now + READ_BACK_EVERY)
                taken.append(fetch(conn, commands, Command, command.id))
                continue
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
    """What the meter did with a command (accepted, refused, confirmed by read-back).

    A verified cut or restore moves its account's supply state in the same
    transaction; a refused one raises an alarm. Locks follow the product's order:
    the account's row before the command's.
    """
    now = rt.clock.now()
    with rt.db.write() as conn:
        account_id = conn.execute(
            select(commands.c.account_id).where(commands.c.id == command_id)
        ).scalar_one_or_none()
        if account_id is not None:
            control_repo.account_supply(conn, account_id, lock=True)
        command = fetch(conn, commands, Command, command_id, lock=True)
        after = move(command.state, event)
        read_back = now + READ_BACK_EVERY if after is CommandState.ACKNOWLEDGED else None
        _save(conn, command_id, after, now, error=error, next_attempt_at=read_back)
        settled = fetch(conn, commands, Command, command_id)
        if after in FINAL:
            verification.command_settled(conn, settled, now)
        return settled


def withdraw_in(
    conn: Connection,
    *,
    kind: CommandKind,
    now: datetime,
    reason: str,
    account_id: int | None = None,
    meter_ids: Collection[int] | None = None,
    cause_prefix: str | None = None,
) -> list[int]:
    """Withdraw open commands of ``kind`` for an account or for meters (optionally only
    those under one cause, e.g. ``arrears:``): the decision behind them no longer
    holds, so they expire now and are never carried out. Returns their ids."""
    if account_id is None and meter_ids is None:
        raise ValueError("withdraw commands of an account or of meters")
    query = (
        select(commands.c.id, commands.c.state)
        .where(commands.c.kind == kind.value, commands.c.state.in_(OPEN_STATES))
        .order_by(commands.c.id)
    )
    if account_id is not None:
        query = query.where(commands.c.account_id == account_id)
    if meter_ids is not None:
        query = query.where(commands.c.meter_id.in_(sorted(meter_ids)))
    if cause_prefix is not None:
        query = query.where(commands.c.cause_key.startswith(cause_prefix, autoescape=True))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    withdrawn = []
    for command_id, state in conn.execute(query).all():
        after = move(CommandState(state), CommandEvent.WITHDRAWN)
        _save(conn, command_id, after, now, error=f"withdrawn: {reason}")
        withdrawn.append(command_id)
    return withdrawn


def manually_cut(conn: Connection, meter_ids: Collection[int]) -> set[int]:
    """The meters whose latest live supply command (open or verified) is an operator's
    cut: an emergency shut-off in force."""
    if not meter_ids:
        return set()
    latest = (
        select(commands.c.meter_id, func.max(commands.c.id).label("id"))
        .where(
            commands.c.meter_id.in_(sorted(meter_ids)),
            commands.c.kind.in_((CommandKind.CUT.value, CommandKind.RESTORE.value)),
            commands.c.state.not_in((CommandState.FAILED.value, CommandState.EXPIRED.value)),
        )
        .group_by(commands.c.meter_id)
        .subquery()
    )
    query = select(commands.c.meter_id).where(
        commands.c.id == latest.c.id,
        commands.c.kind == CommandKind.CUT.value,
        commands.c.cause_key.startswith("manual:"),
    )
    return set(conn.execute(query).scalars())


def of_account(
    conn: Connection,
    account_id: int,
    *,
    kind: CommandKind | None = None,
    since: datetime | None = None,
    cause_prefix: str | None = None,
) -> list[Command]:
    """An account's commands, oldest first (optionally of one kind, created since a time,
    or under one cause)."""
    query = select(commands).where(commands.c.account_id == account_id).order_by(commands.c.id)
    if kind is not None:
        query = query.where(commands.c.kind == kind.value)
    if since is not None:
        query = query.where(commands.c.created_at >= since)
    if cause_prefix is not None:
        query = query.where(commands.c.cause_key.startswith(cause_prefix, autoescape=True))
    return [to_model(Command, row) for row in conn.execute(query).mappings()]


def find(
    rt: Runtime,
    *,
    meter_id: int | None = None,
    account_id: int | None = None,
    state: CommandState | None = None,
    limit: int = 100,
) -> list[Command]:
    """Commands, newest first, for the console and the API."""
    query = select(commands).order_by(commands.c.id.desc()).limit(limit)
    if meter_id is not None:
        query = query.where(commands.c.meter_id == meter_id)
    if account_id is not None:
        query = query.where(commands.c.account_id == account_id)
    if state is not None:
        query = query.where(commands.c.state == state.value)
    with rt.db.read() as conn:
        return [to_model(Command, row) for row in conn.execute(query).mappings()]


def _due_query(
    now: datetime, transports: Collection[Transport] | None = None, read_backs: bool = False
) -> Select[Any]:
    waiting = ("pending", "sent", "acknowledged") if read_backs else ("pending", "sent")
    retry_due = and_(commands.c.state.in_(waiting), commands.c.next_attempt_at <= now)
    if transports is not None:  # a subquery, not a join: FOR UPDATE locks commands only
        routed = (
            select(meters.c.id)
            .join(gateways, gateways.c.id == meters.c.gateway_id)
            .where(gateways.c.transport.in_(sorted(Transport(t).value for t in transports)))
        )
        retry_due = and_(retry_due, commands.c.meter_id.in_(routed))
    return (
        select(commands)
        .where(commands.c.state.in_(OPEN_STATES), or_(commands.c.expires_at <= now, retry_due))
        .order_by(commands.c.next_attempt_at, commands.c.id)
    )


def _open_and_due(
    conn: Connection,
    now: datetime,
    limit: int,
    transports: Collection[Transport] | None = None,
    read_backs: bool = False,
) -> list[Command]:
    query = _due_query(now, transports, read_backs).limit(limit)
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
