"""What MQTT gateways publish, and where: topics, readings and status (sans I/O).

Topics (``prefix`` defaults to ``meterpay/v1``; docs/mqtt.md):

- ``{prefix}/gw/{gateway_code}/readings``        gateway -> meterpay, QoS 1
- ``{prefix}/gw/{gateway_code}/command-results`` gateway -> meterpay, QoS 1
- ``{prefix}/gw/{gateway_code}/commands``        meterpay -> gateway, QoS 1
- ``{prefix}/gw/{gateway_code}/status``          gateway (and its Last Will), retained

A readings message is judged reading by reading: a reading that breaks the
schema is rejected on its own and the others of the message go on; only a
message that is not a readings object at all (not JSON, no ``readings``
array, too many readings) is rejected whole. The gateway code comes from the
topic, never from the payload, so a gateway cannot speak for another one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

from meterpay.links.mqtt_json import (
    PayloadError,
    decode_object,
    encode_object,
    format_decimal,
    optional_int32,
    optional_register,
    require_register,
    require_string,
    require_time,
)
from meterpay.metering.gateways import GatewayStatus

DEFAULT_PREFIX: Final = "meterpay/v1"
MAX_READINGS_PER_MESSAGE: Final = 1000
TOU_REGISTERS: Final = ("tip", "peak", "flat", "valley")

ADDRESS: Final = re.compile(r"[0-9A-Za-z_.:-]{1,32}")
"""A meter's bus address as the gateway knows it (DL/T 645: 12 digits, leading zeros kept)."""
GATEWAY_CODE: Final = re.compile(r"[0-9A-Za-z_.:-]{1,64}")


class TopicKind(StrEnum):
    READINGS = "readings"
    COMMAND_RESULTS = "command-results"
    COMMANDS = "commands"
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class GatewayTopic:
    gateway_code: str
    kind: TopicKind


def topic_for(prefix: str, gateway_code: str, kind: TopicKind) -> str:
    if not GATEWAY_CODE.fullmatch(gateway_code):
        raise PayloadError("gateway_code", f"{gateway_code[:70]!r} is not a gateway code")
    return f"{prefix}/gw/{gateway_code}/{kind.value}"


def topic_filter(prefix: str, kind: TopicKind) -> str:
    """Every gateway's topic of one kind (``+`` stands for the gateway code)."""
    return f"{prefix}/gw/+/{kind.value}"


def shared(group: str, topic_filter: str) -> str:
    """A shared subscription: the group's members share the messages between them."""
    return f"$share/{group}/{topic_filter}"


def parse_topic(prefix: str, topic: str) -> GatewayTopic:
    """The gateway and the kind of message a topic carries; ``PayloadError`` otherwise."""
    head = f"{prefix}/gw/"
    parts = topic.removeprefix(head).split("/") if topic.startswith(head) else []
    if len(parts) != 2:
        raise PayloadError("topic", f"{topic[:120]!r} is not {head}{{gateway_code}}/{{kind}}")
    code, kind = parts
    if not GATEWAY_CODE.fullmatch(code):
        raise PayloadError("topic", f"{code[:70]!r} is not a gateway code ({GATEWAY_CODE.pattern})")
    try:
        return GatewayTopic(code, TopicKind(kind))
    except ValueError:
        raise PayloadError("topic", f"{kind[:40]!r} is not a kind of gateway message") from None


# --- readings ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayReading:
    """One meter's cumulative registers at the meter's time, as a gateway reports it."""

    address: str
    read_at: datetime
    total: Decimal
    tip: Decimal | None = None
    peak: Decimal | None = None
    flat: Decimal | None = None
    valley: Decimal | None = None
    status_word: int | None = None


@dataclass(frozen=True, slots=True)
class RejectedReading:
    index: int
    error: PayloadError


@dataclass(frozen=True, slots=True)
class ReadingsMessage:
    """A readings message: the readings that passed, and those that did not (by index)."""

    readings: tuple[GatewayReading, ...]
    rejected: tuple[RejectedReading, ...] = ()

    @property
    def size(self) -> int:
        return len(self.readings) + len(self.rejected)


def parse_readings(payload: bytes) -> ReadingsMessage:
    """Parse ``{"readings": [...]}``; each reading is judged on its own.

    Raises ``PayloadError`` when the message as a whole is unusable.
    """
    items = decode_object(payload).get("readings")
    if not isinstance(items, list):
        raise PayloadError("readings", "must be an array of readings")
    if len(items) > MAX_READINGS_PER_MESSAGE:
        raise PayloadError("readings", f"{len(items)} readings; at most {MAX_READINGS_PER_MESSAGE}")
    good: list[GatewayReading] = []
    bad: list[RejectedReading] = []
    for index, item in enumerate(items):
        try:
            good.append(parse_reading(item, index))
        except PayloadError as exc:
            bad.append(RejectedReading(index, exc))
    return ReadingsMessage(tuple(good), tuple(bad))


def parse_reading(item: object, index: int) -> GatewayReading:
    where = f"readings[{index}]."
    if not isinstance(item, dict):
        raise PayloadError(f"readings[{index}]", "must be an object")
    tou = {name: optional_register(item, name, where) for name in TOU_REGISTERS}
    return GatewayReading(
        address=require_string(item, "address", where, pattern=ADDRESS),
        read_at=require_time(item, "read_at", where),
        total=require_register(item, "total", where),
        status_word=optional_int32(item, "status_word", where),
        **tou,
    )


def encode_readings(readings: Sequence[GatewayReading]) -> bytes:
    """The readings message a gateway publishes (decimals as strings)."""
    return encode_object({"readings": [reading_json(r) for r in readings]})


def reading_json(r: GatewayReading) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "address": r.address,
        "read_at": r.read_at.isoformat(),
        "total": format_decimal(r.total),
    }
    for name in TOU_REGISTERS:
        value: Decimal | None = getattr(r, name)
        if value is not None:
            doc[name] = format_decimal(value)
    if r.status_word is not None:
        doc["status_word"] = r.status_word
    return doc


# --- gateway status (retained, and the gateway's Last Will) -----------------------


def parse_status(payload: bytes) -> GatewayStatus | None:
    """``{"status": "online"}`` or ``"offline"``; a bare ``online``/``offline`` is
    accepted too. An empty payload (a cleared retained message) gives ``None``."""
    if not payload.strip():
        return None
    bare = payload.strip().decode("utf-8", errors="replace").lower()
    if bare in (GatewayStatus.ONLINE, GatewayStatus.OFFLINE):
        return GatewayStatus(bare)
    value = decode_object(payload).get("status")
    if value not in (GatewayStatus.ONLINE.value, GatewayStatus.OFFLINE.value):
        raise PayloadError("status", f"must be 'online' or 'offline', not {str(value)[:40]!r}")
    return GatewayStatus(value)


def encode_status(status: GatewayStatus) -> bytes:
    return encode_object({"status": status.value})
