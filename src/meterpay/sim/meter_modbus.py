"""A simulated Modbus RTU meter whose register map is its model's ``registers`` table.

Each row of the model (field, holding or input, address, type, word order, scale, bit)
is a register the meter holds, so ``polling`` reads back exactly what the meter counts:
for the Eastron SDM120 that is float32 input registers, high word first, with power in
W. Reads are FC03/FC04; a relay, if the model has one, is FC05 (coil) or FC06 (register)
with the model's values, answered by an echo, and reads back where it is written: FC01
on its coil, FC03 on its register (one at a time: the relay is not in the table).

Invariants:
- a read touching any address outside the table is exception 02 (illegal data
  address), a count outside 1..125 or a malformed request is 03 (illegal data value), a
  function the meter lacks (a relay write on a meter without one) is 01;
- unit 0 is broadcast: a write is obeyed, nothing is answered;
- an integer register holds the value truncated to its scale and wraps at its width,
  like a real counter; a float32 register holds the nearest float.
"""

from __future__ import annotations

import random
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Final
from zoneinfo import ZoneInfo

from meterpay.drivers import modbus
from meterpay.drivers.errors import FrameError
from meterpay.drivers.modbus import EXCEPTION_BIT, FunctionCode, Message
from meterpay.drivers.modbus_values import RegisterType, encode_value
from meterpay.drivers.models import ModbusModel, Protocol, RegisterRead
from meterpay.drivers.polling import unit_id
from meterpay.kernel.quantity import Utility
from meterpay.sim.meter_faults import MeterFaults
from meterpay.sim.meter_usage import MeterClock, Usage
from meterpay.sites.model import UnitKind

BROADCAST_UNIT: Final = 0
ILLEGAL_FUNCTION: Final = 0x01
ILLEGAL_DATA_ADDRESS: Final = 0x02
ILLEGAL_DATA_VALUE: Final = 0x03
_READS: Final = {
    "holding": FunctionCode.READ_HOLDING_REGISTERS,
    "input": FunctionCode.READ_INPUT_REGISTERS,
}
_SIGNED: Final = frozenset({RegisterType.INT16, RegisterType.INT32})

FieldValue = Decimal | bool


class ModbusMeter:
    """One Modbus RTU meter at unit ``address`` ("1".."247") behaving as ``model`` says."""

    def __init__(
        self,
        model: ModbusModel,
        address: str,
        *,
        kind: UnitKind = UnitKind.HOME,
        scale: float = 1.0,
        speed: float = 1.0,
        opening: Decimal = Decimal(0),
        zone: str = "Asia/Shanghai",
        seed: int | str | None = None,
    ) -> None:
        if model.protocol is not Protocol.MODBUS_RTU:
            raise ValueError(f"model {model.id} is Modbus TCP: such a meter is not on RS-485")
        self.model = model
        self.address = address
        self.unit = unit_id(address)
        self.rng = random.Random(f"{model.id}/{address}" if seed is None else seed)  # noqa: S311  simulation, not security
        self.clock = MeterClock(ZoneInfo(zone))
        self.usage = Usage(Utility.ELECTRICITY, self.clock, kind, scale, speed, rng=self.rng)
        self.usage.open_with(opening)
        self.faults = MeterFaults()
        self.relay_open = False
        self._table: dict[tuple[int, int], RegisterRead] = {
            (_READS[row.function], row.address + offset): row
            for row in model.registers
            for offset in range(row.type.registers)
        }

    @property
    def protocol(self) -> Protocol:
        return self.model.protocol

    @property
    def flowing(self) -> bool:
        return not self.relay_open or self.faults.bypass

    def advance(self, at: datetime) -> None:
        self.usage.advance(at, flowing=self.flowing, leak_per_hour=self.faults.leak_per_hour)

    def answer(self, request: bytes, at: datetime) -> bytes | None:
        """The reply bytes to ``request`` bytes at ``at``, or None (no reply, as on a bus)."""
        try:
            message = modbus.decode_rtu(request)
        except FrameError:
            return None
        return self.hear(message, at)

    def hear(self, message: Message, at: datetime) -> bytes | None:
        """The reply bytes to a request heard on the bus, faults applied; None = silence."""
        self.advance(at)
        if self.faults.offline or message.unit not in (self.unit, BROADCAST_UNIT):
            return None
        reply = self._reply(message, at)
        if message.unit == BROADCAST_UNIT:
            return None
        return self.faults.garble(modbus.encode_rtu(reply), self.rng)

    def _reply(self, message: Message, at: datetime) -> Message:
        function = message.function
        if self._reads_relay(message):
            return self._relay_state(message)
        if function in _READS.values():
            return self._read(message, at)
        if function in (FunctionCode.WRITE_SINGLE_COIL, FunctionCode.WRITE_SINGLE_REGISTER):
            return self._switch(message)
        return self._exception(function, ILLEGAL_FUNCTION)

    # --- reads ---------------------------------------------------------------------------

    def _read(self, message: Message, at: datetime) -> Message:
        try:
            request = modbus.parse_read_request(message)
        except FrameError:
            return self._exception(message.function, ILLEGAL_DATA_VALUE)
        if not 1 <= request.count <= modbus.MAX_REGISTERS:
            return self._exception(message.function, ILLEGAL_DATA_VALUE)
        addresses = range(request.address, request.address + request.count)
        if any((request.function, address) not in self._table for address in addresses):
            return self._exception(message.function, ILLEGAL_DATA_ADDRESS)
        held: dict[int, tuple[int, ...]] = {}  # a row's words, computed once per request
        words = []
        for address in addresses:
            row = self._table[(request.function, address)]
            if row.address not in held:
                held[row.address] = self._words(row, at)
            words.append(held[row.address][address - row.address])
        data = bytes([2 * len(words)]) + b"".join(word.to_bytes(2, "big") for word in words)
        return Message(self.unit, message.function, data)

    def _words(self, row: RegisterRead, at: datetime) -> tuple[int, ...]:
        value = self.field_value(row.field, at)
        if isinstance(value, bool):
            flag = (1 << row.bit if row.bit is not None else 1) if value else 0
            return encode_value(Decimal(flag), row.type, word_order=row.word_order)
        if row.type is not RegisterType.FLOAT32:
            steps = int((value / row.scale).to_integral_value(ROUND_DOWN))
            width = 16 * row.type.registers - (row.type in _SIGNED)
            value = (steps % (1 << width)) * row.scale
        return encode_value(value, row.type, word_order=row.word_order, scale=row.scale)

    def field_value(self, field: str, at: datetime) -> FieldValue:
        """What the meter holds for a reading field at ``at`` (kWh, V, A, kW, flags)."""
        total = self.usage.total
        held: dict[str, FieldValue] = {
            "relay_open": self.relay_open,
            "battery_low": False,  # mains powered
            "total": total,
            "combined_total": total,
            "reverse_total": Decimal(0),  # nothing flows back from a flat
            **{period.value: value for period, value in self.usage.registers.items()},
        }
        if field in held:
            return held[field]
        now = self.usage.instant(at, flowing=self.flowing)
        if field.startswith("voltage"):
            return now.volts
        return now.kw if field == "power" else now.amps

    # --- relay ---------------------------------------------------------------------------

    def _switch(self, message: Message) -> Message:
        relay, function = self.model.relay, message.function
        coil = function == FunctionCode.WRITE_SINGLE_COIL
        if relay.style == "none" or coil != (relay.style == "coil"):
            return self._exception(function, ILLEGAL_FUNCTION)
        if len(message.data) != 4:
            return self._exception(function, ILLEGAL_DATA_VALUE)
        address = int.from_bytes(message.data[:2], "big")
        value = int.from_bytes(message.data[2:], "big")
        if address != relay.address:
            return self._exception(function, ILLEGAL_DATA_ADDRESS)
        if value not in (relay.disconnect_value, relay.reconnect_value):
            return self._exception(function, ILLEGAL_DATA_VALUE)
        self.relay_open = value == relay.disconnect_value
        return Message(self.unit, function, message.data)  # a write is answered by its echo

    def _reads_relay(self, message: Message) -> bool:
        relay = self.model.relay
        wanted = {"coil": FunctionCode.READ_COILS, "register": FunctionCode.READ_HOLDING_REGISTERS}
        if relay.style not in wanted or message.function != wanted[relay.style]:
            return False
        return message.data[:2] == (relay.address or 0).to_bytes(2, "big")

    def _relay_state(self, message: Message) -> Message:
        """FC01 of the relay coil (bit 0: on = closed) or FC03 of the relay register."""
        relay = self.model.relay
        if message.data[2:] != b"\x00\x01":  # only the relay itself is there to read
            return self._exception(message.function, ILLEGAL_DATA_ADDRESS)
        value = relay.disconnect_value if self.relay_open else relay.reconnect_value
        if message.function == FunctionCode.READ_COILS:
            return Message(self.unit, message.function, bytes([1, value == modbus.COIL_ON]))
        return Message(self.unit, message.function, b"\x02" + (value or 0).to_bytes(2, "big"))

    def _exception(self, function: int, code: int) -> Message:
        return Message(self.unit, function | EXCEPTION_BIT, bytes([code]))
