"""Simulated DTUs over real TCP sockets: a bare asyncio listener in the test accepts them,
reads the registration id, polls meters with the drivers' requests and sees heartbeats,
split replies, redials and a fleet's clean shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from meterpay.drivers import dlt645
from meterpay.drivers.models import Dlt645Model, MeterModel, bundled_models
from meterpay.drivers.polling import (
    PollRequest,
    Reading,
    ReplyFrame,
    new_stream,
    poll_requests,
    reading_from_replies,
)
from meterpay.drivers.stream import Skipped
from meterpay.drivers.supply import SupplyAction, command_outcome, supply_command
from meterpay.kernel.clock import FixedClock
from meterpay.sim.dtu import DtuSettings, SimulatedDtu, SimulatedFleet, imei_like
from meterpay.sim.meter_dlt645 import Dlt645Meter
from meterpay.sim.meters import Meter, meter_for

ZONE = ZoneInfo("Asia/Shanghai")
EVENING = datetime(2026, 11, 3, 18, 0, tzinfo=ZONE)
MODELS = bundled_models()
PREPAID = MODELS["generic-dds-645-2007-prepaid"]
READ_TOTAL = bytes.fromhex("68 25 04 03 02 01 00 68 11 04 33 33 34 33 E1 16")
TOTAL_1206_42 = bytes.fromhex("68 25 04 03 02 01 00 68 91 08 33 33 34 33 75 39 45 33 8B 16")
QUICK = DtuSettings(
    heartbeat_seconds=0.1,
    redial_min_seconds=0.05,
    redial_max_seconds=0.2,
    split_chance=0.0,
    split_pause_seconds=0.05,
)
WAIT = 5.0


@dataclass
class Link:
    """One accepted DTU connection, as the platform's listener would hold it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reads: int = 0
    heard: list[bytes] = field(default_factory=list)

    async def receive(self, timeout: float = WAIT) -> bytes:
        """The next read; b"" once the DTU has closed or reset the link."""
        try:
            async with asyncio.timeout(timeout):
                chunk = await self.reader.read(4096)
        except ConnectionResetError:
            chunk = b""
        self.reads += 1
        self.heard.append(chunk)
        return chunk

    async def registration(self) -> str:
        """The first packet: the DTU's id, alone."""
        return (await self.receive()).decode("ascii")

    async def ask(self, model: MeterModel, request: object, frame: bytes) -> ReplyFrame:
        """Send one request and return the first whole reply frame (heartbeats and noise
        are skipped by the stream decoder)."""
        stream = new_stream(model)
        stream.expect(request)
        self.writer.write(frame)
        await self.writer.drain()
        while True:
            chunk = await self.receive()
            assert chunk, "the DTU closed the link"
            stream.feed(chunk)
            for event in stream:
                if not isinstance(event, Skipped):
                    return event

    async def poll(self, meter: Meter) -> Reading:
        answers: list[tuple[PollRequest, ReplyFrame]] = []
        for poll in poll_requests(meter.model, meter.address):
            answers.append((poll, await self.ask(meter.model, poll.request, poll.frame)))
        return reading_from_replies(meter.model, meter.address, answers)

    async def until_eof(self) -> bytes:
        """Everything the DTU still sends before it closes the link."""
        received = b""
        while chunk := await self.receive():
            received += chunk
        return received

    async def silent_for(self, seconds: float) -> bytes:
        """Everything received in ``seconds`` (heartbeats, typically)."""
        received = b""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            try:
                received += await self.receive(left)
            except TimeoutError:
                break
        return received


@asynccontextmanager
async def listener() -> AsyncIterator[tuple[int, asyncio.Queue[Link]]]:
    """A TCP listener on a free port; each accepted DTU arrives on the queue."""
    links: asyncio.Queue[Link] = asyncio.Queue()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await links.put(Link(reader, writer))

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], links
    finally:
        server.close()
        while not links.empty():
            links.get_nowait().writer.close()
        await server.wait_closed()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    # asyncio.timeout, not wait_for: on 3.11 a cancelled wait_for can swallow the cancel
    async def bounded() -> None:
        async with asyncio.timeout(30):
            await scenario()

    asyncio.run(bounded())


def reference_meter() -> Dlt645Meter:
    assert isinstance(PREPAID, Dlt645Model)
    return Dlt645Meter(PREPAID, "000102030425", opening=Decimal("1206.42"), wake_up=0)


def test_dtu_registers_relays_a_read_and_heartbeats() -> None:
    """Registration first, the recorded read answered byte for byte, then heartbeats."""
    dtu_id = imei_like(1)

    async def scenario() -> None:
        async with listener() as (port, links):
            dtu = SimulatedDtu(
                dtu_id, "127.0.0.1", port, [reference_meter()], settings=QUICK,
                clock=FixedClock(EVENING),
            )  # fmt: skip
            async with SimulatedFleet([dtu]):
                link = await asyncio.wait_for(links.get(), WAIT)
                assert await link.registration() == dtu_id and len(dtu_id) == 15
                reply = await link.ask(PREPAID, None, READ_TOTAL)
                assert isinstance(reply, dlt645.Frame) and dlt645.encode(reply) == TOTAL_1206_42
                idle = await link.silent_for(0.45)
                assert idle.count(b"HB") >= 2 and idle.replace(b"HB", b"") == b""

    run(scenario)


def test_a_reply_split_over_tcp_segments_is_reassembled() -> None:
    """With splitting forced, the reply arrives in several reads and still decodes."""

    async def scenario() -> None:
        async with listener() as (port, links):
            settings = DtuSettings(heartbeat=b"", split_chance=1.0, split_pause_seconds=0.05)
            meter = reference_meter()
            dtu = SimulatedDtu(imei_like(2), "127.0.0.1", port, [meter], settings=settings)
            async with SimulatedFleet([dtu]):
                link = await asyncio.wait_for(links.get(), WAIT)
                await link.registration()
                reply = await link.ask(PREPAID, None, READ_TOTAL)
                assert isinstance(reply, dlt645.Frame) and dlt645.encode(reply) == TOTAL_1206_42
                assert dtu.stats.split_replies == 1 and link.reads >= 3  # id + two parts

    run(scenario)


def test_dtu_redials_after_a_close_a_reset_and_a_silent_outage() -> None:
    """Closed by the server or reset, it is back at once; in an outage the old link goes
    silent but stays open, and the DTU registers anew only after the outage."""
    dtu_id = imei_like(3)

    async def scenario() -> None:
        async with listener() as (port, links):
            dtu = SimulatedDtu(dtu_id, "127.0.0.1", port, [reference_meter()], settings=QUICK)
            async with SimulatedFleet([dtu]):
                first = await asyncio.wait_for(links.get(), WAIT)
                await first.registration()
                first.writer.close()
                second = await asyncio.wait_for(links.get(), WAIT)
                assert await second.registration() == dtu_id
                dtu.drop()
                assert (await second.until_eof()).replace(b"HB", b"") == b""
                stale = await asyncio.wait_for(links.get(), WAIT)
                assert await stale.registration() == dtu_id
                dtu.go_offline(0.8)
                assert await stale.silent_for(0.3) == b"" and not stale.reader.at_eof()
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(links.get(), 0.3)
                back = await asyncio.wait_for(links.get(), WAIT)
                assert await back.registration() == dtu_id
                reply = await back.ask(PREPAID, None, READ_TOTAL)
                assert isinstance(reply, dlt645.Frame) and dlt645.encode(reply) == TOTAL_1206_42
            assert await stale.until_eof() == b""  # closed when the DTU stopped
            assert dtu.stats.connections == 4 and dtu.stats.drops == 2

    run(scenario)


def test_a_fleet_of_two_dtus_answers_for_its_meters_and_shuts_down_cleanly() -> None:
    """Four meters of three protocols over two DTUs: each bus answers its own meters, a
    trip goes through, an offline meter is silent, a slow one late, and stop closes all."""
    clock = FixedClock(EVENING)
    meters = [
        meter_for(PREPAID, "000000000101", opening=Decimal(50)),
        meter_for(MODELS["generic-cjt188-cold-water-valve-lsb"], "78330011223344"),
        meter_for(MODELS["eastron-sdm120-modbus"], "1", opening=Decimal(10)),
        meter_for(MODELS["generic-645-1997"], "000000000102", opening=Decimal(70)),
    ]
    ids = [imei_like(10), imei_like(11)]

    async def scenario() -> None:
        async with listener() as (port, links):
            fleet = SimulatedFleet.spread(
                "127.0.0.1", port, ids, meters, settings=QUICK, clock=clock
            )
            async with fleet:
                await fleet.wait_connected(WAIT)
                accepted = [await asyncio.wait_for(links.get(), WAIT) for _ in ids]
                by_id = {await link.registration(): link for link in accepted}
                assert set(by_id) == set(ids)
                first, second = by_id[ids[0]], by_id[ids[1]]
                readings = [await first.poll(m) for m in meters[:2]]
                readings += [await second.poll(m) for m in meters[2:]]
                assert [r.total is not None for r in readings] == [True] * 4
                assert readings[1].valve == "open"

                clock.advance(timedelta(hours=2))
                later = await first.poll(meters[0])
                assert later.total is not None and later.total > Decimal(50)

                command = supply_command(
                    PREPAID, "000000000101", SupplyAction.DISCONNECT, now=clock.now()
                )
                reply = await first.ask(PREPAID, command.request, command.frame)
                assert command_outcome(command, reply).accepted
                assert (await first.poll(meters[0])).relay_open is True

                fleet.meter("1").faults.offline = True
                poll = poll_requests(meters[2].model, "1")[0]
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await second.ask(meters[2].model, poll.request, poll.frame)
                fleet.meter("000000000102").faults.slow_seconds = 0.3
                loop = asyncio.get_running_loop()
                asked_at = loop.time()
                assert (await second.poll(meters[3])).total is not None
                assert loop.time() - asked_at >= 0.3
            for link in accepted:  # unread heartbeats, then the DTU's FIN
                assert (await link.until_eof()).replace(b"HB", b"") == b""
            assert all(dtu.stats.disconnects == 1 for dtu in fleet.dtus.values())

    run(scenario)
