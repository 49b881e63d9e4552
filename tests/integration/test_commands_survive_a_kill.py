"""Commands survive a SIGKILL of the process that carries them.

``meterpay links`` runs in a subprocess (the DTU listener and its command dispatcher)
on the test's database; a simulated DTU in the test dials it, with DL/T 645 meters that
witness every relay command (1CH) they hear and every move of their relay. Cuts and
restores are queued, the process is killed with the first relay command on the wire
(the meter has obeyed, its answer has not left the DTU), and started again on the same
port: the outbox's backoff brings every command back, and each one ends verified — none
lost, none left open, none carried out more often than its attempts say, and each relay
moved exactly once.

The meters answer polls at once but hold their answer to a relay command (a slow meter
on a busy bus): that is the window in which the process dies.

A second test (expected to fail until it is fixed) kills the process later, after the
meter accepted the command and while it is being read back: nothing reads it back after
the restart, so the command waits ``acknowledged`` until its time to live and expires,
though the relay did move.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from meterpay.control import outbox
from meterpay.control.commands import FINAL, CommandKind, CommandState
from meterpay.db.schema import commands
from meterpay.drivers.dlt645 import Frame, Function
from meterpay.drivers.dlt645_replies import address_matches
from meterpay.drivers.dlt645_requests import RelayCommand
from meterpay.drivers.models import Dlt645Model, bundled_models
from meterpay.metering import link_service as links
from meterpay.metering.gateways import Transport
from meterpay.metering.meters import Protocol
from meterpay.runtime import Runtime
from meterpay.sim.dtu import DtuSettings, SimulatedDtu, SimulatedFleet
from meterpay.sim.meter_dlt645 import Dlt645Meter, Relay
from tests.integration.builders import LinkedMeter, LinkedSite, a_linked_site
from tests.integration.polled import readings_per_meter, until

MODEL = "generic-dds-645-2007-prepaid"
DTU_ID = "861234040000123"
CUTS = [f"0000000006{n:02d}" for n in range(1, 5)]  # relays closed: each gets a cut
RESTORES = [f"0000000006{n:02d}" for n in range(5, 7)]  # relays open: each gets a restore
RELAY_ANSWER_S = 2.0  # how long a meter holds its answer to a 1CH command
QUICK_DTU = DtuSettings(
    heartbeat_seconds=0.5, redial_min_seconds=0.05, redial_max_seconds=0.3, split_chance=0.0
)
WAIT = 120.0
WANTED = {CommandKind.CUT: Relay.OPEN, CommandKind.RESTORE: Relay.CLOSED}


class WitnessMeter(Dlt645Meter):
    """A simulated meter that records each relay command it hears (by its N1 code) and
    each move of its relay. It can hold its answer to a relay command (``relay_answer_s``)
    or to the first read after its relay moved (``read_back_s``: the read-back), and says
    when it heard them (``relay_command_heard``, ``read_back_heard``)."""

    def __init__(self, model: Dlt645Model, address: str) -> None:
        super().__init__(model, address, seed=address)
        self.relay_commands: list[int] = []  # N1 codes: 1A trip, 1C close now
        self.moves: list[tuple[Relay, Relay]] = []
        self.relay_answer_s = 0.0
        self.read_back_s = 0.0
        self.relay_command_heard = asyncio.Event()
        self.read_back_heard = asyncio.Event()

    def hear(self, frame: Frame, at: datetime) -> bytes | None:
        mine = not frame.control.from_meter and address_matches(frame.address, self.address)
        relay = mine and frame.control.function == Function.RELAY_CONTROL
        read_back = (
            mine
            and frame.control.function == Function.READ
            and bool(self.moves)
            and not self.read_back_heard.is_set()
        )
        if relay and len(frame.data) > 8:
            self.relay_commands.append(frame.data[8])
            self.relay_command_heard.set()
        if read_back:
            self.read_back_heard.set()
        self.faults.slow_seconds = (
            self.relay_answer_s if relay else self.read_back_s if read_back else 0.0
        )
        return super().hear(frame, at)

    def obey(self, command: RelayCommand) -> None:
        before = self.relay
        super().obey(command)
        self.moves.append((before, self.relay))

    @property
    def times_switched(self) -> int:
        return sum(1 for before, after in self.moves if before is not after)


class LinksProcess:
    """``meterpay links`` in a subprocess on ``port``, its log collected line by line."""

    def __init__(self, port: int, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        command = [sys.executable, "-m", "meterpay.cli", "links", "--dtu-port", str(port)]
        self.proc = subprocess.Popen(  # noqa: S603  our own CLI, arguments from the test
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def log(self) -> str:
        return "\n".join(self.lines[-40:])

    async def listening(self) -> None:
        async def bound() -> bool:
            assert self.proc.poll() is None, f"meterpay links exited:\n{self.log()}"
            return any("DTU listener on" in line for line in self.lines)

        await until(bound, timeout=WAIT)

    def kill(self) -> None:
        """SIGKILL: nothing is finished, recorded or closed politely."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._reader.join(10)

    def stop(self) -> int:
        """SIGTERM, as a supervisor stops it; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self._reader.join(10)
        return code


@dataclass
class Bus:
    """The platform's records and the field: six meters on one DTU."""

    site: LinkedSite
    env: dict[str, str]
    port: int
    meters: dict[str, WitnessMeter] = field(default_factory=dict)

    @property
    def live(self) -> Runtime:
        return self.site.live


def a_bus(rt: Runtime) -> Bus:
    everything = CUTS + RESTORES
    site = a_linked_site(
        rt,
        code="KILL",
        gateway_code=DTU_ID,
        transport=Transport.DTU,
        meters=[LinkedMeter(a, Protocol.DLT645_2007, MODEL) for a in everything],
        price=Decimal("1.00"),
    )
    model = bundled_models()[MODEL]
    assert isinstance(model, Dlt645Model)
    env = {
        **os.environ,
        "MP_DATABASE_URL": rt.db.url,
        "MP_DTU_HOST": "127.0.0.1",
        "MP_DTU_REPLY_TIMEOUT_S": str(RELAY_ANSWER_S * 3),  # a slow answer is not a silence
        "MP_DTU_RETRIES": "0",  # so each attempt puts exactly one 1CH on the bus
    }
    bus = Bus(site, env, _free_port())
    for address in everything:
        bus.meters[address] = meter = WitnessMeter(model, address)
        if address in RESTORES:  # cut off earlier
            meter.obey(RelayCommand.TRIP)
            meter.moves.clear()
    return bus


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def in_the_field(bus: Bus) -> AsyncIterator[SimulatedDtu]:
    dtu = SimulatedDtu(DTU_ID, "127.0.0.1", bus.port, bus.meters.values(), settings=QUICK_DTU)
    async with SimulatedFleet([dtu]):
        yield dtu


def queue_commands(bus: Bus) -> dict[str, int]:
    """A cut or a restore for every meter, in one transaction; command ids by address."""
    ids = {}
    now = bus.live.clock.now()
    with bus.live.db.write() as conn:
        for address, meter_id in bus.site.meter_ids.items():
            kind = CommandKind.CUT if address in CUTS else CommandKind.RESTORE
            ids[address] = outbox.queue_in(
                conn,
                meter_id=meter_id,
                kind=kind,
                cause_key=f"kill-test:{kind.value}:{address}",
                requested_by="operator",
                now=now,
            ).id
    return ids


def a_short_lived_cut(bus: Bus, address: str) -> None:
    """A cut that expires in 60 seconds: an open command ends within the test."""
    with bus.live.db.write() as conn:
        outbox.queue_in(
            conn,
            meter_id=bus.site.meter_ids[address],
            kind=CommandKind.CUT,
            cause_key=f"kill-test:short-lived:{address}",
            requested_by="operator",
            now=bus.live.clock.now(),
            ttl=timedelta(seconds=60),
        )


def _everything(rt: Runtime) -> list[outbox.Command]:
    with rt.db.read() as conn:
        count = conn.execute(select(func.count()).select_from(commands)).scalar_one()
    found = outbox.find(rt, limit=1000)[::-1]
    assert len(found) == count
    return found


async def _all(rt: Runtime, check: Callable[[outbox.Command], bool]) -> bool:
    return all(check(c) for c in await asyncio.to_thread(_everything, rt))


async def _online_and_polled(bus: Bus) -> None:
    """The DTU is served and every meter polled once (the first round is out of the way)."""

    async def ready() -> bool:
        gateway = await asyncio.to_thread(links.gateway_by_code, bus.live, DTU_ID)
        counts = await asyncio.to_thread(readings_per_meter, bus.live, "dtu")
        return gateway.status == "online" and len(counts) == len(bus.meters)

    await until(ready, timeout=WAIT)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(300):
            await scenario()

    asyncio.run(bounded())


def test_commands_in_flight_when_the_process_is_killed_are_each_carried_out_once(
    rt: Runtime,
) -> None:
    """Killed with all six commands sent and the first 1CH obeyed but unanswered; after
    the restart every command is verified, none lost, none sent more often than its
    attempts, and each relay moved exactly once."""
    bus = a_bus(rt)
    first = LinksProcess(bus.port, bus.env)
    restarted: LinksProcess | None = None
    for meter in bus.meters.values():
        meter.relay_answer_s = RELAY_ANSWER_S

    async def scenario() -> None:
        nonlocal restarted
        await first.listening()
        async with in_the_field(bus):
            await _online_and_polled(bus)
            ids = await asyncio.to_thread(queue_commands, bus)
            heard = [asyncio.create_task(m.relay_command_heard.wait()) for m in bus.meters.values()]
            await asyncio.wait(heard, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
            for task in heard:
                task.cancel()
            first.kill()  # the meter has obeyed; its answer is still held on the bus
            at_kill = await asyncio.to_thread(_everything, bus.live)
            assert [(c.state, c.attempts) for c in at_kill] == [(CommandState.SENT, 1)] * 6
            assert sum(len(m.relay_commands) for m in bus.meters.values()) == 1

            for meter in bus.meters.values():
                meter.relay_answer_s = 0.2
            restarted = LinksProcess(bus.port, bus.env)
            await restarted.listening()
            await until(lambda: _all(bus.live, lambda c: c.state is CommandState.VERIFIED), WAIT)
            assert [c.id for c in await asyncio.to_thread(_everything, bus.live)] == sorted(
                ids.values()
            )
        assert restarted.stop() == 0

    try:
        run(scenario)
    finally:
        for process in (first, restarted):
            if process is not None and process.proc.poll() is None:
                process.kill()

    by_id = {c.id: c for c in _everything(bus.live)}
    assert len(by_id) == 6
    for address, meter in bus.meters.items():
        (command,) = [c for c in by_id.values() if c.meter_id == bus.site.meter_ids[address]]
        relay_code = (
            RelayCommand.TRIP if command.kind is CommandKind.CUT else RelayCommand.CLOSE_NOW
        )
        assert set(meter.relay_commands) == {relay_code.code}
        # claimed before the kill and again after it: no 1CH without an attempt behind it
        assert command.attempts >= 2
        assert 1 <= len(meter.relay_commands) <= command.attempts
        assert meter.times_switched == 1 and meter.relay is WANTED[command.kind]
    assert sorted(len(m.relay_commands) for m in bus.meters.values()) == [1, 1, 1, 1, 1, 2]


def test_a_command_acknowledged_when_the_process_is_killed_is_verified_after_the_restart(
    pg_rt: Runtime,
) -> None:
    """Killed after the meter accepted a cut, during the read-back: after the restart the
    relay is open, so the cut should end verified, not expired with an alarm."""
    bus = a_bus(pg_rt)
    address = CUTS[0]
    meter = bus.meters[address]
    first = LinksProcess(bus.port, bus.env)
    restarted: LinksProcess | None = None
    meter.read_back_s = RELAY_ANSWER_S

    async def scenario() -> None:
        nonlocal restarted
        await first.listening()
        async with in_the_field(bus):
            await _online_and_polled(bus)
            await asyncio.to_thread(a_short_lived_cut, bus, address)
            await asyncio.wait_for(meter.read_back_heard.wait(), WAIT)
            first.kill()
            (at_kill,) = await asyncio.to_thread(_everything, bus.live)
            assert at_kill.state is CommandState.ACKNOWLEDGED
            assert meter.relay is Relay.OPEN

            restarted = LinksProcess(bus.port, bus.env)
            await restarted.listening()
            await until(lambda: _all(bus.live, lambda c: c.state in FINAL), WAIT)
        assert restarted.stop() == 0

    try:
        run(scenario)
    finally:
        for process in (first, restarted):
            if process is not None and process.proc.poll() is None:
                process.kill()
    (command,) = _everything(bus.live)
    assert meter.times_switched == 1 and meter.relay is Relay.OPEN
    assert command.state is CommandState.VERIFIED, (command.state, command.last_error)
