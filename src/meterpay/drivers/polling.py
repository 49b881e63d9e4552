"""Polling a meter model: the requests to send, and replies turned into a reading.

For the link layer (one outstanding request per RS-485 bus)::

    for poll in poll_requests(model, "000102030425"):
        stream.expect(poll.request)            # only Modbus RTU needs it; harmless elsewhere
        send(poll.frame); frame = next reply frame from the stream
        answers.append((poll, frame))
    reading = reading_from_replies(model, "000102030425", answers)

Invariants:
- pure: the same model and address always give the same bytes; nothing here reads a
  clock or opens a link;
- a reply is checked against its request (address, function, DI, unit, count) before
  it is read; a mismatch is ``UnexpectedReply``, a meter's refusal is ``Refused``;
- a reading's quantities are ``Decimal`` in the utility's unit (kWh, m3: a water
  meter counting litres is converted), with what the meter said kept alongside.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from meterpay.drivers import cjt188, cjt188_messages, dlt645, dlt645_replies, modbus
from meterpay.drivers import dlt645_requests as dlt645_out
from meterpay.drivers.dlt645_items import ItemValue, item_1997, item_2007
from meterpay.drivers.errors import FrameError, UnexpectedReply
from meterpay.drivers.modbus_values import decode_value
from meterpay.drivers.models import (
    FLAG_FIELDS,
    Cjt188Model,
    Dlt645Model,
    MeterModel,
    ModbusModel,
    Protocol,
    RegisterRead,
)
from meterpay.drivers.stream import (
    FrameStream,
    ModbusRtuStream,
    cjt188_stream,
    dlt645_stream,
    modbus_tcp_stream,
)

Request = dlt645.Frame | cjt188.Frame | modbus.Message
ReplyFrame = dlt645.Frame | cjt188.Frame | modbus.Message | modbus.TcpFrame
Fields = dict[str, ItemValue]

WATER_FIELDS: Final = (
    "total",
    "settlement_total",
    "meter_unit",
    "meter_time",
    "valve",
    "battery_low",
    "status",
)
_LITRES_PER_M3: Final = Decimal(1000)


@dataclass(frozen=True, slots=True)
class PollRequest:
    """One request of a model's schedule: the bytes, the typed request to match the
    reply against, and the reading fields its reply fills."""

    model_id: str
    address: str
    item: str
    every_minutes: int
    frame: bytes
    request: Request
    yields: tuple[str, ...]
    register: RegisterRead | None = None
    transaction_id: int | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """The meter answered a read with a refusal (abnormal reply, Modbus exception)."""

    item: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Reading:
    """What one polling round learned; None = not read this round."""

    model_id: str
    address: str
    unit: str
    total: Decimal | None = None
    tip: Decimal | None = None
    peak: Decimal | None = None
    flat: Decimal | None = None
    valley: Decimal | None = None
    voltage: Decimal | None = None
    relay_open: bool | None = None
    valve: str | None = None
    battery_low: bool | None = None
    other: Mapping[str, ItemValue] = field(default_factory=dict)
    refused: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """The fields that were read, the meter's extras and refusals, without Nones."""
        main = {
            name: getattr(self, name)
            for name in _MAIN_FIELDS
            if getattr(self, name) is not None or name in ("model_id", "address", "unit")
        }
        return {**main, **self.other, **({"refused": dict(self.refused)} if self.refused else {})}


_MAIN_FIELDS: Final = (
    "model_id",
    "address",
    "unit",
    "total",
    "tip",
    "peak",
    "flat",
    "valley",
    "voltage",
    "relay_open",
    "valve",
    "battery_low",
)


def poll_requests(
    model: MeterModel, address: str, *, every_minutes: int | None = None
) -> list[PollRequest]:
    """The model's reads for the meter at ``address`` (a Modbus unit id for Modbus
    models), optionally only those polled every ``every_minutes``."""
    if isinstance(model, Dlt645Model):
        polls = _dlt645_polls(model, address)
    elif isinstance(model, Cjt188Model):
        polls = _cjt188_polls(model, address)
    else:
        polls = _modbus_polls(model, address)
    return [p for p in polls if every_minutes is None or p.every_minutes == every_minutes]


def _dlt645_polls(model: Dlt645Model, address: str) -> list[PollRequest]:
    edition_1997 = model.protocol is Protocol.DLT645_1997
    polls = []
    for read in model.reads:
        di = read.di_number
        item = item_1997(di) if edition_1997 else item_2007(di)
        request = (
            dlt645_out.read_request_1997(address, di)
            if edition_1997
            else dlt645_out.read_request(address, di)
        )
        names = item.names if item else ()
        frame = dlt645.encode(request, wake_up=model.wake_up)
        polls.append(
            PollRequest(
                model.id, address, read.di.upper(), read.every_minutes, frame, request, names
            )
        )
    return polls


def _cjt188_polls(model: Cjt188Model, address: str) -> list[PollRequest]:
    polls = []
    for read in model.reads:
        request = cjt188_messages.read_request(
            address, di_order=model.di_order, meter_type=model.meter_type, di=int(read.di, 16)
        )
        frame = cjt188.encode(request, wake_up=model.wake_up)
        yields = WATER_FIELDS if int(read.di, 16) == cjt188_messages.DI_CURRENT_DATA else ()
        polls.append(
            PollRequest(
                model.id, address, read.di.upper(), read.every_minutes, frame, request, yields
            )
        )
    return polls


def unit_id(address: str) -> int:
    """A Modbus meter's address is its unit id, 1..247."""
    if not address.isdigit() or not 1 <= int(address) <= 247:
        raise ValueError(f"Modbus unit id {address!r} must be 1..247")
    return int(address)


def _modbus_polls(model: ModbusModel, address: str) -> list[PollRequest]:
    unit = unit_id(address)
    polls = []
    for number, register in enumerate(model.registers, start=1):
        function = (
            modbus.FunctionCode.READ_INPUT_REGISTERS
            if register.function == "input"
            else modbus.FunctionCode.READ_HOLDING_REGISTERS
        )
        request = modbus.read_registers(unit, function, register.address, register.type.registers)
        tcp = model.protocol is Protocol.MODBUS_TCP
        frame = modbus.encode_tcp(request, number) if tcp else modbus.encode_rtu(request)
        polls.append(
            PollRequest(
                model.id,
                address,
                register.field,
                register.every_minutes,
                frame,
                request,
                (register.field,),
                register=register,
                transaction_id=number if tcp else None,
            )
        )
    return polls


AnyStream = (
    FrameStream[dlt645.Frame]
    | FrameStream[cjt188.Frame]
    | FrameStream[modbus.Message]
    | FrameStream[modbus.TcpFrame]
)


def new_stream(model: MeterModel) -> AnyStream:
    """A stream decoder for the link a meter of ``model`` answers on; call its
    ``expect(poll.request)`` before each send (only Modbus RTU needs it)."""
    if isinstance(model, Dlt645Model):
        return dlt645_stream()
    if isinstance(model, Cjt188Model):
        return cjt188_stream()
    return ModbusRtuStream() if model.protocol is Protocol.MODBUS_RTU else modbus_tcp_stream()


def interpret(poll: PollRequest, reply: ReplyFrame) -> Fields | Refused:
    """The reading fields in ``reply`` to ``poll``, or the meter's refusal."""
    request = poll.request
    if isinstance(request, dlt645.Frame) and isinstance(reply, dlt645.Frame):
        return _dlt645_fields(poll, dlt645_replies.answer(request, reply))
    if isinstance(request, cjt188.Frame) and isinstance(reply, cjt188.Frame):
        return _cjt188_fields(poll, cjt188_messages.answer(request, reply))
    if isinstance(request, modbus.Message) and isinstance(reply, modbus.TcpFrame):
        if reply.transaction_id != poll.transaction_id:
            raise UnexpectedReply(
                f"transaction {reply.transaction_id}, expected {poll.transaction_id}"
            )
        reply = reply.message
    if isinstance(request, modbus.Message) and isinstance(reply, modbus.Message):
        return _modbus_fields(poll, modbus.answer(request, reply))
    raise UnexpectedReply(f"a {type(reply).__name__} cannot answer a {type(request).__name__}")


def answers(request: Request, reply: ReplyFrame) -> bool:
    """Whether ``reply`` is the meter's answer to ``request`` (not another meter's)."""
    try:
        if isinstance(request, dlt645.Frame) and isinstance(reply, dlt645.Frame):
            dlt645_replies.answer(request, reply)
        elif isinstance(request, cjt188.Frame) and isinstance(reply, cjt188.Frame):
            cjt188_messages.answer(request, reply)
        elif isinstance(request, modbus.Message):
            message = reply.message if isinstance(reply, modbus.TcpFrame) else reply
            if not isinstance(message, modbus.Message):
                return False
            modbus.answer(request, message)
        else:
            return False
    except FrameError:
        return False
    return True


def wire_bytes(frame: ReplyFrame) -> bytes:
    """A decoded frame's bytes as logged: the frame itself, without wake-up bytes
    (noise around it is logged apart, as skipped)."""
    if isinstance(frame, dlt645.Frame):
        return dlt645.encode(frame)
    if isinstance(frame, cjt188.Frame):
        return cjt188.encode(frame, wake_up=0)
    if isinstance(frame, modbus.TcpFrame):
        return modbus.encode_tcp(frame.message, frame.transaction_id)
    return modbus.encode_rtu(frame)


def _dlt645_fields(poll: PollRequest, reply: dlt645_replies.Reply) -> Fields | Refused:
    if isinstance(reply, dlt645_replies.AbnormalReply):
        return Refused(poll.item, tuple(reason.value for reason in reply.reasons) or ("unknown",))
    if not isinstance(reply, dlt645_replies.ReadReply):
        raise UnexpectedReply(f"{type(reply).__name__} does not answer a read")
    if reply.more_follows:
        # no item in our DI table is longer than one frame; a meter that splits one is
        # read with 12H follow-ups by the caller (dlt645_replies.join_follow_ups)
        raise UnexpectedReply(f"DI {poll.item} came in parts; read the follow-ups")
    return dict(reply.fields)


def _cjt188_fields(poll: PollRequest, reply: cjt188_messages.Reply) -> Fields | Refused:
    if isinstance(reply, cjt188_messages.AbnormalReply):
        return Refused(poll.item, ("abnormal_reply",))
    if not isinstance(reply, cjt188_messages.CurrentData):
        raise UnexpectedReply(f"{type(reply).__name__} does not answer a 901F read")
    fields: Fields = {
        "total": water_volume(reply.total, reply.total_unit),
        "settlement_total": water_volume(reply.settlement_total, reply.settlement_unit),
        "meter_unit": reply.total_unit,
        "valve": reply.status.valve.value,
        "battery_low": reply.status.battery_low,
        "status": reply.status.raw.hex().upper(),
    }
    if reply.meter_time is not None:
        fields["meter_time"] = reply.meter_time
    return fields


def water_volume(value: Decimal, unit: str) -> Decimal:
    """A water meter's count in m3 (litre meters are scaled); other units are refused."""
    if unit == "m3":
        return value
    if unit == "L":
        return value / _LITRES_PER_M3
    raise FrameError(f"unit {unit} is not a water volume")


def _modbus_fields(poll: PollRequest, reply: modbus.Reply) -> Fields | Refused:
    if isinstance(reply, modbus.ExceptionReply):
        return Refused(poll.item, (reply.name,))
    register = poll.register
    if not isinstance(reply, modbus.RegistersReply) or register is None:
        raise UnexpectedReply(f"{type(reply).__name__} does not answer a register read")
    if register.field in FLAG_FIELDS:
        raw = int(decode_value(reply.registers, register.type, word_order=register.word_order))
        flag = bool(raw >> register.bit & 1) if register.bit is not None else raw != 0
        return {register.field: flag}
    value = decode_value(
        reply.registers, register.type, word_order=register.word_order, scale=register.scale
    )
    return {register.field: value}


def reading_from_replies(
    model: MeterModel, address: str, replies: Iterable[tuple[PollRequest, ReplyFrame]]
) -> Reading:
    """One reading from a round of (poll, reply frame) pairs; later values win."""
    values: Fields = {}
    refused: dict[str, tuple[str, ...]] = {}
    for poll, reply in replies:
        answer = interpret(poll, reply)
        if isinstance(answer, Refused):
            refused[answer.item] = answer.reasons
        else:
            values.update(answer)
    return Reading(
        model.id,
        address,
        model.utility.unit,
        total=_quantity(values, "total"),
        tip=_quantity(values, "tip"),
        peak=_quantity(values, "peak"),
        flat=_quantity(values, "flat"),
        valley=_quantity(values, "valley"),
        voltage=_quantity(values, "voltage"),
        relay_open=_flag(values, "relay_open"),
        valve=_text(values, "valve"),
        battery_low=_flag(values, "battery_low"),
        other=values,
        refused=refused,
    )


def _quantity(values: Fields, name: str) -> Decimal | None:
    value = values.pop(name, None)
    if value is None or isinstance(value, Decimal):
        return value
    raise FrameError(f"{name} is {value!r}, not a quantity")


def _flag(values: Fields, name: str) -> bool | None:
    value = values.pop(name, None)
    if value is None or isinstance(value, bool):
        return value
    raise FrameError(f"{name} is {value!r}, not a flag")


def _text(values: Fields, name: str) -> str | None:
    value = values.pop(name, None)
    return None if value is None else str(value)
