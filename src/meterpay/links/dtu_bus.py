"""One DTU connection = one RS-485 bus: polls on schedule and commands, one at a time.

RS-485 is half-duplex: a second request sent before the first is answered
garbles both. So a bus runs a single loop that sends one request, waits for
its reply (or a timeout), resends up to ``retries`` times, and only then moves
on. Commands jump the queue of polls; polls run on each meter model's
schedule (e.g. energy every 15 minutes, status hourly).

Invariants:
- at most one request in flight per bus;
- a reply counts only if it answers the request in flight (address, function,
  DI, unit): a late reply to an earlier, timed-out request is logged and dropped;
- bytes that arrive while nothing is in flight are heartbeats (or noise): they
  keep the DTU online and are otherwise ignored;
- every frame in or out is handed to the sink's frame log; a meter that
  answers is heard, one that stays silent through every retry is silent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from meterpay.drivers import polling
from meterpay.drivers.errors import FrameError
from meterpay.drivers.models import MeterModel
from meterpay.drivers.polling import PollRequest, ReplyFrame, Request
from meterpay.drivers.stream import Skipped
from meterpay.drivers.supply import CommandOutcome, SupplyAction, command_outcome, supply_command
from meterpay.kernel.clock import Clock
from meterpay.links.readings import reading_in
from meterpay.links.schedule import PollSchedule
from meterpay.links.sink import LinkSink
from meterpay.metering.gateways import Direction, FrameRecord, LinkedMeter
from meterpay.metering.meters import ReadingSource

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BusTimings:
    reply_timeout_s: float = 3.0
    retries: int = 2
    idle_timeout_s: float = 300.0
    poll_speed: float = 1.0
    """Schedules run this many times faster (demo and simulation)."""
    time_zone: str = "Asia/Shanghai"
    """Meters keep local time: a command's expiry is written in it."""


@dataclass
class _Command:
    meter: LinkedMeter
    model: MeterModel
    action: SupplyAction | None
    """None: read the meter now (a read-back after a command)."""
    done: asyncio.Future[Any]


class Bus:
    """The loop behind one connected DTU."""

    def __init__(
        self,
        gateway_code: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        meters: Sequence[tuple[LinkedMeter, MeterModel]],
        *,
        sink: LinkSink,
        clock: Clock,
        timings: BusTimings,
        on_seen: Callable[[], None],
    ) -> None:
        self.code = gateway_code
        self._reader = reader
        self._writer = writer
        self._meters = {m.id: (m, model) for m, model in meters}
        self._by_address = {m.address: m.id for m, _ in meters}
        self._sink = sink
        self._clock = clock
        self._t = timings
        self._on_seen = on_seen
        self._zone = ZoneInfo(timings.time_zone)
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._in_flight = False
        self._commands: asyncio.Queue[_Command] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._schedule = PollSchedule()
        self._polls: dict[tuple[int, int], list[PollRequest]] = {}  # built once: pure

    # --- public --------------------------------------------------------------------------

    async def run(self, first: bytes = b"") -> None:
        """Poll and command until the connection closes."""
        start = time.monotonic()
        for meter_id, (meter, model) in self._meters.items():
            for poll in polling.poll_requests(model, meter.address):
                self._polls.setdefault((meter_id, poll.every_minutes), []).append(poll)
                self._schedule.due[(meter_id, poll.every_minutes)] = start
        if first:
            self._chunks.put_nowait(first)
        reading = asyncio.create_task(self._read_loop())
        try:
            await self._work_loop(reading)
        except _LinkLost:
            pass  # the DTU went away mid-request: not the meter's silence
        finally:
            reading.cancel()
            self._fail_commands()

    async def command(self, address: str, action: SupplyAction) -> CommandOutcome:
        """Queue a relay/valve command for the meter at ``address``; its outcome."""
        outcome: CommandOutcome = await self._queue(address, action)
        return outcome

    async def read(self, address: str) -> polling.Reading:
        """Read the meter at ``address`` now (every item of its model), ahead of the polls;
        the reading is also handed to the sink like any poll's."""
        reading: polling.Reading = await self._queue(address, None)
        return reading

    async def _queue(self, address: str, action: SupplyAction | None) -> Any:
        meter_id = self._by_address.get(address)
        if meter_id is None:
            raise LookupError(f"no meter {address} on DTU {self.code}")
        meter, model = self._meters[meter_id]
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._commands.put(_Command(meter, model, action, done))
        self._wake.set()
        return await done

    def close(self) -> None:
        self._writer.close()

    # --- loops -----------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        """Every chunk the DTU sends: replies while a request is in flight, else heartbeats."""
        while True:
            try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                async with asyncio.timeout(self._t.idle_timeout_s):
                    chunk = await self._reader.read(4096)
            except TimeoutError:
                log.info("DTU %s idle for %.0f s: closing", self.code, self._t.idle_timeout_s)
                chunk = b""
            if not chunk:
                self._chunks.put_nowait(b"")  # end of stream for the work loop
                return
            self._on_seen()
            if self._in_flight:
                self._chunks.put_nowait(chunk)

    async def _work_loop(self, reading: asyncio.Task[None]) -> None:
        while not reading.done():
            if not self._commands.empty():
                await self._run_command(self._commands.get_nowait())
                continue
            now = time.monotonic()
            due = self._schedule.next_round(now)
            if due is not None:
                await self._poll_round(*due)
                continue
            self._wake.clear()
            waiting = asyncio.create_task(self._wake.wait())
            await asyncio.wait(
                {waiting, reading},
                timeout=self._schedule.wait_s(now),
                return_when=asyncio.FIRST_COMPLETED,
            )
            waiting.cancel()

    # --- one round ---------------------------------------------------------------------

    async def _poll_round(self, meter_id: int, intervals: list[int]) -> None:
        meter, model = self._meters[meter_id]
        answers: list[tuple[PollRequest, ReplyFrame]] = []
        for minutes in intervals:
            self._schedule.due[(meter_id, minutes)] = (
                time.monotonic() + minutes * 60 / self._t.poll_speed
            )
            for poll in self._polls[(meter_id, minutes)]:
                reply = await self._transact(meter, model, poll.frame, poll.request)
                if reply is None:
                    self._sink.silent(meter.id)
                    return  # the meter is away: the rest of its round would time out too
                answers.append((poll, reply))
        self._sink.heard(meter.id)
        self._hand_over(meter, model, answers)

    def _hand_over(
        self,
        meter: LinkedMeter,
        model: MeterModel,
        answers: list[tuple[PollRequest, ReplyFrame]],
    ) -> None:
        try:
            reading = polling.reading_from_replies(model, meter.address, answers)
        except FrameError as exc:
            log.warning("DTU %s meter %s: unreadable reply: %s", self.code, meter.address, exc)
            return
        found = reading_in(
            meter.id, reading, at=self._clock.now(), source=ReadingSource.DTU, zone=self._zone
        )
        if found is not None:  # None: a status-only round, or the energy read was refused
            self._sink.put_reading(found)

    async def _read_now(self, command: _Command) -> None:
        meter, model = command.meter, command.model
        answers: list[tuple[PollRequest, ReplyFrame]] = []
        for key in sorted(k for k in self._polls if k[0] == meter.id):
            for poll in self._polls[key]:
                reply = await self._transact(meter, model, poll.frame, poll.request)
                if reply is None:
                    self._sink.silent(meter.id)
                    command.done.set_exception(TimeoutError(f"meter {meter.address} is silent"))
                    return
                answers.append((poll, reply))
        self._sink.heard(meter.id)
        try:
            reading = polling.reading_from_replies(model, meter.address, answers)
        except FrameError as exc:
            command.done.set_exception(exc)
            return
        self._hand_over(meter, model, answers)
        command.done.set_result(reading)

    async def _run_command(self, command: _Command) -> None:
        if command.action is None:
            await self._read_now(command)
            return
        meter, model = command.meter, command.model
        try:
            request = supply_command(
                model, meter.address, command.action, now=self._meter_time(meter)
            )
        except ValueError as exc:  # NoRemoteSwitch: the model has no relay or valve
            command.done.set_exception(exc)
            return
        reply = await self._transact(meter, model, request.frame, request.request)
        if command.done.done():
            return
        if reply is None:
            self._sink.silent(meter.id)
            command.done.set_exception(TimeoutError(f"meter {meter.address} did not answer"))
            return
        self._sink.heard(meter.id)
        command.done.set_result(command_outcome(request, reply))

    def _meter_time(self, meter: LinkedMeter) -> datetime:
        """The meter's wall clock (the site's time) for a command's expiry."""
        return self._clock.now().astimezone(self._zone).replace(tzinfo=None)

    # --- one request ---------------------------------------------------------------------

    async def _transact(
        self, meter: LinkedMeter, model: MeterModel, frame: bytes, request: Request
    ) -> ReplyFrame | None:
        """Send, wait for the reply that answers ``request``; resend on timeout."""
        for attempt in range(self._t.retries + 1):
            self._drain()
            stream = polling.new_stream(model)
            expect = getattr(stream, "expect", None)
            if expect is not None:
                expect(request)
            self._in_flight = True
            try:
                self._log(Direction.TX, model, frame, meter.id, f"try {attempt + 1}")
                try:
                    self._writer.write(frame)
                    await self._writer.drain()
                except (ConnectionError, OSError) as exc:
                    raise _LinkLost from exc
                reply = await self._await_reply(stream, meter, model, request)
            finally:
                self._in_flight = False
            if reply is not None:
                return reply
        return None

    async def _await_reply(
        self, stream: polling.AnyStream, meter: LinkedMeter, model: MeterModel, request: Request
    ) -> ReplyFrame | None:
        deadline = time.monotonic() + self._t.reply_timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(left):
                    chunk = await self._chunks.get()
            except TimeoutError:
                break
            if not chunk:
                self._chunks.put_nowait(b"")  # the connection is gone; tell the next waiter
                raise _LinkLost
            stream.feed(chunk)
            for event in stream:
                if isinstance(event, Skipped):
                    self._log(Direction.RX, model, event.data, meter.id, f"skipped: {event.reason}")
                    continue
                answered = polling.answers(request, event)
                note = "" if answered else "not the reply awaited"
                self._log(Direction.RX, model, polling.wire_bytes(event), meter.id, note)
                if answered:
                    return event
        self._log(Direction.RX, model, b"", meter.id, "no reply (timeout)")
        return None

    def _drain(self) -> None:
        """Drop bytes left from an earlier request (a late reply) before the next one."""
        while not self._chunks.empty():
            chunk = self._chunks.get_nowait()
            if not chunk:
                self._chunks.put_nowait(b"")
                return

    def _log(
        self, direction: Direction, model: MeterModel, data: bytes, meter_id: int, note: str
    ) -> None:
        self._sink.put_frame(
            FrameRecord.of(
                self._clock.now(),
                self.code,
                direction,
                model.protocol.value,
                data,
                meter_id=meter_id,
                note=note,
            )
        )

    def _fail_commands(self) -> None:
        while not self._commands.empty():
            command = self._commands.get_nowait()
            if not command.done.done():
                command.done.set_exception(ConnectionError(f"DTU {self.code} disconnected"))


class _LinkLost(Exception):
    """The connection closed while a request was in flight."""
