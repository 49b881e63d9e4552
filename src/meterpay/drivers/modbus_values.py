"""Values in Modbus registers: 16- and 32-bit integers and IEEE floats, with the vendor's
word order and a decimal scale.

Each register is big-endian; a 32-bit value spans two registers whose order varies by
vendor (``WordOrder.BIG``: high word first, as Eastron; ``LITTLE``: low word first).

Invariants:
- results are ``Decimal``: an integer times its ``scale`` exactly; a float32 as the
  shortest decimal that reads back as the same float32 (``1234.567``, not
  ``1234.5670166015625``), then times ``scale``;
- a NaN or infinite float is a ``FrameError``: a meter that sends one is not metering.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Final

from meterpay.drivers.errors import FrameError

ONE: Final = Decimal(1)


class RegisterType(StrEnum):
    UINT16 = "uint16"
    INT16 = "int16"
    UINT32 = "uint32"
    INT32 = "int32"
    FLOAT32 = "float32"

    @property
    def registers(self) -> int:
        return 1 if self in (RegisterType.UINT16, RegisterType.INT16) else 2


class WordOrder(StrEnum):
    BIG = "big"  # high word first
    LITTLE = "little"  # low word first


def value_bytes(registers: Sequence[int], word_order: WordOrder) -> bytes:
    """The registers as one big-endian byte string, high word first."""
    ordered = registers if word_order is WordOrder.BIG else list(reversed(registers))
    return b"".join(register.to_bytes(2, "big") for register in ordered)


def decode_value(
    registers: Sequence[int],
    kind: RegisterType,
    *,
    word_order: WordOrder = WordOrder.BIG,
    scale: Decimal = ONE,
) -> Decimal:
    """The quantity held in ``registers`` (exactly ``kind.registers`` of them)."""
    if len(registers) != kind.registers:
        raise FrameError(f"{kind} needs {kind.registers} registers, got {len(registers)}")
    raw = value_bytes(registers, word_order)
    if kind is RegisterType.FLOAT32:
        return float32_decimal(raw) * scale
    signed = kind in (RegisterType.INT16, RegisterType.INT32)
    return Decimal(int.from_bytes(raw, "big", signed=signed)) * scale


def float32_decimal(raw: bytes) -> Decimal:
    """The shortest decimal text that packs back to the same four bytes."""
    (value,) = struct.unpack(">f", raw)
    if not math.isfinite(value):
        raise FrameError(f"float32 {raw.hex()} is not a finite number")
    for digits in range(1, 10):  # 9 significant digits always round-trip a float32
        text = f"{value:.{digits}g}"
        if struct.pack(">f", float(text)) == raw:
            return Decimal(text)
    return Decimal(repr(value))  # pragma: no cover - unreachable by the bound above


def encode_value(
    value: Decimal,
    kind: RegisterType,
    *,
    word_order: WordOrder = WordOrder.BIG,
    scale: Decimal = ONE,
) -> tuple[int, ...]:
    """The registers a meter would send for ``value`` (simulators and tests)."""
    raw_value = value / scale
    if kind is RegisterType.FLOAT32:
        raw = struct.pack(">f", float(raw_value))
    else:
        if raw_value != raw_value.to_integral_value():
            raise ValueError(f"{value} is not a whole multiple of scale {scale}")
        signed = kind in (RegisterType.INT16, RegisterType.INT32)
        try:
            raw = int(raw_value).to_bytes(2 * kind.registers, "big", signed=signed)
        except OverflowError as exc:
            raise ValueError(f"{value} does not fit {kind}") from exc
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    return tuple(words if word_order is WordOrder.BIG else reversed(words))
