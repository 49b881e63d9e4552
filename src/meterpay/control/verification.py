"""What a command's end means for its account, inside the transaction that records it.

- a verified cut of an account in arrears: the supply is cut off (the owner is told);
- a verified restore of an account waiting for it: supply is normal again (the
  owner is told), and the balance is judged at once (it may still be low);
- a refused or failed cut or restore: an alarm asks a person to look; a
  withdrawn command (the decision no longer holds) raises nothing.

A cut is confirmed for the account only when none of its other cut commands is
still open (an account with two meters is cut off when both are).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select

from meterpay.alarms import repository as alarms
from meterpay.alarms.model import AlarmKind
from meterpay.control import effects
from meterpay.control import repository as repo
from meterpay.control.commands import CommandKind, CommandState
from meterpay.control.model import SupplyEvent, SupplyState, transition
from meterpay.control.rules import evaluate
from meterpay.db.schema import commands
from meterpay.kernel.money import Money
from meterpay.ledger.repository import balance_fen

if TYPE_CHECKING:
    from meterpay.control.outbox import Command

OPEN = ("pending", "sent", "acknowledged")
CONFIRMS = {
    CommandKind.CUT: (SupplyState.IN_ARREARS, SupplyEvent.CUT_OFF_CONFIRMED),
    CommandKind.RESTORE: (SupplyState.RESTORE_PENDING, SupplyEvent.RESTORE_CONFIRMED),
}


def command_settled(conn: Connection, command: Command, now: datetime) -> None:
    """Act on a command that reached a final state (the caller holds the account's lock)."""
    if command.account_id is None or command.kind not in CONFIRMS:
        return
    if command.state is CommandState.VERIFIED:
        _confirm(conn, command, now)
    elif not command.last_error.startswith("withdrawn"):
        alarms.raise_in(
            conn,
            kind=AlarmKind.COMMAND_FAILED,
            object_type="meter",
            object_id=command.meter_id,
            dedupe_key=f"command_failed:{command.id}",
            message=f"{command.kind.value} 指令 #{command.id} 未完成：{command.state.value}"
            f" {command.last_error}".strip(),
            now=now,
            site_id=repo.account_supply(conn, command.account_id).site_id,
            details={
                "command_id": command.id,
                "kind": command.kind.value,
                "state": command.state.value,
                "account_id": command.account_id,
            },
        )


def _confirm(conn: Connection, command: Command, now: datetime) -> None:
    assert command.account_id is not None  # noqa: S101  checked by the caller
    account = repo.account_supply(conn, command.account_id)
    wanted_state, event = CONFIRMS[command.kind]
    if account.state is not wanted_state or _others_open(conn, command):
        return  # an operator's command, or another meter of the account still on its way
    balance = Money(balance_fen(conn, account.wallet_id))
    cause = f"command:{command.id}"
    to_state = transition(account.state, event)
    confirmed = effects.change(
        account, event, to_state=to_state, balance=balance, cause=cause, now=now
    )
    changes = [confirmed]
    if event is SupplyEvent.RESTORE_CONFIRMED:  # back to normal: the balance may still be low
        site = repo.site_policy(conn, account.site_id, account.utility)
        after = evaluate(balance, confirmed.to_state, effects.thresholds_for(account, site))
        if after.event is not None and after.event is not SupplyEvent.FELL_BELOW_CUTOFF:
            moved = effects.change(
                replace(account, state=to_state),
                after.event,
                to_state=after.state,
                balance=balance,
                cause=cause,
                now=now,
            )
            changes.append(moved)
    repo.save_changes(conn, changes, now)  # in order: each compares the state before it
    effects.announce(conn, changes, now)


def _others_open(conn: Connection, command: Command) -> bool:
    query = select(commands.c.id).where(
        commands.c.account_id == command.account_id,
        commands.c.kind == command.kind.value,
        commands.c.state.in_(OPEN),
        commands.c.id != command.id,
    )
    return conn.execute(query.limit(1)).first() is not None
