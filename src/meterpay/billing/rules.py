"""Pricing consumption with flat, versioned unit prices, exact to the fen over time.

Invariants:
- consumption is priced by the version in force when it was used: an
  interval spanning a version change is split at the change, pro rata by time;
- the pieces of a split have 4 decimals, are never negative and add up
  exactly to the consumption; no piece shrinks when the consumption grows,
  so more consumption never costs less;
- rounding never leaks: each charge is rounded to the fen and the sub-fen
  remainder is carried to the next charge, so a run of charges adds up to the
  rounded price of the run's total. The carry stays in ``[-0.005, 0.005)`` 元.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_DOWN, Decimal
from fractions import Fraction
from itertools import pairwise
from typing import TYPE_CHECKING, Final, Protocol

from meterpay.kernel.clock import require_aware
from meterpay.kernel.errors import DomainError
from meterpay.kernel.money import FEN_PER_YUAN, FEN_QUANTUM, Money, parse_unit_price, round_to_fen
from meterpay.kernel.quantity import QUANTITY_QUANTUM, InvalidQuantity, parse_quantity

if TYPE_CHECKING:
    from meterpay.tariffs.components import TariffComponents

CARRY_LOW: Final = Decimal("-0.005")
CARRY_HIGH: Final = Decimal("0.005")
_UNITS_PER_QUANTITY: Final = 10_000


class NoTariffInForce(DomainError):
    """Consumption falls in a time for which no tariff version was in force."""

    code = "no_tariff_in_force"


@dataclass(frozen=True, slots=True)
class PriceVersion:
    """One version of a flat tariff: a unit price (元 per kWh or m³) from a moment on."""

    version_id: int
    effective_from: datetime
    unit_price: Decimal
    components: TariffComponents | None = None
    """The full price rules; None (or energy only) prices flat at ``unit_price``."""

    @property
    def is_flat(self) -> bool:
        c = self.components
        return c is None or (c.tiers is None and c.time_of_use is None and not c.surcharges)

    def __post_init__(self) -> None:
        require_aware(self.effective_from)
        object.__setattr__(self, "unit_price", parse_unit_price(self.unit_price))


@dataclass(frozen=True, slots=True)
class ChargeLine:
    """A quantity priced by one version; ``exact_amount`` (元) is not rounded."""

    version_id: int
    quantity: Decimal
    unit_price: Decimal
    exact_amount: Decimal


def split_by_versions(
    quantity: Decimal,
    start: datetime,
    end: datetime,
    versions: Iterable[PriceVersion],
) -> list[ChargeLine]:
    """Price ``quantity`` used over ``[start, end)``, one line per version in force.

    Raises ``NoTariffInForce`` if part of the interval has no version,
    ``InvalidQuantity`` for a negative or too precise quantity.
    """
    quantity = _non_negative_quantity(quantity)
    segments = _segments(require_aware(start), require_aware(end), _ordered(versions))
    if len(segments) == 1:  # the usual case: one price for the whole interval
        return [_line(segments[0][0], quantity)]
    shares = _apportion(quantity, [duration for _, duration in segments])
    return [_line(version, share) for (version, _), share in zip(segments, shares, strict=True)]


def pieces_by_version(
    quantity: Decimal, start: datetime, end: datetime, versions: Iterable[PriceVersion]
) -> list[tuple[PriceVersion, Decimal, datetime, datetime]]:
    """``split_by_versions`` with each piece's own time span: (version, quantity, start, end)."""
    lines = split_by_versions(quantity, start, end, versions)
    if len(lines) == 1:
        only = next(v for v in _ordered(versions) if v.version_id == lines[0].version_id)
        return [(only, lines[0].quantity, start, end)]
    by_id = {v.version_id: v for v in versions}
    bounds = [start, *(by_id[line.version_id].effective_from for line in lines[1:]), end]
    return [
        (by_id[line.version_id], line.quantity, a, b)
        for line, (a, b) in zip(lines, pairwise(bounds), strict=True)
    ]


class HasExactAmount(Protocol):
    @property
    def exact_amount(self) -> Decimal: ...


def charge_with_carry(lines: Iterable[HasExactAmount], carry: Decimal) -> tuple[Money, Decimal]:
    """Round the lines' total plus the previous carry to the fen; return the new carry."""
    if not CARRY_LOW <= carry < CARRY_HIGH:
        raise ValueError(f"carry {carry} is outside [{CARRY_LOW}, {CARRY_HIGH})")
    exact = sum((line.exact_amount for line in lines), start=carry)
    amount = _round_half_toward_positive(exact)
    return amount, exact - amount.yuan


def _round_half_toward_positive(exact: Decimal) -> Money:
    """Half up (四舍五入) for every non-negative amount.

    A negative amount only arises as zero consumption after a carry of -0.005;
    rounding it half towards zero gives 0, not -0.01, which keeps the charge
    non-negative and the carry inside its interval.
    """
    if exact >= 0:
        return round_to_fen(exact)
    return Money(int(exact.quantize(FEN_QUANTUM, rounding=ROUND_HALF_DOWN) * FEN_PER_YUAN))


def _non_negative_quantity(quantity: Decimal) -> Decimal:
    parsed = parse_quantity(quantity)
    if parsed < 0:
        raise InvalidQuantity(f"consumption {quantity} is negative")
    return parsed


def _ordered(versions: Iterable[PriceVersion]) -> list[PriceVersion]:
    ordered = sorted(versions, key=lambda version: version.effective_from)
    for earlier, later in pairwise(ordered):
        if earlier.effective_from == later.effective_from:
            raise ValueError(
                f"versions {earlier.version_id} and {later.version_id} "
                f"both take effect at {later.effective_from.isoformat()}"
            )
    return ordered


def _segments(
    start: datetime, end: datetime, ordered: Sequence[PriceVersion]
) -> list[tuple[PriceVersion, int]]:
    """The versions in force over ``[start, end)``, each with its duration in microseconds."""
    if end < start:
        raise ValueError(f"interval ends ({end.isoformat()}) before it starts")
    in_force = [version for version in ordered if version.effective_from <= start]
    if not in_force:
        raise NoTariffInForce(f"no tariff in force at {start.isoformat()}", at=start.isoformat())
    changes = [version for version in ordered if start < version.effective_from < end]
    if not changes:  # one version for the whole interval: no durations needed
        return [(in_force[-1], 1)]
    applying = [in_force[-1], *changes]
    bounds = [start, *(version.effective_from for version in changes), end]
    durations = [(b - a) // timedelta(microseconds=1) for a, b in pairwise(bounds)]
    return list(zip(applying, durations, strict=True))


def _apportion(quantity: Decimal, weights: Sequence[int]) -> list[Decimal]:
    """Share ``quantity`` in 0.0001 units pro rata to ``weights``, exactly.

    D'Hondt's divisor method: everyone first gets the floor of their share,
    then each left-over unit goes to the largest ``weight / (units + 1)``
    (first on ties). Unlike "remainder to the last piece", it never takes
    units away from a piece when the quantity grows.
    """
    units = int(quantity * _UNITS_PER_QUANTITY)
    total = sum(weights)
    if total == 0:  # a zero-length interval has a single segment
        return [quantity]
    shares = [units * weight // total for weight in weights]
    for _ in range(units - sum(shares)):
        best = min(range(len(weights)), key=lambda i: Fraction(shares[i] + 1, weights[i]))
        shares[best] += 1
    return [Decimal(share) * QUANTITY_QUANTUM for share in shares]


def _line(version: PriceVersion, quantity: Decimal) -> ChargeLine:
    return ChargeLine(
        version_id=version.version_id,
        quantity=quantity,
        unit_price=version.unit_price,
        exact_amount=quantity * version.unit_price,
    )
