"""Packed BCD as meters send it: two decimal digits a byte, least significant byte first.

Invariants:
- a value read from the wire is a ``Decimal`` built from its digits, never a float;
- a nibble above 9 in a value is a ``FrameError`` (a corrupt or misread frame), except
  in addresses, which may carry ``A`` wildcard digits and are kept as hex text;
- a signed value keeps its sign in the top bit of its most significant (last) byte.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Final

from meterpay.drivers.errors import FrameError

SIGN_BIT: Final = 0x80
_HEX_DIGITS: Final = frozenset("0123456789ABCDEF")


def bcd_byte(value: int) -> int:
    """The packed BCD byte for 0..99 (``42`` -> ``0x42``)."""
    if not 0 <= value <= 99:
        raise ValueError(f"{value} does not fit one BCD byte (0..99)")
    return (value // 10) << 4 | value % 10


def bcd_bytes(values: Iterable[int]) -> bytes:
    """Each of 0..99 as one packed BCD byte, in the order given."""
    return bytes(bcd_byte(value) for value in values)


def byte_value(byte: int) -> int:
    """The 0..99 value of one packed BCD byte; a nibble above 9 is refused."""
    high, low = byte >> 4, byte & 0x0F
    if high > 9 or low > 9:
        raise FrameError(f"0x{byte:02X} is not a BCD byte")
    return high * 10 + low


def byte_values(data: bytes) -> list[int]:
    """Each byte's 0..99 value, in wire order (``ss mm hh`` stays seconds first)."""
    return [byte_value(byte) for byte in data]


def digits_from_wire(data: bytes) -> str:
    """Hex text of little-endian BCD, most significant digit first (``25 04`` -> ``0425``).

    Used for addresses, where ``A`` digits are wildcards and must survive a round trip.
    """
    return data[::-1].hex().upper()


def wire_from_digits(text: str, size: int, *, what: str = "address") -> bytes:
    """The little-endian wire bytes of ``2 * size`` hex digits (``0425`` -> ``25 04``)."""
    digits = text.strip().upper()
    if len(digits) != 2 * size or not set(digits) <= _HEX_DIGITS:
        raise ValueError(f"{what} {text!r} must be {2 * size} digits")
    return bytes.fromhex(digits)[::-1]


def decimal_from_bcd(data: bytes, decimals: int, *, signed: bool = False) -> Decimal:
    """The value of little-endian packed BCD with ``decimals`` implied decimal places.

    ``42 06 12 00`` with 2 decimals is ``1206.42``; with ``signed``, the top bit of the
    last byte is the sign (``0x80`` set = negative) and is not a digit.
    """
    if not data:
        raise FrameError("an empty BCD value")
    negative = signed and bool(data[-1] & SIGN_BIT)
    body = data[:-1] + bytes([data[-1] & ~SIGN_BIT & 0xFF]) if signed else data
    number = 0
    for byte in reversed(body):
        number = number * 100 + byte_value(byte)
    # a set sign bit on zero is still zero, not Decimal("-0.00")
    sign = int(negative and number != 0)
    return Decimal((sign, tuple(int(d) for d in str(number)), -decimals))


def bcd_from_decimal(value: Decimal, size: int, decimals: int, *, signed: bool = False) -> bytes:
    """Little-endian packed BCD of ``value`` in ``size`` bytes with ``decimals`` places.

    The inverse of ``decimal_from_bcd``; a value that does not fit, or has more decimals
    than the format, is refused rather than rounded.
    """
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {decimals} decimals")
    number = abs(int(scaled))
    # with a sign bit the top digit can only reach 7 (0x80 is the sign)
    limit = 8 * 10 ** (2 * size - 1) if signed else 10 ** (2 * size)
    if number >= limit or (value < 0 and not signed):
        raise ValueError(f"{value} does not fit {size} BCD bytes with {decimals} decimals")
    digits = bytes.fromhex(f"{number:0{2 * size}d}")[::-1]
    if signed and value < 0:
        return digits[:-1] + bytes([digits[-1] | SIGN_BIT])
    return digits
