"""CJ/T 188 requests and replies: read current data (901F), read address, valve control (A017).

Requests put the DI in the model's byte order (``DiOrder``): vendors send 901F as
``1F 90`` or ``90 1F`` and the checksum cannot tell which a meter expects. Replies are
read in either order: a DI is taken in whichever order names a known identifier.

Invariants:
- quantities are ``Decimal`` from BCD digits, with their unit code kept and named;
- a valve command is confirmed by the status word (ST) of its reply, and for battery
  meters only by a later 901F: the command may act at the next wake-up;
- ``answer`` checks a reply against its request (address, function, DI) and raises
  ``UnexpectedReply`` for anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Final

from meterpay.drivers.bcd import byte_values, decimal_from_bcd
from meterpay.drivers.cjt188 import ANY_ADDRESS, Control, Frame, Function, MeterType
from meterpay.drivers.errors import FrameError, UnexpectedReply

DI_CURRENT_DATA: Final = 0x901F
DI_READ_ADDRESS: Final = 0x810A
DI_VALVE: Final = 0xA017
KNOWN_DIS: Final = frozenset({DI_CURRENT_DATA, DI_READ_ADDRESS, DI_VALVE})
VALVE_OPEN: Final = 0x55
VALVE_CLOSE: Final = 0x99

UNITS: Final = {
    0x02: "Wh",
    0x05: "kWh",
    0x08: "MWh",
    0x0B: "kJ",
    0x0E: "MJ",
    0x11: "GJ",
    0x14: "W",
    0x17: "kW",
    0x1A: "MW",
    0x29: "L",
    0x2C: "m3",
    0x32: "L/h",
    0x35: "m3/h",
}


class DiOrder(StrEnum):
    """How a model sends a two-byte DI."""

    LOW_FIRST = "low_first"  # 901F sent 1F 90
    HIGH_FIRST = "high_first"  # 901F sent 90 1F


class Valve(StrEnum):
    """ST byte 0 bits 0-1."""

    OPEN = "open"  # 00
    CLOSED = "closed"  # 01
    UNKNOWN = "unknown"  # 10, not defined
    ABNORMAL = "abnormal"  # 11


_VALVE_BITS: Final = (Valve.OPEN, Valve.CLOSED, Valve.UNKNOWN, Valve.ABNORMAL)


@dataclass(frozen=True, slots=True)
class MeterStatus:
    """ST: two bytes as sent; byte 1 is the manufacturer's own."""

    raw: bytes
    valve: Valve
    battery_low: bool

    @classmethod
    def from_bytes(cls, st: bytes) -> MeterStatus:
        if len(st) != 2:
            raise FrameError(f"status ST of {len(st)} bytes, expected 2")
        return cls(bytes(st), _VALVE_BITS[st[0] & 0b11], bool(st[0] & 0b100))


@dataclass(frozen=True, slots=True)
class CurrentData:
    """901F for a water or gas meter: cumulative and settlement-day flow, clock, status.

    ``meter_time`` is the meter's wall clock (no zone on the wire), None when the meter
    sends no valid date (many clockless meters send zeros)."""

    address: str
    meter_type: int
    seq: int
    total: Decimal
    total_unit: str
    settlement_total: Decimal
    settlement_unit: str
    meter_time: datetime | None
    status: MeterStatus


@dataclass(frozen=True, slots=True)
class ValveReply:
    address: str
    seq: int
    status: MeterStatus


@dataclass(frozen=True, slots=True)
class AddressReply:
    address: str
    meter_type: int


@dataclass(frozen=True, slots=True)
class AbnormalReply:
    """C1H/C4H: layouts vary by vendor; ``status`` is read from the last two bytes
    when there are any."""

    address: str
    function: int
    data: bytes
    status: MeterStatus | None


@dataclass(frozen=True, slots=True)
class OtherReply:
    """A normal reply we have no layout for (heat meters' 901F, vendor DIs)."""

    address: str
    function: int
    di: int
    seq: int
    payload: bytes


Reply = CurrentData | ValveReply | AddressReply | AbnormalReply | OtherReply


def di_wire(di: int, order: DiOrder) -> bytes:
    if not 0 <= di <= 0xFFFF:
        raise ValueError(f"DI 0x{di:X} does not fit two bytes")
    return di.to_bytes(2, "little" if order is DiOrder.LOW_FIRST else "big")


def read_di(data: bytes) -> int:
    """The DI at the head of a reply's data, in whichever byte order names a known DI."""
    if len(data) < 2:
        raise FrameError(f"data of {len(data)} bytes has no room for a DI")
    low_first = int.from_bytes(data[:2], "little")
    high_first = int.from_bytes(data[:2], "big")
    return high_first if high_first in KNOWN_DIS and low_first not in KNOWN_DIS else low_first


def _request(
    address: str, meter_type: int, function: Function, *, di: int, order: DiOrder, tail: bytes
) -> Frame:
    return Frame(meter_type, address, Control(function), di_wire(di, order) + tail)


def read_request(
    address: str,
    *,
    di_order: DiOrder,
    meter_type: int = MeterType.COLD_WATER,
    seq: int = 0,
    di: int = DI_CURRENT_DATA,
) -> Frame:
    """01H read (by default 901F current data)."""
    return _request(address, meter_type, Function.READ, di=di, order=di_order, tail=bytes([seq]))


def read_address_request(
    *, di_order: DiOrder, meter_type: int = MeterType.ANY, seq: int = 0
) -> Frame:
    """03H read address (DI 810A) to AA..AA: the only meter on the bus answers."""
    return _request(
        ANY_ADDRESS,
        meter_type,
        Function.READ_ADDRESS,
        di=DI_READ_ADDRESS,
        order=di_order,
        tail=bytes([seq]),
    )


def valve_request(
    address: str,
    *,
    open_valve: bool,
    di_order: DiOrder,
    meter_type: int = MeterType.COLD_WATER,
    seq: int = 0,
) -> Frame:
    """04H write A017: 55 opens the valve, 99 closes it."""
    command = VALVE_OPEN if open_valve else VALVE_CLOSE
    tail = bytes([seq, command])
    return _request(address, meter_type, Function.WRITE, di=DI_VALVE, order=di_order, tail=tail)


def parse_reply(frame: Frame) -> Reply:
    """What the meter said; a request frame or a malformed payload is a FrameError."""
    control = frame.control
    if not control.from_meter:
        raise FrameError(f"C 0x{control.to_byte():02X} is a request, not a reply")
    if control.abnormal:
        status = MeterStatus.from_bytes(frame.data[-2:]) if len(frame.data) >= 2 else None
        return AbnormalReply(frame.address, control.function, frame.data, status)
    di = read_di(frame.data)
    if len(frame.data) < 3:
        raise FrameError("reply has no SER byte after its DI")
    seq, payload = frame.data[2], frame.data[3:]
    is_water_or_gas = 0x10 <= frame.meter_type <= 0x19 or 0x30 <= frame.meter_type <= 0x39
    if control.function == Function.READ and di == DI_CURRENT_DATA and is_water_or_gas:
        return _current_data(frame, seq, payload)
    if control.function == Function.WRITE and di == DI_VALVE:
        return ValveReply(frame.address, seq, MeterStatus.from_bytes(payload))
    if control.function == Function.READ_ADDRESS:
        return AddressReply(frame.address, frame.meter_type)
    return OtherReply(frame.address, control.function, di, seq, payload)


def _current_data(frame: Frame, seq: int, payload: bytes) -> CurrentData:
    if len(payload) != 19:
        raise FrameError(f"901F data of {len(payload)} bytes, expected 19")
    return CurrentData(
        address=frame.address,
        meter_type=frame.meter_type,
        seq=seq,
        total=decimal_from_bcd(payload[0:4], 2),
        total_unit=unit_name(payload[4]),
        settlement_total=decimal_from_bcd(payload[5:9], 2),
        settlement_unit=unit_name(payload[9]),
        meter_time=meter_clock(payload[10:17]),
        status=MeterStatus.from_bytes(payload[17:19]),
    )


def unit_name(code: int) -> str:
    return UNITS.get(code, f"unit_0x{code:02X}")


def meter_clock(data: bytes) -> datetime | None:
    """7 bytes BCD ``ss mm hh DD MM YY(lo) YY(hi)``; None when not a valid time."""
    try:
        second, minute, hour, day, month, year_low, year_high = byte_values(data)
        # the wire carries no zone: this is the meter's wall clock, zoned by the caller
        return datetime(year_high * 100 + year_low, month, day, hour, minute, second)  # noqa: DTZ001
    except (FrameError, ValueError):
        return None


def answer(request: Frame, reply_frame: Frame) -> Reply:
    """``reply_frame`` parsed, after checking it answers ``request``."""
    reply = parse_reply(reply_frame)
    wanted = request.address.upper()
    if not all(w in ("A", g) for w, g in zip(wanted, reply_frame.address.upper(), strict=True)):
        raise UnexpectedReply(f"reply from {reply_frame.address}, expected {request.address}")
    if reply_frame.control.function != request.control.function:
        raise UnexpectedReply(
            f"reply to function 0x{reply_frame.control.function:02X}, "
            f"expected 0x{request.control.function:02X}"
        )
    asked = read_di(request.data)
    if not isinstance(reply, AbnormalReply) and read_di(reply_frame.data) != asked:
        raise UnexpectedReply(f"reply for DI {read_di(reply_frame.data):04X}, expected {asked:04X}")
    return reply
