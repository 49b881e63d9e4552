"""What NB-IoT platforms push to us (CTWing, OneNET): parse, authenticate, map to readings.

Pure code: bytes and settings in, typed messages out — no database, no web. Invariants:
- JSON numbers are read as ``int`` or ``Decimal``, never ``float``: a register value is exact;
- a push is refused whole (``MalformedPush`` naming the field, ``BadPushSignature``) before
  anything is written: callers parse and map every message first, then write;
- times are the platform's milliseconds since the epoch, as aware UTC datetimes;
- OneNET signatures are ``base64(md5(token + nonce + msg))``, compared in constant time.
Field names and shapes follow the platforms' public documentation; ``docs/nbiot.md`` lists
what was confirmed and from where.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

from meterpay.kernel.errors import InvalidInput, Unauthorized
from meterpay.kernel.quantity import InvalidQuantity, parse_quantity

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Platforms write "undefined" or "" where a device has no IMEI/IMSI (NB modules behind TCP).
_MISSING = frozenset({"", "undefined", "null", "none"})


class MalformedPush(InvalidInput):
    """The push body breaks the platform's format; ``details["field"]`` names the culprit."""

    code = "malformed_push"


class BadPushSignature(Unauthorized):
    """The push does not prove it comes from the platform (wrong token or signature)."""

    code = "bad_signature"


class Platform(StrEnum):
    CTWING = "ctwing"
    """China Telecom 天翼物联网 CTWing (AEP): HTTP subscription push (订阅推送)."""
    ONENET = "onenet"
    """China Mobile OneNET: HTTP data push (数据推送), old NB-IoT suite and OneNET Studio."""


class AddressBy(StrEnum):
    """Which identifier of a pushed device is the meter's address behind its gateway."""

    IMEI = "imei"
    DEVICE_ID = "device_id"


class MessageKind(StrEnum):
    DATA = "data"
    ONLINE = "online"
    OFFLINE = "offline"
    OTHER = "other"
    """Acknowledged and logged, nothing else: command responses, events, unknown types."""


@dataclass(frozen=True, slots=True)
class DeviceMessage:
    """One device's message inside a push, in platform-neutral terms.

    ``values`` are the platform-decoded fields (CTWing ``serviceData``, OneNET data points
    or properties); ``times`` the per-field times where the platform gives them; ``raw`` is
    what the frame log keeps (a transparent payload's bytes, else the message's JSON).
    """

    kind: MessageKind
    label: str
    device_id: str
    imei: str | None
    at: datetime
    raw: bytes
    values: Mapping[str, Any] = field(default_factory=dict)
    times: Mapping[str, datetime] = field(default_factory=dict)
    path: str = "{}"
    """Where a field sits in the body, for error messages: ``path.format(name)``."""

    def address(self, by: AddressBy) -> str | None:
        return self.imei if by is AddressBy.IMEI else self.device_id


# --- JSON --------------------------------------------------------------------------------

_DECODER = json.JSONDecoder(parse_float=Decimal)
_SPACE = re.compile(r"[ \t\n\r]*")


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPush("the body is not UTF-8 text", field="body") from exc


def _skip(text: str, pos: int) -> int:
    found = _SPACE.match(text, pos)
    return found.end() if found else pos


def _members(text: str, where: str = "body") -> dict[str, tuple[Any, str]]:
    """The members of a JSON object, each with its exact source text.

    OneNET signs the text of ``msg`` as it sent it; keeping each member's span lets us check
    the signature against those very characters instead of a re-serialization.
    """
    members: dict[str, tuple[Any, str]] = {}
    try:
        pos = _skip(text, 0)
        if text[pos : pos + 1] != "{":
            raise ValueError("not an object")
        pos = _skip(text, pos + 1)
        while text[pos : pos + 1] != "}" or members:
            key, pos = _DECODER.raw_decode(text, pos)
            pos = _skip(text, pos)
            if not isinstance(key, str) or text[pos : pos + 1] != ":":
                raise ValueError("expected a member name and ':'")
            start = _skip(text, pos + 1)
            value, pos = _DECODER.raw_decode(text, start)
            members[key] = (value, text[start:pos])
            pos = _skip(text, pos)
            if text[pos : pos + 1] != ",":
                break
            pos = _skip(text, pos + 1)
        if text[pos : pos + 1] != "}" or text[pos + 1 :].strip():
            raise ValueError("expected '}' at the end")
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise MalformedPush(f"the {where} is not a JSON object: {exc}", field=where) from exc
    return members


def _values(members: Mapping[str, tuple[Any, str]]) -> dict[str, Any]:
    return {key: value for key, (value, _) in members.items()}


def _required(obj: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(name)
    if value is None:
        raise MalformedPush(f"{where} is missing", field=where)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MalformedPush(f"{where} has the wrong type", field=where)
    return value


def _identifier(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return None if text.lower() in _MISSING else text


def millis(value: Any, where: str) -> datetime:
    """A platform timestamp in milliseconds since the epoch, as an aware UTC datetime."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedPush(f"{where} must be milliseconds since 1970 (an integer)", field=where)
    return EPOCH + timedelta(milliseconds=value)


# --- CTWing ------------------------------------------------------------------------------


def parse_ctwing(body: bytes) -> DeviceMessage:
    """A CTWing subscription push: one device's ``dataReport``, online/offline report, ….

    ``payload`` of a data report is ``{"serviceId", "serviceData": {...}}`` (LwM2M object
    model), the decoded object itself, or ``{"APPdata": base64}`` (transparent mode, whose
    bytes we keep for the frame log but cannot read without the vendor's codec).
    """
    push = _values(_members(_text(body)))
    label = _required(push, "messageType", str, "messageType")
    device_id = _identifier(_required(push, "deviceId", (str, int), "deviceId"))
    if device_id is None:
        raise MalformedPush("deviceId is empty", field="deviceId")
    at = millis(_required(push, "timestamp", (int, str), "timestamp"), "timestamp")
    imei = _identifier(push.get("IMEI", push.get("imei")))
    message = DeviceMessage(MessageKind.OTHER, label, device_id, imei, at, raw=body)
    if label == "deviceOnlineOfflineReport":
        online = {1: MessageKind.ONLINE, 0: MessageKind.OFFLINE}.get(push.get("eventType", -1))
        return replace(message, kind=online or MessageKind.OTHER)
    if label != "dataReport":
        return message
    payload = _required(push, "payload", dict, "payload")
    if "APPdata" in payload:
        return replace(message, kind=MessageKind.DATA, raw=_base64(payload["APPdata"]))
    if "serviceData" in payload:
        values = _required(payload, "serviceData", dict, "payload.serviceData")
        return replace(message, kind=MessageKind.DATA, values=values, path="payload.serviceData.{}")
    return replace(message, kind=MessageKind.DATA, values=payload, path="payload.{}")


def _base64(value: Any, where: str = "payload.APPdata") -> bytes:
    if not isinstance(value, str):
        raise MalformedPush(f"{where} must be base64 text", field=where)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedPush(f"{where} is not valid base64", field=where) from exc


def token_matches(presented: str | None, token: str) -> bool:
    """A shared secret compared in constant time (CTWing pushes carry no signature)."""
    return bool(presented) and hmac.compare_digest(str(presented).encode(), token.encode())


# --- OneNET ------------------------------------------------------------------------------


def onenet_signature(token: str, nonce: str, msg: str) -> str:
    """``base64(md5(token + nonce + msg))`` over the UTF-8 bytes, as OneNET signs."""
    digest = hashlib.md5((token + nonce + msg).encode()).digest()  # noqa: S324  OneNET's choice
    return base64.b64encode(digest).decode("ascii")


def _presented(signature: str) -> str:
    # A '+' of base64 arrives as ' ' when the platform left it unescaped in a query string,
    # and some proxies hand on the still-escaped form: undo both, as OneNET's own SDK does.
    signature = signature.strip().replace(" ", "+")
    return unquote(signature) if "%" in signature else signature


def onenet_url_check_passes(token: str, msg: str, nonce: str, signature: str) -> bool:
    """The URL verification handshake (GET ``?msg&nonce&signature``): answer ``msg`` if true."""
    expected = onenet_signature(token, nonce, msg)
    return hmac.compare_digest(expected.encode(), _presented(signature).encode())


@dataclass(frozen=True, slots=True)
class OnenetPush:
    """A OneNET push envelope before its signature is checked.

    ``studio`` pushes (OneNET Studio) carry ``msg`` as a JSON *string* and ``signature``;
    the old NB-IoT suite carries ``msg`` as a JSON object or array and ``msg_signature``.
    ``signed_texts`` are the texts of ``msg`` the signature may cover: the exact characters
    sent, and for the old format also their compact re-serialization (what the platform's
    SDKs compute), since the documentation does not say which one the platform signs.
    """

    nonce: str
    signature: str
    msg: Any
    msg_text: str
    signed_texts: tuple[str, ...]
    studio: bool


def parse_onenet(body: bytes) -> OnenetPush:
    members = _members(_text(body))
    push = _values(members)
    if "enc_msg" in push:
        raise MalformedPush(
            "encrypted pushes (安全模式) are not supported: set the push to plaintext (明文模式)",
            field="enc_msg",
        )
    nonce = _required(push, "nonce", str, "nonce")
    name = "signature" if "signature" in push else "msg_signature"
    signature = _required(push, name, str, name)
    if push.get("msg") is None:
        raise MalformedPush("msg is missing", field="msg")
    msg, raw = members["msg"]
    if isinstance(msg, str):
        return OnenetPush(nonce, signature, msg, msg, (msg,), studio=True)
    if not isinstance(msg, dict | list):
        raise MalformedPush("msg must be a JSON string, object or array", field="msg")
    # Only to rebuild the text the SDKs sign: these floats never become quantities.
    compact = json.dumps(json.loads(raw), ensure_ascii=False, separators=(",", ":"))
    texts = (raw,) if compact == raw else (raw, compact)
    return OnenetPush(nonce, signature, msg, raw, texts, studio=False)


def verify_onenet(push: OnenetPush, token: str) -> None:
    presented = _presented(push.signature).encode()
    for text in push.signed_texts:
        if hmac.compare_digest(onenet_signature(token, push.nonce, text).encode(), presented):
            return
    raise BadPushSignature("the push signature does not match the gateway's OneNET token")


def onenet_messages(push: OnenetPush) -> list[DeviceMessage]:
    """The device messages of a verified push, in the format its envelope announced."""
    raw = push.msg_text.encode()
    if push.studio:
        try:
            inner = _values(_members(push.msg, "msg"))
        except MalformedPush as exc:
            hint = "is the push in secure mode (安全模式)? only plaintext is read"
            raise MalformedPush(f"{exc.message}; {hint}", field="msg") from exc
        return [_studio_message(inner, raw)]
    points = push.msg if isinstance(push.msg, list) else [push.msg]
    if not all(isinstance(point, dict) for point in points):
        raise MalformedPush("each message in msg must be a JSON object", field="msg")
    return _legacy_messages(points, raw)


def _studio_message(msg: Mapping[str, Any], raw: bytes) -> DeviceMessage:
    """OneNET Studio: ``lifeCycle`` (online/offline) and ``notify``/``property`` reports."""
    kind_name = _required(msg, "messageType", str, "msg.messageType")
    device = _identifier(msg.get("deviceName")) or _identifier(msg.get("deviceId"))
    if device is None:
        raise MalformedPush("msg.deviceName is missing", field="msg.deviceName")
    data = _required(msg, "data", dict, "msg.data")
    label = f"{kind_name}/{msg.get('notifyType', '')}".rstrip("/")
    imei = _identifier(msg.get("imei"))
    if kind_name == "lifeCycle":
        at = millis(_required(data, "time", (int, str), "msg.data.time"), "msg.data.time")
        kind = {"online": MessageKind.ONLINE, "offline": MessageKind.OFFLINE}.get(
            data.get("status", ""), MessageKind.OTHER
        )
        return DeviceMessage(kind, label, device, imei, at, raw)
    params = data.get("params")
    if kind_name != "notify" or msg.get("notifyType") != "property" or not isinstance(params, dict):
        return DeviceMessage(MessageKind.OTHER, label, device, imei, EPOCH, raw)
    times = {}
    for name in params:
        where = f"msg.data.params.{name}"
        point = _required(params, name, dict, where)
        times[name] = millis(_required(point, "time", (int, str), f"{where}.time"), f"{where}.time")
    values = {name: point.get("value") for name, point in params.items()}
    at = min(times.values(), default=EPOCH)
    return DeviceMessage(
        MessageKind.DATA, label, device, imei, at, raw, values, times, "msg.data.params.{}.value"
    )


def _legacy_messages(points: list[dict[str, Any]], raw: bytes) -> list[DeviceMessage]:
    """Old OneNET: data points (type 1, grouped by device and time), online/offline (type 2)."""
    grouped: dict[tuple[str, datetime], list[dict[str, Any]]] = {}
    others: list[DeviceMessage] = []
    for index, point in enumerate(points):
        where = f"msg[{index}]" if len(points) > 1 else "msg"
        kind = _required(point, "type", int, f"{where}.type")
        device = _identifier(_required(point, "dev_id", (int, str), f"{where}.dev_id"))
        if device is None:
            raise MalformedPush(f"{where}.dev_id is empty", field=f"{where}.dev_id")
        at = millis(_required(point, "at", (int, str), f"{where}.at"), f"{where}.at")
        if kind == 1:
            _required(point, "ds_id", str, f"{where}.ds_id")
            grouped.setdefault((device, at), []).append(point)
            continue
        status = {1: MessageKind.ONLINE, 0: MessageKind.OFFLINE}.get(point.get("status", -1))
        kind_of = status if kind == 2 and status else MessageKind.OTHER
        others.append(_legacy(kind_of, f"type={kind}", [point], raw))
    return [_legacy(MessageKind.DATA, "type=1", p, raw) for p in grouped.values()] + others


def _legacy(
    kind: MessageKind, label: str, points: list[dict[str, Any]], raw: bytes
) -> DeviceMessage:
    """One device's points at one time (already checked by ``_legacy_messages``)."""
    device, at = str(_identifier(points[0]["dev_id"])), millis(points[0]["at"], "msg.at")
    imei = next((i for p in points if (i := _identifier(p.get("imei")))), None)
    values = {p["ds_id"]: p.get("value") for p in points if "ds_id" in p}
    return DeviceMessage(kind, label, device, imei, at, raw, values, path="msg[ds_id={}].value")


# --- mapping platform fields to a reading --------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """Which decoded fields of a product's messages make a reading, per gateway.

    ``total`` is the cumulative register (kWh or m³ after ``scale``: an integer of litres
    takes ``scale = 0.001``). ``valve`` and ``battery`` are optional and land in the
    reading's status word in the CJ/T 188 ST layout: bit 0 valve/relay closed, bit 2 battery
    low — the layout our water meters already use.
    """

    total: str = "total"
    scale: Decimal = Decimal(1)
    valve: str | None = None
    valve_closed: frozenset[str] = frozenset({"1", "closed", "close", "off", "true"})
    battery: str | None = None
    battery_low_below: Decimal | None = None
    """A voltage or percentage below which the battery is low; unset: the field is a flag."""

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> FieldMapping:
        known = {"total", "scale", "valve", "valve_closed", "battery", "battery_low_below"}
        if unknown := sorted(set(data) - known):
            raise InvalidInput(f"unknown mapping keys: {unknown}", field=f"fields.{unknown[0]}")
        default = FieldMapping()
        closed = data.get("valve_closed")
        return FieldMapping(
            total=_name(data.get("total", default.total), "fields.total"),
            scale=_positive(data.get("scale", "1"), "fields.scale"),
            valve=_name(data["valve"], "fields.valve") if data.get("valve") else None,
            valve_closed=frozenset(str(v).lower() for v in closed)
            if isinstance(closed, list) and closed
            else default.valve_closed,
            battery=_name(data["battery"], "fields.battery") if data.get("battery") else None,
            battery_low_below=_positive(data["battery_low_below"], "fields.battery_low_below")
            if data.get("battery_low_below") is not None
            else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "scale": str(self.scale),
            "valve": self.valve,
            "valve_closed": sorted(self.valve_closed),
            "battery": self.battery,
            "battery_low_below": None
            if self.battery_low_below is None
            else str(self.battery_low_below),
        }


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise InvalidInput(f"{where} must be a field name (1-64 characters)", field=where)
    return value.strip()


def _positive(value: Any, where: str) -> Decimal:
    number = _decimal(value)
    if number is None or number <= 0:
        raise InvalidInput(f"{where} must be a positive decimal number", field=where)
    return number


def _decimal(value: Any) -> Decimal | None:
    """An exact number from JSON (int, Decimal or numeric text); floats are refused."""
    if isinstance(value, bool | float) or not isinstance(value, int | str | Decimal):
        return None
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


@dataclass(frozen=True, slots=True)
class MappedReading:
    read_at: datetime
    total: Decimal
    status_word: int | None


def map_reading(message: DeviceMessage, mapping: FieldMapping) -> MappedReading | None:
    """The reading a data message carries, or None when it has no ``total`` field."""
    if message.kind is not MessageKind.DATA or message.values.get(mapping.total) is None:
        return None
    where = message.path.format(mapping.total)
    number = _decimal(message.values[mapping.total])
    if number is None or number < 0:
        raise MalformedPush(f"{where} must be a non-negative number", field=where)
    try:
        total = parse_quantity(number * mapping.scale)
    except InvalidQuantity as exc:
        raise MalformedPush(f"{where}: {exc}", field=where) from exc
    read_at = message.times.get(mapping.total, message.at)
    return MappedReading(read_at, total, _status_word(message, mapping))


def _status_word(message: DeviceMessage, mapping: FieldMapping) -> int | None:
    valve = message.values.get(mapping.valve) if mapping.valve else None
    battery = message.values.get(mapping.battery) if mapping.battery else None
    if valve is None and battery is None:
        return None
    word = 0
    if valve is not None and str(valve).strip().lower() in mapping.valve_closed:
        word |= 0b001
    if battery is not None and _battery_low(battery, mapping, message):
        word |= 0b100
    return word


def _battery_low(value: Any, mapping: FieldMapping, message: DeviceMessage) -> bool:
    if mapping.battery_low_below is None:
        return str(value).strip().lower() in {"1", "true", "low"}
    number = _decimal(value)
    if number is None:
        where = message.path.format(mapping.battery)
        raise MalformedPush(f"{where} must be a number", field=where)
    return number < mapping.battery_low_below
