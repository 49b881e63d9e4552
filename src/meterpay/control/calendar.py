"""Which days allow a cut-off: workdays, with Chinese public holidays and make-up workdays.

Unlike pricing (``tariffs.holidays``), a cut-off must not guess: for a day
nobody can vouch for, the answer is "unknown" (``None``), and the rules treat
an unknown day as a day without automatic cut-offs.

Invariants:
- an operator's ``HolidayTable`` decides every day of the years it covers
  (announced holidays, make-up workdays (调休), weekends), even over
  chinese-calendar, so a correction is always possible;
- otherwise chinese-calendar decides the years it has data for;
- any other year is unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import chinese_calendar

from meterpay.tariffs.tou import DayType, weekday_day_type

CutoffDayType = Callable[[date], DayType | None]
"""A day's type for cut-off decisions; ``None`` when it is not known."""


@dataclass(frozen=True, slots=True)
class HolidayTable:
    """Announced rest days and make-up workdays for whole years, entered by an operator
    (e.g. from the State Council's notice) for years chinese-calendar does not know."""

    years: frozenset[int]
    rest_days: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        both = self.rest_days & self.workdays
        if both:
            raise ValueError(f"{min(both)} is both a rest day and a workday")
        outside = {d for d in self.rest_days | self.workdays if d.year not in self.years}
        if outside:
            raise ValueError(f"{min(outside)} is outside the years {sorted(self.years)}")

    def day_type(self, day: date) -> DayType | None:
        if day.year not in self.years:
            return None
        if day in self.rest_days:
            return DayType.REST_DAY
        if day in self.workdays:
            return DayType.WORKDAY
        return weekday_day_type(day)


def chinese_calendar_day_type(day: date) -> DayType | None:
    """The State Council's calendar as chinese-calendar knows it; ``None`` outside its years."""
    try:
        return DayType.WORKDAY if chinese_calendar.is_workday(day) else DayType.REST_DAY
    except NotImplementedError:  # chinese-calendar has no data for this year
        return None


def cutoff_day_type(table: HolidayTable | None = None) -> CutoffDayType:
    """The day-type source for cut-off rules: the operator's table first, then
    chinese-calendar, else unknown."""

    def day_type(day: date) -> DayType | None:
        if table is not None and day.year in table.years:
            return table.day_type(day)
        return chinese_calendar_day_type(day)

    return day_type
