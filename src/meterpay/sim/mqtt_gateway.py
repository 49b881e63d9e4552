"""A simulated MQTT gateway (集中器) publishing its meters' cumulative readings.

It speaks the protocol of docs/mqtt.md as a real gateway would: a retained
``online`` status on connect and a retained ``offline`` Last Will, readings
at QoS 1 in messages of ``per_message`` readings, and answers to commands
(cut/restore flip the meter's relay and stop or resume its consumption).
Consumption follows the daily load profiles of ``sim.load`` (home, shop,
office, common areas) in the site's local time.

Faults, each a chance per message or per round (``GatewayFaults``): garbage
messages on the readings topic, messages published twice, dropping off the
network (the broker publishes the Last Will), and commands taken but never
answered; a gateway that comes back uploads the readings it took while away,
as real gateways do. A meter whose relay is stuck (``relay_stuck``) does not
move: the gateway answers its cut or restore ``failed``.

Usage::

    gw = SimulatedGateway("GW-01", [SimulatedMeter("000000000101", UnitKind.SHOP)])
    gw.connect()
    gw.round(at, hours=0.25)            # read every meter, publish (QoS 1, waits for PUBACKs)
    gw.publish([GatewayReading(...)])   # or publish readings of your own
    gw.close(clear_status=True)         # graceful: offline status (or none), disconnect

or ``gw.run(stop_event, start=..., step=timedelta(minutes=15), pace_seconds=5)``
in a thread. The simulator uses a clean session: unlike a real gateway, it
leaves nothing behind in the broker.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from meterpay.kernel.quantity import Utility
from meterpay.links.mqtt_commands import (
    CommandAction,
    CommandOutcome,
    CommandResult,
    RelayState,
    encode_command_result,
    parse_command,
)
from meterpay.links.mqtt_json import PayloadError
from meterpay.links.mqtt_payloads import (
    DEFAULT_PREFIX,
    GatewayReading,
    TopicKind,
    encode_readings,
    encode_status,
    topic_for,
)
from meterpay.links.mqtt_session import Broker
from meterpay.metering.gateways import GatewayStatus
from meterpay.sim.load import consumption
from meterpay.sites.model import UnitKind

log = logging.getLogger("meterpay.sim.mqtt")

GARBAGE = (
    b"\x00\xffnot json at all",
    b'{"readings": "all of them"}',
    b'{"readings": [{"address": "000000000001", "read_at": "2026-01-01T00:00:00", "total": 1}]}',
    b"[1, 2, 3]",
    b'{"readings": [{"address": "000000000001", "read_at": "2026-01-01T00:00:00+08:00",'
    b' "total": "NaN"}]}',
)


@dataclass
class SimulatedMeter:
    """One meter behind the gateway; ``total`` is its register, ``scale`` its size."""

    address: str
    kind: UnitKind = UnitKind.HOME
    utility: Utility = Utility.ELECTRICITY
    total: Decimal = Decimal(0)
    scale: float = 1.0
    relay: RelayState = RelayState.CONNECTED
    relay_stuck: bool = False
    """The relay does not move: cuts and restores are answered ``failed``."""


@dataclass(frozen=True)
class GatewayFaults:
    garbage: float = 0.0
    """Chance, per readings message, of a garbage message published before it."""
    duplicates: float = 0.0
    """Chance that a readings message is published twice."""
    offline: float = 0.0
    """Chance, per round, of dropping off the network (the Last Will fires)."""
    offline_rounds: int = 2
    """Rounds spent away; the readings taken meanwhile are uploaded on return."""
    silent_commands: float = 0.0
    """Chance that a command is received and never answered (nor carried out)."""


@dataclass
class Published:
    messages: int = 0
    readings: int = 0
    garbage: int = 0
    duplicates: int = 0
    drops: int = 0
    command_results: int = 0
    commands_ignored: int = 0


@dataclass
class _Away:
    rounds_left: int
    backlog: list[GatewayReading] = field(default_factory=list)


class SimulatedGateway:
    """One gateway, one MQTT connection. Not thread-safe except for command answers."""

    def __init__(
        self,
        code: str,
        meters: Sequence[SimulatedMeter],
        *,
        broker: str = "mqtt://127.0.0.1:1883",
        prefix: str = DEFAULT_PREFIX,
        per_message: int = 50,
        faults: GatewayFaults | None = None,
        timezone: str = "Asia/Shanghai",
        seed: int | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.code = code
        self.meters = {m.address: m for m in meters}
        self.prefix = prefix
        self.per_message = per_message
        self.faults = faults or GatewayFaults()
        self.published = Published()
        self._zone = ZoneInfo(timezone)
        self._rng = random.Random(seed)  # noqa: S311  simulation, not security
        self._timeout = timeout
        self._lock = threading.Lock()  # meters' totals and relays: rounds vs command answers
        self._connected = threading.Event()
        self._away: _Away | None = None
        self._broker = Broker.parse(broker)
        self._client = self._new_client()

    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sim-gw-{self.code}"[:64], protocol=mqtt.MQTTv5
        )
        if self._broker.username is not None:
            client.username_pw_set(self._broker.username, self._broker.password)
        client.max_inflight_messages_set(100)
        client.will_set(
            self._topic(TopicKind.STATUS), encode_status(GatewayStatus.OFFLINE), 1, True
        )
        client.on_connect = lambda c, *_: self._connected.set()
        client.on_disconnect = lambda *_: self._connected.clear()
        client.on_message = lambda c, _, message: self._answer(bytes(message.payload))
        return client

    # --- the connection -----------------------------------------------------------

    def connect(self) -> None:
        """Connect, subscribe to commands, and say ``online`` (retained)."""
        self._client.connect(self._broker.host, self._broker.port, keepalive=30, clean_start=True)
        self._client.loop_start()
        if not self._connected.wait(self._timeout):
            raise TimeoutError(f"gateway {self.code}: no CONNACK from the broker")
        self._client.subscribe(self._topic(TopicKind.COMMANDS), qos=1)
        self._send(TopicKind.STATUS, encode_status(GatewayStatus.ONLINE), retain=True)

    def drop(self) -> None:
        """Fall off the network: the broker publishes the Last Will (``offline``)."""
        will = ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
        self._client.disconnect(reasoncode=will)
        self._client.loop_stop()
        self.published.drops += 1

    def close(self, *, clear_status: bool = False) -> None:
        """Leave politely: ``offline`` (or, for tests, no retained status at all)."""
        if self._connected.is_set():
            status = b"" if clear_status else encode_status(GatewayStatus.OFFLINE)
            self._send(TopicKind.STATUS, status, retain=True).wait_for_publish(self._timeout)
            self._client.disconnect()
        self._client.loop_stop()

    # --- readings -----------------------------------------------------------------

    def take_readings(self, at: datetime, hours: float) -> list[GatewayReading]:
        """Every meter's register after ``hours`` of use ending at ``at`` (aware)."""
        hour = (at - timedelta(hours=hours)).astimezone(self._zone).hour
        readings = []
        with self._lock:
            for m in self.meters.values():
                if m.relay is RelayState.CONNECTED:
                    m.total += consumption(
                        m.utility, m.kind, hour=hour, hours=hours, scale=m.scale, rng=self._rng
                    )
                readings.append(GatewayReading(m.address, at, m.total))
        return readings

    def round(self, at: datetime, *, hours: float) -> list[GatewayReading]:
        """Read every meter at ``at`` and publish, unless the gateway is away."""
        readings = self.take_readings(at, hours)
        if self._away is None and self._rng.random() < self.faults.offline:
            self.drop()
            self._away = _Away(self.faults.offline_rounds)
        if self._away is None:
            self.publish(readings)
            return readings
        self._away.backlog.extend(readings)
        self._away.rounds_left -= 1
        if self._away.rounds_left <= 0:
            self.come_back()
        return readings

    @property
    def away(self) -> bool:
        return self._away is not None

    def come_back(self) -> None:
        """If away, reconnect (``online`` again) and upload the readings taken meanwhile."""
        if self._away is None:
            return
        backlog, self._away = self._away.backlog, None
        self._client = self._new_client()
        self.connect()
        self.publish(backlog)

    def publish(self, readings: Sequence[GatewayReading]) -> None:
        """Publish in messages of ``per_message`` readings at QoS 1; returns once the
        broker has acknowledged every one (with the configured faults mixed in)."""
        pending = []
        for start in range(0, len(readings), self.per_message):
            chunk = readings[start : start + self.per_message]
            if self._rng.random() < self.faults.garbage:
                pending.append(self._send(TopicKind.READINGS, self._rng.choice(GARBAGE)))
                self.published.garbage += 1
            payload = encode_readings(chunk)
            copies = 2 if self._rng.random() < self.faults.duplicates else 1
            for _ in range(copies):
                pending.append(self._send(TopicKind.READINGS, payload))
            self.published.duplicates += copies - 1
            self.published.messages += 1
            self.published.readings += len(chunk)
        for info in pending:
            info.wait_for_publish(self._timeout)

    def run(
        self,
        stop: threading.Event,
        *,
        start: datetime,
        step: timedelta,
        pace_seconds: float,
        rounds: int | None = None,
    ) -> None:
        """Connect, then a round every ``pace_seconds`` of real time, each ``step`` of
        simulated time after the last, until ``stop`` is set or ``rounds`` are done."""
        self.connect()
        at, done = start, 0
        try:
            while not stop.is_set() and (rounds is None or done < rounds):
                at += step
                self.round(at, hours=step / timedelta(hours=1))
                done += 1
                stop.wait(pace_seconds)
            self.come_back()  # a gateway still away uploads what it read before leaving
        finally:
            self.close()

    # --- commands -----------------------------------------------------------------

    def _answer(self, payload: bytes) -> None:
        """Carry out a command (paho's thread) and publish the result."""
        try:
            command = parse_command(payload)
        except PayloadError as exc:
            log.warning("gateway %s: ignoring a bad command: %s", self.code, exc)
            return
        now = datetime.now(UTC)
        with self._lock:
            if self.faults.silent_commands and self._rng.random() < self.faults.silent_commands:
                self.published.commands_ignored += 1
                return
            meter = self.meters.get(command.address)
            outcome, relay = self._carry_out(command.action, command.expires_at, meter, now)
            total = meter.total if meter is not None else None
        if (
            command.action is CommandAction.READ
            and total is not None
            and outcome is CommandOutcome.DONE
        ):
            self._send(
                TopicKind.READINGS, encode_readings([GatewayReading(command.address, now, total)])
            )
        result = CommandResult(command.command_id, command.address, outcome, now, relay)
        self._send(TopicKind.COMMAND_RESULTS, encode_command_result(result))
        self.published.command_results += 1

    @staticmethod
    def _carry_out(
        action: CommandAction, expires_at: datetime, meter: SimulatedMeter | None, now: datetime
    ) -> tuple[CommandOutcome, RelayState | None]:
        if meter is None:
            return CommandOutcome.REJECTED, None
        if now > expires_at:
            return CommandOutcome.EXPIRED, meter.relay
        switching = action in (CommandAction.CUT, CommandAction.RESTORE)
        if switching and meter.relay_stuck:
            return CommandOutcome.FAILED, meter.relay
        if action is CommandAction.CUT:
            meter.relay = RelayState.DISCONNECTED
        elif action is CommandAction.RESTORE:
            meter.relay = RelayState.CONNECTED
        return CommandOutcome.DONE, meter.relay

    def _send(
        self, kind: TopicKind, payload: bytes, *, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        return self._client.publish(self._topic(kind), payload, qos=1, retain=retain)

    def _topic(self, kind: TopicKind) -> str:
        return topic_for(self.prefix, self.code, kind)
