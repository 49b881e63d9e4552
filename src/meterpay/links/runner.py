"""The links of one process on one event loop: DTU listener, MQTT consumer, Modbus TCP.

Each link runs with the dispatcher that carries outbox commands to its meters: the
DTU listener and the Modbus TCP poller with a ``CommandDispatcher`` over them, the MQTT
consumer with an ``MqttCommandDispatcher`` (its results come back through the consumer).
A link that is not running here has its commands claimed by no dispatcher here.

``meterpay links`` runs them in the foreground; ``meterpay serve --links`` and
``meterpay demo`` run them on a background thread beside the web server (a
small compound runs everything in one process). Stopping finishes what is in
hand: the MQTT batch is acknowledged, the sink writes what the buses read.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from meterpay.config import Settings
from meterpay.links.command_dispatch import CommandDispatcher
from meterpay.links.dtu_bus import BusTimings
from meterpay.links.dtu_server import DtuServer, DtuSettings
from meterpay.links.modbus_tcp import ModbusTcpPoller, ModbusTcpSettings
from meterpay.links.mqtt import ConsumerOptions, MqttConsumer
from meterpay.links.mqtt_command_dispatch import CommandResults, MqttCommandDispatcher
from meterpay.links.sink import LinkSink
from meterpay.runtime import Runtime

log = logging.getLogger(__name__)


def dtu_settings(settings: Settings, *, port: int | None = None) -> DtuSettings:
    """The DTU listener's settings (``MP_DTU_*``), with an optional port override."""
    return DtuSettings(
        host=settings.dtu_host,
        port=settings.dtu_port if port is None else port,
        registration_pattern=settings.dtu_registration_pattern,
        registration_timeout_s=settings.dtu_registration_timeout_s,
        timings=BusTimings(
            reply_timeout_s=settings.dtu_reply_timeout_s,
            retries=settings.dtu_retries,
            idle_timeout_s=settings.dtu_idle_timeout_s,
            poll_speed=settings.dtu_poll_speed,
            time_zone=settings.default_timezone,
        ),
    )


@dataclass
class Links:
    """What runs: a DTU listener, an MQTT consumer, a Modbus TCP poller (each optional).

    Modbus TCP polling dials every registered endpoint: enable it in one process only."""

    rt: Runtime
    dtu: DtuSettings | None = None
    mqtt: ConsumerOptions | None = None
    modbus: ModbusTcpSettings | None = None
    server: DtuServer | None = None
    consumer: MqttConsumer | None = None
    poller: ModbusTcpPoller | None = None
    sink: LinkSink | None = None
    modbus_sink: LinkSink | None = None

    async def run(self, stop: asyncio.Event, started: Callable[[], None] = lambda: None) -> None:
        """Run until ``stop`` is set; ``started`` is called once the listener is bound."""
        jobs: list[Awaitable[None]] = []
        if self.dtu is not None:
            self.sink = LinkSink(self.rt, actor="dtu", log_frames=self.rt.settings.dtu_log_frames)
            self.sink.start()
            self.server = DtuServer(self.rt, self.sink, self.dtu)
            await self.server.start()
            jobs.append(CommandDispatcher(self.rt, self.server).run(stop))
        if self.mqtt is not None:
            self.consumer = MqttConsumer(
                self.rt, self.mqtt, on_command_result=CommandResults(self.rt)
            )
            jobs.append(self.consumer.run(stop))
            jobs.append(MqttCommandDispatcher(self.rt, self.mqtt.session).run(stop))
        if self.modbus is not None:
            self.modbus_sink = LinkSink(
                self.rt, actor="modbus", log_frames=self.rt.settings.modbus_log_frames
            )
            self.modbus_sink.start()
            self.poller = ModbusTcpPoller(self.rt, self.modbus_sink, self.modbus)
            await self.poller.start()
            jobs.append(CommandDispatcher(self.rt, self.poller).run(stop))
        started()
        try:
            await asyncio.gather(stop.wait(), *jobs)
        finally:
            if self.server is not None:
                await self.server.stop()
            if self.poller is not None:
                await self.poller.stop()
            for sink in (self.sink, self.modbus_sink):
                if sink is not None:
                    await asyncio.to_thread(sink.stop)


class BackgroundLinks:
    """``Links`` on a daemon thread with its own event loop (beside a web server)."""

    def __init__(self, links: Links) -> None:
        self.links = links
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="links", daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the links did not start")

    def stop(self, timeout: float = 60.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self.links.run(self._stop, self._ready.set)

        try:
            asyncio.run(main())
        except Exception:
            log.exception("links stopped on an error")
        finally:
            self._ready.set()
