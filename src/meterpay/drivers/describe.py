"""Frames, replies and stream events as JSON-ready dicts, for ``frame decode`` and logs.

Invariants: numbers that are quantities become text (``"1206.42"``), never floats;
bytes become spaced upper-case hex; function codes and DIs read as the standards print
them (``"0x91"``, ``"00010000"``); enums become their values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from types import NoneType, UnionType
from typing import Any, Final

from meterpay.drivers import cjt188, cjt188_messages, dlt645, dlt645_replies, modbus
from meterpay.drivers.errors import FrameError
from meterpay.drivers.stream import Skipped


def describe(event: object) -> dict[str, object]:
    """A stream event as a JSON-ready dict: the frame's bytes, its fields, and what it
    means (the decoded reply or the request's DI), or the skipped bytes and why."""
    if isinstance(event, Skipped):
        return {"skipped": wire_hex(event.data), "reason": event.reason}
    if isinstance(event, dlt645.Frame):
        return {
            "frame": wire_hex(dlt645.encode(event)),
            **json_object(event),
            **_dlt645_meaning(event),
        }
    if isinstance(event, cjt188.Frame):
        meaning = _cjt188_meaning(event)
        return {"frame": wire_hex(cjt188.encode(event, wake_up=0)), **json_object(event), **meaning}
    if isinstance(event, modbus.TcpFrame):
        described = _modbus_meaning(event.message)
        return {
            "frame": wire_hex(modbus.encode_tcp(event.message, event.transaction_id)),
            **described,
        }
    if isinstance(event, modbus.Message):
        return {"frame": wire_hex(modbus.encode_rtu(event)), **_modbus_meaning(event)}
    return {"unknown": repr(event)}  # pragma: no cover - every stream yields the above


def _dlt645_meaning(frame: dlt645.Frame) -> dict[str, object]:
    edition = "1997" if dlt645_replies.is_1997(frame.control.function) else "2007"
    meaning: dict[str, object] = {"edition": edition}
    try:
        if frame.control.from_meter:
            reply = dlt645_replies.parse_reply(frame)
            meaning["reply"] = json_object(reply)
            if isinstance(reply, dlt645_replies.ReadReply):  # 2007 DIs keep all 8 digits
                meaning["di"] = f"{reply.di:0{4 if edition == '1997' else 8}X}"
        elif len(frame.data) >= 2:
            di_size = 2 if edition == "1997" else min(4, len(frame.data))
            meaning["di"] = f"{int.from_bytes(frame.data[:di_size], 'little'):0{2 * di_size}X}"
    except FrameError as exc:
        meaning["problem"] = str(exc)
    return meaning


def _cjt188_meaning(frame: cjt188.Frame) -> dict[str, object]:
    meaning: dict[str, object] = {
        "meter_number": cjt188.meter_number(frame.address),
        "manufacturer_code": cjt188.manufacturer_code(frame.address),
    }
    try:
        if frame.control.from_meter:
            meaning["reply"] = json_object(cjt188_messages.parse_reply(frame))
        else:
            meaning["di"] = f"{cjt188_messages.read_di(frame.data):04X}"
    except FrameError as exc:
        meaning["problem"] = str(exc)
    return meaning


def _modbus_meaning(message: modbus.Message) -> dict[str, object]:
    meaning: dict[str, object] = {**json_object(message)}
    try:
        meaning["reply"] = json_object(modbus.parse_reply(message))
    except FrameError:
        try:
            meaning["request"] = json_object(modbus.parse_read_request(message))
        except FrameError as exc:
            meaning["problem"] = str(exc)
    return meaning


def wire_hex(data: bytes) -> str:
    """``68 25 04 ...``: bytes as the standards and the frame log print them."""
    return data.hex(" ").upper()


def json_object(value: object) -> dict[str, object]:
    """``json_ready`` of a dataclass (or anything, wrapped as ``{"value": ...}``)."""
    converted = json_ready(value)
    return converted if isinstance(converted, dict) else {"value": converted}


def json_ready(value: object) -> object:
    """JSON-ready: dataclasses as objects, Decimal as text (never float), bytes as hex."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _field_value(f.name, getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    for kind, convert in _SCALARS:
        if isinstance(value, kind):
            return convert(value)
    return repr(value)


def _field_value(name: str, value: object) -> object:
    """Function codes and DIs read as the standards print them (``0x91``, ``00010000``)."""
    if name == "function" and isinstance(value, int):
        return f"0x{value:02X}"
    if name == "di" and isinstance(value, int):
        return f"{value:08X}" if value > 0xFFFF else f"{value:04X}"
    return json_ready(value)


_SCALARS: Final[tuple[tuple[type | UnionType, Callable[[Any], object]], ...]] = (
    (bool | int | str | NoneType, lambda v: v),
    (Decimal, str),
    (bytes, wire_hex),
    (datetime | date | time, lambda v: v.isoformat()),
)
