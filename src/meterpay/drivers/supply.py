"""Switching supply by meter model: relay (DL/T 645 1CH, Modbus coil/register) or valve
(CJ/T 188 A017), the meter's acknowledgement, and the read-back that confirms it.

An acknowledgement says the meter took the command; only a later reading says the
relay or valve moved (a battery water meter may act at its next wake-up). So::

    command = supply_command(model, address, SupplyAction.DISCONNECT, now=clock.now())
    send(command.frame); outcome = command_outcome(command, reply_frame)
    ... later: supply_confirmed(SupplyAction.DISCONNECT, reading) is True

A Modbus relay is read back where it was written: ``relay_read_request`` reads its
coil (FC01) or register (FC03), ``relay_read_back`` says whether it holds the value
the action wrote.

Invariants:
- a model without a remote switch refuses with ``NoRemoteSwitch``, never silently;
- a DL/T 645 relay command carries an expiry ``now + expiry_minutes`` (``now`` is the
  meter's local wall clock, passed in: nothing here reads a clock), so a command
  delayed in a queue dies at the meter instead of acting late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from meterpay.drivers import cjt188, cjt188_messages, dlt645, dlt645_replies, modbus
from meterpay.drivers import dlt645_requests as dlt645_out
from meterpay.drivers.errors import FrameError, UnexpectedReply
from meterpay.drivers.models import (
    Cjt188Model,
    Dlt645Model,
    MeterModel,
    ModbusModel,
    ModbusRelay,
    Protocol,
)
from meterpay.drivers.polling import Reading, ReplyFrame, Request, unit_id


class SupplyAction(StrEnum):
    DISCONNECT = "disconnect"
    RECONNECT = "reconnect"
    RECONNECT_ALLOWED = "reconnect_allowed"
    """DL/T 645 1BH 合闸允许: the relay closes when the owner presses the meter's button;
    other protocols reconnect as usual."""


class NoRemoteSwitch(ValueError):
    """The meter model has no relay or valve we can command."""


@dataclass(frozen=True, slots=True)
class SupplyCommand:
    model_id: str
    address: str
    action: SupplyAction
    frame: bytes
    request: Request
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """Whether the meter accepted the command; ``valve`` is the ST the reply carried."""

    accepted: bool
    reasons: tuple[str, ...] = ()
    valve: str | None = None


def supply_command(
    model: MeterModel, address: str, action: SupplyAction, *, now: datetime
) -> SupplyCommand:
    """The request that disconnects or reconnects the meter at ``address``."""
    if isinstance(model, Dlt645Model):
        return _relay_645(model, address, action, now)
    if isinstance(model, Cjt188Model):
        return _valve_188(model, address, action)
    return _relay_modbus(model, address, action)


def _relay_645(
    model: Dlt645Model, address: str, action: SupplyAction, now: datetime
) -> SupplyCommand:
    relay = model.relay
    if relay.style == "none" or model.protocol is Protocol.DLT645_1997:
        raise NoRemoteSwitch(f"model {model.id} has no remote relay")
    reconnect = dlt645_out.RelayCommand(relay.reconnect)
    if action is SupplyAction.RECONNECT_ALLOWED:
        reconnect = dlt645_out.RelayCommand.CLOSE_ALLOWED
    command = dlt645_out.RelayCommand.TRIP if action is SupplyAction.DISCONNECT else reconnect
    password = dlt645_out.Password(relay.password_level, relay.password, relay.operator_code)
    expires_at = now + timedelta(minutes=relay.expiry_minutes)
    request = dlt645_out.relay_request(address, command, expires_at=expires_at, password=password)
    frame = dlt645.encode(request, wake_up=model.wake_up)
    return SupplyCommand(model.id, address, action, frame, request, expires_at)


def _valve_188(model: Cjt188Model, address: str, action: SupplyAction) -> SupplyCommand:
    if model.valve.style == "none":
        raise NoRemoteSwitch(f"model {model.id} has no valve")
    request = cjt188_messages.valve_request(
        address,
        open_valve=action is not SupplyAction.DISCONNECT,
        di_order=model.di_order,
        meter_type=model.meter_type,
    )
    frame = cjt188.encode(request, wake_up=model.wake_up)
    return SupplyCommand(model.id, address, action, frame, request)


def _relay_modbus(model: ModbusModel, address: str, action: SupplyAction) -> SupplyCommand:
    relay: ModbusRelay = model.relay
    if relay.style == "none" or relay.address is None:
        raise NoRemoteSwitch(f"model {model.id} has no remote relay")
    value = relay.disconnect_value if action is SupplyAction.DISCONNECT else relay.reconnect_value
    unit = unit_id(address)
    request = (
        modbus.write_coil(unit, relay.address, on=value == modbus.COIL_ON)
        if relay.style == "coil"
        else modbus.write_register(unit, relay.address, value or 0)
    )
    tcp = model.protocol is Protocol.MODBUS_TCP
    frame = modbus.encode_tcp(request, 1) if tcp else modbus.encode_rtu(request)
    return SupplyCommand(model.id, address, action, frame, request)


def command_outcome(command: SupplyCommand, reply: ReplyFrame) -> CommandOutcome:
    """What the meter answered to ``command`` (checked to be its answer)."""
    request = command.request
    if isinstance(request, dlt645.Frame) and isinstance(reply, dlt645.Frame):
        answer = dlt645_replies.answer(request, reply)
        if isinstance(answer, dlt645_replies.AbnormalReply):
            return CommandOutcome(False, tuple(r.value for r in answer.reasons) or ("unknown",))
        return CommandOutcome(True)
    if isinstance(request, cjt188.Frame) and isinstance(reply, cjt188.Frame):
        valve = cjt188_messages.answer(request, reply)
        if isinstance(valve, cjt188_messages.AbnormalReply):
            status = valve.status.valve.value if valve.status else None
            return CommandOutcome(False, ("abnormal_reply",), status)
        if isinstance(valve, cjt188_messages.ValveReply):
            return CommandOutcome(True, valve=valve.status.valve.value)
    if isinstance(request, modbus.Message):
        message = reply.message if isinstance(reply, modbus.TcpFrame) else reply
        if isinstance(message, modbus.Message):
            echo = modbus.answer(request, message)
            if isinstance(echo, modbus.ExceptionReply):
                return CommandOutcome(False, (echo.name,))
            return CommandOutcome(True)
    raise UnexpectedReply(f"a {type(reply).__name__} does not answer this supply command")


def supply_confirmed(action: SupplyAction, reading: Reading) -> bool | None:
    """Whether ``reading`` shows the supply as ``action`` left it; None if it cannot tell
    (the reading has neither relay state nor valve state, or a relay allowed to close
    is still waiting for the owner's button)."""
    off = action is SupplyAction.DISCONNECT
    if action is SupplyAction.RECONNECT_ALLOWED and reading.relay_open:
        return None
    if reading.relay_open is not None:
        return reading.relay_open is off
    if reading.valve is not None:
        wanted = cjt188_messages.Valve.CLOSED if off else cjt188_messages.Valve.OPEN
        return reading.valve == wanted.value
    return None


def relay_read_request(model: ModbusModel, address: str) -> modbus.Message:
    """The read that shows a Modbus relay's state: its coil (FC01, one coil) or its
    register (FC03, one register). Assumes the relay reads back at the address it is
    written, as the bundled models' meters do."""
    relay = model.relay
    if relay.style == "none" or relay.address is None:
        raise NoRemoteSwitch(f"model {model.id} has no remote relay")
    unit = unit_id(address)
    if relay.style == "register":
        return modbus.read_holding_registers(unit, relay.address, 1)
    data = relay.address.to_bytes(2, "big") + (1).to_bytes(2, "big")
    return modbus.Message(unit, modbus.FunctionCode.READ_COILS, data)


def relay_read_back(
    model: ModbusModel, action: SupplyAction, request: modbus.Message, reply: modbus.Message
) -> bool | None:
    """Whether the relay holds the value ``action`` writes; None if the meter answered the
    read with an exception (it cannot tell). A reply that does not answer ``request`` is
    an ``UnexpectedReply``, a malformed one a ``FrameError``."""
    relay = model.relay
    wanted = relay.disconnect_value if action is SupplyAction.DISCONNECT else relay.reconnect_value
    if reply.unit != request.unit or reply.function & ~modbus.EXCEPTION_BIT != request.function:
        raise UnexpectedReply(
            f"unit {reply.unit} function 0x{reply.function:02X} answers another read"
        )
    if reply.function & modbus.EXCEPTION_BIT:
        return None
    if request.function == modbus.FunctionCode.READ_COILS:
        data = reply.data
        if len(data) < 2 or data[0] != len(data) - 1:
            raise FrameError(f"coil reply {data.hex()} has a bad byte count")
        return bool(data[1] & 1) is (wanted == modbus.COIL_ON)
    answer = modbus.answer(request, reply)
    if not isinstance(answer, modbus.RegistersReply):
        raise UnexpectedReply("a register read answered by a write echo")
    return answer.registers[0] == wanted
