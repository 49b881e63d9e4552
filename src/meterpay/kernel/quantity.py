"""Metered quantities (kWh, m3) and the utilities they belong to.

A quantity is a ``Decimal`` with at most 4 decimals, the resolution at which
register values and consumption are stored; it is never a float.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Final

QUANTITY_PLACES: Final = 4
QUANTITY_QUANTUM: Final = Decimal("0.0001")


class Utility(StrEnum):
    ELECTRICITY = "electricity"
    WATER = "water"

    @property
    def unit(self) -> str:
        return "kWh" if self is Utility.ELECTRICITY else "m³"


class InvalidQuantity(ValueError):
    """A register value or consumption that is not a valid quantity."""


def parse_quantity(value: Decimal | str | int) -> Decimal:
    """Parse a quantity with at most 4 decimals; floats are refused."""
    if type(value) is Decimal and value.is_finite():  # the hot path: no text to parse
        try:
            exact = value.quantize(QUANTITY_QUANTUM)
        except InvalidOperation as exc:
            raise InvalidQuantity(f"{value} is too large for a quantity") from exc
        if exact != value:
            raise InvalidQuantity(f"{value} has more than {QUANTITY_PLACES} decimals")
        return exact
    if isinstance(value, bool | float):
        raise InvalidQuantity(f"{value!r}: quantities are never floats; pass a string or Decimal")
    try:
        quantity = value if isinstance(value, Decimal) else Decimal(value)
    except InvalidOperation as exc:
        raise InvalidQuantity(f"{value!r} is not a number") from exc
    if not quantity.is_finite():
        raise InvalidQuantity(f"{value!r} is not a finite number")
    exponent = quantity.normalize().as_tuple().exponent
    if not isinstance(exponent, int):  # non-finite values are refused above
        raise InvalidQuantity(f"{value!r} is not a finite number")
    if -exponent > QUANTITY_PLACES:
        raise InvalidQuantity(f"{value} has more than {QUANTITY_PLACES} decimals")
    return quantity.quantize(QUANTITY_QUANTUM)
