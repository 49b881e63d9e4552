"""Which days are workdays in China, for time-of-use schedules that differ on holidays.

Public holidays and their make-up workdays (调休) come from chinese-calendar,
which knows the State Council's announcements year by year. For a year it
does not know yet, the plain weekday rule applies (Saturday and Sunday rest):
pricing must go on, and a schedule's holiday variant is a refinement.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import chinese_calendar

from meterpay.tariffs.tou import DayType, weekday_day_type


@lru_cache(maxsize=4096)
def china_day_type(day: date) -> DayType:
    try:
        return DayType.WORKDAY if chinese_calendar.is_workday(day) else DayType.REST_DAY
    except NotImplementedError:  # a year the calendar has no data for yet
        return weekday_day_type(day)
