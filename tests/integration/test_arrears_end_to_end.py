"""Arrears control end to end over real sockets: a simulated DTU dials the real listener,
its prepaid DL/T 645 meter is polled and billed until the money runs out, the scheduler
gives the final notice and queues the cut, the dispatcher trips the simulated relay and
verifies it by read-back, and a cash top-up closes it again.

Everything runs as in production on one event loop: the DTU listener with its sink, the
command dispatcher, and the scheduler's rounds (on a worker thread, as ``Scheduler.run``
does). The only thing the test drives is time past the notice period: the platform's
clock is the real one plus a step the test takes (``SteppedClock``), so the one-minute
notice does not cost a minute. The meter consumes at a steady, known rate (a "leak"
with the household away, sped up), so each threshold is crossed on a reading of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from meterpay.control import outbox
from meterpay.control import service as control
from meterpay.control.commands import CommandKind, CommandState
from meterpay.control.model import SupplyState
from meterpay.db.schema import accounts
from meterpay.drivers.dlt645_requests import RelayCommand
from meterpay.drivers.models import Dlt645Model, bundled_models
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger import service as ledger
from meterpay.links.command_dispatch import CommandDispatcher
from meterpay.links.dtu_bus import BusTimings
from meterpay.links.dtu_server import DtuServer, DtuSettings
from meterpay.links.sink import LinkSink
from meterpay.metering import service as metering
from meterpay.metering.gateways import Transport
from meterpay.metering.meters import Protocol
from meterpay.notify import service as notify
from meterpay.notify.model import ChannelName
from meterpay.runtime import Runtime
from meterpay.sim.dtu import DtuSettings as SimDtuSettings
from meterpay.sim.dtu import SimulatedDtu, SimulatedFleet
from meterpay.sim.meter_dlt645 import Dlt645Meter, Relay
from meterpay.sites import service as sites
from meterpay.workers.scheduler import Scheduler
from tests.integration.builders import ACTOR, LinkedMeter, a_linked_site
from tests.integration.polled import assert_billed_exactly_once, until

PRICE = Decimal("1.00")
MODEL = "generic-dds-645-2007-prepaid"
DTU_ID = "861234040000099"
ADDRESS = "000000000501"
KWH_PER_SECOND = Decimal(5)  # a steady draw: each 0.3 s poll bills about 1.5 元
FAST = BusTimings(reply_timeout_s=1.0, retries=1, idle_timeout_s=60, poll_speed=3000)
QUICK_DTU = SimDtuSettings(heartbeat_seconds=0.5, redial_min_seconds=0.05, split_chance=0.0)
WAIT = 60.0
MINUTE = timedelta(minutes=1, seconds=1)
OWNER_STORY = [
    "top_up_receipt",
    "warning1",
    "warning2",
    "arrears_notice",
    "final_notice",
    "cut_off",
    "top_up_receipt",
    "restored",
]


class SteppedClock:
    """The real time, plus however far the test has stepped it forward (never back)."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.ahead

    def step(self, by: timedelta) -> None:
        self.ahead += by


@dataclass
class Compound:
    """One linked home: the platform side (``live``) and the simulated meter in the field."""

    live: Runtime
    clock: SteppedClock
    site_id: int
    account_id: int
    meter_id: int
    meter: Dlt645Meter


def a_home_on_a_dtu(rt: Runtime) -> Compound:
    """A home whose prepaid meter hangs on a DTU, owned by someone with a phone, on a site
    that cuts two minutes after the arrears notice, one after the final notice, at any
    hour of any day."""
    site = a_linked_site(
        rt,
        code="ARR",
        gateway_code=DTU_ID,
        transport=Transport.DTU,
        meters=[LinkedMeter(ADDRESS, Protocol.DLT645_2007, MODEL)],
        price=PRICE,
    )
    clock = SteppedClock()
    live = Runtime(db=rt.db, clock=clock, settings=rt.settings)
    meter_id = site.meter_ids[ADDRESS]
    account_id = metering.get_meter(live, meter_id).account_id
    assert account_id is not None
    owner = sites.create_customer(
        live, site_id=site.site_id, name="李四", phone="13900000000", actor=ACTOR
    )
    sites.update_account(live, account_id, customer_id=owner.id, actor=ACTOR)
    control.set_policy(
        live,
        site.site_id,
        Utility.ELECTRICITY,
        {
            "notice_period_minutes": 2,
            "final_notice_lead_minutes": 1,
            "friendly_hours": None,
            "no_cutoff_on_rest_days": False,
        },
        by="admin",
        reason="test site: a short notice, cut-offs allowed at any time",
    )
    model = bundled_models()[MODEL]
    assert isinstance(model, Dlt645Model)
    meter = Dlt645Meter(model, ADDRESS, speed=3600, seed=ADDRESS)
    meter.usage.away = True  # only the steady draw below: a known rate, no load profile
    meter.faults.leak_per_hour = KWH_PER_SECOND
    return Compound(live, clock, site.site_id, account_id, meter_id, meter)


@dataclass
class Running:
    fleet: SimulatedFleet
    rounds: list[int]


@asynccontextmanager
async def production_links(home: Compound) -> AsyncIterator[Running]:
    """The DTU listener, its sink and command dispatcher, the scheduler's rounds, and the
    simulated DTU dialled in; everything stopped on the way out."""
    sink = LinkSink(home.live, actor="dtu", flush_seconds=0.1)
    sink.start()
    server = DtuServer(home.live, sink, DtuSettings(port=0, timings=FAST))
    await server.start()
    stop = asyncio.Event()
    scheduler = Scheduler(home.live, every_s=0.2)
    rounds = [0]

    async def schedule() -> None:
        try:
            while not stop.is_set():
                await asyncio.to_thread(scheduler.round)
                rounds[0] += 1
                await asyncio.sleep(0.2)
        finally:
            scheduler.leadership.release()

    dtu = SimulatedDtu(DTU_ID, "127.0.0.1", server.port, [home.meter], settings=QUICK_DTU)
    jobs = [
        asyncio.create_task(CommandDispatcher(home.live, server, every_s=0.2).run(stop)),
        asyncio.create_task(schedule()),
    ]
    try:
        async with SimulatedFleet([dtu]) as fleet:
            await fleet.wait_connected(10)
            yield Running(fleet, rounds)
    finally:
        stop.set()
        await asyncio.gather(*jobs)
        await server.stop()
        await asyncio.to_thread(sink.stop)


async def _in_state(home: Compound, *states: SupplyState) -> bool:
    view = await asyncio.to_thread(control.supply_view, home.live, home.account_id)
    return view.account.state in states


async def _owner_heard(home: Compound, topic: str) -> bool:
    return topic in await asyncio.to_thread(_owner_topics, home)


def _owner_topics(home: Compound) -> list[str]:
    """The owner's in-app messages (one per event; SMS copies aside), oldest first."""
    messages = notify.notifications(home.live, account_id=home.account_id, limit=500)
    return [m.topic.value for m in messages if m.channel is ChannelName.IN_APP]


def _relay(home: Compound) -> Relay:
    """The simulated meter's relay now (read afresh: commands move it under our feet)."""
    return home.meter.relay


def _announced_cutoff(home: Compound, topic: str) -> datetime:
    messages = notify.notifications(home.live, account_id=home.account_id, limit=500)
    (told,) = [m for m in messages if m.topic.value == topic and m.channel is ChannelName.IN_APP]
    return datetime.fromisoformat(told.params["planned_cutoff_at"])


def _commands(home: Compound) -> list[outbox.Command]:
    return outbox.find(home.live, account_id=home.account_id)[::-1]


async def _top_up(home: Compound, yuan: str, key: str) -> None:
    await asyncio.to_thread(
        ledger.cash_top_up,
        home.live,
        account_id=home.account_id,
        amount=Money.from_yuan(yuan),
        idempotency_key=key,
        cashier="cashier",
    )


async def _settled(home: Compound, kind: CommandKind) -> bool:
    commands = await asyncio.to_thread(_commands, home)
    return any(c.kind is kind and c.state is CommandState.VERIFIED for c in commands)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(180):
            await scenario()

    asyncio.run(bounded())


def test_an_account_runs_out_is_cut_off_by_its_meter_and_restored_by_a_top_up(
    rt: Runtime,
) -> None:
    """Polled and billed to nothing: warnings, arrears notice, final notice, a cut that
    really opens the relay and is verified by read-back; a top-up closes it, verified."""
    home = a_home_on_a_dtu(rt)
    commands: list[outbox.Command] = []

    async def scenario() -> None:
        await _top_up(home, "60.00", "opening")
        async with production_links(home) as running:
            meter = running.fleet.meter(ADDRESS)
            assert meter is home.meter

            # the draw bills the balance down through both warnings into arrears
            await until(lambda: _in_state(home, SupplyState.IN_ARREARS), timeout=WAIT)
            await _rounds_without_a_cut(home, running)
            assert "final_notice" not in await asyncio.to_thread(_owner_topics, home)

            home.clock.step(MINUTE)  # a minute before the announced cut-off
            await until(lambda: _owner_heard(home, "final_notice"), timeout=WAIT)
            await _rounds_without_a_cut(home, running)

            home.clock.step(MINUTE)  # the notice period and the final notice have run
            await until(lambda: _in_state(home, SupplyState.CUT_OFF), timeout=WAIT)
            (cut,) = await asyncio.to_thread(_commands, home)
            assert (cut.kind, cut.state, cut.attempts) == (
                CommandKind.CUT,
                CommandState.VERIFIED,
                1,
            )
            assert cut.requested_by == "arrears"
            assert home.meter.relay is Relay.OPEN and home.meter.trip_commanded
            home.meter.faults.leak_per_hour = Decimal(0)  # the household is out: exact sums

            await _top_up(home, "200.00", "pays")
            await until(lambda: _settled(home, CommandKind.RESTORE), timeout=WAIT)
            assert _relay(home) is Relay.CLOSED and not home.meter.trip_commanded
            await until(lambda: _in_state(home, SupplyState.NORMAL, SupplyState.LOW), timeout=WAIT)
            commands.extend(await asyncio.to_thread(_commands, home))

    run(scenario)
    assert [(c.kind, c.state, c.attempts) for c in commands] == [
        (CommandKind.CUT, CommandState.VERIFIED, 1),
        (CommandKind.RESTORE, CommandState.VERIFIED, 1),
    ]
    assert _owner_topics(home) == OWNER_STORY
    for topic in ("arrears_notice", "final_notice"):  # never cut before the owner was told
        assert commands[0].created_at >= _announced_cutoff(home, topic)
    last = assert_billed_exactly_once(home.live, home.meter_id, opening=Decimal(0), price=PRICE)
    view = control.supply_view(home.live, home.account_id)
    assert view.balance == Money.from_yuan("260.00") - Money.from_yuan(str(last * PRICE))
    assert view.account.state is SupplyState.NORMAL
    assert [e["to_state"] for e in view.events][::-1] == [
        "low",
        "very_low",
        "in_arrears",
        "cut_off",
        "restore_pending",
        "normal",
    ]
    assert ledger.verify_ledger(home.live) == []


async def _rounds_without_a_cut(home: Compound, running: Running) -> None:
    """Three more scheduler rounds pass, and still nothing is cut: the power stays on."""
    seen = running.rounds[0]

    async def three_more() -> bool:
        return running.rounds[0] >= seen + 3

    await until(three_more, timeout=WAIT)
    assert await asyncio.to_thread(_commands, home) == []
    assert home.meter.relay is Relay.CLOSED


def a_cut_off_home_restored_at_the_button(rt: Runtime) -> Compound:
    """A home cut off earlier (relay open, account cut off) on a site whose restores only
    allow the relay to close (1BH 合闸允许): the owner presses the meter's button."""
    home = a_home_on_a_dtu(rt)
    home.meter.faults.leak_per_hour = Decimal(0)
    control.set_policy(
        home.live,
        home.site_id,
        Utility.ELECTRICITY,
        {"restore_style": "close_allowed"},
        by="admin",
        reason="owners restore supply at the meter",
    )
    home.meter.obey(RelayCommand.TRIP)
    with home.live.db.write() as conn:  # as the end-to-end test leaves it
        conn.execute(
            accounts.update()
            .where(accounts.c.id == home.account_id)
            .values(supply_state=SupplyState.CUT_OFF.value)
        )
    return home


async def _restore_armed(home: Compound) -> outbox.Command:
    """Top up; the restore goes out as 1BH and the meter arms its relay; the command."""
    await _top_up(home, "100.00", "pays")
    (restore,) = await asyncio.to_thread(_commands, home)
    assert (restore.kind, restore.option) == (CommandKind.RESTORE, "close_allowed")

    async def answered() -> bool:
        command = await asyncio.to_thread(outbox.get, home.live, restore.id)
        return command.state not in (CommandState.PENDING, CommandState.SENT)

    await until(answered, timeout=WAIT)
    return await asyncio.to_thread(outbox.get, home.live, restore.id)


def test_a_restore_by_close_allowed_arms_the_relay_and_waits_for_the_owner(rt: Runtime) -> None:
    """The read-back of an armed relay cannot tell: the restore stays acknowledged, the
    account waits for it, and the power stays off until the button is pressed."""
    home = a_cut_off_home_restored_at_the_button(rt)

    async def scenario() -> None:
        async with production_links(home):
            restore = await _restore_armed(home)
            assert restore.state is CommandState.ACKNOWLEDGED and restore.attempts == 1
            assert home.meter.relay is Relay.ARMED and home.meter.relay_open
            assert await _in_state(home, SupplyState.RESTORE_PENDING)

    run(scenario)


def test_after_the_owners_button_the_next_reading_verifies_the_restore(pg_rt: Runtime) -> None:
    """The owner presses the button; the next poll shows the relay closed: the restore is
    verified and the account is back to normal, with the owner told."""
    home = a_cut_off_home_restored_at_the_button(pg_rt)

    async def scenario() -> None:
        async with production_links(home):
            await _restore_armed(home)
            home.meter.press_button()
            assert home.meter.relay is Relay.CLOSED
            await until(lambda: _settled(home, CommandKind.RESTORE), timeout=WAIT)

    run(scenario)
    assert control.supply_view(home.live, home.account_id).account.state is SupplyState.NORMAL
    assert _owner_topics(home)[-1] == "restored"
