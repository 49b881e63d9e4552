"""What pricing takes in: one reading interval's usage and the account's place in its tier cycle.

Invariants:
- quantities are non-negative with at most 4 decimals, never floats;
- an interval is ``[start, end)`` between aware datetimes, ``end >= start``;
- register deltas, when given, are per time-of-use period and non-negative;
- the time zone is a known IANA name (the site's; Asia/Shanghai by default);
- a ``TierState`` is a plain value: the caller stores it per account and
  hands it back with the next usage, in time order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterpay.kernel.clock import require_aware
from meterpay.kernel.errors import Conflict, InvalidInput
from meterpay.kernel.quantity import InvalidQuantity, parse_quantity
from meterpay.tariffs.apportion import from_units
from meterpay.tariffs.fields import set_field
from meterpay.tariffs.tou import PERIOD_ORDER, Period

DEFAULT_TIME_ZONE: Final = "Asia/Shanghai"
MAX_TRUSTED_UNITS: Final = 10**24  # far inside the 28 digits of a Decimal
_new: Final = object.__new__
_set: Final = object.__setattr__


class InvalidUsage(InvalidInput):
    code = "invalid_usage"


class UsageOutOfOrder(Conflict):
    """A usage starts in a tier cycle earlier than the state it is priced from."""

    code = "usage_out_of_order"


def _quantity(value: Decimal, field_name: str) -> Decimal:
    try:
        quantity = parse_quantity(value)
    except InvalidQuantity as exc:
        raise InvalidUsage(f"{field_name}: {exc}", field=field_name) from exc
    if quantity < 0:
        raise InvalidUsage(f"{field_name}: {value} must not be negative", field=field_name)
    return quantity


@dataclass(frozen=True, slots=True)
class TierState:
    """Where an account stands in its tier cycle: the cycle's first day and its use so far."""

    cycle_start: date
    consumed: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if isinstance(self.cycle_start, datetime) or not isinstance(self.cycle_start, date):
            raise InvalidUsage(f"cycle_start must be a date, got {self.cycle_start!r}")
        set_field(self, "consumed", _quantity(self.consumed, "consumed"))

    @classmethod
    def stored(cls, cycle_start: date, consumed: Decimal) -> TierState:
        """A state as the database keeps it (a date, a non-negative 4-decimal quantity,
        both checked on the way in): no checks again on the hot path."""
        if type(cycle_start) is not date or consumed < 0:
            return cls(cycle_start, consumed)
        state = _new(cls)
        _set(state, "cycle_start", cycle_start)
        _set(state, "consumed", consumed)
        return state

    @classmethod
    def counted(cls, cycle_start: date, units: int) -> TierState:
        """The state after pricing: ``units`` of 0.0001 used since ``cycle_start``.

        Pricing's own result, already valid (a date, whole non-negative units),
        so it skips the checks of the constructor unless the count is too large
        to be sure of (the constructor then refuses it as it would).
        """
        if not 0 <= units < MAX_TRUSTED_UNITS or type(cycle_start) is not date:
            return cls(cycle_start, from_units(units))
        state = _new(cls)
        _set(state, "cycle_start", cycle_start)
        _set(state, "consumed", from_units(units))
        return state


@dataclass(frozen=True, slots=True)
class Usage:
    """The consumption of one reading interval ``[start, end)``.

    ``registers`` are the deltas of the meter's time-of-use registers, when it
    has them; ``time_zone`` is the site's, for schedules and cycle starts.
    """

    quantity: Decimal
    start: datetime
    end: datetime
    registers: Mapping[Period, Decimal] | None = None
    time_zone: str = DEFAULT_TIME_ZONE

    def __post_init__(self) -> None:
        set_field(self, "quantity", _quantity(self.quantity, "quantity"))
        try:
            require_aware(self.start)
            require_aware(self.end)
        except ValueError as exc:
            raise InvalidUsage(str(exc), field="start/end") from exc
        if self.end < self.start:
            raise InvalidUsage(f"interval ends ({self.end}) before it starts", field="end")
        if self.registers is not None:
            set_field(self, "registers", self._checked_registers(self.registers))
        self.zone  # noqa: B018  refuse an unknown zone now, not at pricing

    @classmethod
    def measured(cls, quantity: Decimal, start: datetime, end: datetime, time_zone: str) -> Usage:
        """A usage from values ingest has already checked: the consumption of a valid
        reading (4 decimals, not negative), over an interval between two stored aware
        readings, in a site's known zone. Skips the constructor's checks (a few
        microseconds per reading on the hot path); anything else uses ``Usage(...)``."""
        usage = _new(cls)
        _set(usage, "quantity", quantity)
        _set(usage, "start", start)
        _set(usage, "end", end)
        _set(usage, "registers", None)
        _set(usage, "time_zone", time_zone)
        return usage

    @property
    def zone(self) -> ZoneInfo:
        """The site's zone (``ZoneInfo`` keeps one instance per name, so this is cheap)."""
        try:
            return ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            message = f"time_zone: {self.time_zone!r} is not a known time zone"
            raise InvalidUsage(message, field="time_zone") from exc

    @staticmethod
    def _checked_registers(registers: Mapping[Period, Decimal]) -> dict[Period, Decimal]:
        checked = {}
        for key, value in registers.items():
            if key not in PERIOD_ORDER:
                raise InvalidUsage(f"registers: {key!r} is not a period", field="registers")
            checked[Period(key)] = _quantity(value, f"registers.{key}")
        return checked
