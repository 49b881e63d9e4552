"""Tiered prices (阶梯): steps of cumulative consumption within a monthly or yearly cycle.

Invariants:
- steps are upper bounds of cumulative consumption per cycle, strictly
  increasing, every step bounded except the last; a boundary value belongs to
  the lower step (2880 kWh is still tier 1, the 2881st kWh is tier 2);
- a step's price is absolute or a mark-up over the tariff's base price (the
  national pattern: tier 2 = tier 1 + 0.05, tier 3 = tier 1 + 0.30);
- a cycle starts at local midnight on ``cycle_start_day`` (1-28, so every
  month has it) of every month, or of ``cycle_start_month`` every year;
- a household adjustment (``AccountTierAdjustment``) is an input of pricing,
  not tariff state: it widens every boundary by the same extra units;
- ``split_by_tiers`` is exact: its pieces add up to the consumption, and the
  same consumption priced in one go or in any number of pieces lands in the
  same steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum

from meterpay.tariffs.apportion import to_units
from meterpay.tariffs.fields import (
    TariffInvalid,
    as_choice,
    as_int,
    as_list,
    as_object,
    as_price,
    as_quantity,
    decimal_text,
    field_scope,
    set_field,
)

MAX_CYCLE_START_DAY = 28


class Cycle(StrEnum):
    """How long tiers accumulate before they start again from zero."""

    MONTHLY = "monthly"
    YEARLY = "yearly"


@dataclass(frozen=True, slots=True)
class TierStep:
    """One step: consumption up to ``up_to`` per cycle (``None``: no limit) at one price.

    Exactly one of ``price`` (absolute, 元 per unit) and ``markup`` (over the
    base price) is given.
    """

    up_to: Decimal | None
    price: Decimal | None = None
    markup: Decimal | None = None

    def __post_init__(self) -> None:
        if self.up_to is not None:
            set_field(self, "up_to", as_quantity(self.up_to, "up_to", positive=True))
        if (self.price is None) == (self.markup is None):
            raise TariffInvalid("price", "give exactly one of price or markup")
        if self.price is not None:
            set_field(self, "price", as_price(self.price, "price"))
        if self.markup is not None:
            set_field(self, "markup", as_price(self.markup, "markup"))

    def markup_over(self, base: Decimal) -> Decimal:
        """This step's price minus the base (negative if an absolute price is below it)."""
        return self.markup if self.markup is not None else self.price_over(base) - base

    def price_over(self, base: Decimal) -> Decimal:
        if self.price is not None:
            return self.price
        return base + (self.markup or Decimal(0))

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "up_to": None if self.up_to is None else decimal_text(self.up_to)
        }
        if self.price is not None:
            data["price"] = decimal_text(self.price)
        if self.markup is not None:
            data["markup"] = decimal_text(self.markup)
        return data

    @classmethod
    def from_dict(cls, data: object) -> TierStep:
        fields = as_object(data, "", ("up_to",), ("price", "markup"))
        up_to = fields["up_to"]
        price, markup = fields.get("price"), fields.get("markup")
        return cls(
            up_to=None if up_to is None else as_quantity(up_to, "up_to", positive=True),
            price=None if price is None else as_price(price, "price"),
            markup=None if markup is None else as_price(markup, "markup"),
        )


@dataclass(frozen=True, slots=True)
class AccountTierAdjustment:
    """Extra units added to every tier boundary for one account (e.g. a large household)."""

    extra_units: Decimal

    def __post_init__(self) -> None:
        set_field(self, "extra_units", as_quantity(self.extra_units, "extra_units"))

    @classmethod
    def for_household(
        cls, persons: int, included_persons: int, units_per_extra_person: Decimal
    ) -> AccountTierAdjustment:
        """Wuxi style: above ``included_persons``, each extra person widens every boundary."""
        extra_persons = max(0, persons - included_persons)
        return cls(extra_persons * as_quantity(units_per_extra_person, "units_per_extra_person"))


@dataclass(frozen=True, slots=True)
class Tiers:
    """The steps of a tiered price and the cycle over which consumption accumulates."""

    cycle: Cycle
    steps: tuple[TierStep, ...]
    cycle_start_day: int = 1
    cycle_start_month: int = 1
    boundary_units: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_field(self, "cycle", as_choice(self.cycle, Cycle, "cycle"))
        set_field(self, "steps", tuple(self.steps))
        as_int(self.cycle_start_day, "cycle_start_day", 1, MAX_CYCLE_START_DAY)
        as_int(self.cycle_start_month, "cycle_start_month", 1, 12)
        if self.cycle is Cycle.MONTHLY and self.cycle_start_month != 1:
            raise TariffInvalid("cycle_start_month", "applies only to yearly cycles; leave it 1")
        self._check_steps()
        set_field(self, "boundary_units", tuple(to_units(bound) for bound in self.boundaries()))

    def _check_steps(self) -> None:
        if len(self.steps) < 2:
            raise TariffInvalid("steps", "a tiered price needs at least two steps")
        for index, step in enumerate(self.steps):
            if not isinstance(step, TierStep):
                raise TariffInvalid(f"steps[{index}]", "must be a TierStep")
        *bounded, last = self.steps
        if last.up_to is not None:
            raise TariffInvalid(f"steps[{len(bounded)}].up_to", "the last step has no limit (null)")
        previous = Decimal(0)
        for index, step in enumerate(bounded):
            if step.up_to is None:
                raise TariffInvalid(f"steps[{index}].up_to", "only the last step has no limit")
            if step.up_to <= previous:
                rule = f"must be above the previous step's limit ({decimal_text(previous)})"
                raise TariffInvalid(f"steps[{index}].up_to", rule)
            previous = step.up_to

    def boundaries(self, adjustment: AccountTierAdjustment | None = None) -> tuple[Decimal, ...]:
        """The upper bounds of every step but the last, widened by the account's adjustment."""
        extra = adjustment.extra_units if adjustment is not None else Decimal(0)
        return tuple(step.up_to + extra for step in self.steps if step.up_to is not None)

    def boundaries_in_units(self, adjustment: AccountTierAdjustment | None) -> tuple[int, ...]:
        """``boundaries`` in 0.0001 steps, as pricing counts."""
        if adjustment is None or not adjustment.extra_units:
            return self.boundary_units
        extra = to_units(adjustment.extra_units)
        return tuple(bound + extra for bound in self.boundary_units)

    def cycle_start_on(self, day: date) -> date:
        """The first day of the cycle that ``day`` falls in."""
        if self.cycle is Cycle.MONTHLY:
            start = day.replace(day=self.cycle_start_day)
            if start > day:
                year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
                start = date(year, month, self.cycle_start_day)
            return start
        start = date(day.year, self.cycle_start_month, self.cycle_start_day)
        return start if start <= day else start.replace(year=day.year - 1)

    def next_cycle_start(self, cycle_start: date) -> date:
        """The first day of the cycle after the one starting on ``cycle_start``."""
        if self.cycle is Cycle.YEARLY:
            return cycle_start.replace(year=cycle_start.year + 1)
        if cycle_start.month == 12:
            return cycle_start.replace(year=cycle_start.year + 1, month=1)
        return cycle_start.replace(month=cycle_start.month + 1)

    def to_dict(self) -> dict[str, object]:
        return {
            "cycle": self.cycle.value,
            "cycle_start_day": self.cycle_start_day,
            "cycle_start_month": self.cycle_start_month,
            "steps": [step.to_dict() for step in self.steps],
        }

    @classmethod
    def from_dict(cls, data: object) -> Tiers:
        fields = as_object(data, "", ("cycle", "steps"), ("cycle_start_day", "cycle_start_month"))
        steps = []
        for index, item in enumerate(as_list(fields["steps"], "steps")):
            with field_scope(f"steps[{index}]"):
                steps.append(TierStep.from_dict(item))
        return cls(
            cycle=as_choice(fields["cycle"], Cycle, "cycle"),
            steps=tuple(steps),
            cycle_start_day=as_int(
                fields.get("cycle_start_day", 1), "cycle_start_day", 1, MAX_CYCLE_START_DAY
            ),
            cycle_start_month=as_int(
                fields.get("cycle_start_month", 1), "cycle_start_month", 1, 12
            ),
        )


def split_by_tiers(consumed: int, units: int, boundaries: tuple[int, ...]) -> list[int]:
    """Units of ``(consumed, consumed + units]`` falling in each step, boundaries in units.

    A step covers ``(previous boundary, boundary]``, so a boundary value
    belongs to the lower step. One piece per step (the last one unbounded).
    """
    low, high = consumed, consumed + units
    pieces = []
    floor = 0
    for bound in boundaries:
        pieces.append(max(0, min(high, bound) - max(low, floor)))
        floor = bound
    pieces.append(max(0, high - max(low, floor)))
    return pieces
