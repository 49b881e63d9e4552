"""What the console's control page reads: the places of a site to aim a group cut or
restore at, the accounts matching a search (for thresholds and 保电), and the commands
one control action queued with their lifecycle. Read only; the use cases that change
anything are in ``control.service`` and ``control.manual``.

Invariants:
- every list is of one site, named by the caller (the page's guard checked it);
- an action's commands are found by their cause key (``manual:{action}:{meter}``),
  the key under which ``control.manual`` queued them, so nothing else is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import or_, select

from meterpay.control.commands import CommandKind, CommandState
from meterpay.db.schema import accounts, buildings, commands, customers, floors, meters, units
from meterpay.kernel.quantity import Utility
from meterpay.runtime import Runtime

MAX_PLACES: Final = 2000
IN_FLIGHT: Final = frozenset({CommandState.PENDING, CommandState.SENT, CommandState.ACKNOWLEDGED})
"""Command states that will still change: the page keeps refreshing while any is here."""


@dataclass(frozen=True, slots=True)
class Place:
    id: int
    label: str


@dataclass(frozen=True, slots=True)
class Places:
    """What a group action can aim at in one site."""

    buildings: tuple[Place, ...]
    floors: tuple[Place, ...]
    meters: tuple[Place, ...]


@dataclass(frozen=True, slots=True)
class AccountLine:
    account_id: int
    number: str
    utility: Utility
    unit_code: str
    owner: str | None
    protected_reason: str | None


@dataclass(frozen=True, slots=True)
class ActionCommand:
    id: int
    meter_id: int
    meter_address: str
    unit_code: str
    kind: CommandKind
    utility: Utility
    state: CommandState
    attempts: int
    created_at: datetime
    updated_at: datetime
    last_error: str

    @property
    def in_flight(self) -> bool:
        return self.state in IN_FLIGHT


def places_of(rt: Runtime, site_id: int) -> Places:
    with rt.db.read() as conn:
        found_buildings = conn.execute(
            select(buildings.c.id, buildings.c.code, buildings.c.name)
            .where(buildings.c.site_id == site_id)
            .order_by(buildings.c.code)
            .limit(MAX_PLACES)
        ).all()
        found_floors = conn.execute(
            select(floors.c.id, buildings.c.code, floors.c.level, floors.c.name)
            .join(buildings, buildings.c.id == floors.c.building_id)
            .where(buildings.c.site_id == site_id)
            .order_by(buildings.c.code, floors.c.level)
            .limit(MAX_PLACES)
        ).all()
        found_meters = conn.execute(
            select(meters.c.id, units.c.code, meters.c.utility, meters.c.address)
            .join(units, units.c.id == meters.c.unit_id)
            .where(meters.c.site_id == site_id, meters.c.status != "removed")
            .order_by(units.c.code, meters.c.utility)
            .limit(MAX_PLACES)
        ).all()
    return Places(
        tuple(Place(i, f"{code} {name}".strip()) for i, code, name in found_buildings),
        tuple(
            Place(i, f"{code} {level}F {name or ''}".strip())
            for i, code, level, name in found_floors
        ),
        tuple(
            Place(i, f"{code} {utility} {address}") for i, code, utility, address in found_meters
        ),
    )


def accounts_matching(
    rt: Runtime, site_id: int, text: str, *, limit: int = 20
) -> list[AccountLine]:
    """Open accounts of the site whose number, unit code or owner's name contains ``text``."""
    words = text.strip()[:64]
    if not words:
        return []
    query = (
        select(
            accounts.c.id,
            accounts.c.number,
            accounts.c.utility,
            units.c.code,
            customers.c.name,
            accounts.c.protected_reason,
        )
        .join(units, units.c.id == accounts.c.unit_id)
        .outerjoin(customers, customers.c.id == accounts.c.customer_id)
        .where(
            accounts.c.site_id == site_id,
            accounts.c.closed_at.is_(None),
            or_(
                accounts.c.number.contains(words, autoescape=True),
                units.c.code.contains(words, autoescape=True),
                customers.c.name.contains(words, autoescape=True),
            ),
        )
        .order_by(units.c.code, accounts.c.number)
        .limit(limit)
    )
    with rt.db.read() as conn:
        rows = conn.execute(query).all()
    return [AccountLine(i, n, Utility(u), c, o, p) for i, n, u, c, o, p in rows]


def action_commands(rt: Runtime, action_id: int) -> list[ActionCommand]:
    """The commands a control action queued, by meter, with their current state."""
    prefix = f"manual:{action_id}:"
    query = (
        select(
            commands.c.id,
            commands.c.meter_id,
            meters.c.address,
            units.c.code,
            commands.c.kind,
            meters.c.utility,
            commands.c.state,
            commands.c.attempts,
            commands.c.created_at,
            commands.c.updated_at,
            commands.c.last_error,
        )
        .join(meters, meters.c.id == commands.c.meter_id)
        .join(units, units.c.id == meters.c.unit_id)
        .where(commands.c.cause_key.startswith(prefix, autoescape=True))
        .order_by(units.c.code, commands.c.id)
    )
    with rt.db.read() as conn:
        rows = conn.execute(query).all()
    return [
        ActionCommand(
            r[0], r[1], r[2], r[3], CommandKind(r[4]), Utility(r[5]), CommandState(r[6]), *r[7:]
        )
        for r in rows
    ]
