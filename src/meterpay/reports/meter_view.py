"""One meter as the console shows it: what it is and where, whether it answers, its
latest readings (with quality and flags), its billed use per day on the site's
calendar, the raw frames to and from it, and the commands sent to it with where each
stands in its lifecycle (pending -> sent -> acknowledged -> verified; failed, expired).

Read-only, one transaction (``rt.db.read()``); every list is limited. Use per day sums
the billed consumption of the valid readings of the last days, bucketed on the site's
clock (one meter's readings: a few thousand rows at most).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from meterpay.control.commands import CommandKind, CommandState
from meterpay.db.schema import accounts, commands, frame_log, gateways, meters, readings, units
from meterpay.kernel.errors import NotFound
from meterpay.kernel.quantity import Utility
from meterpay.metering.gateways import LinkStatus
from meterpay.metering.model import ReadingQuality
from meterpay.reports.dashboard import day_bounds
from meterpay.reports.places import SiteSummary, site_summary
from meterpay.runtime import Runtime

USE_DAYS: Final = 30
LATEST_READINGS: Final = 30
LATEST_FRAMES: Final = 50
LATEST_COMMANDS: Final = 30
LIFECYCLE: Final = (
    CommandState.PENDING,
    CommandState.SENT,
    CommandState.ACKNOWLEDGED,
    CommandState.VERIFIED,
)
"""A command's way when all goes well; failed and expired end it early."""


@dataclass(frozen=True, slots=True)
class MeterHead:
    id: int
    utility: Utility
    protocol: str
    address: str
    serial: str | None
    model: str | None
    multiplier: int
    has_switch: bool
    status: str
    link_status: LinkStatus
    last_heard_at: datetime | None
    last_read_at: datetime | None
    last_total: Decimal | None
    installed_at: datetime
    unit_id: int
    unit_code: str
    unit_name: str
    account_id: int | None
    account_number: str | None
    gateway_code: str | None
    gateway_status: str | None


@dataclass(frozen=True, slots=True)
class ReadingLine:
    id: int
    read_at: datetime
    received_at: datetime
    total: Decimal
    tou: tuple[Decimal | None, Decimal | None, Decimal | None, Decimal | None]
    """Tip, peak, flat, valley (尖峰平谷) when the meter reports them."""
    consumption: Decimal
    quality: ReadingQuality
    flags: str
    source: str


@dataclass(frozen=True, slots=True)
class DayUse:
    day: date
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class FrameLine:
    id: int
    at: datetime
    direction: str
    protocol: str
    gateway_code: str
    hex: str
    note: str


@dataclass(frozen=True, slots=True)
class CommandLine:
    id: int
    kind: CommandKind
    state: CommandState
    attempts: int
    reason: str
    requested_by: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    next_attempt_at: datetime
    last_error: str

    @property
    def steps(self) -> list[tuple[CommandState, str]]:
        """The lifecycle's steps marked ``done``, ``now`` or ``todo``; a failed or expired
        command ends after the last step it reached."""
        if self.state in LIFECYCLE:
            reached = LIFECYCLE.index(self.state)
            return [
                (s, "done" if n < reached else "now" if n == reached else "todo")
                for n, s in enumerate(LIFECYCLE)
            ]
        return [
            *((s, "done") for s in LIFECYCLE[: 2 if self.attempts else 1]),
            (self.state, "now"),
        ]


@dataclass(frozen=True, slots=True)
class MeterPage:
    at: datetime
    site: SiteSummary
    meter: MeterHead
    readings: list[ReadingLine]
    use: list[DayUse]
    """Oldest first, every day of the window (0 on a day without billed use)."""
    frames: list[FrameLine]
    commands: list[CommandLine]

    @property
    def unit(self) -> str:
        return self.meter.utility.unit


def meter_page(rt: Runtime, meter_id: int, *, days: int = USE_DAYS) -> MeterPage:
    now = rt.clock.now()
    with rt.db.read() as conn:
        head, site_id = _head(conn, meter_id)
        site = site_summary(conn, site_id)
        return MeterPage(
            at=now,
            site=site,
            meter=head,
            readings=_readings(conn, meter_id),
            use=_use(conn, meter_id, day_bounds(now, site.timezone, days), site.timezone),
            frames=_frames(conn, meter_id),
            commands=_commands(conn, meter_id),
        )


def _head(conn: Connection, meter_id: int) -> tuple[MeterHead, int]:
    query = (
        select(
            meters,
            units.c.code.label("unit_code"),
            units.c.name.label("unit_name"),
            accounts.c.number.label("account_number"),
            gateways.c.code.label("gateway_code"),
            gateways.c.status.label("gateway_status"),
        )
        .join(units, units.c.id == meters.c.unit_id)
        .outerjoin(accounts, accounts.c.id == meters.c.account_id)
        .outerjoin(gateways, gateways.c.id == meters.c.gateway_id)
        .where(meters.c.id == meter_id)
    )
    r = conn.execute(query).mappings().first()
    if r is None:
        raise NotFound(f"meter {meter_id} does not exist", meter_id=meter_id)
    head = MeterHead(
        id=r["id"],
        utility=Utility(r["utility"]),
        protocol=r["protocol"],
        address=r["address"],
        serial=r["serial"],
        model=r["model"],
        multiplier=r["multiplier"],
        has_switch=r["has_switch"],
        status=r["status"],
        link_status=LinkStatus(r["link_status"]),
        last_heard_at=r["last_heard_at"],
        last_read_at=r["last_read_at"],
        last_total=r["last_total"],
        installed_at=r["installed_at"],
        unit_id=r["unit_id"],
        unit_code=r["unit_code"],
        unit_name=r["unit_name"],
        account_id=r["account_id"],
        account_number=r["account_number"],
        gateway_code=r["gateway_code"],
        gateway_status=r["gateway_status"],
    )
    return head, r["site_id"]


def _readings(conn: Connection, meter_id: int) -> list[ReadingLine]:
    query = (
        select(readings)
        .where(readings.c.meter_id == meter_id)
        .order_by(readings.c.read_at.desc(), readings.c.id.desc())
        .limit(LATEST_READINGS)
    )
    return [
        ReadingLine(
            id=r["id"],
            read_at=r["read_at"],
            received_at=r["received_at"],
            total=r["total"],
            tou=(r["tip"], r["peak"], r["flat"], r["valley"]),
            consumption=r["consumption"],
            quality=ReadingQuality(r["quality"]),
            flags=r["flags"],
            source=r["source"],
        )
        for r in conn.execute(query).mappings()
    ]


def _use(conn: Connection, meter_id: int, bounds: list[datetime], zone: str) -> list[DayUse]:
    query = select(readings.c.read_at, readings.c.consumption).where(
        readings.c.meter_id == meter_id,
        readings.c.quality == ReadingQuality.VALID.value,
        readings.c.read_at >= bounds[0],
        readings.c.read_at < bounds[-1],
    )
    tz = ZoneInfo(zone)
    per_day = {start.date(): Decimal(0) for start in bounds[:-1]}
    for read_at, consumption in conn.execute(query):
        day = read_at.astimezone(tz).date()
        if day in per_day:
            per_day[day] += consumption
    return [DayUse(day, quantity) for day, quantity in per_day.items()]


def _frames(conn: Connection, meter_id: int) -> list[FrameLine]:
    query = (
        select(frame_log)
        .where(frame_log.c.meter_id == meter_id)
        .order_by(frame_log.c.id.desc())
        .limit(LATEST_FRAMES)
    )
    return [
        FrameLine(
            r["id"], r["at"], r["direction"], r["protocol"], r["gateway_code"], r["hex"], r["note"]
        )
        for r in conn.execute(query).mappings()
    ]


def _commands(conn: Connection, meter_id: int) -> list[CommandLine]:
    query = (
        select(commands)
        .where(commands.c.meter_id == meter_id)
        .order_by(commands.c.id.desc())
        .limit(LATEST_COMMANDS)
    )
    return [
        CommandLine(
            id=r["id"],
            kind=CommandKind(r["kind"]),
            state=CommandState(r["state"]),
            attempts=r["attempts"],
            reason=r["reason"],
            requested_by=r["requested_by"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            expires_at=r["expires_at"],
            next_attempt_at=r["next_attempt_at"],
            last_error=r["last_error"],
        )
        for r in conn.execute(query).mappings()
    ]
