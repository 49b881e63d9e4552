"""A simulated DL/T 645 electricity meter: request frames in, reply frames out, as in the field.

The edition follows the model. A 2007 meter answers 11H reads (91H, or D1H with ERR bit 1
for a DI it does not keep), 13H read-address (93H), 1CH relay control (9CH, or DCH with
ERR) and other 2007 functions with DxH ERR bit 0; a 1997 meter answers 01H reads (81H, or
C1H with ERR bit 1, "wrong DI"). Both take 08H time sync silently, broadcast or
addressed. Each ignores the other edition's functions, frames from meters, frames for
other addresses, and corrupt frames (a real meter's UART just drops them).

The relay is a transition table: trip (1A) opens it, close-now (1C) closes it,
close-allowed (1B) arms an open relay and only ``press_button`` closes an armed one.
Alarm (2A/2B) and keep-supply (3A/3B, 保电) are flags; under keep-supply a trip is
refused. A 1CH command is refused with ERR bit 2 for a wrong password level or password
(checked first, as a meter authenticates before it reads the order), and with ERR bit 0
(other) when it has expired by the meter's own clock, its N1 is unknown, or it trips
under keep-supply. The standard leaves which bit marks expiry to the maker; bit 0 is the
common choice.

Invariants:
- a reply reports the state at the instant of its request: the meter advances its
  registers before it answers or switches, so consumption up to a trip is counted;
- no consumption accrues while the relay is open (or armed), unless the bypass fault is on.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from meterpay.drivers import dlt645
from meterpay.drivers.bcd import bcd_bytes, bcd_from_decimal, byte_values, wire_from_digits
from meterpay.drivers.dlt645 import BROADCAST_ADDRESS, Control, Frame, Function
from meterpay.drivers.dlt645_items import PrepaidType
from meterpay.drivers.dlt645_replies import address_matches
from meterpay.drivers.dlt645_requests import RelayCommand
from meterpay.drivers.errors import FrameError
from meterpay.drivers.models import Dlt645Model, Protocol
from meterpay.kernel.quantity import Utility
from meterpay.sim.meter_faults import MeterFaults
from meterpay.sim.meter_usage import (
    PEAK_VALLEY,
    Instant,
    MeterClock,
    Period,
    TouSchedule,
    Usage,
)
from meterpay.sim.meter_usage import register_value as shown
from meterpay.sites.model import UnitKind

ERR_OTHER: Final = 0x01
ERR_NO_DATA: Final = 0x02
ERR_UNAUTHORISED: Final = 0x04
ERR_1997_WRONG_DI: Final = 0x02
RELAY_DATA_SIZE: Final = 16  # PA P0-P2 C0-C3 N1 N2 N3-N8
MAX_KW: Final = Decimal("79.9999")  # XX.XXXX with the top bit as sign
MAX_AMPS: Final = Decimal("99.99")  # the narrower of XXX.XXX (2007) and XX.XX (1997)
CENTS: Final = Decimal("0.01")

_COMMANDS: Final = {command.code: command for command in RelayCommand}
_FUNCTIONS_2007: Final = frozenset(range(Function.BROADCAST_TIME + 1, 0x20))
_PREPAID_TYPES: Final = tuple(PrepaidType)

ValueOf = Callable[[datetime], bytes]


class Relay(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    ARMED = "armed"  # open until the customer presses the meter's button (合闸允许)


_SWITCHING: Final = frozenset(
    {RelayCommand.TRIP, RelayCommand.CLOSE_NOW, RelayCommand.CLOSE_ALLOWED}
)
RELAY_MOVES: Final[Mapping[tuple[Relay, RelayCommand], Relay]] = {
    **{(state, RelayCommand.TRIP): Relay.OPEN for state in Relay},
    **{(state, RelayCommand.CLOSE_NOW): Relay.CLOSED for state in Relay},
    (Relay.CLOSED, RelayCommand.CLOSE_ALLOWED): Relay.CLOSED,
    (Relay.OPEN, RelayCommand.CLOSE_ALLOWED): Relay.ARMED,
    (Relay.ARMED, RelayCommand.CLOSE_ALLOWED): Relay.ARMED,
}


class Dlt645Meter:
    """One DL/T 645 meter at ``address`` (12 digits) behaving as ``model`` says."""

    def __init__(
        self,
        model: Dlt645Model,
        address: str,
        *,
        kind: UnitKind = UnitKind.HOME,
        scale: float = 1.0,
        speed: float = 1.0,
        opening: Decimal = Decimal(0),
        zone: str = "Asia/Shanghai",
        tou: TouSchedule = PEAK_VALLEY,
        prepaid_type: PrepaidType = PrepaidType.NOT_PREPAID,
        wake_up: int | None = None,
        seed: int | str | None = None,
    ) -> None:
        wire_from_digits(address, dlt645.ADDRESS_SIZE)  # refuse a malformed address now
        self.model = model
        self.address = address.upper()
        self.rng = random.Random(f"{model.id}/{address}" if seed is None else seed)  # noqa: S311  simulation, not security
        self.clock = MeterClock(ZoneInfo(zone))
        self.usage = Usage(Utility.ELECTRICITY, self.clock, kind, scale, speed, tou, rng=self.rng)
        self.usage.open_with(opening)
        self.faults = MeterFaults()
        self.relay = Relay.CLOSED
        self.trip_commanded = False
        self.alarm = False
        self.keep_supply = False
        self.prepaid_type = prepaid_type
        self.wake_up = model.wake_up if wake_up is None else wake_up
        self._values = self._values_1997() if self.edition_1997 else self._values_2007()
        self._handlers: dict[int, Callable[[Frame, datetime], Frame]] = {
            Function.READ: self._read,
            Function.READ_ADDRESS: self._read_address,
            Function.RELAY_CONTROL: self._relay_control,
        }

    @property
    def protocol(self) -> Protocol:
        return self.model.protocol

    @property
    def edition_1997(self) -> bool:
        return self.model.protocol is Protocol.DLT645_1997

    @property
    def relay_open(self) -> bool:
        return self.relay is not Relay.CLOSED

    @property
    def flowing(self) -> bool:
        return not self.relay_open or self.faults.bypass

    def advance(self, at: datetime) -> None:
        self.usage.advance(at, flowing=self.flowing, leak_per_hour=self.faults.leak_per_hour)

    def press_button(self, at: datetime | None = None) -> None:
        """The customer presses the button: an armed relay closes (otherwise nothing)."""
        if at is not None:
            self.advance(at)
        if self.relay is Relay.ARMED:
            self.relay = Relay.CLOSED

    def answer(self, request: bytes, at: datetime) -> bytes | None:
        """The reply bytes to ``request`` bytes at ``at``, or None (no reply, as on a bus)."""
        try:
            frame = dlt645.decode(request)
        except FrameError:
            return None
        return self.hear(frame, at)

    def hear(self, frame: Frame, at: datetime) -> bytes | None:
        """The reply bytes to a frame heard on the bus, faults applied; None = silence."""
        self.advance(at)
        if self.faults.offline or frame.control.from_meter:
            return None
        reply = self._reply(frame, at)
        if reply is None:
            return None
        return self.faults.garble(dlt645.encode(reply, wake_up=self.wake_up), self.rng)

    def _reply(self, frame: Frame, at: datetime) -> Frame | None:
        function = frame.control.function
        if function == Function.BROADCAST_TIME:
            if frame.address in (BROADCAST_ADDRESS, self.address):
                self._sync(frame.data, at)
            return None  # time sync never gets a reply
        if not address_matches(frame.address, self.address):
            return None
        if self.edition_1997:
            return self._read(frame, at) if function == Function.READ_1997 else None
        handler = self._handlers.get(function)
        if handler is not None:
            return handler(frame, at)
        return self._abnormal(function, ERR_OTHER) if function in _FUNCTIONS_2007 else None

    # --- reads ---------------------------------------------------------------------------

    def _read(self, frame: Frame, at: datetime) -> Frame:
        function, size = frame.control.function, 2 if self.edition_1997 else 4
        no_data = ERR_1997_WRONG_DI if self.edition_1997 else ERR_NO_DATA
        di = frame.data[:size]
        value_of = self._values.get(int.from_bytes(di, "little")) if len(di) == size else None
        if value_of is None:
            return self._abnormal(function, no_data)
        return Frame(self.address, Control(function, from_meter=True), di + value_of(at))

    def _read_address(self, frame: Frame, at: datetime) -> Frame:
        data = wire_from_digits(self.address, dlt645.ADDRESS_SIZE)
        return Frame(self.address, Control(Function.READ_ADDRESS, from_meter=True), data)

    def _values_2007(self) -> dict[int, ValueOf]:
        return {
            0x00010000: lambda at: _energy(self.usage.total),
            0x0001FF00: lambda at: self._tou_block(),
            0x00020000: lambda at: _energy(Decimal(0)),  # nothing flows back from a flat
            0x02010100: lambda at: bcd_from_decimal(self._instant(at).volts, 2, 1),
            0x02020100: lambda at: bcd_from_decimal(self._instant(at).amps, 3, 3, signed=True),
            0x02030000: lambda at: bcd_from_decimal(self._instant(at).kw, 3, 4, signed=True),
            0x04000101: self._date,
            0x04000102: self._time,
            0x04000503: lambda at: self.status_word_3().to_bytes(2, "little"),
        }

    def _values_1997(self) -> dict[int, ValueOf]:
        return {
            0x9010: lambda at: _energy(self.usage.total),
            0x901F: lambda at: self._tou_block(),
            0xB611: lambda at: bcd_from_decimal(self._instant(at).volts.quantize(1), 2, 0),
            0xB621: lambda at: bcd_from_decimal(self._instant(at).amps.quantize(CENTS), 2, 2),
            0xB630: lambda at: bcd_from_decimal(self._instant(at).kw, 3, 4),
            0xC010: self._date,
            0xC011: self._time,
        }

    def _tou_block(self) -> bytes:
        registers = self.usage.registers
        values = (self.usage.total, *(registers[period] for period in Period))
        return b"".join(_energy(value) for value in values)

    def _instant(self, at: datetime) -> Instant:
        now = self.usage.instant(at, flowing=self.flowing)
        # a meter's display saturates rather than overflow its BCD digits
        return Instant(now.volts, min(MAX_KW, now.kw), min(MAX_AMPS, now.amps))

    def _date(self, at: datetime) -> bytes:
        """YYMMDDWW sent WW DD MM YY; WW counts from Sunday = 0."""
        wall = self.clock.wall(at)
        return bcd_bytes((wall.isoweekday() % 7, wall.day, wall.month, wall.year % 100))

    def _time(self, at: datetime) -> bytes:
        wall = self.clock.wall(at)
        return bcd_bytes((wall.second, wall.minute, wall.hour))

    def status_word_3(self) -> int:
        """Bit 4 relay open, bit 6 trip commanded, bit 7 alarm, bits 8-9 prepaid type."""
        return (
            self.relay_open << 4
            | self.trip_commanded << 6
            | self.alarm << 7
            | _PREPAID_TYPES.index(self.prepaid_type) << 8
        )

    # --- relay control and time ----------------------------------------------------------

    def _relay_control(self, frame: Frame, at: datetime) -> Frame:
        function, data = frame.control.function, frame.data
        if self.model.relay.style == "none" or len(data) != RELAY_DATA_SIZE:
            return self._abnormal(function, ERR_OTHER)
        if not self._authorised(data[:4]):
            return self._abnormal(function, ERR_UNAUTHORISED)
        command, expires = _COMMANDS.get(data[8]), wall_time(data[10:16])
        if command is None or expires is None or expires < self.clock.wall(at):
            return self._abnormal(function, ERR_OTHER)
        if command is RelayCommand.TRIP and self.keep_supply:
            return self._abnormal(function, ERR_OTHER)
        self.obey(command)
        return Frame(self.address, Control(function, from_meter=True))

    def _authorised(self, credentials: bytes) -> bool:
        level, password = credentials[0], credentials[1:4][::-1].hex().upper()
        relay = self.model.relay
        return level == relay.password_level and password == relay.password.upper()

    def obey(self, command: RelayCommand) -> None:
        """Carry out an accepted relay command (the meter has advanced to its instant)."""
        if command in _SWITCHING:
            self.relay = RELAY_MOVES[(self.relay, command)]
            self.trip_commanded = command is RelayCommand.TRIP
        elif command in (RelayCommand.ALARM, RelayCommand.ALARM_OFF):
            self.alarm = command is RelayCommand.ALARM
        else:
            self.keep_supply = command is RelayCommand.KEEP_SUPPLY

    def _sync(self, data: bytes, at: datetime) -> None:
        moment = wall_time(data)
        if moment is not None:  # a garbled time is ignored, not obeyed
            self.clock.set_wall(at, moment)

    def _abnormal(self, function: int, err: int) -> Frame:
        control = Control(function, from_meter=True, abnormal=True)
        return Frame(self.address, control, bytes([err]))


def _energy(value: Decimal) -> bytes:
    """XXXXXX.XX kWh as four BCD bytes, truncated and wrapping like the meter's display."""
    return bcd_from_decimal(shown(value), 4, 2)


def wall_time(data: bytes) -> datetime | None:
    """``ss mm hh DD MM YY`` (BCD, seconds first) as a naive wall time; None if not a time."""
    if len(data) != 6:
        return None
    try:
        second, minute, hour, day, month, year = byte_values(data)
        # the wire carries no zone: this is the meter's wall clock, like MeterClock.wall
        return datetime(2000 + year, month, day, hour, minute, second)  # noqa: DTZ001
    except (FrameError, ValueError):
        return None
