"""What happened lately at a site, as the operators' console lists it: supply events
(also one account's), commands to meters, the messages sent to owners (also one
account's), and the alarms not closed yet — newest first, every list limited.

Read-only: repository-style queries (a connection in, plain dataclasses out); they never
write. A message's recipient is masked for the screen (``control.masking``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, select

from meterpay.alarms import repository as alarms_repo
from meterpay.alarms.model import Alarm, AlarmState
from meterpay.control.commands import CommandKind, CommandState
from meterpay.control.masking import mask_recipient
from meterpay.control.model import SupplyState
from meterpay.db.schema import accounts, commands, meters, notifications, supply_events, units
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.notify.model import ChannelName, MessageState, Topic

MAX_PAGE: Final = 500
OWNER_CHANNELS: Final = tuple(c.value for c in ChannelName if c is not ChannelName.WEBHOOK)


@dataclass(frozen=True, slots=True)
class SupplyEventRow:
    id: int
    at: datetime
    account_id: int
    number: str
    utility: Utility
    unit_code: str
    from_state: SupplyState
    to_state: SupplyState
    event: str
    balance: Money
    cause: str


@dataclass(frozen=True, slots=True)
class CommandRow:
    id: int
    kind: CommandKind
    state: CommandState
    attempts: int
    meter_id: int
    meter_address: str
    utility: Utility
    unit_code: str
    account_number: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    last_error: str
    requested_by: str


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: int
    created_at: datetime
    topic: Topic
    channel: ChannelName
    recipient: str
    """Masked: enough to recognise, not enough to dial."""
    state: MessageState
    title: str
    body: str
    account_number: str | None
    last_error: str


def latest_supply_events(conn: Connection, site_id: int, *, limit: int) -> list[SupplyEventRow]:
    return supply_event_rows(conn, accounts.c.site_id == site_id, limit=min(limit, MAX_PAGE))


def supply_event_rows(conn: Connection, where: Any, *, limit: int) -> list[SupplyEventRow]:
    """Supply events matching ``where`` (on accounts or supply_events), newest first."""
    query = (
        select(
            supply_events,
            accounts.c.number,
            accounts.c.utility,
            units.c.code.label("unit_code"),
        )
        .join(accounts, accounts.c.id == supply_events.c.account_id)
        .join(units, units.c.id == accounts.c.unit_id)
        .where(where)
        .order_by(supply_events.c.id.desc())
        .limit(limit)
    )
    return [
        SupplyEventRow(
            id=r["id"],
            at=r["at"],
            account_id=r["account_id"],
            number=r["number"],
            utility=Utility(r["utility"]),
            unit_code=r["unit_code"],
            from_state=SupplyState(r["from_state"]),
            to_state=SupplyState(r["to_state"]),
            event=r["event"],
            balance=Money(r["balance_fen"]),
            cause=r["cause"],
        )
        for r in conn.execute(query).mappings()
    ]


def latest_commands(conn: Connection, site_id: int, *, limit: int) -> list[CommandRow]:
    query = (
        select(
            commands,
            meters.c.address,
            meters.c.utility,
            units.c.code.label("unit_code"),
            accounts.c.number.label("account_number"),
        )
        .join(meters, meters.c.id == commands.c.meter_id)
        .join(units, units.c.id == meters.c.unit_id)
        .outerjoin(accounts, accounts.c.id == commands.c.account_id)
        .where(meters.c.site_id == site_id)
        .order_by(commands.c.id.desc())
        .limit(min(limit, MAX_PAGE))
    )
    return [
        CommandRow(
            id=r["id"],
            kind=CommandKind(r["kind"]),
            state=CommandState(r["state"]),
            attempts=r["attempts"],
            meter_id=r["meter_id"],
            meter_address=r["address"],
            utility=Utility(r["utility"]),
            unit_code=r["unit_code"],
            account_number=r["account_number"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            expires_at=r["expires_at"],
            last_error=r["last_error"],
            requested_by=r["requested_by"],
        )
        for r in conn.execute(query).mappings()
    ]


def latest_messages(conn: Connection, site_id: int, *, limit: int) -> list[MessageRow]:
    """The owners' messages at a site, newest first."""
    return message_rows(conn, notifications.c.site_id == site_id, limit=min(limit, MAX_PAGE))


def message_rows(conn: Connection, where: Any, *, limit: int) -> list[MessageRow]:
    """The owners' messages (every channel but integrators' webhooks) matching ``where``
    (on notifications or accounts), newest first."""
    query = (
        select(
            notifications.c.id,
            notifications.c.created_at,
            notifications.c.topic,
            notifications.c.channel,
            notifications.c.recipient,
            notifications.c.state,
            notifications.c.title,
            notifications.c.body,
            notifications.c.last_error,
            accounts.c.number.label("account_number"),
        )
        .outerjoin(accounts, accounts.c.id == notifications.c.account_id)
        .where(where, notifications.c.channel.in_(OWNER_CHANNELS))
        .order_by(notifications.c.id.desc())
        .limit(limit)
    )
    return [_message_row(r) for r in conn.execute(query).mappings()]


def _message_row(r: Mapping[Any, Any]) -> MessageRow:
    """A message as the console shows it: the recipient masked."""
    channel = ChannelName(r["channel"])
    return MessageRow(
        id=r["id"],
        created_at=r["created_at"],
        topic=Topic(r["topic"]),
        channel=channel,
        recipient=mask_recipient(channel, r["recipient"]),
        state=MessageState(r["state"]),
        title=r["title"],
        body=r["body"],
        account_number=r["account_number"],
        last_error=r["last_error"],
    )


def open_alarms(conn: Connection, site_id: int, *, limit: int) -> list[Alarm]:
    """Alarms not closed yet (open or acknowledged), most recently seen first."""
    found = [
        alarm
        for state in (AlarmState.OPEN, AlarmState.ACKNOWLEDGED)
        for alarm in alarms_repo.find(conn, state=state, site_id=site_id, limit=limit)
    ]
    found.sort(key=lambda a: (a.last_seen_at, a.id), reverse=True)
    return found[:limit]
