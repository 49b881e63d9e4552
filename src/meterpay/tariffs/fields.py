"""Field-named validation of tariff data: every refusal names the field and the rule.

Invariants:
- a ``TariffInvalid`` carries ``field`` (a path such as
  ``tiers.steps[1].up_to``) and ``rule`` (what the value must be); its message
  is ``"<field>: <rule>"``;
- a component names its fields relative to itself; whoever builds it from a
  larger document adds the prefix with ``field_scope``, so the path in the
  final error starts at the top of the stored document;
- numbers are ``Decimal``, ``int`` or text, never ``float`` or ``bool``: a
  float has already lost the exact price it was meant to carry.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import time
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Final, TypeVar

from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.money import FEN_PER_YUAN, PRICE_PLACES, Money
from meterpay.kernel.quantity import QUANTITY_PLACES

E = TypeVar("E", bound=StrEnum)

_CODE: Final = re.compile(r"[a-z][a-z0-9_]{0,39}")
_CLOCK: Final = re.compile(r"([01]\d|2[0-4]):([0-5]\d)")


class TariffInvalid(InvalidInput):
    """A tariff component breaks a rule; ``field`` says where, ``rule`` says what."""

    code = "tariff_invalid"

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}", field=field, rule=rule)
        self.field = field
        self.rule = rule

    def within(self, prefix: str) -> TariffInvalid:
        """The same error, its field path placed under ``prefix``."""
        separator = "" if self.field.startswith("[") else "."
        return TariffInvalid(f"{prefix}{separator}{self.field}", self.rule)


@contextmanager
def field_scope(prefix: str) -> Iterator[None]:
    """Re-raise any ``TariffInvalid`` from the block with its field under ``prefix``."""
    try:
        yield
    except TariffInvalid as exc:
        raise exc.within(prefix) from exc


def set_field(instance: object, name: str, value: object) -> None:
    """Store a normalised value on a frozen dataclass during ``__post_init__``."""
    object.__setattr__(instance, name, value)


def as_decimal(value: object, field: str) -> Decimal:
    if isinstance(value, bool | float):
        raise TariffInvalid(field, f'write numbers as text ("0.4883"), not {value!r}')
    if not isinstance(value, Decimal | int | str):
        raise TariffInvalid(field, f"must be a number, got {type(value).__name__}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(value)
    except InvalidOperation:
        raise TariffInvalid(field, f"must be a number, got {value!r}") from None
    if not number.is_finite():
        raise TariffInvalid(field, f"must be a finite number, got {value!r}")
    return number


def _with_places(value: object, field: str, places: int, what: str) -> Decimal:
    number = as_decimal(value, field)
    try:
        exact = number.quantize(Decimal(1).scaleb(-places))
    except InvalidOperation:
        raise TariffInvalid(field, f"{what} {value} is too large") from None
    if exact != number:
        raise TariffInvalid(field, f"{what} {value} has more than {places} decimals")
    return exact


def as_price(value: object, field: str) -> Decimal:
    """A unit price in 元 (or a mark-up), at least 0, with at most 4 decimals."""
    price = _with_places(value, field, PRICE_PLACES, "price")
    if price < 0:
        raise TariffInvalid(field, f"price {value} must not be negative")
    return price


def as_multiplier(value: object, field: str) -> Decimal:
    """A factor on a price (1.7, 0.38), above 0, with at most 4 decimals."""
    factor = _with_places(value, field, PRICE_PLACES, "multiplier")
    if factor <= 0:
        raise TariffInvalid(field, f"multiplier {value} must be above 0")
    return factor


def as_quantity(value: object, field: str, *, positive: bool = False) -> Decimal:
    """A quantity in kWh or m³ with at most 4 decimals; above 0 when ``positive``."""
    quantity = _with_places(value, field, QUANTITY_PLACES, "quantity")
    if quantity < 0 or (positive and quantity == 0):
        bound = "above 0" if positive else "at least 0"
        raise TariffInvalid(field, f"quantity {value} must be {bound}")
    return quantity


def as_money(value: object, field: str) -> Money:
    """Money: a ``Money`` or an amount in 元 with at most 2 decimals; never negative."""
    if isinstance(value, Money):
        money = value
    else:
        yuan = _with_places(value, field, 2, "amount")
        money = Money(int(yuan * FEN_PER_YUAN))
    if money.fen < 0:
        raise TariffInvalid(field, f"amount {money} must not be negative")
    return money


def as_int(value: object, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TariffInvalid(field, f"must be a whole number from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise TariffInvalid(field, f"must be from {low} to {high}, got {value}")
    return value


def as_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise TariffInvalid(field, f"must be true or false, got {value!r}")
    return value


def as_choice(value: object, choices: type[E], field: str) -> E:
    if isinstance(value, str):
        try:
            return choices(value)
        except ValueError:
            pass
    allowed = ", ".join(member.value for member in choices)
    raise TariffInvalid(field, f"must be one of {allowed}, got {value!r}")


def as_code(value: object, field: str) -> str:
    """A machine code: lower-case letters, digits and ``_``, starting with a letter."""
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        rule = "must be a code of lower-case letters, digits and _ (e.g. water_resource)"
        raise TariffInvalid(field, f"{rule}, got {value!r}")
    return value


def as_text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TariffInvalid(field, f"must be a non-empty text, got {value!r}")
    return value


def as_clock(value: object, field: str) -> time:
    """A local time of day in whole minutes: a ``time`` or "HH:MM" ("24:00" is midnight)."""
    if isinstance(value, str):
        match = _CLOCK.fullmatch(value)
        if not match or (match[1] == "24" and match[2] != "00"):
            raise TariffInvalid(field, f'must be a time "HH:MM" from 00:00 to 24:00, got {value!r}')
        return time(int(match[1]) % 24, int(match[2]))
    if not isinstance(value, time) or value.tzinfo is not None:
        raise TariffInvalid(field, f"must be a local time of day, got {value!r}")
    if value.second or value.microsecond:
        raise TariffInvalid(field, f"must be whole minutes, got {value.isoformat()}")
    return value


def as_object(
    value: object, field: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> Mapping[str, object]:
    """A JSON object with exactly the known keys: all of ``required``, some of ``optional``."""
    if not isinstance(value, Mapping):
        raise TariffInvalid(field or "(top)", f"must be an object, got {type(value).__name__}")
    prefix = f"{field}." if field else ""
    for key in value:
        if key not in required and key not in optional:
            known = ", ".join((*required, *optional))
            raise TariffInvalid(f"{prefix}{key}", f"unknown key (known keys: {known})")
    for key in required:
        if key not in value:
            raise TariffInvalid(f"{prefix}{key}", "is required")
    return value


def as_list(value: object, field: str) -> list[object]:
    if not isinstance(value, list | tuple):
        raise TariffInvalid(field, f"must be a list, got {type(value).__name__}")
    return list(value)


def decimal_text(value: Decimal) -> str:
    """A decimal as plain JSON-safe text without trailing zeros ("0.4883", "2880", "0.5")."""
    return format(value.normalize(), "f")
