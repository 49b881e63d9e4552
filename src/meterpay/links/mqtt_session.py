"""The consumer's MQTT session: a persistent MQTT 5 session with manual PUBACKs.

paho-mqtt drives the connection in its own thread (``loop_start``) and
reconnects with exponential backoff. We use paho directly rather than aiomqtt
because aiomqtt 2.5 has no public way to hold a PUBACK back until the
readings are committed; paho 2.x has ``manual_ack`` and ``ack(mid, qos)``.

Invariants:
- ``clean_start`` is always false and the session outlives the connection
  (``SessionExpiryInterval``), so messages delivered but not acknowledged when
  the process dies are delivered again when the same client id returns;
- a PUBACK is sent only on the connection that received the message: the
  ``epoch`` moves on every connect and disconnect, under a lock that ``ack``
  also takes, so a stale packet id can never acknowledge another message;
- ``ReceiveMaximum`` bounds how many unacknowledged messages the broker sends
  us at once (Mosquitto otherwise stops at 20, far below a batch).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from meterpay.kernel.errors import InvalidInput
from meterpay.links.mqtt_delivery import Delivery, Garbage, read_delivery
from meterpay.links.mqtt_json import PayloadError
from meterpay.links.mqtt_payloads import TopicKind, shared, topic_filter

log = logging.getLogger("meterpay.links.mqtt")

RECONNECT_MIN_SECONDS = 1
RECONNECT_MAX_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Broker:
    """Where the broker is: ``mqtt://[user[:password]@]host[:port]``."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> Broker:
        parts = urlsplit(url)
        if parts.scheme != "mqtt" or not parts.hostname:
            raise InvalidInput(f"{url!r} is not an mqtt://host:port URL", field="broker")
        try:
            port = parts.port or 1883
        except ValueError as exc:
            raise InvalidInput(f"{url!r} has a bad port", field="broker") from exc
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(parts.hostname, port, user, password)


@dataclass(frozen=True, slots=True)
class SessionOptions:
    broker: Broker
    client_id: str
    group: str
    prefix: str
    receive_maximum: int
    session_expiry_seconds: int
    keepalive_seconds: int


class ConsumerSession:
    """Subscribes the group's shared readings and command-results topics and every
    gateway's status; hands each message to ``deliver`` (in paho's thread)."""

    def __init__(self, options: SessionOptions, deliver: Callable[[Delivery], None]) -> None:
        self._options = options
        self._deliver = deliver
        self._lock = threading.Lock()
        self._epoch = 0
        self.subscribed = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if options.broker.username is not None:
            client.username_pw_set(options.broker.username, options.broker.password)
        client.reconnect_delay_set(RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client

    def start(self) -> None:
        """Connect in the background; paho retries until the broker answers."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho leaves it untyped
        props.SessionExpiryInterval = self._options.session_expiry_seconds
        props.ReceiveMaximum = self._options.receive_maximum
        broker = self._options.broker
        self._client.connect_async(
            broker.host,
            broker.port,
            keepalive=self._options.keepalive_seconds,
            clean_start=False,  # never FIRST_ONLY: a restart must find its session
            properties=props,
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Send the PUBACKs queued so far, then DISCONNECT (the session stays)."""
        self._client.disconnect()
        self._client.loop_stop()

    def ack(self, delivery: Delivery) -> bool:
        """PUBACK one delivery if its connection is still the current one."""
        with self._lock:
            if delivery.epoch != self._epoch:
                log.debug("mqtt: not acking mid %s of an earlier connection", delivery.mid)
                return False
            if delivery.qos > 0:
                self._client.ack(delivery.mid, delivery.qos)
            return True

    # --- paho callbacks (paho's network thread) -----------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error(
                "mqtt %s: the broker refused the connection: %s", self._options.client_id, reason
            )
            return
        with self._lock:
            self._epoch += 1
        log.info(
            "mqtt %s: connected to %s:%s (session %s)",
            self._options.client_id,
            self._options.broker.host,
            self._options.broker.port,
            "resumed" if flags.session_present else "new",
        )
        # Subscribing again is harmless when the session kept the subscriptions; retained
        # statuses are sent only when the status subscription is new (retainHandling=1).
        prefix, group = self._options.prefix, self._options.group
        client.subscribe(
            [
                (shared(group, topic_filter(prefix, TopicKind.READINGS)), SubscribeOptions(qos=1)),
                (
                    shared(group, topic_filter(prefix, TopicKind.COMMAND_RESULTS)),
                    SubscribeOptions(qos=1),
                ),
                (topic_filter(prefix, TopicKind.STATUS), SubscribeOptions(qos=1, retainHandling=1)),
            ]
        )

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        broker = self._options.broker
        log.warning(
            "mqtt %s: cannot reach %s:%s; trying again (backoff up to %s s)",
            self._options.client_id,
            broker.host,
            broker.port,
            RECONNECT_MAX_SECONDS,
        )

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            log.error("mqtt %s: subscriptions refused: %s", self._options.client_id, refused)
            return
        log.info("mqtt %s: subscribed (group %s)", self._options.client_id, self._options.group)
        self.subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            self._epoch += 1
        self.subscribed.clear()
        if reason.is_failure:
            log.warning(
                "mqtt %s: connection lost (%s); reconnecting", self._options.client_id, reason
            )

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        payload = bytes(message.payload)
        try:
            topic = message.topic
            content = read_delivery(self._options.prefix, topic, payload)
        except Exception as exc:  # a bug must not leave the message unacknowledged forever
            log.exception("mqtt: could not read a message")
            topic = "?"
            content = Garbage("?", PayloadError("payload", f"unreadable ({exc})"))
        self._deliver(Delivery(topic, payload, message.mid, message.qos, self._epoch, content))
