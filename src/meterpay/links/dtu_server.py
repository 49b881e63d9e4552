"""The DTU listener: DTUs dial in over TCP, say who they are, and we poll their buses.

A 4G DTU in transparent mode connects out to us (it has no public address),
sends a registration packet (its IMEI, ICCID or a configured string), then
relays whatever we send to its RS-485 bus and the bus's answers back. So:

- a connection is identified by its registration packet, never by its
  source address (carrier NAT changes it at will);
- an unknown registration id is logged (with the packet) and the connection
  closed; a DTU whose id is registered later is served on its next dial-in;
- a DTU that reconnects replaces its older connection (which is closed), so a
  bus is never polled by two loops of one process;
- online/offline state follows the connection (``gateway_connected`` /
  ``gateway_disconnected``; a newer connection keeps the DTU online).

Several listener processes may run behind a TCP load balancer: each DTU
connection is independent, and ingest is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from meterpay.drivers.models import MeterModel, Protocol, bundled_models
from meterpay.drivers.polling import Reading
from meterpay.drivers.supply import CommandOutcome, SupplyAction
from meterpay.kernel.errors import NotFound
from meterpay.links.dtu_bus import Bus, BusTimings
from meterpay.links.sink import LinkSink
from meterpay.metering import link_service as links
from meterpay.metering.gateways import Direction, FrameRecord, LinkedMeter
from meterpay.runtime import Runtime

log = logging.getLogger(__name__)

# The model a meter is polled with when it names none: by its protocol (and switch).
DEFAULT_MODELS: Mapping[tuple[str, bool], str] = {
    ("dlt645_2007", True): "generic-dds-645-2007-prepaid",
    ("dlt645_2007", False): "generic-645-2007-no-switch",
    ("dlt645_1997", True): "generic-645-1997",
    ("dlt645_1997", False): "generic-645-1997",
    ("cjt188", True): "generic-cjt188-cold-water-valve-lsb",
    ("cjt188", False): "generic-cjt188-cold-water-valve-lsb",
    ("modbus", True): "eastron-sdm120-modbus",
    ("modbus", False): "eastron-sdm120-modbus",
}
SEEN_EVERY_S = 60.0  # how often heartbeats move a DTU's last_seen_at (a write each)
DTU_PROTOCOLS = frozenset(
    {Protocol.DLT645_2007, Protocol.DLT645_1997, Protocol.CJT188, Protocol.MODBUS_RTU}
)


@dataclass(frozen=True, slots=True)
class DtuSettings:
    host: str = "127.0.0.1"
    port: int = 9000
    registration_pattern: str = r"^\s*([\x21-\x7e]{1,64})\s*$"
    registration_timeout_s: float = 30.0
    timings: BusTimings = field(default_factory=BusTimings)


class DtuServer:
    """An asyncio TCP server; ``start`` binds, ``stop`` closes every bus."""

    def __init__(
        self,
        rt: Runtime,
        sink: LinkSink,
        settings: DtuSettings,
        models: Mapping[str, MeterModel] | None = None,
    ) -> None:
        self._rt = rt
        self._sink = sink
        self._settings = settings
        self._pattern = re.compile(settings.registration_pattern.encode("latin-1"), re.DOTALL)
        self._models = models if models is not None else bundled_models()
        self._buses: dict[str, Bus] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the DTU server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def buses(self) -> Mapping[str, Bus]:
        """Connected DTUs by registration id."""
        return self._buses

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self._settings.host, self._settings.port
        )
        log.info("DTU listener on %s:%d", self._settings.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for bus in list(self._buses.values()):
            bus.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def command(
        self, gateway_code: str, address: str, action: SupplyAction
    ) -> CommandOutcome:
        """Send a relay/valve command through a connected DTU; its acknowledgement."""
        bus = self._buses.get(gateway_code)
        if bus is None:
            raise ConnectionError(f"DTU {gateway_code} is not connected")
        return await bus.command(address, action)

    async def read(self, gateway_code: str, address: str) -> Reading:
        """Read a meter through a connected DTU now (a command's read-back)."""
        bus = self._buses.get(gateway_code)
        if bus is None:
            raise ConnectionError(f"DTU {gateway_code} is not connected")
        return await bus.read(address)

    # --- one connection ---------------------------------------------------------------

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else None
        try:
            code, rest = await self._register(reader, remote)
            if code is None:
                return
            await self._run_bus(code, rest, reader, writer, remote)
        except (ConnectionError, OSError) as exc:
            log.info("DTU connection from %s ended: %s", remote, exc)
        except Exception:
            log.exception("DTU connection from %s failed", remote)
        finally:
            writer.close()

    async def _register(
        self, reader: asyncio.StreamReader, remote: str | None
    ) -> tuple[str | None, bytes]:
        """The DTU's id from its first packet; bytes after it belong to the bus."""
        try:
            async with asyncio.timeout(self._settings.registration_timeout_s):
                first = await reader.read(256)
        except TimeoutError:
            log.info("DTU at %s sent no registration packet", remote)
            return None, b""
        match = self._pattern.match(first)
        if match is None:
            await self._log_unknown("?", first, f"not a registration packet (from {remote})")
            return None, b""
        code = match.group(1).decode("latin-1")
        try:
            await asyncio.to_thread(links.gateway_by_code, self._rt, code)
        except NotFound:
            await self._log_unknown(code, first, f"unknown DTU (from {remote})")
            return None, b""
        return code, first[match.end() :]

    async def _run_bus(
        self,
        code: str,
        rest: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        remote: str | None,
    ) -> None:
        gateway = await asyncio.to_thread(
            links.gateway_connected, self._rt, code, remote_addr=remote
        )
        meters = await asyncio.to_thread(links.meters_on, self._rt, code)
        older = self._buses.get(code)
        if older is not None:
            older.close()  # the DTU dialled again: its old link is dead or dying
        bus = Bus(
            code,
            reader,
            writer,
            self._with_models(code, meters),
            sink=self._sink,
            clock=self._rt.clock,
            timings=self._settings.timings,
            on_seen=_throttled(lambda: self._sink.gateway_seen(code), SEEN_EVERY_S),
        )
        self._buses[code] = bus
        log.info("DTU %s connected from %s with %d meters", code, remote, len(meters))
        try:
            await bus.run(rest)
        finally:
            if self._buses.get(code) is bus:
                del self._buses[code]
            await asyncio.to_thread(
                links.gateway_disconnected, self._rt, code, connected_at=gateway.connected_at
            )
            log.info("DTU %s disconnected", code)

    def _with_models(
        self, code: str, meters: list[LinkedMeter]
    ) -> list[tuple[LinkedMeter, MeterModel]]:
        found = []
        for meter in meters:
            default = DEFAULT_MODELS.get((meter.protocol, meter.has_switch), "")
            model = self._models.get(meter.model or "") or self._models.get(default)
            if model is None or model.protocol not in DTU_PROTOCOLS:
                log.warning("DTU %s: meter %s has no model we can poll", code, meter.address)
                continue
            found.append((meter, model))
        return found

    async def _log_unknown(self, code: str, packet: bytes, note: str) -> None:
        log.warning("DTU %s: %s", code, note)
        record = FrameRecord.of(self._rt.clock.now(), code, Direction.RX, "dtu", packet, note=note)
        await asyncio.to_thread(links.log_frames, self._rt, [record])


def _throttled(action: Callable[[], None], every_s: float) -> Callable[[], None]:
    """``action``, run at most once per ``every_s`` seconds however often it is called."""
    last = [float("-inf")]

    def run() -> None:
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0] = now
            action()

    return run
