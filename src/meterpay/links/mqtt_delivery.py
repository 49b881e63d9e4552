"""A message as the broker delivered it: what it says and what to acknowledge.

``mid`` and ``epoch`` identify the PUBACK: the packet id is only meaningful on
the connection that received it, so a delivery remembers the connection
(``epoch``) and is never acknowledged on a later one (the broker redelivers
it there instead, with a packet id of that connection).
"""

from __future__ import annotations

from dataclasses import dataclass

from meterpay.links.mqtt_commands import CommandResult, parse_command_result
from meterpay.links.mqtt_json import PayloadError
from meterpay.links.mqtt_payloads import (
    GATEWAY_CODE,
    ReadingsMessage,
    TopicKind,
    parse_readings,
    parse_status,
    parse_topic,
)
from meterpay.metering.gateways import GatewayStatus


@dataclass(frozen=True, slots=True)
class ReadingsContent:
    gateway_code: str
    message: ReadingsMessage


@dataclass(frozen=True, slots=True)
class StatusContent:
    gateway_code: str
    status: GatewayStatus | None
    """``None``: the retained status was cleared (an empty payload)."""


@dataclass(frozen=True, slots=True)
class ResultContent:
    gateway_code: str
    result: CommandResult


@dataclass(frozen=True, slots=True)
class Garbage:
    """A message that is not what its topic says (or on a topic we do not read)."""

    gateway_code: str
    error: PayloadError


Content = ReadingsContent | StatusContent | ResultContent | Garbage


@dataclass(frozen=True, slots=True)
class Delivery:
    topic: str
    payload: bytes
    mid: int
    qos: int
    epoch: int
    content: Content

    @property
    def weight(self) -> int:
        """How much of a batch this delivery fills: its readings, or one."""
        if isinstance(self.content, ReadingsContent):
            return max(1, self.content.message.size)
        return 1


def read_delivery(prefix: str, topic: str, payload: bytes) -> Content:
    """Parse a message by its topic; anything unusable becomes ``Garbage``."""
    try:
        where = parse_topic(prefix, topic)
    except PayloadError as exc:
        return Garbage(_code_in(prefix, topic), exc)
    code = where.gateway_code
    try:
        if where.kind is TopicKind.READINGS:
            return ReadingsContent(code, parse_readings(payload))
        if where.kind is TopicKind.STATUS:
            return StatusContent(code, parse_status(payload))
        if where.kind is TopicKind.COMMAND_RESULTS:
            return ResultContent(code, parse_command_result(payload))
    except PayloadError as exc:
        return Garbage(code, exc)
    return Garbage(code, PayloadError("topic", f"meterpay does not consume {where.kind.value}"))


def _code_in(prefix: str, topic: str) -> str:
    """The gateway segment of a topic for the frame log, cut to the column's size."""
    segment = topic.removeprefix(f"{prefix}/gw/").split("/")[0]
    return segment[:64] if GATEWAY_CODE.fullmatch(segment[:64]) else "?"
