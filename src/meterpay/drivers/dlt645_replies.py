"""DL/T 645 replies (2007 and 1997): what a meter's answer means.

A reply frame becomes one of:
- ``ReadReply`` (91H/B1H/92H/B2H, 1997 81H/A1H): the DI, its named fields, and whether
  more follows (bit 5: ask again with 12H);
- ``AddressReply`` (93H): the address of the only meter on the bus;
- ``Ack`` (94H write, 9CH relay control, ...): done, no data;
- ``AbnormalReply`` (bit 6 set: D1H, D4H, DCH, 1997 C1H ...): the meter refused; the
  ERR byte decoded into named reasons. A refusal is a reply, not an exception.

Invariants:
- the edition follows from the function code (01H/02H/04H are 1997, 11H-1CH are 2007),
  so one parser serves both;
- ``answer`` checks a reply against its request (address, function, DI) and raises
  ``UnexpectedReply`` for another meter's or another question's answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from meterpay.drivers.bcd import digits_from_wire
from meterpay.drivers.dlt645 import Frame, Function
from meterpay.drivers.dlt645_items import Fields, item_1997, item_2007
from meterpay.drivers.errors import FrameError, UnexpectedReply


class Refusal(StrEnum):
    """One bit of an abnormal reply's ERR byte."""

    OTHER = "other"
    NO_SUCH_DATA = "no_such_data"
    UNAUTHORISED = "password_or_unauthorised"
    BAUD_RATE_FIXED = "baud_rate_cannot_change"
    TOO_MANY_YEAR_ZONES = "too_many_year_zones"
    TOO_MANY_DAY_PERIODS = "too_many_day_periods"
    TOO_MANY_TARIFFS = "too_many_tariffs"
    ILLEGAL_DATA = "illegal_data"  # 1997 bit 0
    WRONG_DATA_IDENTIFIER = "wrong_data_identifier"  # 1997 bit 1
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - 1997 bit 2, a reason, not a secret


# bit n of ERR; None = reserved
ERR_BITS_2007: Final = (
    Refusal.OTHER,
    Refusal.NO_SUCH_DATA,
    Refusal.UNAUTHORISED,
    Refusal.BAUD_RATE_FIXED,
    Refusal.TOO_MANY_YEAR_ZONES,
    Refusal.TOO_MANY_DAY_PERIODS,
    Refusal.TOO_MANY_TARIFFS,
    None,
)
ERR_BITS_1997: Final = (
    Refusal.ILLEGAL_DATA,
    Refusal.WRONG_DATA_IDENTIFIER,
    Refusal.WRONG_PASSWORD,
    None,
    Refusal.TOO_MANY_YEAR_ZONES,
    Refusal.TOO_MANY_DAY_PERIODS,
    Refusal.TOO_MANY_TARIFFS,
    None,
)

_1997_FUNCTIONS: Final = frozenset(
    {Function.READ_1997, Function.READ_FOLLOW_UP_1997, Function.WRITE_1997}
)
_READS: Final = frozenset(
    {Function.READ, Function.READ_FOLLOW_UP, Function.READ_1997, Function.READ_FOLLOW_UP_1997}
)


@dataclass(frozen=True, slots=True)
class ReadReply:
    """A normal read reply: ``fields`` is empty for a DI we have no format for (see
    ``value`` for its raw bytes)."""

    address: str
    function: int
    di: int
    value: bytes
    fields: Fields = field(default_factory=dict)
    more_follows: bool = False
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class AddressReply:
    address: str


@dataclass(frozen=True, slots=True)
class Ack:
    """A normal reply with nothing to report (write 94H, relay control 9CH, ...)."""

    address: str
    function: int
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class AbnormalReply:
    """The meter refused: ``err`` as sent and its bits by name."""

    address: str
    function: int
    err: int
    reasons: tuple[Refusal, ...]


Reply = ReadReply | AddressReply | Ack | AbnormalReply


def is_1997(function: int) -> bool:
    return function in _1997_FUNCTIONS


def refusals(err: int, *, edition_1997: bool = False) -> tuple[Refusal, ...]:
    """The named reasons set in an ERR byte (reserved bits are ignored; ``err`` keeps them)."""
    bits = ERR_BITS_1997 if edition_1997 else ERR_BITS_2007
    return tuple(reason for bit, reason in enumerate(bits) if reason and err >> bit & 1)


def parse_reply(frame: Frame) -> Reply:
    """What the meter said; a frame from the master, or malformed data, is a FrameError."""
    control = frame.control
    if not control.from_meter:
        raise FrameError(f"C 0x{control.to_byte():02X} is a request, not a reply")
    if control.abnormal:
        if not frame.data:
            raise FrameError("abnormal reply without an ERR byte")
        err = frame.data[0]
        edition_1997 = is_1997(control.function)
        return AbnormalReply(
            frame.address, control.function, err, refusals(err, edition_1997=edition_1997)
        )
    if control.function in _READS:
        return _read_reply(frame)
    if control.function == Function.READ_ADDRESS:
        if len(frame.data) != 6:
            raise FrameError(f"address reply carries {len(frame.data)} bytes, expected 6")
        return AddressReply(digits_from_wire(frame.data))
    return Ack(frame.address, control.function, frame.data)


def _read_reply(frame: Frame) -> ReadReply:
    edition_1997 = is_1997(frame.control.function)
    di_size = 2 if edition_1997 else 4
    follow_up_reply = frame.control.function in (
        Function.READ_FOLLOW_UP,
        Function.READ_FOLLOW_UP_1997,
    )
    data = frame.data
    if len(data) < di_size + follow_up_reply:
        raise FrameError(f"read reply of {len(data)} bytes has no room for its DI")
    di = int.from_bytes(data[:di_size], "little")
    # a follow-up reply ends with the sequence number the master asked for
    value, seq = (data[di_size:-1], data[-1]) if follow_up_reply else (data[di_size:], None)
    item = item_1997(di) if edition_1997 else item_2007(di)
    return ReadReply(
        address=frame.address,
        function=frame.control.function,
        di=di,
        value=value,
        fields=item.fields(value) if item and not frame.control.follow_up and seq is None else {},
        more_follows=frame.control.follow_up,
        seq=seq,
    )


def join_follow_ups(parts: list[ReadReply]) -> Fields:
    """The named fields of a value that came in parts (B1H, then 92H/B2H replies to 12H)."""
    if not parts:
        raise ValueError("no parts to join")
    di = parts[0].di
    if any(part.di != di for part in parts):
        raise UnexpectedReply(f"follow-up parts of different DIs: {sorted({p.di for p in parts})}")
    item = item_1997(di) if is_1997(parts[0].function) else item_2007(di)
    return item.fields(b"".join(part.value for part in parts)) if item else {}


def address_matches(requested: str, replied: str) -> bool:
    """Whether ``replied`` fits ``requested``, where an ``A`` digit requested matches any."""
    return len(requested) == len(replied) and all(
        want in ("A", got) for want, got in zip(requested.upper(), replied.upper(), strict=True)
    )


def answer(request: Frame, reply_frame: Frame) -> Reply:
    """``reply_frame`` parsed, after checking it answers ``request``."""
    reply = parse_reply(reply_frame)
    if not address_matches(request.address, reply_frame.address):
        raise UnexpectedReply(f"reply from {reply_frame.address}, expected {request.address}")
    if reply_frame.control.function != request.control.function:
        raise UnexpectedReply(
            f"reply to function 0x{reply_frame.control.function:02X}, "
            f"expected 0x{request.control.function:02X}"
        )
    if isinstance(reply, ReadReply):
        di_size = 2 if is_1997(request.control.function) else 4
        asked = int.from_bytes(request.data[:di_size], "little")
        if reply.di != asked:
            raise UnexpectedReply(f"reply for DI {reply.di:X}, expected {asked:X}")
    return reply
