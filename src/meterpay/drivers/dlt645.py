"""DL/T 645 frames (the 2007 and 1997 editions share the framing).

``FE*n | 68 | A0..A5 | 68 | C | L | DATA (L bytes) | CS | 16`` where the address is
six BCD bytes least significant first, every DATA byte travels +0x33 (mod 256) and
CS is the byte sum (mod 256) from the first 68 through the last DATA byte.

Invariants:
- ``Frame.address`` is the 12-digit text printed on the meter (``000102030425`` is
  sent ``25 04 03 02 01 00``); ``A`` digits are wildcards (``AAAAAAAAAAAA`` = any);
- ``Frame.data`` never carries the +0x33 offset: it is removed on decode and added
  on encode, so nothing above this module sees it;
- ``decode`` is strict (start bytes, length, checksum, end byte, nothing left over)
  and ``decode(encode(frame)) == frame`` for every frame.
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
DATA_OFFSET: Final = 0x33
ADDRESS_SIZE: Final = 6
HEADER_SIZE: Final = 10  # 68 A0..A5 68 C L
MAX_DATA: Final = 255
MAX_FRAME: Final = HEADER_SIZE + MAX_DATA + 2

ANY_ADDRESS: Final = "AAAAAAAAAAAA"
BROADCAST_ADDRESS: Final = "999999999999"

_FROM_METER: Final = 0x80
_ABNORMAL: Final = 0x40
_FOLLOW_UP: Final = 0x20
_FUNCTION_BITS: Final = 0x1F


class Function(IntEnum):
    """Function codes (C bits 4-0). Wire integers, hence IntEnum rather than StrEnum."""

    BROADCAST_TIME = 0x08
    READ_1997 = 0x01
    READ_FOLLOW_UP_1997 = 0x02
    WRITE_1997 = 0x04
    READ = 0x11
    READ_FOLLOW_UP = 0x12
    READ_ADDRESS = 0x13
    WRITE = 0x14
    WRITE_ADDRESS = 0x15
    FREEZE = 0x16
    CHANGE_BAUD_RATE = 0x17
    CHANGE_PASSWORD = 0x18
    CLEAR_DEMAND = 0x19
    CLEAR_METER = 0x1A
    CLEAR_EVENTS = 0x1B
    RELAY_CONTROL = 0x1C


@dataclass(frozen=True, slots=True)
class Control:
    """The control byte: direction (bit 7), abnormal reply (bit 6), follow-up (bit 5),
    function (bits 4-0)."""

    function: int
    from_meter: bool = False
    abnormal: bool = False
    follow_up: bool = False

    @classmethod
    def from_byte(cls, value: int) -> Control:
        return cls(
            function=value & _FUNCTION_BITS,
            from_meter=bool(value & _FROM_METER),
            abnormal=bool(value & _ABNORMAL),
            follow_up=bool(value & _FOLLOW_UP),
        )

    def to_byte(self) -> int:
        if not 0 <= self.function <= _FUNCTION_BITS:
            raise ValueError(f"function 0x{self.function:02X} does not fit 5 bits")
        return (
            self.function
            | (_FROM_METER if self.from_meter else 0)
            | (_ABNORMAL if self.abnormal else 0)
            | (_FOLLOW_UP if self.follow_up else 0)
        )


@dataclass(frozen=True, slots=True)
class Frame:
    """One DL/T 645 frame: who, what, and the data with the +0x33 offset removed."""

    address: str
    control: Control
    data: bytes = b""


def checksum(data: bytes) -> int:
    """The byte sum mod 256 (of everything from the first 68 through the last data byte)."""
    return sum(data) & 0xFF


def encode(frame: Frame, *, wake_up: int = 0) -> bytes:
    """The wire bytes of ``frame``, after ``wake_up`` FE bytes (0-4; not in the checksum)."""
    if not 0 <= wake_up <= 4:
        raise ValueError(f"wake-up bytes must be 0..4, not {wake_up}")
    if len(frame.data) > MAX_DATA:
        raise ValueError(f"data of {len(frame.data)} bytes exceeds {MAX_DATA}")
    address = wire_from_digits(frame.address, ADDRESS_SIZE)
    shifted = bytes((byte + DATA_OFFSET) & 0xFF for byte in frame.data)
    body = bytes([START, *address, START, frame.control.to_byte(), len(shifted), *shifted])
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
        raise FrameError(f"length {body[9]} beyond buffer ({len(body) - HEADER_SIZE - 2} left)")
    if size < len(body):
        raise FrameError(f"{len(body) - size} bytes after the end byte")
    check_trailer(body)
    data = bytes((byte - DATA_OFFSET) & 0xFF for byte in body[HEADER_SIZE:-2])
    return Frame(digits_from_wire(body[1:7]), Control.from_byte(body[8]), data)


def check_header(body: bytes) -> None:
    """Refuse a frame that does not open ``68 A0..A5 68 C L``."""
    if len(body) < HEADER_SIZE:
        raise FrameError(f"{len(body)} bytes are too short for a header ({HEADER_SIZE})")
    if body[0] != START:
        raise FrameError(f"start byte 0x{body[0]:02X} != 0x68")
    if body[7] != START:
        raise FrameError(f"second start byte 0x{body[7]:02X} != 0x68")


def frame_size(body: bytes) -> int:
    """Bytes from the first 68 through 16, read from the header's L."""
    return HEADER_SIZE + body[9] + 2


def check_trailer(body: bytes) -> None:
    """Refuse a complete-length frame whose checksum or end byte is wrong."""
    computed = checksum(body[:-2])
    if body[-2] != computed:
        raise FrameError(f"checksum 0x{body[-2]:02X} != computed 0x{computed:02X}")
    if body[-1] != END:
        raise FrameError(f"missing end byte 0x16 (found 0x{body[-1]:02X})")
