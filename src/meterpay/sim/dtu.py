"""Simulated 4G DTUs in transparent TCP-client mode, and fleets of them, over real sockets.

A DTU dials the platform's listener, sends its registration packet (its id in ASCII,
such as a 15-digit IMEI) as the first packet, then a heartbeat every
``heartbeat_seconds``, and relays what the server sends onto its RS-485 bus
(``sim.meters.RS485Bus``), sending back what the meters answer. Like a field DTU it:
- relays one request at a time (the bus is half-duplex): bytes that arrive meanwhile
  wait in the socket, and a slow meter holds the line for ``faults.slow_seconds``;
- sometimes splits a reply over several TCP segments (``split_chance``), but never
  merges two replies into one write (noise comes only from a meter's garbage fault);
- redials with exponential backoff and jitter when the link drops, so a fleet does not
  storm the listener in step after a server restart.
It can be told to ``drop()`` the link (with a reset, or ``vanish`` without a word: the
server keeps a stale socket while the DTU registers anew), ``go_offline(seconds)`` (a
carrier outage: silent, and no dialling until it ends) or ``stop()``.

Heartbeat: ASCII ``HB`` every 30 s by default. Field DTUs send a packet the installer
configures (up to 40 bytes, ASCII or hex, every 1-255 s in USR-IOT's manuals; there is
no standard one). Short uppercase ASCII never contains the bytes that start, end or wake
a frame (68, 16, FE; a lowercase "h" is 0x68), and 30 s is well inside the 1-2 minutes
after which carrier NAT drops an idle link.

Timeouts use ``asyncio.timeout``, not ``wait_for``: on Python 3.11 a ``wait_for``
cancelled just as its read completes can swallow the cancellation (CPython gh-86296),
which would hang ``stop``.

Time: meters are handed ``clock.now()`` (default ``ScaledClock``: real time, optionally
sped up); network timing (heartbeats, delays, backoff, outages) is always in real seconds.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Final

from meterpay.kernel.clock import Clock, require_aware
from meterpay.sim.meters import BusReply, Meter, RS485Bus

log = logging.getLogger("meterpay.sim.dtu")

READ_SIZE: Final = 4096
DEFAULT_HEARTBEAT: Final = b"HB"
MAX_SPLITS: Final = 3


class ScaledClock:
    """Real time sped up ``speed`` times from ``start`` (default: the moment it is made)."""

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed {speed} must be positive")
        self.speed = speed
        self.start = require_aware(start) if start is not None else datetime.now(UTC)
        self._origin = time.monotonic()  # immune to the host's clock being stepped

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._origin) * self.speed)


@dataclass(frozen=True, slots=True)
class DtuSettings:
    """How a DTU behaves on the network; every time here is in real seconds."""

    heartbeat: bytes = DEFAULT_HEARTBEAT  # b"" sends none
    heartbeat_seconds: float = 30.0
    redial_min_seconds: float = 1.0
    redial_max_seconds: float = 60.0
    connect_timeout_seconds: float = 10.0
    split_chance: float = 0.2  # chance a reply goes out in 2-4 TCP segments
    split_pause_seconds: float = 0.02  # between segments, so they leave as separate reads
    frame_gap_seconds: float = 0.2  # quiet time that ends a partial frame on the bus


@dataclass(slots=True)
class DtuStats:
    """What a DTU has done, for tests and load runs."""

    connections: int = 0
    disconnects: int = 0
    drops: int = 0
    heartbeats: int = 0
    bytes_in: int = 0
    replies: int = 0
    split_replies: int = 0


class SimulatedDtu:
    """One DTU with its bus of meters, dialling ``host:port`` as ``dtu_id``."""

    def __init__(
        self,
        dtu_id: str,
        host: str,
        port: int,
        meters: Iterable[Meter],
        *,
        settings: DtuSettings | None = None,
        clock: Clock | None = None,
        seed: int | str | None = None,
    ) -> None:
        if not dtu_id or not dtu_id.isascii() or not dtu_id.isprintable():
            raise ValueError(f"registration id {dtu_id!r} must be printable ASCII")
        self.dtu_id = dtu_id
        self.host, self.port = host, port
        self.bus = RS485Bus(meters)
        self.settings = settings or DtuSettings()
        self.clock: Clock = clock or ScaledClock()
        self.stats = DtuStats()
        self.connected = asyncio.Event()
        self._rng = random.Random(dtu_id if seed is None else seed)  # noqa: S311  simulation, not security
        self._stopping = asyncio.Event()
        self._offline_until = 0.0  # time.monotonic() before which it does not dial
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None
        self._abandoned: list[asyncio.StreamWriter] = []  # vanished links, closed on stop
        self._write_lock = asyncio.Lock()  # a heartbeat never lands inside a split reply

    # --- control -------------------------------------------------------------------------

    def drop(self, *, vanish: bool = False) -> None:
        """Lose the link; the DTU redials. By default with a reset (RST), as when the
        modem re-attaches; with ``vanish``, silently: the old socket is left open and
        unread (a carrier NAT that forgot the mapping), so the server holds a stale link
        until its idle timeout while the DTU registers again on a new one."""
        writer, reader = self._writer, self._reader
        if writer is None or reader is None:
            return
        self.stats.drops += 1
        if vanish:
            self._abandoned.append(writer)
            transport = writer.transport
            if isinstance(transport, asyncio.ReadTransport):
                transport.pause_reading()  # nothing more is fed to the reader ...
            reader.feed_eof()  # ... so ending its session cannot disturb the socket
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:  # linger 0: close() sends RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    def go_offline(self, seconds: float, *, vanish: bool = True) -> None:
        """Drop off the network for ``seconds`` (a carrier outage: by default the server
        hears nothing at all, see ``drop``), then redial."""
        self._offline_until = time.monotonic() + seconds
        self.drop(vanish=vanish)

    def stop(self) -> None:
        """Close the link politely (FIN), and any abandoned ones, and make ``run`` return."""
        self._stopping.set()
        for writer in [self._writer, *self._abandoned]:
            if writer is not None:
                writer.close()
        self._abandoned.clear()

    # --- the dial loop -------------------------------------------------------------------

    async def run(self) -> None:
        """Dial, relay, redial with backoff, until ``stop()``."""
        failures = 0
        while not self._stopping.is_set():
            await self._pause(self._offline_until - time.monotonic())
            if self._stopping.is_set():
                break
            try:
                async with asyncio.timeout(self.settings.connect_timeout_seconds):
                    reader, writer = await asyncio.open_connection(self.host, self.port)
            except (OSError, TimeoutError) as exc:
                failures += 1
                log.debug("dtu %s: dial failed (%s), attempt %d", self.dtu_id, exc, failures)
            else:
                failures = 0
                await self._session(reader, writer)
            await self._pause(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        """Seconds before the next dial: doubling per failure up to the maximum, with
        jitter so DTUs dropped together do not redial together."""
        settings = self.settings
        ceiling = min(
            settings.redial_max_seconds, settings.redial_min_seconds * (1 << min(failures, 30))
        )
        return ceiling * self._rng.uniform(0.5, 1.0)

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` (real time), or less if told to stop."""
        if seconds > 0:
            with suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._stopping.wait()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: register, heartbeat, relay until the link goes."""
        self._writer, self._reader = writer, reader
        sock = writer.get_extra_info("socket")
        if sock is not None:  # each write its own segment: splits stay split, like a DTU
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stats.connections += 1
        heartbeats = asyncio.create_task(self._heartbeats(writer))
        try:
            await self._write(writer, [self.dtu_id.encode("ascii")])
            self.connected.set()
            log.debug("dtu %s: registered with %s:%d", self.dtu_id, self.host, self.port)
            await self._relay(reader, writer)
        except OSError as exc:  # ConnectionError included: the link went, we redial
            log.debug("dtu %s: link lost (%s)", self.dtu_id, exc)
        finally:
            self.connected.clear()
            self._writer = self._reader = None
            heartbeats.cancel()
            await asyncio.gather(heartbeats, return_exceptions=True)
            if writer not in self._abandoned:
                writer.close()
                with suppress(OSError):
                    await writer.wait_closed()
            self.stats.disconnects += 1

    async def _heartbeats(self, writer: asyncio.StreamWriter) -> None:
        if not self.settings.heartbeat:
            return
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                await self._write(writer, [self.settings.heartbeat])
            except OSError:
                return  # the relay loop sees the same loss and ends the session
            self.stats.heartbeats += 1

    # --- relaying ------------------------------------------------------------------------

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Server bytes onto the bus, meter replies back, one at a time, until EOF."""
        while True:
            gap = self.settings.frame_gap_seconds if self.bus.pending else None
            try:
                async with asyncio.timeout(gap):
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                replies = self.bus.silence(self.clock.now())
            else:
                if not data:
                    return
                self.stats.bytes_in += len(data)
                replies = self.bus.feed(data, self.clock.now())
            for reply in replies:
                await self._send_reply(writer, reply)

    async def _send_reply(self, writer: asyncio.StreamWriter, reply: BusReply) -> None:
        if reply.delay_seconds > 0:
            await asyncio.sleep(reply.delay_seconds)  # the slow meter holds the bus
        chunks = list(self._chunks(reply.data))
        await self._write(writer, chunks)
        self.stats.replies += 1
        if len(chunks) > 1:
            self.stats.split_replies += 1

    def _chunks(self, data: bytes) -> Iterator[bytes]:
        if len(data) < 2 or self._rng.random() >= self.settings.split_chance:
            yield data
            return
        count = min(len(data) - 1, self._rng.randint(1, MAX_SPLITS))
        cuts = sorted(self._rng.sample(range(1, len(data)), count))
        for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            yield data[start:end]

    async def _write(self, writer: asyncio.StreamWriter, chunks: Sequence[bytes]) -> None:
        async with self._write_lock:
            for index, chunk in enumerate(chunks):
                if index:
                    await asyncio.sleep(self.settings.split_pause_seconds)
                writer.write(chunk)
                await writer.drain()


class SimulatedFleet:
    """M DTUs run as tasks of one event loop; ``stop`` (or leaving ``async with``) closes
    every link and waits for every task, and re-raises a DTU that crashed."""

    def __init__(self, dtus: Iterable[SimulatedDtu]) -> None:
        self.dtus: dict[str, SimulatedDtu] = {}
        for dtu in dtus:
            if dtu.dtu_id in self.dtus:
                raise ValueError(f"two DTUs registering as {dtu.dtu_id}")
            self.dtus[dtu.dtu_id] = dtu
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def spread(
        cls,
        host: str,
        port: int,
        dtu_ids: Sequence[str],
        meters: Sequence[Meter],
        *,
        settings: DtuSettings | None = None,
        clock: Clock | None = None,
    ) -> SimulatedFleet:
        """``meters`` over DTUs ``dtu_ids`` in consecutive runs (neighbours share a bus, as
        a building's meters do), as evenly as they go; one clock for all."""
        if not dtu_ids:
            raise ValueError("a fleet needs at least one DTU")
        shared = clock or ScaledClock()
        size, extra = divmod(len(meters), len(dtu_ids))
        dtus, start = [], 0
        for index, dtu_id in enumerate(dtu_ids):
            end = start + size + (index < extra)
            dtus.append(
                SimulatedDtu(dtu_id, host, port, meters[start:end], settings=settings, clock=shared)
            )
            start = end
        return cls(dtus)

    def meter(self, address: str, dtu_id: str | None = None) -> Meter:
        """The meter at ``address`` (on DTU ``dtu_id``: Modbus unit ids repeat across buses)."""
        found = [
            meter
            for dtu in self.dtus.values()
            if dtu_id in (None, dtu.dtu_id)
            for meter in dtu.bus.meters
            if meter.address == address.upper()
        ]
        if len(found) != 1:
            raise LookupError(f"{len(found)} meters at {address}; name the DTU")
        return found[0]

    async def start(self) -> None:
        if self._tasks:
            raise RuntimeError("the fleet is already running")
        self._tasks = [
            asyncio.create_task(dtu.run(), name=f"dtu-{dtu.dtu_id}") for dtu in self.dtus.values()
        ]
        for task in self._tasks:
            task.add_done_callback(_report_crash)

    async def wait_connected(self, timeout: float) -> None:
        """Until every DTU has registered (TimeoutError after ``timeout`` seconds)."""
        async with asyncio.timeout(timeout):
            for dtu in self.dtus.values():
                await dtu.connected.wait()

    async def stop(self, timeout: float = 5.0) -> None:
        for dtu in self.dtus.values():
            dtu.stop()
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=timeout)
        for task in late:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        crashed = [r for r in results if isinstance(r, Exception)]
        if crashed:
            raise crashed[0]

    async def __aenter__(self) -> SimulatedFleet:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.stop()


def _report_crash(task: asyncio.Task[None]) -> None:
    # a crash is a simulator bug: say so when it happens, not only when the fleet stops
    if not task.cancelled() and task.exception() is not None:
        log.error("%s crashed", task.get_name(), exc_info=task.exception())


def imei_like(serial: int, tac: str = "86123404") -> str:
    """A 15-digit IMEI-shaped id: an 8-digit type code, a 6-digit serial, a Luhn digit."""
    if len(tac) != 8 or not tac.isdigit() or not 0 <= serial < 10**6:
        raise ValueError(f"type code {tac!r} must be 8 digits and serial {serial} 0..999999")
    body = f"{tac}{serial:06d}"
    doubled = (int(d) * (2 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    total = sum(n - 9 if n > 9 else n for n in doubled)
    return body + str(-total % 10)
