"""Chinese public holidays and make-up workdays decide time-of-use day types."""

from __future__ import annotations

from datetime import date

from meterpay.tariffs.holidays import china_day_type
from meterpay.tariffs.tou import DayType


def test_national_day_is_a_rest_day_though_it_is_a_thursday() -> None:
    """2026-10-01 (国庆节) rests."""
    assert china_day_type(date(2026, 10, 1)) is DayType.REST_DAY


def test_a_weekday_in_an_ordinary_week_is_a_workday() -> None:
    assert china_day_type(date(2026, 11, 25)) is DayType.WORKDAY


def test_a_make_up_sunday_is_a_workday() -> None:
    """2026-09-20 is a Sunday worked instead of a National Day holiday (调休)."""
    assert date(2026, 9, 20).weekday() == 6
    assert china_day_type(date(2026, 9, 20)) is DayType.WORKDAY


def test_a_year_without_calendar_data_falls_back_to_weekends() -> None:
    """Unknown years: Saturday and Sunday rest, other days work."""
    assert china_day_type(date(2031, 1, 4)) is DayType.REST_DAY  # a Saturday
    assert china_day_type(date(2031, 1, 6)) is DayType.WORKDAY  # a Monday
