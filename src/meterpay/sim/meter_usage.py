"""What a simulated meter counts: its registers, its own clock, and the load that moves them.

A ``Usage`` holds a meter's registers, one per time-of-use period (尖峰平谷; the total is
their sum), and moves them forward to an instant with ``sim.load.consumption``, hour by
hour of the meter's clock, so an evening hour is counted as an evening hour however
coarse the steps are. A ``MeterClock`` is the meter's wall clock: true time in its zone
plus an offset that a broadcast time sync (or the clock tamper) changes.

Invariants:
- registers are ``Decimal`` at 4 decimals and only grow, except by ``rollback`` (the
  tamper fault: someone rewound the register);
- nothing accrues while supply is off (relay open, valve closed) unless told ``flowing``
  anyway (the bypass fault), and a steady ``leak`` flows whatever the household does;
- ``advance`` ignores an instant at or before the last one, so a reply that waited on the
  bus cannot count anything twice; the first call only sets the starting instant;
- ``speed`` multiplies consumption, not time: the meter's clock stays true, so a real
  server's command expiry and time sync still work against a sped-up meter;
- the tariff period and the load profile both follow the meter's own clock, as a real
  meter switches tariffs by its clock (a meter that drifts bills the wrong period).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from meterpay.kernel.clock import require_aware
from meterpay.kernel.quantity import QUANTITY_QUANTUM, Utility
from meterpay.sim.load import consumption
from meterpay.sites.model import UnitKind

HOUR: Final = timedelta(hours=1)
MIDNIGHT: Final = time(0)
REGISTER_ROLLOVER: Final = Decimal(1_000_000)  # XXXXXX.XX: six integer digits, then it wraps
MAINS_VOLTS: Final = 220.0
MAINS_NOISE_VOLTS: Final = 2.0


class Period(StrEnum):
    """A time-of-use period; the values are the reading field names (``dlt645_items``)."""

    TIP = "tip"  # 尖
    PEAK = "peak"  # 峰
    FLAT = "flat"  # 平
    VALLEY = "valley"  # 谷


@dataclass(frozen=True, slots=True)
class TouSchedule:
    """The period of each hour of the day (24 entries, hour 0 first)."""

    hours: tuple[Period, ...]

    def __post_init__(self) -> None:
        if len(self.hours) != 24:
            raise ValueError(f"a TOU schedule needs 24 hours, not {len(self.hours)}")

    def period_at(self, hour: int) -> Period:
        return self.hours[hour % 24]

    @classmethod
    def peak_valley(cls, peak_from: int = 8, peak_to: int = 22) -> TouSchedule:
        """Peak from ``peak_from`` to ``peak_to`` o'clock, valley otherwise (峰谷两段)."""
        return cls(
            tuple(Period.PEAK if peak_from <= h < peak_to else Period.VALLEY for h in range(24))
        )


PEAK_VALLEY: Final = TouSchedule.peak_valley()


@dataclass(slots=True)
class MeterClock:
    """The meter's wall clock (no zone, as on the wire): true local time plus ``offset``."""

    zone: ZoneInfo
    offset: timedelta = timedelta(0)

    def wall(self, at: datetime) -> datetime:
        """What the meter's clock shows at the true instant ``at`` (aware)."""
        return require_aware(at).astimezone(self.zone).replace(tzinfo=None) + self.offset

    def set_wall(self, at: datetime, shown: datetime) -> None:
        """Time sync: from ``at`` on, the clock shows ``shown`` (a naive wall time)."""
        self.offset = shown - require_aware(at).astimezone(self.zone).replace(tzinfo=None)

    def jump(self, by: timedelta) -> None:
        """The clock tamper: the meter now reports readings from the future (or past)."""
        self.offset += by


def _zero_registers() -> dict[Period, Decimal]:
    return dict.fromkeys(Period, Decimal("0.0000"))


@dataclass(slots=True)
class Usage:
    """A meter's registers and the load that moves them (see the module docstring)."""

    utility: Utility
    clock: MeterClock
    kind: UnitKind = UnitKind.HOME
    scale: float = 1.0
    speed: float = 1.0
    tou: TouSchedule = PEAK_VALLEY
    away: bool = False  # the household is away: the load profile draws nothing
    settlement_day: int = 1  # the total is frozen at 00:00 on this day of the month (1-28)
    rng: random.Random = field(default_factory=random.Random)
    registers: dict[Period, Decimal] = field(default_factory=_zero_registers)
    settlement_total: Decimal = Decimal("0.0000")
    last: datetime | None = None
    _instant: tuple[datetime, bool, Instant] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.settlement_day <= 28:  # every month has it
            raise ValueError(f"settlement day {self.settlement_day} is outside 1..28")

    @property
    def total(self) -> Decimal:
        return sum(self.registers.values(), Decimal("0.0000"))

    def open_with(self, total: Decimal) -> None:
        """Start the registers at ``total`` (an installed meter is rarely new): 60% peak,
        the rest valley, so the TOU block still adds up to the total."""
        peak = (total * Decimal("0.6")).quantize(QUANTITY_QUANTUM, ROUND_DOWN)
        self.registers = _zero_registers()
        self.registers[Period.PEAK], self.registers[Period.VALLEY] = peak, total - peak
        self.settlement_total = self.total

    def advance(self, to: datetime, *, flowing: bool, leak_per_hour: Decimal) -> None:
        """Accrue from the last instant to ``to``: the profile (unless away) plus the leak,
        into the period the meter's clock shows, if ``flowing`` (supply on, or bypassed)."""
        require_aware(to)
        start = self.last
        if start is not None and to <= start:
            return
        self.last = to
        if start is None:
            return
        for wall, hours in self._hours(start, to):
            if wall.day == self.settlement_day and wall.time() == MIDNIGHT:
                self.settlement_total = self.total
            if flowing:
                used = self._drawn(wall, hours) + _leaked(leak_per_hour, hours * self.speed)
                self.registers[self.tou.period_at(wall.hour)] += used

    def _hours(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, float]]:
        """(wall time, hours) of each piece of ``start..end`` cut at the meter clock's
        hour boundaries."""
        moment = start
        while moment < end:
            wall = self.clock.wall(moment)
            next_hour = wall.replace(minute=0, second=0, microsecond=0) + HOUR
            stop = min(end, moment + (next_hour - wall))
            yield wall, (stop - moment) / HOUR
            moment = stop

    def _drawn(self, wall: datetime, hours: float) -> Decimal:
        if self.away:
            return Decimal("0.0000")
        return consumption(
            self.utility,
            self.kind,
            hour=wall.hour,
            hours=hours * self.speed,
            scale=self.scale,
            rng=self.rng,
        )

    def rollback(self, amount: Decimal) -> None:
        """The register tamper: the total goes back by ``amount`` (taken from the largest
        register, so none goes negative) and counts on from there."""
        period = max(self.registers, key=lambda p: self.registers[p])
        self.registers[period] = max(Decimal("0.0000"), self.registers[period] - amount)

    def instant(self, at: datetime, *, flowing: bool) -> Instant:
        """Voltage, draw and current now: drawn once per minute of the meter's clock, so
        the voltage, current and power a master reads in one round agree with each other."""
        minute = self.clock.wall(at).replace(second=0, microsecond=0)
        cached = self._instant
        if cached is None or cached[0] != minute or cached[1] is not flowing:
            volts = Decimal(f"{self.rng.gauss(MAINS_VOLTS, MAINS_NOISE_VOLTS):.1f}")
            kw = self._draw_kw(minute.hour) if flowing and not self.away else Decimal("0.0000")
            amps = (kw * 1000 / volts).quantize(Decimal("0.001"))
            cached = self._instant = (minute, flowing, Instant(volts, kw, amps))
        return cached[2]

    def _draw_kw(self, hour: int) -> Decimal:
        # the profile's average for this hour, with the same noise as consumption
        return consumption(
            self.utility, self.kind, hour=hour, hours=1.0, scale=self.scale, rng=self.rng
        )


@dataclass(frozen=True, slots=True)
class Instant:
    """What an electricity meter measures at a moment: V, kW (3 decimals are A)."""

    volts: Decimal
    kw: Decimal
    amps: Decimal


def _leaked(per_hour: Decimal, hours: float) -> Decimal:
    return (per_hour * Decimal(f"{hours:.6f}")).quantize(QUANTITY_QUANTUM)


def register_value(value: Decimal, decimals: int = 2) -> Decimal:
    """A register as the meter shows it: truncated to its decimals (a meter never rounds
    up what has not been used), wrapping past 999999.99 like the real counter."""
    shown = value.quantize(Decimal(1).scaleb(-decimals), ROUND_DOWN)
    return shown % REGISTER_ROLLOVER
