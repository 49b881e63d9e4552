"""The components of one tariff version, as validated, immutable data.

A version always has a base energy price; tiers (阶梯), time-of-use (尖峰平谷),
per-unit surcharges, fixed monthly fees and a top-up fee are optional.
``TariffComponents.to_dict()`` is the JSON stored in
``tariff_versions.components`` and exported as YAML/JSON; ``from_dict``
reads it back.

Invariants:
- every component validates itself when built; a refusal is a
  ``TariffInvalid`` naming the field (``tiers.steps[1].up_to``) and the rule;
- ``from_dict(x.to_dict()) == x``; unknown keys and floats are refused;
- every unit price a version can charge has at most 4 decimals: derived
  prices (multipliers) are rounded half up to 0.0001 元 when the version is
  built, never while pricing;
- with tiers and time-of-use together, a period's price in tier n is the
  period's price plus tier n's mark-up over the base (浙江: 按高峰、低谷合计
  电量执行阶梯电价), so tier prices must not be below the base;
- a top-up service fee is off unless set, and setting one always comes with
  the warning of 物业管理条例 第四十四条.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.money import Money
from meterpay.tariffs.fields import (
    TariffInvalid,
    as_bool,
    as_choice,
    as_code,
    as_decimal,
    as_list,
    as_money,
    as_object,
    as_price,
    as_text,
    decimal_text,
    field_scope,
    set_field,
)
from meterpay.tariffs.tiers import AccountTierAdjustment, Cycle, Tiers, TierStep
from meterpay.tariffs.tou import (
    DayType,
    Period,
    PeriodPrice,
    TimeOfUse,
    TouSchedule,
    TouWindow,
)

__all__ = [
    "AccountTierAdjustment",
    "Cycle",
    "DayType",
    "EnergyPrice",
    "FeePeriod",
    "FixedFee",
    "Period",
    "PeriodPrice",
    "PricePoint",
    "Surcharge",
    "TariffComponents",
    "TariffInvalid",
    "TierStep",
    "Tiers",
    "TimeOfUse",
    "TopUpFee",
    "TouSchedule",
    "TouWindow",
    "UnpricedPeriod",
    "topup_fee_warnings",
]


T = TypeVar("T")


class UnpricedPeriod(InvalidInput):
    """Consumption reported in a time-of-use period the tariff has no price for."""

    code = "unpriced_period"


@dataclass(frozen=True, slots=True)
class EnergyPrice:
    """The base unit price in 元 per kWh or m³: the flat price, tier 1, the TOU base."""

    unit_price: Decimal

    def __post_init__(self) -> None:
        set_field(self, "unit_price", as_price(self.unit_price, "unit_price"))

    def to_dict(self) -> dict[str, object]:
        return {"unit_price": decimal_text(self.unit_price)}

    @classmethod
    def from_dict(cls, data: object) -> EnergyPrice:
        fields = as_object(data, "", ("unit_price",))
        return cls(as_price(fields["unit_price"], "unit_price"))


@dataclass(frozen=True, slots=True)
class Surcharge:
    """A per-unit charge on all consumption (水资源费, 污水处理费), its own line and revenue.

    ``government_levy`` marks a charge collected for the government; anything
    else added to a resold utility price draws a resale warning.
    """

    code: str
    name: str
    unit_price: Decimal
    government_levy: bool = False
    component: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        as_code(self.code, "code")
        as_text(self.name, "name")
        set_field(self, "unit_price", as_price(self.unit_price, "unit_price"))
        as_bool(self.government_levy, "government_levy")
        set_field(self, "component", f"surcharge:{self.code}")

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "name": self.name,
            "unit_price": decimal_text(self.unit_price),
            "government_levy": self.government_levy,
        }

    @classmethod
    def from_dict(cls, data: object) -> Surcharge:
        fields = as_object(data, "", ("code", "name", "unit_price"), ("government_levy",))
        return cls(
            code=as_code(fields["code"], "code"),
            name=as_text(fields["name"], "name"),
            unit_price=as_price(fields["unit_price"], "unit_price"),
            government_levy=as_bool(fields.get("government_levy", False), "government_levy"),
        )


class FeePeriod(StrEnum):
    MONTHLY = "monthly"


@dataclass(frozen=True, slots=True)
class FixedFee:
    """A fixed amount per period and account (monthly service fee, meter rental)."""

    code: str
    name: str
    amount: Money
    period: FeePeriod = FeePeriod.MONTHLY

    def __post_init__(self) -> None:
        as_code(self.code, "code")
        as_text(self.name, "name")
        set_field(self, "amount", as_money(self.amount, "amount"))
        if self.amount.fen == 0:
            raise TariffInvalid("amount", "a fee of 0 is no fee; leave it out")
        set_field(self, "period", as_choice(self.period, FeePeriod, "period"))

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "name": self.name,
            "amount": str(self.amount),
            "period": self.period.value,
        }

    @classmethod
    def from_dict(cls, data: object) -> FixedFee:
        fields = as_object(data, "", ("code", "name", "amount"), ("period",))
        return cls(
            code=as_code(fields["code"], "code"),
            name=as_text(fields["name"], "name"),
            amount=as_money(fields["amount"], "amount"),
            period=as_choice(fields.get("period", "monthly"), FeePeriod, "period"),
        )


@dataclass(frozen=True, slots=True)
class TopUpFee:
    """A top-up service fee: ``percent`` of the top-up or a ``fixed`` amount (not both)."""

    percent: Decimal | None = None
    fixed: Money | None = None

    def __post_init__(self) -> None:
        if (self.percent is None) == (self.fixed is None):
            raise TariffInvalid("percent", "give exactly one of percent or fixed")
        if self.percent is not None:
            percent = as_decimal(self.percent, "percent")
            if not 0 < percent <= 100 or percent != percent.quantize(Decimal("0.01")):
                raise TariffInvalid("percent", "must be above 0 and at most 100, 2 decimals")
            set_field(self, "percent", percent.quantize(Decimal("0.01")))
        if self.fixed is not None:
            set_field(self, "fixed", as_money(self.fixed, "fixed"))
            if self.fixed.fen == 0:
                raise TariffInvalid("fixed", "must be above 0")

    def to_dict(self) -> dict[str, object]:
        if self.percent is not None:
            return {"percent": decimal_text(self.percent)}
        return {"fixed": str(self.fixed)}

    @classmethod
    def from_dict(cls, data: object) -> TopUpFee:
        fields = as_object(data, "", (), ("percent", "fixed"))
        percent, fixed = fields.get("percent"), fields.get("fixed")
        return cls(
            percent=None if percent is None else as_decimal(percent, "percent"),
            fixed=None if fixed is None else as_money(fixed, "fixed"),
        )


def topup_fee_warnings(fee: TopUpFee | None, *, residential: bool = True) -> list[str]:
    """The legal warnings that come with a top-up service fee (none when it is off)."""
    if fee is None:
        return []
    warnings = [
        "物业管理条例 第四十四条：物业服务企业代收水电费的，不得向业主收取手续费等额外费用。"
        " / Property Management Regulations art. 44: a property company collecting utility"
        " charges may not charge owners a handling fee or any other extra fee."
    ]
    if residential:
        warnings.append(
            "对居民用户收取充值服务费在多数情况下违法，默认关闭。"
            " / A top-up service fee on residential supply is unlawful in most cases;"
            " it is off by default."
        )
    return warnings


@dataclass(frozen=True, slots=True)
class PricePoint:
    """One unit price a version can charge for energy (1-based tier, schedule index)."""

    tier: int | None
    schedule: int | None
    period: Period | None
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class TariffComponents:
    """Everything one tariff version charges; see the module docstring for the rules.

    Derived when built, for pricing without per-call work: ``is_flat`` (no
    tiers, no time-of-use: the fast path); ``tier_prices``, per tier, the
    price without time-of-use or the mark-up added to every period's price
    with it; ``period_prices``, per schedule, every priced period's price.
    """

    energy: EnergyPrice
    tiers: Tiers | None = None
    time_of_use: TimeOfUse | None = None
    surcharges: tuple[Surcharge, ...] = ()
    fixed_fees: tuple[FixedFee, ...] = ()
    topup_fee: TopUpFee | None = None
    is_flat: bool = field(init=False, repr=False, compare=False)
    tier_prices: tuple[Decimal, ...] = field(init=False, repr=False, compare=False)
    period_prices: tuple[dict[Period, Decimal], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check_types()
        set_field(self, "surcharges", tuple(self.surcharges))
        set_field(self, "fixed_fees", tuple(self.fixed_fees))
        _check_unique_codes("surcharges", [s.code for s in self.surcharges])
        _check_unique_codes("fixed_fees", [f.code for f in self.fixed_fees])
        base = self.energy.unit_price
        set_field(self, "is_flat", self.tiers is None and self.time_of_use is None)
        set_field(self, "tier_prices", self._tier_prices(base))
        tou = self.time_of_use
        set_field(self, "period_prices", tou.resolved_prices(base) if tou is not None else ())

    def _check_types(self) -> None:
        expected: tuple[tuple[str, object, type], ...] = (
            ("energy", self.energy, EnergyPrice),
            ("tiers", self.tiers, Tiers),
            ("time_of_use", self.time_of_use, TimeOfUse),
            ("topup_fee", self.topup_fee, TopUpFee),
        )
        for name, value, kind in expected:
            if not isinstance(value, kind) and (value is not None or name == "energy"):
                raise TariffInvalid(name, f"must be a {kind.__name__}")
        for name, items, kind in (
            ("surcharges", self.surcharges, Surcharge),
            ("fixed_fees", self.fixed_fees, FixedFee),
        ):
            for index, item in enumerate(items):
                if not isinstance(item, kind):
                    raise TariffInvalid(f"{name}[{index}]", f"must be a {kind.__name__}")

    def _tier_prices(self, base: Decimal) -> tuple[Decimal, ...]:
        """Tier prices without time-of-use, or tier mark-ups over the period prices with it."""
        if self.tiers is None:
            return ()
        if self.time_of_use is None:
            return tuple(step.price_over(base) for step in self.tiers.steps)
        markups = tuple(step.markup_over(base) for step in self.tiers.steps)
        for index, markup in enumerate(markups):
            if markup < 0:
                rule = (
                    f"with time-of-use a tier adds a mark-up to the period prices;"
                    f" a price below the base ({base}) would be a negative mark-up"
                )
                raise TariffInvalid(f"tiers.steps[{index}].price", rule)
        return markups

    def unit_price(self, tier: int | None, period: Period | None, schedule: int = 0) -> Decimal:
        """The energy price of a 1-based ``tier`` in ``period`` under ``schedule``."""
        tier_index = 0 if tier is None else tier - 1
        if self.time_of_use is None:
            return self.tier_prices[tier_index] if self.tiers else self.energy.unit_price
        prices = self.period_prices[schedule]
        if period not in prices:
            at = f"schedule {schedule}" if len(self.period_prices) > 1 else "this tariff"
            raise UnpricedPeriod(f"period {period} has no price in {at}", period=str(period))
        markup = self.tier_prices[tier_index] if self.tiers else Decimal(0)
        return prices[period] + markup

    def price_points(self) -> list[PricePoint]:
        """Every energy unit price this version can charge, tier by tier, period by period."""
        tiers: list[int | None] = list(range(1, len(self.tier_prices) + 1)) or [None]
        if self.time_of_use is None:
            return [PricePoint(t, None, None, self.unit_price(t, None)) for t in tiers]
        return [
            PricePoint(tier, index, period, self.unit_price(tier, period, index))
            for index, prices in enumerate(self.period_prices)
            for period in Period
            if period in prices
            for tier in tiers
        ]

    def to_dict(self) -> dict[str, object]:
        """The plain JSON form: decimals and money as text, every key present."""
        return {
            "energy": self.energy.to_dict(),
            "tiers": None if self.tiers is None else self.tiers.to_dict(),
            "time_of_use": None if self.time_of_use is None else self.time_of_use.to_dict(),
            "surcharges": [surcharge.to_dict() for surcharge in self.surcharges],
            "fixed_fees": [fee.to_dict() for fee in self.fixed_fees],
            "topup_fee": None if self.topup_fee is None else self.topup_fee.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: object) -> TariffComponents:
        """Read the JSON form back; errors name the field from the document's top."""
        optional = ("tiers", "time_of_use", "surcharges", "fixed_fees", "topup_fee")
        fields = as_object(data, "", ("energy",), optional)
        with field_scope("energy"):
            energy = EnergyPrice.from_dict(fields["energy"])
        tiers = _optional(fields, "tiers", Tiers.from_dict)
        tou = _optional(fields, "time_of_use", TimeOfUse.from_dict)
        topup = _optional(fields, "topup_fee", TopUpFee.from_dict)
        surcharges = _listed(fields, "surcharges", Surcharge.from_dict)
        fees = _listed(fields, "fixed_fees", FixedFee.from_dict)
        return cls(energy, tiers, tou, tuple(surcharges), tuple(fees), topup)


def _optional(fields: Mapping[str, object], key: str, read: Callable[[object], T]) -> T | None:
    value = fields.get(key)
    if value is None:
        return None
    with field_scope(key):
        return read(value)


def _listed(fields: Mapping[str, object], key: str, read: Callable[[object], T]) -> list[T]:
    items = []
    for index, item in enumerate(as_list(fields.get(key) or [], key)):
        with field_scope(f"{key}[{index}]"):
            items.append(read(item))
    return items


def _check_unique_codes(name: str, codes: list[str]) -> None:
    first: dict[str, int] = {}
    for index, code in enumerate(codes):
        if code in first:
            raise TariffInvalid(f"{name}[{index}].code", f"repeats {name}[{first[code]}].code")
        first[code] = index
