"""Cutting a reading interval at tier cycle starts and time-of-use windows, in local time.

Invariants:
- durations are measured on the UTC time line in microseconds, so a
  daylight-saving jump neither creates nor loses time, while windows and
  cycle starts are read on the site's wall clock;
- a cycle starts at local midnight of its first day; the pieces of an
  interval are half-open, in time order, and their durations add up to the
  interval's;
- a zero-length interval is an instant: it is treated as the microsecond that
  starts at that instant, so it lands in one cycle, schedule and period.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Final, NamedTuple
from zoneinfo import ZoneInfo

from meterpay.tariffs.tiers import Tiers
from meterpay.tariffs.tou import DayTypeOf, Period, TimeOfUse

MICROSECOND: Final = timedelta(microseconds=1)
MICROS_PER_MINUTE: Final = 60_000_000
ONE_DAY: Final = timedelta(days=1)
ZERO: Final = timedelta(0)


class CyclePiece(NamedTuple):
    """The part of an interval inside one tier cycle, as UTC instants."""

    cycle_start: date
    start: datetime
    end: datetime


def instants(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The interval in UTC, a zero-length one widened to its first microsecond."""
    start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
    return start_utc, max(end_utc, start_utc + MICROSECOND)


@lru_cache(maxsize=4096)
def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant at which ``day`` starts on the site's wall clock (cached: pure)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def cycle_pieces(tiers: Tiers, start: datetime, end: datetime, zone: ZoneInfo) -> list[CyclePiece]:
    """``[start, end)`` (UTC) cut at every cycle start inside it, oldest first."""
    cycle = tiers.cycle_start_on(start.astimezone(zone).date())
    pieces = []
    while True:
        following = tiers.next_cycle_start(cycle)
        boundary = local_midnight(following, zone)
        if boundary >= end:
            pieces.append(CyclePiece(cycle, start, end))
            return pieces
        pieces.append(CyclePiece(cycle, start, boundary))
        cycle, start = following, boundary


def window_durations(
    tou: TimeOfUse, start: datetime, end: datetime, zone: ZoneInfo, day_type_of: DayTypeOf
) -> dict[tuple[int, Period], int]:
    """Microseconds of ``[start, end)`` (UTC) per (schedule index, period)."""
    durations: dict[tuple[int, Period], int] = defaultdict(int)
    day = start.astimezone(zone).date()
    midnight = local_midnight(day, zone)
    while midnight < end:
        index = tou.schedule_for(day, day_type_of(day))
        following = day + ONE_DAY
        next_midnight = local_midnight(following, zone)
        if next_midnight - midnight == ONE_DAY:
            # no clock change today: wall-clock minutes are elapsed minutes
            low = max(start - midnight, ZERO) // MICROSECOND
            high = min(end - midnight, ONE_DAY) // MICROSECOND
            for first, after, period in tou.schedules[index].segments:
                overlap = min(after * MICROS_PER_MINUTE, high) - max(first * MICROS_PER_MINUTE, low)
                if overlap > 0:
                    durations[(index, period)] += overlap
        else:
            segments = tou.schedules[index].segments
            for period, micros in _clock_change_day(segments, day, start, end, zone):
                durations[(index, period)] += micros
        day, midnight = following, next_midnight
    return dict(durations)


def _clock_change_day(
    segments: tuple[tuple[int, int, Period], ...],
    day: date,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
) -> list[tuple[Period, int]]:
    """A day of 23 or 25 hours: place every window on the wall clock, then measure it."""
    wall_midnight = datetime.combine(day, time(0), tzinfo=zone)
    found = []
    for first, after, period in segments:
        window_start = (wall_midnight + timedelta(minutes=first)).astimezone(UTC)
        window_end = (wall_midnight + timedelta(minutes=after)).astimezone(UTC)
        overlap = min(window_end, end) - max(window_start, start)
        if overlap > ZERO:
            found.append((period, overlap // MICROSECOND))
    return found


def microseconds(start: datetime, end: datetime) -> int:
    return (end - start) // MICROSECOND
