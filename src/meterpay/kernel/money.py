"""Money and prices, exact to the fen.

Invariants:
- money is an integer number of fen (分), never a float;
- a unit price carries at most 4 decimals of a yuan (元), e.g. 0.4883 元/kWh;
- an amount is rounded once, half up, to the fen (四舍五入), and the sub-fen
  remainder is carried by the caller rather than rounded away (see
  ``billing.rules``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final

FEN_PER_YUAN: Final = 100
PRICE_PLACES: Final = 4
PRICE_QUANTUM: Final = Decimal("0.0001")
FEN_QUANTUM: Final = Decimal("0.01")


class InvalidAmount(ValueError):
    """A text or number that is not a valid amount of money or price."""


def _to_decimal(value: Decimal | str | int) -> Decimal:
    if isinstance(value, bool | float):
        raise InvalidAmount(f"{value!r}: money is never a float; pass a string or Decimal")
    try:
        result = Decimal(value) if not isinstance(value, Decimal) else value
    except InvalidOperation as exc:
        raise InvalidAmount(f"{value!r} is not a number") from exc
    if not result.is_finite():
        raise InvalidAmount(f"{value!r} is not a finite number")
    return result


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    if not isinstance(exponent, int):  # NaN and infinities are refused before this
        raise InvalidAmount(f"{value} is not a finite number")
    return max(0, -exponent)


@dataclass(frozen=True, order=True, slots=True)
class Money:
    """An amount in fen. ``str(Money(1234)) == "12.34"`` (元)."""

    fen: int

    def __post_init__(self) -> None:
        if isinstance(self.fen, bool) or not isinstance(self.fen, int):
            raise InvalidAmount(f"fen must be an int, got {self.fen!r}")

    @classmethod
    def zero(cls) -> Money:
        return cls(0)

    @classmethod
    def from_yuan(cls, value: Decimal | str | int) -> Money:
        """Parse an amount in yuan with at most 2 decimals ("12.34")."""
        amount = _to_decimal(value)
        if _places(amount) > 2:
            raise InvalidAmount(f"{value} has more than 2 decimals; money is exact to the fen")
        return cls(int(amount * FEN_PER_YUAN))

    @property
    def yuan(self) -> Decimal:
        return (Decimal(self.fen) / FEN_PER_YUAN).quantize(FEN_QUANTUM)

    def __add__(self, other: Money) -> Money:
        return Money(self.fen + other.fen)

    def __sub__(self, other: Money) -> Money:
        return Money(self.fen - other.fen)

    def __neg__(self) -> Money:
        return Money(-self.fen)

    def __str__(self) -> str:
        return str(self.yuan)

    def __repr__(self) -> str:
        return f"Money({self.yuan} 元)"


def round_to_fen(amount_yuan: Decimal) -> Money:
    """Round an exact amount in yuan half up to the fen (四舍五入)."""
    return Money(int(amount_yuan.quantize(FEN_QUANTUM, rounding=ROUND_HALF_UP) * FEN_PER_YUAN))


def parse_unit_price(value: Decimal | str | int) -> Decimal:
    """Parse a non-negative unit price in yuan with at most 4 decimals."""
    price = _to_decimal(value)
    if price < 0:
        raise InvalidAmount(f"unit price {value} is negative")
    if _places(price) > PRICE_PLACES:
        raise InvalidAmount(f"unit price {value} has more than {PRICE_PLACES} decimals")
    return price.quantize(PRICE_QUANTUM)
