"""A simulated CJ/T 188-2004 water meter with a motorised valve, answering as in the field.

It answers 01H read of 901F (81H: cumulative flow in m3 with unit 2C, the flow frozen on
the settlement day, its clock, and ST with the valve bits and battery-low), 03H read
address of 810A (83H), and 04H write of A017 (84H with ST: 55 opens the valve, 99 closes
it). A read or write of any other DI, or a valve order other than 55/99, gets the abnormal
reply (C1H/C4H) carrying DI, SER and ST, the layout most vendors use. Frames for another
meter type or address, from meters, or corrupt are ignored.

Invariants:
- a request's DI is accepted in either byte order (masters get it wrong as often as
  vendors differ, and the bytes alone name the DI); replies use the model's order;
- the SER byte of a request is echoed in its reply;
- water flows only while the valve is open, unless the bypass fault is on; the valve
  acts at once (a mains-powered meter; a battery meter would wait for its wake-up).
"""

from __future__ import annotations

import random
from datetime import datetime
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

from meterpay.drivers import cjt188
from meterpay.drivers.bcd import bcd_bytes, bcd_from_decimal, wire_from_digits
from meterpay.drivers.cjt188 import Control, Frame, Function, MeterType
from meterpay.drivers.cjt188_messages import (
    DI_CURRENT_DATA,
    DI_READ_ADDRESS,
    DI_VALVE,
    VALVE_CLOSE,
    VALVE_OPEN,
    di_wire,
    read_di,
)
from meterpay.drivers.dlt645_replies import address_matches
from meterpay.drivers.errors import FrameError
from meterpay.drivers.models import Cjt188Model, Protocol
from meterpay.kernel.quantity import Utility
from meterpay.sim.meter_faults import MeterFaults
from meterpay.sim.meter_usage import MeterClock, Usage
from meterpay.sim.meter_usage import register_value as shown
from meterpay.sites.model import UnitKind

UNIT_M3: Final = 0x2C
VALVE_CLOSED_BITS: Final = 0b01
BATTERY_LOW_BIT: Final = 0b100
VALVE_ORDERS: Final = frozenset({bytes([VALVE_OPEN]), bytes([VALVE_CLOSE])})


class WaterMeter:
    """One CJ/T 188 meter at ``address`` (14 digits: maker code, then meter number)."""

    def __init__(
        self,
        model: Cjt188Model,
        address: str,
        *,
        kind: UnitKind = UnitKind.HOME,
        scale: float = 1.0,
        speed: float = 1.0,
        opening: Decimal = Decimal(0),
        zone: str = "Asia/Shanghai",
        settlement_day: int = 1,
        wake_up: int | None = None,
        seed: int | str | None = None,
    ) -> None:
        wire_from_digits(address, cjt188.ADDRESS_SIZE)  # refuse a malformed address now
        self.model = model
        self.address = address.upper()
        self.rng = random.Random(f"{model.id}/{address}" if seed is None else seed)  # noqa: S311  simulation, not security
        self.clock = MeterClock(ZoneInfo(zone))
        self.usage = Usage(
            Utility.WATER,
            self.clock,
            kind,
            scale,
            speed,
            settlement_day=settlement_day,
            rng=self.rng,
        )
        self.usage.open_with(opening)
        self.faults = MeterFaults()
        self.valve_open = True
        self.battery_low = False
        self.wake_up = model.wake_up if wake_up is None else wake_up

    @property
    def protocol(self) -> Protocol:
        return self.model.protocol

    @property
    def flowing(self) -> bool:
        return self.valve_open or self.faults.bypass

    def advance(self, at: datetime) -> None:
        self.usage.advance(at, flowing=self.flowing, leak_per_hour=self.faults.leak_per_hour)

    def answer(self, request: bytes, at: datetime) -> bytes | None:
        """The reply bytes to ``request`` bytes at ``at``, or None (no reply, as on a bus)."""
        try:
            frame = cjt188.decode(request)
        except FrameError:
            return None
        return self.hear(frame, at)

    def hear(self, frame: Frame, at: datetime) -> bytes | None:
        """The reply bytes to a frame heard on the bus, faults applied; None = silence."""
        self.advance(at)
        if self.faults.offline or frame.control.from_meter or not self._for_me(frame):
            return None
        reply = self._reply(frame, at)
        if reply is None:
            return None
        return self.faults.garble(cjt188.encode(reply, wake_up=self.wake_up), self.rng)

    def _for_me(self, frame: Frame) -> bool:
        return (
            frame.meter_type in (self.model.meter_type, MeterType.ANY)
            and address_matches(frame.address, self.address)
            and len(frame.data) >= 3  # DI0 DI1 SER
        )

    def _reply(self, frame: Frame, at: datetime) -> Frame | None:
        function, di, seq = frame.control.function, read_di(frame.data), frame.data[2]
        if function == Function.READ and di == DI_CURRENT_DATA:
            return self._normal(function, di, seq, self._current_data(at))
        if function == Function.READ_ADDRESS and di == DI_READ_ADDRESS:
            return self._normal(function, di, seq, b"")
        if function == Function.WRITE and di == DI_VALVE and self._valve(frame.data[3:]):
            return self._normal(function, di, seq, self.status())
        if function in (Function.READ, Function.READ_ADDRESS, Function.WRITE):
            control = Control(function, from_meter=True, abnormal=True)
            return self._frame(control, di, seq, self.status())
        return None

    def _valve(self, order: bytes) -> bool:
        """Obey a valve order; False (refused) if there is no valve or the order is unknown."""
        if self.model.valve.style == "none" or order not in VALVE_ORDERS:
            return False
        self.valve_open = order[0] == VALVE_OPEN
        return True

    def _current_data(self, at: datetime) -> bytes:
        """901F: flow, unit, settlement-day flow, unit, clock (ss mm hh DD MM YYlo YYhi), ST."""
        wall = self.clock.wall(at)
        clock = (wall.second, wall.minute, wall.hour, wall.day, wall.month)
        return (
            bcd_from_decimal(shown(self.usage.total), 4, 2)
            + bytes([UNIT_M3])
            + bcd_from_decimal(shown(self.usage.settlement_total), 4, 2)
            + bytes([UNIT_M3])
            + bcd_bytes((*clock, wall.year % 100, wall.year // 100))
        ) + self.status()

    def status(self) -> bytes:
        """ST: byte 0 bits 0-1 valve (00 open, 01 closed), bit 2 battery low; byte 1 the
        maker's own, zero here."""
        valve = 0 if self.valve_open else VALVE_CLOSED_BITS
        return bytes([valve | (BATTERY_LOW_BIT if self.battery_low else 0), 0])

    def _normal(self, function: int, di: int, seq: int, payload: bytes) -> Frame:
        return self._frame(Control(function, from_meter=True), di, seq, payload)

    def _frame(self, control: Control, di: int, seq: int, payload: bytes) -> Frame:
        data = di_wire(di, self.model.di_order) + bytes([seq]) + payload
        return Frame(self.model.meter_type, self.address, control, data)
