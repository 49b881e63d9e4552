"""CJ/T 188-2004 frames (water, also gas and heat meters).

``FE*n | 68 | T | A0..A6 | C | L | DATA (L bytes) | CS | 16``: T the meter type, a
7-byte BCD address least significant byte first, L counting DATA (which opens with
DI0 DI1 SER), CS the byte sum mod 256 from 68 through the last DATA byte. Unlike
DL/T 645 there is no +0x33 offset.

The address is kept as the 14 digits A6..A0, most significant first: the manufacturer
code (A6 A5, 4 digits) then the meter number (A4..A0, 10 digits), the way master-station
software prints it. ``44 33 22 11 00 33 78`` is ``78330011223344``: meter 0011223344 of
manufacturer 7833. ``address_of`` and ``meter_number``/``manufacturer_code`` convert.

Invariants:
- ``Frame.data`` is everything after L, DI included: the DI byte order is a per-model
  setting, so the frame layer does not guess it (``cjt188_messages`` does);
- ``decode`` is strict and ``decode(encode(frame)) == frame`` for every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from meterpay.drivers.bcd import digits_from_wire, wire_from_digits
from meterpay.drivers.errors import FrameError

START: Final = 0x68
END: Final = 0x16
WAKE_UP: Final = 0xFE
ADDRESS_SIZE: Final = 7
HEADER_SIZE: Final = 11  # 68 T A0..A6 C L
MAX_DATA: Final = 255
MAX_FRAME: Final = HEADER_SIZE + MAX_DATA + 2
ANY_ADDRESS: Final = "AAAAAAAAAAAAAA"

_FROM_METER: Final = 0x80
_ABNORMAL: Final = 0x40
_FUNCTION_BITS: Final = 0x3F


class MeterType(IntEnum):
    """T: what the meter measures (wire integers, hence IntEnum)."""

    COLD_WATER = 0x10
    HOT_WATER = 0x11
    DRINKING_WATER = 0x12
    RECLAIMED_WATER = 0x13
    HEAT = 0x20
    COOLING = 0x21
    GAS = 0x30
    ELECTRICITY = 0x40
    ANY = 0xAA


class Function(IntEnum):
    READ = 0x01
    READ_ADDRESS = 0x03
    WRITE = 0x04


@dataclass(frozen=True, slots=True)
class Control:
    """C: direction (bit 7), abnormal reply (bit 6), function (bits 5-0)."""

    function: int
    from_meter: bool = False
    abnormal: bool = False

    @classmethod
    def from_byte(cls, value: int) -> Control:
        return cls(value & _FUNCTION_BITS, bool(value & _FROM_METER), bool(value & _ABNORMAL))

    def to_byte(self) -> int:
        if not 0 <= self.function <= _FUNCTION_BITS:
            raise ValueError(f"function 0x{self.function:02X} does not fit 6 bits")
        return (
            self.function
            | (_FROM_METER if self.from_meter else 0)
            | (_ABNORMAL if self.abnormal else 0)
        )


@dataclass(frozen=True, slots=True)
class Frame:
    """One CJ/T 188 frame; ``data`` is DI0 DI1 SER and the payload, as sent."""

    meter_type: int
    address: str
    control: Control
    data: bytes = b""


def address_of(meter_number: str, manufacturer_code: str) -> str:
    """The 14-digit address of a 10-digit meter number and a 4-digit manufacturer code."""
    if len(meter_number) != 10 or len(manufacturer_code) != 4:
        raise ValueError(
            f"meter number {meter_number!r} must be 10 digits "
            f"and manufacturer code {manufacturer_code!r} 4"
        )
    return manufacturer_code + meter_number


def meter_number(address: str) -> str:
    return address[4:]


def manufacturer_code(address: str) -> str:
    return address[:4]


def plausible_type(value: int) -> bool:
    """Whether a byte can be T: 10H-49H with a decimal low digit (water, heat, gas,
    other), or AAH (any); the stream decoder resynchronises on this."""
    return value == MeterType.ANY or (0x10 <= value <= 0x49 and value & 0x0F <= 9)


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def encode(frame: Frame, *, wake_up: int = 4) -> bytes:
    """The wire bytes of ``frame`` after ``wake_up`` FE bytes (most water meters need them)."""
    if not 0 <= wake_up <= 4:
        raise ValueError(f"wake-up bytes must be 0..4, not {wake_up}")
    if not 0 <= frame.meter_type <= 0xFF:
        raise ValueError(f"meter type {frame.meter_type} does not fit a byte")
    if len(frame.data) > MAX_DATA:
        raise ValueError(f"data of {len(frame.data)} bytes exceeds {MAX_DATA}")
    address = wire_from_digits(frame.address, ADDRESS_SIZE)
    body = bytes(
        [START, frame.meter_type, *address, frame.control.to_byte(), len(frame.data), *frame.data]
    )
    return bytes([WAKE_UP] * wake_up) + body + bytes([checksum(body), END])


def decode(raw: bytes) -> Frame:
    """The one frame in ``raw`` (leading FE bytes allowed); anything else is a FrameError."""
    start = 0
    while start < len(raw) and raw[start] == WAKE_UP:
        start += 1
    body = raw[start:]
    check_header(body)
    size = frame_size(body)
    if size > len(body):
        raise FrameError(f"length {body[10]} beyond buffer ({len(body) - HEADER_SIZE - 2} left)")
    if size < len(body):
        raise FrameError(f"{len(body) - size} bytes after the end byte")
    check_trailer(body)
    return Frame(
        body[1], digits_from_wire(body[2:9]), Control.from_byte(body[9]), bytes(body[11:-2])
    )


def check_header(body: bytes) -> None:
    if len(body) < HEADER_SIZE:
        raise FrameError(f"{len(body)} bytes are too short for a header ({HEADER_SIZE})")
    if body[0] != START:
        raise FrameError(f"start byte 0x{body[0]:02X} != 0x68")


def frame_size(body: bytes) -> int:
    return HEADER_SIZE + body[10] + 2


def check_trailer(body: bytes) -> None:
    computed = checksum(body[:-2])
    if body[-2] != computed:
        raise FrameError(f"checksum 0x{body[-2]:02X} != computed 0x{computed:02X}")
    if body[-1] != END:
        raise FrameError(f"missing end byte 0x16 (found 0x{body[-1]:02X})")
