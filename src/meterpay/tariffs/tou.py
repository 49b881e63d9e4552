"""Time-of-use (尖峰平谷): which period each minute of a local day is in, and its price.

Invariants:
- a schedule's windows are half-open local times ``[start, end)`` in whole
  minutes that cover the 24 hours exactly once (no gap, no overlap); a window
  whose end is not after its start runs over midnight (22:00-08:00), and an
  end of 00:00 means the midnight that ends the day;
- for every month and day type exactly one schedule applies;
- every period a schedule uses has a price: absolute, or a multiplier of the
  base price, or a multiplier of another period's price that is itself not
  relative (one level deep, so no price depends on itself); a derived price
  is rounded half up to 4 decimals, as published unit prices are;
- the site's time zone and each date's day type are inputs: no calendar of
  public holidays is built in.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, time
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Final

from meterpay.kernel.money import PRICE_QUANTUM
from meterpay.tariffs.fields import (
    TariffInvalid,
    as_choice,
    as_clock,
    as_int,
    as_list,
    as_multiplier,
    as_object,
    as_price,
    decimal_text,
    field_scope,
    set_field,
)

MINUTES_PER_DAY: Final = 24 * 60


class Period(StrEnum):
    """A time-of-use period, in the order meters number their registers."""

    TIP = "tip"
    PEAK = "peak"
    FLAT = "flat"
    VALLEY = "valley"

    @property
    def label(self) -> str:
        """The Chinese name: 尖, 峰, 平, 谷."""
        return {"tip": "尖", "peak": "峰", "flat": "平", "valley": "谷"}[self.value]


PERIOD_ORDER: Final = {period: index for index, period in enumerate(Period)}


class DayType(StrEnum):
    WORKDAY = "workday"
    REST_DAY = "rest_day"  # weekends and public holidays


DayTypeOf = Callable[[date], DayType]
ALL_MONTHS: Final = frozenset(range(1, 13))
ALL_DAY_TYPES: Final = frozenset(DayType)


def weekday_day_type(day: date) -> DayType:
    """Saturdays and Sundays rest, every other day works (no public holidays)."""
    return DayType.REST_DAY if day.weekday() >= 5 else DayType.WORKDAY


def holiday_calendar(
    holidays: Collection[date], makeup_workdays: Collection[date] = ()
) -> DayTypeOf:
    """Weekends and ``holidays`` rest, except the weekend days worked instead (调休)."""
    resting, working = frozenset(holidays), frozenset(makeup_workdays)

    def day_type(day: date) -> DayType:
        if day in working:
            return DayType.WORKDAY
        return DayType.REST_DAY if day in resting else weekday_day_type(day)

    return day_type


def _clock_text(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _round_price(price: Decimal) -> Decimal:
    return price.quantize(PRICE_QUANTUM, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class PeriodPrice:
    """A period's price: ``price``, or ``multiplier`` x the base (or x period ``of``)."""

    period: Period
    price: Decimal | None = None
    multiplier: Decimal | None = None
    of: Period | None = None

    def __post_init__(self) -> None:
        set_field(self, "period", as_choice(self.period, Period, "period"))
        if (self.price is None) == (self.multiplier is None):
            raise TariffInvalid("price", "give exactly one of price or multiplier")
        if self.price is not None:
            set_field(self, "price", as_price(self.price, "price"))
        if self.multiplier is not None:
            set_field(self, "multiplier", as_multiplier(self.multiplier, "multiplier"))
        if self.of is not None:
            if self.multiplier is None:
                raise TariffInvalid("of", "only a multiplier can refer to another period")
            set_field(self, "of", as_choice(self.of, Period, "of"))
            if self.of is self.period:
                raise TariffInvalid("of", "a period's price cannot refer to itself")

    def to_dict(self) -> dict[str, object]:
        if self.price is not None:
            return {"price": decimal_text(self.price)}
        data: dict[str, object] = {"multiplier": decimal_text(self.multiplier or Decimal(0))}
        if self.of is not None:
            data["of"] = self.of.value
        return data

    @classmethod
    def from_dict(cls, period: Period, data: object) -> PeriodPrice:
        fields = as_object(data, "", (), ("price", "multiplier", "of"))
        price, multiplier, of = fields.get("price"), fields.get("multiplier"), fields.get("of")
        return cls(
            period=period,
            price=None if price is None else as_price(price, "price"),
            multiplier=None if multiplier is None else as_multiplier(multiplier, "multiplier"),
            of=None if of is None else as_choice(of, Period, "of"),
        )


@dataclass(frozen=True, slots=True)
class TouWindow:
    """``[start, end)`` of one period in local time; over midnight if end <= start."""

    period: Period
    start: time
    end: time

    def __post_init__(self) -> None:
        set_field(self, "period", as_choice(self.period, Period, "period"))
        set_field(self, "start", as_clock(self.start, "start"))
        set_field(self, "end", as_clock(self.end, "end"))
        if self.end != time(0) and self.end == self.start:
            raise TariffInvalid("end", "a window cannot end where it starts")

    def spans(self) -> list[tuple[int, int]]:
        """The window as minutes of the day, cut at midnight: ``[(start, end), ...]``."""
        start = self.start.hour * 60 + self.start.minute
        end = self.end.hour * 60 + self.end.minute or MINUTES_PER_DAY
        if end > start:
            return [(start, end)]
        return [(start, MINUTES_PER_DAY), (0, end)]

    def to_dict(self) -> dict[str, object]:
        end = "24:00" if self.end == time(0) else self.end.strftime("%H:%M")
        return {"period": self.period.value, "start": self.start.strftime("%H:%M"), "end": end}

    @classmethod
    def from_dict(cls, data: object) -> TouWindow:
        fields = as_object(data, "", ("period", "start", "end"))
        return cls(
            period=as_choice(fields["period"], Period, "period"),
            start=as_clock(fields["start"], "start"),
            end=as_clock(fields["end"], "end"),
        )


def _prices_to_dict(prices: tuple[PeriodPrice, ...]) -> dict[str, object]:
    return {price.period.value: price.to_dict() for price in prices}


def _prices_from_dict(data: object, field_name: str) -> tuple[PeriodPrice, ...]:
    fields = as_object(data, field_name, (), tuple(Period))
    prices = []
    for key, value in fields.items():
        with field_scope(f"{field_name}.{key}"):
            prices.append(PeriodPrice.from_dict(Period(key), value))
    return tuple(prices)


def _canonical_prices(prices: tuple[PeriodPrice, ...], field_name: str) -> tuple[PeriodPrice, ...]:
    """Prices sorted by period, each period at most once."""
    seen: set[Period] = set()
    for index, price in enumerate(prices):
        if not isinstance(price, PeriodPrice):
            raise TariffInvalid(f"{field_name}[{index}]", "must be a PeriodPrice")
        if price.period in seen:
            raise TariffInvalid(f"{field_name}.{price.period}", "is priced twice")
        seen.add(price.period)
    return tuple(sorted(prices, key=lambda price: PERIOD_ORDER[price.period]))


@dataclass(frozen=True, slots=True)
class TouSchedule:
    """A day's windows, for some months and day types, optionally with its own prices."""

    windows: tuple[TouWindow, ...]
    months: frozenset[int] = ALL_MONTHS
    day_types: frozenset[DayType] = ALL_DAY_TYPES
    prices: tuple[PeriodPrice, ...] = ()
    segments: tuple[tuple[int, int, Period], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_field(self, "windows", tuple(self.windows))
        set_field(self, "prices", _canonical_prices(tuple(self.prices), "prices"))
        months = frozenset(as_int(month, "months", 1, 12) for month in self.months)
        types = frozenset(as_choice(kind, DayType, "day_types") for kind in self.day_types)
        if not months:
            raise TariffInvalid("months", "a schedule applies in at least one month")
        if not types:
            raise TariffInvalid("day_types", "a schedule applies on at least one day type")
        set_field(self, "months", months)
        set_field(self, "day_types", types)
        set_field(self, "segments", self._covering_segments())

    def _covering_segments(self) -> tuple[tuple[int, int, Period], ...]:
        if not self.windows:
            raise TariffInvalid("windows", "a schedule needs windows covering 24 hours")
        spans: list[tuple[int, int, int]] = []
        for index, window in enumerate(self.windows):
            if not isinstance(window, TouWindow):
                raise TariffInvalid(f"windows[{index}]", "must be a TouWindow")
            spans.extend((start, end, index) for start, end in window.spans())
        cursor = 0
        for start, end, index in sorted(spans):
            if start < cursor:
                rule = f"overlaps another window at {_clock_text(start)}"
                raise TariffInvalid(f"windows[{index}]", rule)
            if start > cursor:
                gap = f"{_clock_text(cursor)}-{_clock_text(start)}"
                raise TariffInvalid("windows", f"no window covers {gap}")
            cursor = end
        if cursor < MINUTES_PER_DAY:
            raise TariffInvalid("windows", f"no window covers {_clock_text(cursor)}-24:00")
        return tuple(
            (start, end, self.windows[index].period) for start, end, index in sorted(spans)
        )

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "months": sorted(self.months),
            "day_types": [kind.value for kind in DayType if kind in self.day_types],
            "windows": [window.to_dict() for window in self.windows],
        }
        if self.prices:
            data["prices"] = _prices_to_dict(self.prices)
        return data

    @classmethod
    def from_dict(cls, data: object) -> TouSchedule:
        fields = as_object(data, "", ("windows",), ("months", "day_types", "prices"))
        windows = []
        for index, item in enumerate(as_list(fields["windows"], "windows")):
            with field_scope(f"windows[{index}]"):
                windows.append(TouWindow.from_dict(item))
        months = as_list(fields.get("months", sorted(ALL_MONTHS)), "months")
        types = as_list(fields.get("day_types", [kind.value for kind in DayType]), "day_types")
        return cls(
            windows=tuple(windows),
            months=frozenset(as_int(month, "months", 1, 12) for month in months),
            day_types=frozenset(as_choice(kind, DayType, "day_types") for kind in types),
            prices=_prices_from_dict(fields.get("prices", {}), "prices"),
        )


@dataclass(frozen=True, slots=True)
class TimeOfUse:
    """Period prices and the schedules saying which period applies when."""

    prices: tuple[PeriodPrice, ...]
    schedules: tuple[TouSchedule, ...]
    by_day: Mapping[tuple[int, DayType], int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_field(self, "prices", _canonical_prices(tuple(self.prices), "prices"))
        set_field(self, "schedules", tuple(self.schedules))
        if not self.schedules:
            raise TariffInvalid("schedules", "time-of-use needs at least one schedule")
        set_field(self, "by_day", self._schedule_by_day())
        for index in range(len(self.schedules)):
            self._check_prices_of(index)

    def _schedule_by_day(self) -> dict[tuple[int, DayType], int]:
        by_day: dict[tuple[int, DayType], int] = {}
        for index, schedule in enumerate(self.schedules):
            if not isinstance(schedule, TouSchedule):
                raise TariffInvalid(f"schedules[{index}]", "must be a TouSchedule")
            for key in ((month, kind) for month in schedule.months for kind in schedule.day_types):
                if key in by_day:
                    rule = f"month {key[0]} ({key[1]}) is also in schedules[{by_day[key]}]"
                    raise TariffInvalid(f"schedules[{index}]", rule)
                by_day[key] = index
        for month in sorted(ALL_MONTHS):
            for kind in DayType:
                if (month, kind) not in by_day:
                    raise TariffInvalid("schedules", f"no schedule for month {month} ({kind})")
        return by_day

    def _check_prices_of(self, index: int) -> None:
        schedule = self.schedules[index]
        merged = self.prices_of(index)
        for number, window in enumerate(schedule.windows):
            if window.period not in merged:
                rule = f"{window.period} has no price in prices or schedules[{index}].prices"
                raise TariffInvalid(f"schedules[{index}].windows[{number}].period", rule)
        own = {price.period for price in schedule.prices}
        for price in merged.values():
            if price.of is None:
                continue
            where = f"schedules[{index}].prices" if price.period in own else "prices"
            target = merged.get(price.of)
            if target is None:
                raise TariffInvalid(f"{where}.{price.period}.of", f"{price.of} has no price")
            if target.of is not None:
                rule = f"{price.of} is itself relative to {target.of}; refer to an absolute price"
                raise TariffInvalid(f"{where}.{price.period}.of", rule)

    def prices_of(self, index: int) -> dict[Period, PeriodPrice]:
        """The prices in force under schedule ``index``: its own over the defaults."""
        merged = {price.period: price for price in self.prices}
        merged.update((price.period, price) for price in self.schedules[index].prices)
        return merged

    def schedule_for(self, day: date, day_type: DayType) -> int:
        return self.by_day[(day.month, day_type)]

    def resolved_prices(self, base: Decimal) -> tuple[dict[Period, Decimal], ...]:
        """For each schedule, every priced period's unit price in 元, 4 decimals."""
        return tuple(
            self._resolve(self.prices_of(index), base) for index in range(len(self.schedules))
        )

    @staticmethod
    def _resolve(prices: Mapping[Period, PeriodPrice], base: Decimal) -> dict[Period, Decimal]:
        resolved: dict[Period, Decimal] = {}
        for period, price in prices.items():
            if price.price is not None:
                resolved[period] = price.price
            elif price.of is None:
                resolved[period] = _round_price(base * (price.multiplier or Decimal(0)))
        for period, price in prices.items():
            if price.of is not None:
                resolved[period] = _round_price(
                    resolved[price.of] * (price.multiplier or Decimal(0))
                )
        return resolved

    def to_dict(self) -> dict[str, object]:
        return {
            "prices": _prices_to_dict(self.prices),
            "schedules": [schedule.to_dict() for schedule in self.schedules],
        }

    @classmethod
    def from_dict(cls, data: object) -> TimeOfUse:
        fields = as_object(data, "", ("prices", "schedules"))
        schedules = []
        for index, item in enumerate(as_list(fields["schedules"], "schedules")):
            with field_scope(f"schedules[{index}]"):
                schedules.append(TouSchedule.from_dict(item))
        return cls(prices=_prices_from_dict(fields["prices"], "prices"), schedules=tuple(schedules))
