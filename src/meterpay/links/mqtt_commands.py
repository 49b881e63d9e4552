"""Commands to meters over MQTT gateways, and what the gateways answer.

meterpay publishes one command per message on ``{prefix}/gw/{code}/commands``
at QoS 1, never retained (a retained cut-off would run again every time the
gateway reconnects). A gateway must not carry out a command after its
``expires_at``: a cut-off that arrives after the owner has topped up is stale,
and the gateway answers ``expired`` instead. The gateway answers every command
on ``{prefix}/gw/{code}/command-results``; ``command_id`` is the idempotency
key, so a result delivered twice is the same result. The reading a ``read``
command takes arrives on the readings topic like any other.

The command outbox's MQTT dispatcher (``links.mqtt_command_dispatch``) calls
``publish_command`` after the claim commits and receives results through a
``CommandResultHandler`` (``CommandResults``) run by the consumer.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Protocol, TypeVar

import aiomqtt

from meterpay.links.mqtt_json import (
    PayloadError,
    decode_object,
    encode_object,
    optional_text,
    require_string,
    require_time,
)
from meterpay.links.mqtt_payloads import ADDRESS, DEFAULT_PREFIX, TopicKind, topic_for

log = logging.getLogger("meterpay.links.mqtt")

_Choice = TypeVar("_Choice", bound=StrEnum)

COMMAND_ID: Final = re.compile(r"[0-9A-Za-z_.:-]{1,64}")
MAX_DETAIL: Final = 200


class CommandAction(StrEnum):
    CUT = "cut"
    """拉闸/关阀: open the relay or close the valve."""
    RESTORE = "restore"
    """合闸/开阀: supply again."""
    READ = "read"
    """Read the registers now; the reading comes on the readings topic."""
    TIME_SYNC = "time_sync"
    """Set the meter's clock (广播校时) from the gateway's."""


class CommandOutcome(StrEnum):
    DONE = "done"
    FAILED = "failed"
    """The gateway tried and the meter did not do it (no answer, relay fault)."""
    REJECTED = "rejected"
    """The gateway refused it (unknown address, unsupported action)."""
    EXPIRED = "expired"
    """It arrived after ``expires_at`` and was not carried out."""


class RelayState(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class MeterCommand:
    command_id: str
    address: str
    action: CommandAction
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A gateway's answer to one command; ``relay`` is the state the meter reports."""

    command_id: str
    address: str
    outcome: CommandOutcome
    at: datetime
    relay: RelayState | None = None
    detail: str = ""


class CommandResultHandler(Protocol):
    """Where command results go (``CommandResults``: the outbox). Runs in a worker thread; the
    message is acknowledged after it returns, so it must be idempotent by
    ``command_id``. ``InvalidInput``/``NotFound`` reject the result (acknowledged,
    logged); any other exception leaves it unacknowledged to be tried again."""

    def __call__(self, gateway_code: str, result: CommandResult) -> None: ...


def log_command_result(gateway_code: str, result: CommandResult) -> None:
    """A bare consumer's handler: the result is logged and nothing else (``links.runner``
    and ``meterpay mqtt consume`` record results in the outbox instead)."""
    log.info(
        "command %s on %s/%s: %s%s",
        result.command_id,
        gateway_code,
        result.address,
        result.outcome.value,
        f" (relay {result.relay.value})" if result.relay else "",
    )


def encode_command(command: MeterCommand) -> bytes:
    return encode_object(
        {
            "command_id": command.command_id,
            "address": command.address,
            "action": command.action.value,
            "expires_at": command.expires_at.isoformat(),
        }
    )


def parse_command(payload: bytes) -> MeterCommand:
    """What a gateway does with a command message (the simulator uses it)."""
    doc = decode_object(payload)
    return MeterCommand(
        command_id=require_string(doc, "command_id", "", pattern=COMMAND_ID),
        address=require_string(doc, "address", "", pattern=ADDRESS),
        action=_choice(doc, "action", CommandAction),
        expires_at=require_time(doc, "expires_at", ""),
    )


def encode_command_result(result: CommandResult) -> bytes:
    doc: dict[str, Any] = {
        "command_id": result.command_id,
        "address": result.address,
        "outcome": result.outcome.value,
        "at": result.at.isoformat(),
    }
    if result.relay is not None:
        doc["relay"] = result.relay.value
    if result.detail:
        doc["detail"] = result.detail
    return encode_object(doc)


def parse_command_result(payload: bytes) -> CommandResult:
    doc = decode_object(payload)
    relay = doc.get("relay")
    return CommandResult(
        command_id=require_string(doc, "command_id", "", pattern=COMMAND_ID),
        address=require_string(doc, "address", "", pattern=ADDRESS),
        outcome=_choice(doc, "outcome", CommandOutcome),
        at=require_time(doc, "at", ""),
        relay=None if relay is None else _choice(doc, "relay", RelayState),
        detail=optional_text(doc, "detail", "", limit=MAX_DETAIL),
    )


async def publish_command(
    client: aiomqtt.Client,
    gateway_code: str,
    command: MeterCommand,
    *,
    prefix: str = DEFAULT_PREFIX,
    timeout: float = 10.0,
) -> None:
    """Publish one command at QoS 1, not retained; returns once the broker has
    acknowledged it (PUBACK), raises ``aiomqtt.MqttError`` if it did not."""
    topic = topic_for(prefix, gateway_code, TopicKind.COMMANDS)
    await client.publish(topic, encode_command(command), qos=1, retain=False, timeout=timeout)


def _choice(doc: dict[str, Any], key: str, enum: type[_Choice]) -> _Choice:
    value = doc.get(key)
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return enum(value)
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise PayloadError(key, f"{str(value)[:40]!r} is not one of {allowed}") from None
