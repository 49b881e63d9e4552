"""Carries outbox commands to meters on MQTT gateways; the gateways' results settle them.

Unlike a DTU or a Modbus endpoint, an MQTT gateway answers later and on another topic,
so the send and the verification are two halves in two places:

- ``MqttCommandDispatcher`` claims the due commands of meters behind ``mqtt`` gateways
  (``control.outbox.claim(transports={Transport.MQTT})``) and publishes each on its
  gateway's command topic (QoS 1, never retained, ``expires_at`` = the command's), with
  ``command_id`` ``cmd-<outbox id>``. It returns once the broker has the message; the
  command stays ``sent`` until a result comes, and is published again by the outbox's
  backoff if none does (the same ``command_id``: the gateway may see it twice).
- ``CommandResults`` is the MQTT consumer's ``CommandResultHandler``: a result moves
  its command on (``result_events``):

  ========================================  =========================================
  the gateway answers                       the command
  ========================================  =========================================
  ``done``, relay as commanded              acknowledged, then verified
  ``done``, relay the other way             acknowledged, then failed (a person looks)
  ``done``, no relay reported               acknowledged (a later result or its TTL)
  ``done`` to ``read`` / ``time_sync``      acknowledged, then verified
  ``failed``, ``rejected``, ``expired``     failed, with the outcome and detail
  ========================================  =========================================

Invariants: a result never moves a command backwards or out of a final state; a
duplicate result changes nothing (each move happens once: a move the command is
already past is skipped); a result for an unknown command, or from a gateway other than
the meter's, is refused (acknowledged, logged, in the frame log); a result for a command
already final is logged and ignored.
"""

from __future__ import annotations

import asyncio
import logging
import re
from contextlib import suppress
from typing import Final

import aiomqtt

from meterpay.control import outbox
from meterpay.control.commands import (
    FINAL,
    TRANSITIONS,
    CommandEvent,
    CommandKind,
    IllegalCommandMove,
)
from meterpay.kernel.errors import InvalidInput, NotFound
from meterpay.links.command_dispatch import meter_route
from meterpay.links.mqtt_commands import (
    CommandAction,
    CommandOutcome,
    CommandResult,
    MeterCommand,
    RelayState,
    publish_command,
)
from meterpay.links.mqtt_session import SessionOptions
from meterpay.metering import link_service as links
from meterpay.metering import service as metering
from meterpay.metering.gateways import Transport
from meterpay.runtime import Runtime

log = logging.getLogger("meterpay.links.mqtt")

ACTIONS: Final = {
    CommandKind.CUT: CommandAction.CUT,
    CommandKind.RESTORE: CommandAction.RESTORE,
    CommandKind.READ_STATUS: CommandAction.READ,
    CommandKind.TIME_SYNC: CommandAction.TIME_SYNC,
}
WANTED_RELAY: Final = {
    CommandKind.CUT: RelayState.DISCONNECTED,
    CommandKind.RESTORE: RelayState.CONNECTED,
}
COMMAND_ID: Final = re.compile(r"cmd-([0-9]{1,18})")
RECONNECT_MIN_S: Final = 1.0
RECONNECT_MAX_S: Final = 30.0


def command_id_for(outbox_id: int) -> str:
    return f"cmd-{outbox_id}"


def outbox_id_of(command_id: str) -> int | None:
    """The outbox id a ``command_id`` stands for; None if it is not one of ours."""
    found = COMMAND_ID.fullmatch(command_id)
    return int(found.group(1)) if found else None


def result_events(kind: CommandKind, result: CommandResult) -> list[tuple[CommandEvent, str]]:
    """The moves a gateway's result makes for a command of ``kind``, each with its error."""
    if result.outcome is not CommandOutcome.DONE:
        detail = f": {result.detail}" if result.detail else ""
        return [(CommandEvent.REFUSED, f"gateway answered {result.outcome.value}{detail}")]
    events = [(CommandEvent.ACCEPTED, "")]
    wanted = WANTED_RELAY.get(kind)
    if wanted is None or result.relay is wanted:  # a read or clock sync done is verified
        events.append((CommandEvent.CONFIRMED, ""))
    elif result.relay is not None:
        events.append((CommandEvent.REFUSED, f"gateway reports the relay {result.relay.value}"))
    return events


class CommandResults:
    """Records gateways' command results in the outbox (the consumer's result handler)."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def __call__(self, gateway_code: str, result: CommandResult) -> None:
        outbox_id = outbox_id_of(result.command_id)
        if outbox_id is None:
            raise NotFound(f"{result.command_id!r} is not a meterpay command id")
        command = outbox.get(self._rt, outbox_id)  # NotFound for an unknown one
        self._check_sender(command, gateway_code, result.address)
        if command.state in FINAL:
            log.info("command %s is %s: result ignored", result.command_id, command.state.value)
            return
        state = command.state
        for event, error in result_events(command.kind, result):
            if (state, event) not in TRANSITIONS:
                continue  # already past this move (a duplicate), or not sent right now
            try:
                state = outbox.record(self._rt, command.id, event, error=error).state
            except IllegalCommandMove:  # another result (or the outbox) moved it meanwhile
                log.info("command %s moved meanwhile: result ignored", result.command_id)
                return

    def _check_sender(self, command: outbox.Command, gateway_code: str, address: str) -> None:
        """A gateway answers only for the commands of its own meters."""
        meter = metering.get_meter(self._rt, command.meter_id)
        gateway = None
        if meter.gateway_id is not None:
            gateway = links.get_gateway(self._rt, meter.gateway_id)
        if gateway is None or (gateway.code, meter.address) != (gateway_code, address):
            raise InvalidInput(
                f"command {command.id} is not for {gateway_code}/{address}", field="command_id"
            )


class MqttCommandDispatcher:
    """Publishes the due commands of MQTT meters; ``run`` until ``stop``.

    It keeps its own client (clean session, id ``<consumer id>-cmd``): the consumer's
    session acknowledges by hand and must never block on a publish."""

    transport: Final = Transport.MQTT

    def __init__(
        self,
        rt: Runtime,
        session: SessionOptions,
        *,
        every_s: float = 1.0,
        publish_timeout_s: float = 10.0,
    ) -> None:
        self._rt = rt
        self._session = session
        self._every_s = every_s
        self._timeout = publish_timeout_s

    async def run(self, stop: asyncio.Event) -> None:
        backoff = RECONNECT_MIN_S
        while not stop.is_set():
            try:
                async with self._client() as client:
                    backoff = RECONNECT_MIN_S
                    await self._rounds(client, stop)
            except aiomqtt.MqttError as exc:  # claimed commands stay sent: the backoff resends
                log.warning("mqtt commands: %s; reconnecting in %.0f s", exc, backoff)
                await _pause(stop, backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_S)

    async def round(self, client: aiomqtt.Client) -> int:
        """Claim the due MQTT commands and publish them; how many were claimed."""
        claimed = await asyncio.to_thread(outbox.claim, self._rt, transports={self.transport})
        outcomes = await asyncio.gather(
            *(self._publish(client, c) for c in claimed), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return len(claimed)

    def _client(self) -> aiomqtt.Client:
        broker = self._session.broker
        return aiomqtt.Client(
            broker.host,
            broker.port,
            username=broker.username,
            password=broker.password,
            identifier=f"{self._session.client_id[:59]}-cmd",
            protocol=aiomqtt.ProtocolVersion.V5,
            keepalive=self._session.keepalive_seconds,
        )

    async def _rounds(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.round(client)
            except aiomqtt.MqttError:
                raise
            except Exception:  # the database may be away: the outbox keeps everything
                log.exception("mqtt commands: dispatch round failed")
            await _pause(stop, self._every_s)

    async def _publish(self, client: aiomqtt.Client, command: outbox.Command) -> None:
        route = await asyncio.to_thread(meter_route, self._rt, command.meter_id, self.transport)
        if route is None:
            return  # moved off MQTT since the claim: the backoff brings it back
        code, address = route
        message = MeterCommand(
            command_id_for(command.id), address, ACTIONS[command.kind], command.expires_at
        )
        await publish_command(
            client, code, message, prefix=self._session.prefix, timeout=self._timeout
        )


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
