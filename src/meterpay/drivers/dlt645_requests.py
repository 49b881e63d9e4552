"""DL/T 645 requests the platform sends: reads, writes, time sync and relay control (1CH).

Every builder returns a ``Frame`` (``dlt645.encode`` gives the bytes), with the data
in plain form: DIs little-endian (``0x00010000`` is ``00 00 01 00``), passwords and
operator codes little-endian BCD, times seconds first.

Invariants:
- only plaintext passwords are built: password level 98 (ESAM ciphertext + MAC) needs
  the utility's encryption machine, which a property platform does not have, so it is
  refused rather than sent wrong;
- builders take wall-clock times as given (the caller converts to the meter's zone;
  the wire has no zone) and never read a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from meterpay.drivers.bcd import bcd_bytes, wire_from_digits
from meterpay.drivers.dlt645 import ANY_ADDRESS, BROADCAST_ADDRESS, Control, Frame, Function

PLAINTEXT_LEVEL: Final = 0x02
ESAM_LEVEL: Final = 0x98


class RelayCommand(StrEnum):
    """N1 of a 1CH relay-control request; ``code`` is the byte sent."""

    TRIP = "trip"  # 1A 跳闸: open the relay, supply off
    CLOSE_ALLOWED = "close_allowed"  # 1B 合闸允许: the customer presses the meter's button
    CLOSE_NOW = "close_now"  # 1C 直接合闸
    ALARM = "alarm"  # 2A 报警
    ALARM_OFF = "alarm_off"  # 2B 报警解除
    KEEP_SUPPLY = "keep_supply"  # 3A 保电: the meter ignores trips
    KEEP_SUPPLY_OFF = "keep_supply_off"  # 3B 保电解除

    @property
    def code(self) -> int:
        return _RELAY_CODES[self]


_RELAY_CODES: Final = {
    RelayCommand.TRIP: 0x1A,
    RelayCommand.CLOSE_ALLOWED: 0x1B,
    RelayCommand.CLOSE_NOW: 0x1C,
    RelayCommand.ALARM: 0x2A,
    RelayCommand.ALARM_OFF: 0x2B,
    RelayCommand.KEEP_SUPPLY: 0x3A,
    RelayCommand.KEEP_SUPPLY_OFF: 0x3B,
}


@dataclass(frozen=True, slots=True)
class Password:
    """PA | P0 P1 P2 | C0 C1 C2 C3: password level, 6-digit password, 8-digit operator
    code (the meter logs who did it)."""

    level: int = PLAINTEXT_LEVEL
    password: str = "000000"  # noqa: S105 - property-grade meters' factory default, not ours
    operator_code: str = "00000000"

    def to_bytes(self) -> bytes:
        if not 0 <= self.level <= 0xFF:
            raise ValueError(f"password level {self.level} does not fit a byte")
        if self.level == ESAM_LEVEL:
            raise ValueError("password level 98 (ESAM ciphertext) is not supported")
        return (
            bytes([self.level])
            + wire_from_digits(self.password, 3, what="password")
            + wire_from_digits(self.operator_code, 4, what="operator code")
        )


def di_bytes(di: int, size: int = 4) -> bytes:
    """A data identifier on the wire, DI0 first."""
    if not 0 <= di < 1 << (8 * size):
        raise ValueError(f"DI 0x{di:X} does not fit {size} bytes")
    return di.to_bytes(size, "little")


def read_request(address: str, di: int) -> Frame:
    """11H: read one data item (or block) from the meter at ``address``."""
    return Frame(address, Control(Function.READ), di_bytes(di))


def read_follow_up_request(address: str, di: int, seq: int) -> Frame:
    """12H: the next part of a reply that came with the follow-up bit (B1H/B2H)."""
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"sequence {seq} does not fit a byte")
    return Frame(address, Control(Function.READ_FOLLOW_UP), di_bytes(di) + bytes([seq]))


def read_address_request() -> Frame:
    """13H to AAAAAAAAAAAA: the only meter on the bus answers with its address."""
    return Frame(ANY_ADDRESS, Control(Function.READ_ADDRESS))


def write_request(address: str, di: int, value: bytes, password: Password) -> Frame:
    """14H: write ``value`` (already in the DI's wire format, LSB first) under ``password``."""
    return Frame(address, Control(Function.WRITE), di_bytes(di) + password.to_bytes() + value)


def _seconds_first(moment: datetime) -> bytes:
    """``ss mm hh DD MM YY`` in BCD: the wire order of every DL/T 645 date-time."""
    if not 2000 <= moment.year <= 2099:
        raise ValueError(f"year {moment.year} cannot be sent as two digits")
    fields = (moment.second, moment.minute, moment.hour, moment.day, moment.month, moment.year)
    return bcd_bytes((*fields[:5], fields[5] % 100))


def time_sync_request(moment: datetime) -> Frame:
    """08H broadcast time sync: YYMMDDhhmmss sent ss mm hh DD MM YY; no meter replies."""
    return Frame(BROADCAST_ADDRESS, Control(Function.BROADCAST_TIME), _seconds_first(moment))


def relay_request(
    address: str, command: RelayCommand, *, expires_at: datetime, password: Password
) -> Frame:
    """1CH relay control: ``PA P0-P2 C0-C3 N1 N2 N3-N8`` with N3-N8 the expiry, seconds first.

    The meter refuses a command whose expiry has passed, so a command stuck in a queue
    cannot switch a customer off hours later.
    """
    data = password.to_bytes() + bytes([command.code, 0x00]) + _seconds_first(expires_at)
    return Frame(address, Control(Function.RELAY_CONTROL), data)


def read_request_1997(address: str, di: int) -> Frame:
    """DL/T 645-1997 read (01H) of a two-byte DI such as 9010 (forward active total)."""
    return Frame(address, Control(Function.READ_1997), di_bytes(di, 2))
