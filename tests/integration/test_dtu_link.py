"""The DTU listener against simulated DTUs and meters over real sockets.

A simulated DTU dials the listener, registers, and relays DL/T 645 frames to
32 simulated meters; the listener polls them on a sped-up schedule and every
reading is billed through the real ingest path. Dropping the DTU mid-poll
must lose nothing and bill nothing twice: registers are cumulative, so the
consumption billed always adds up to the last register value read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from meterpay.control import outbox
from meterpay.control.commands import CommandKind, CommandState
from meterpay.db.schema import frame_log
from meterpay.drivers.models import bundled_models
from meterpay.drivers.supply import SupplyAction
from meterpay.kernel.quantity import Utility
from meterpay.ledger import service as ledger
from meterpay.links.command_dispatch import CommandDispatcher
from meterpay.links.dtu_bus import BusTimings
from meterpay.links.dtu_server import DtuServer, DtuSettings
from meterpay.links.sink import LinkSink
from meterpay.metering import link_service as links
from meterpay.metering import service as metering
from meterpay.metering.gateways import Transport
from meterpay.metering.meters import Protocol
from meterpay.runtime import Runtime
from meterpay.sim.dtu import DtuSettings as SimDtuSettings
from meterpay.sim.dtu import SimulatedFleet
from meterpay.sim.meters import meter_for
from meterpay.sim.simulate import Plan, provision
from meterpay.sites import service as sites
from meterpay.sites.model import UnitKind
from meterpay.tariffs import service as tariffs
from tests.integration.builders import ACTOR, LinkedMeter, LinkedSite, a_linked_site
from tests.integration.polled import assert_billed_exactly_once, readings_per_meter, until

PRICE = Decimal("0.4883")
MODEL = "generic-dds-645-2007-prepaid"
DTU_ID = "861234040000017"
FAST = BusTimings(reply_timeout_s=0.5, retries=1, idle_timeout_s=30, poll_speed=3000)


def a_bus_of_32_meters(rt: Runtime) -> LinkedSite:
    """A site whose 32 DL/T 645 meters hang on one registered DTU."""
    meters = [LinkedMeter(f"{n:012d}", Protocol.DLT645_2007, MODEL) for n in range(1, 33)]
    return a_linked_site(
        rt,
        code="DTU",
        gateway_code=DTU_ID,
        transport=Transport.DTU,
        meters=meters,
        price=PRICE,
    )


def _fleet(port: int, addresses: list[str]) -> SimulatedFleet:
    model = bundled_models()[MODEL]
    meters = [meter_for(model, a, kind=UnitKind.SHOP, speed=600, seed=a) for a in addresses]
    settings = SimDtuSettings(heartbeat_seconds=0.2, redial_min_seconds=0.05)
    return SimulatedFleet.spread("127.0.0.1", port, [DTU_ID], meters, settings=settings)


async def _serve_and_poll(
    bus: LinkedSite, rounds: int, during: Callable[[SimulatedFleet], Awaitable[None]] | None = None
) -> DtuServer:
    sink = LinkSink(bus.live, actor="dtu", flush_seconds=0.1)
    sink.start()
    server = DtuServer(bus.live, sink, DtuSettings(port=0, timings=FAST))
    await server.start()
    try:
        async with _fleet(server.port, sorted(bus.meter_ids)) as fleet:
            await fleet.wait_connected(10)
            if during is not None:
                await during(fleet)

            async def polled_enough() -> bool:
                counts = await asyncio.to_thread(readings_per_meter, bus.live, "dtu")
                return len(counts) == 32 and min(counts.values()) >= rounds

            await until(polled_enough, timeout=60)
    finally:
        await server.stop()
        await asyncio.to_thread(sink.stop)
    return server


def _billed_exactly_once(rt: Runtime, meter_ids: dict[str, int]) -> None:
    """Each meter's charges add up to the price of all it used, each reading charged once."""
    for meter_id in meter_ids.values():
        assert_billed_exactly_once(rt, meter_id, opening=Decimal(0), price=PRICE)
    assert ledger.verify_ledger(rt) == []


def test_a_dtu_with_32_meters_is_polled_and_every_reading_billed(rt: Runtime) -> None:
    bus = a_bus_of_32_meters(rt)
    asyncio.run(_serve_and_poll(bus, rounds=3))
    _billed_exactly_once(rt, bus.meter_ids)
    gateway = links.gateway_by_code(rt, DTU_ID)
    assert gateway.status == "offline" and gateway.remote_addr is not None  # after the stop
    assert {metering.get_meter(rt, m).link_status for m in bus.meter_ids.values()} == {"online"}
    with rt.db.read() as conn:
        directions = dict(
            conn.execute(
                select(frame_log.c.direction, func.count())
                .where(frame_log.c.gateway_code == DTU_ID)
                .group_by(frame_log.c.direction)
            ).all()
        )
    assert directions["tx"] >= 32 * 3 and directions["rx"] >= 32 * 3


def test_a_dtu_dropping_mid_poll_loses_nothing_and_bills_nothing_twice(rt: Runtime) -> None:
    bus = a_bus_of_32_meters(rt)

    async def drop_twice(fleet: SimulatedFleet) -> None:
        dtu = fleet.dtus[DTU_ID]
        for vanish in (False, True):
            await asyncio.sleep(0.3)  # mid-round: requests are in flight
            dtu.drop(vanish=vanish)

    asyncio.run(_serve_and_poll(bus, rounds=4, during=drop_twice))
    _billed_exactly_once(rt, bus.meter_ids)


def test_an_unknown_dtu_is_logged_and_refused(rt: Runtime) -> None:
    bus = a_bus_of_32_meters(rt)

    async def dial_in() -> bytes:
        sink = LinkSink(bus.live, actor="dtu")
        sink.start()
        server = DtuServer(bus.live, sink, DtuSettings(port=0, timings=FAST))
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"869999999999999")
            await writer.drain()
            async with asyncio.timeout(10):
                rest = await reader.read()  # closed by the server
            writer.close()
            return rest
        finally:
            await server.stop()
            await asyncio.to_thread(sink.stop)

    assert asyncio.run(dial_in()) == b""
    [frame] = links.recent_frames(rt, gateway_code="869999999999999")
    assert (
        frame["note"].startswith("unknown DTU")
        and frame["hex"] == b"869999999999999".hex(" ").upper()
    )


@pytest.mark.parametrize("action", [SupplyAction.DISCONNECT, SupplyAction.RECONNECT])
def test_a_relay_command_goes_out_through_the_dtu_and_the_meter_obeys(
    rt: Runtime, action: SupplyAction
) -> None:
    bus = a_bus_of_32_meters(rt)
    address = "000000000007"

    async def command() -> tuple[bool, bool | None]:
        sink = LinkSink(bus.live, actor="dtu")
        sink.start()
        server = DtuServer(bus.live, sink, DtuSettings(port=0, timings=FAST))
        await server.start()
        try:
            async with _fleet(server.port, sorted(bus.meter_ids)) as fleet:
                await fleet.wait_connected(10)
                await until(lambda: _connected(server), timeout=10)
                outcome = await server.command(DTU_ID, address, action)
                return outcome.accepted, fleet.meter(address).relay_open
        finally:
            await server.stop()
            await asyncio.to_thread(sink.stop)

    accepted, relay_open = asyncio.run(command())
    assert accepted
    assert relay_open is (action is SupplyAction.DISCONNECT)


async def _connected(server: DtuServer) -> bool:
    return DTU_ID in server.buses


def test_simulate_provisions_its_site_once_and_spreads_meters_over_the_dtus(rt: Runtime) -> None:
    """Running ``meterpay simulate`` again reuses its site, DTUs and meters."""
    plan = Plan(meters=7, dtus=3, speed=1.0, host="127.0.0.1", port=9000)
    first = provision(rt, plan)
    again = provision(rt, plan)
    assert {code: [m.id for m in ms] for code, ms in first.items()} == {
        code: [m.id for m in ms] for code, ms in again.items()
    }
    assert sorted(len(ms) for ms in first.values()) == [2, 2, 3]
    assert all(links.gateway_by_code(rt, code).transport == "dtu" for code in first)
    [meter] = first[sorted(first)[0]][:1]
    assert ledger.account_balance(rt, meter.account_id or 0).fen == 200_00


def test_a_modbus_rtu_meter_on_a_dtu_bus_is_polled_by_our_own_master(rt: Runtime) -> None:
    """A DIN-rail Modbus RTU meter beside the DL/T 645 meters on one bus is read and billed."""
    bus = a_bus_of_32_meters(rt)
    [site] = sites.page(rt, "sites", after_id=None, limit=1, code="DTU")
    [tariff] = tariffs.list_tariffs(rt, site_id=site.id, after_id=None, limit=1)
    unit = sites.create_unit(
        rt, site_id=site.id, code="1-SHOP", name="1号楼商铺", kind=UnitKind.SHOP, actor=ACTOR
    )
    account = sites.open_account(
        rt, unit_id=unit.id, utility=Utility.ELECTRICITY, tariff_id=tariff.id, actor=ACTOR
    )
    gateway = links.gateway_by_code(rt, DTU_ID)
    rtu = metering.register_meter(
        rt,
        unit_id=unit.id,
        utility=Utility.ELECTRICITY,
        protocol=Protocol.MODBUS,
        address="1",
        account_id=account.id,
        gateway_id=gateway.id,
        model="eastron-sdm120-modbus",
        actor=ACTOR,
    )
    bus.meter_ids["1"] = rtu.id
    model = bundled_models()["eastron-sdm120-modbus"]

    async def poll() -> None:
        sink = LinkSink(bus.live, actor="dtu", flush_seconds=0.1)
        sink.start()
        server = DtuServer(bus.live, sink, DtuSettings(port=0, timings=FAST))
        await server.start()
        dlt = bundled_models()[MODEL]
        meters = [meter_for(dlt, a, speed=600, seed=a) for a in sorted(bus.meter_ids) if a != "1"]
        meters.append(meter_for(model, "1", kind=UnitKind.SHOP, speed=600, seed=1))
        settings = SimDtuSettings(heartbeat_seconds=0.2)
        try:
            async with SimulatedFleet.spread(
                "127.0.0.1", server.port, [DTU_ID], meters, settings=settings
            ):

                async def rtu_read_thrice() -> bool:
                    counts = await asyncio.to_thread(readings_per_meter, bus.live, "dtu")
                    return counts.get(rtu.id, 0) >= 3

                await until(rtu_read_thrice, timeout=60)
        finally:
            await server.stop()
            await asyncio.to_thread(sink.stop)

    asyncio.run(poll())
    _billed_exactly_once(rt, {"1": rtu.id})
    assert (metering.get_meter(rt, rtu.id).last_total or 0) > 0


def test_outbox_commands_are_carried_through_the_dtu_and_verified_by_read_back(
    rt: Runtime,
) -> None:
    """A queued cut opens the simulated relay and is verified; the restore closes it again."""
    bus = a_bus_of_32_meters(rt)
    address = "000000000009"
    meter_id = bus.meter_ids[address]

    async def carry() -> tuple[list[CommandState], bool | None]:
        sink = LinkSink(bus.live, actor="dtu")
        sink.start()
        server = DtuServer(bus.live, sink, DtuSettings(port=0, timings=FAST))
        await server.start()
        dispatcher = CommandDispatcher(bus.live, server)
        states = []
        try:
            async with _fleet(server.port, sorted(bus.meter_ids)) as fleet:
                await fleet.wait_connected(10)
                await until(lambda: _connected(server), timeout=10)
                for kind in (CommandKind.CUT, CommandKind.RESTORE):
                    command = outbox.queue(
                        bus.live,
                        meter_id=meter_id,
                        kind=kind,
                        cause_key=f"test:{kind.value}",
                        requested_by="test",
                    )
                    assert await dispatcher.round() == 1
                    states.append(outbox.get(bus.live, command.id).state)
                    if kind is CommandKind.CUT:
                        assert fleet.meter(address).relay_open is True
                return states, fleet.meter(address).relay_open
        finally:
            await server.stop()
            await asyncio.to_thread(sink.stop)

    states, relay_open = asyncio.run(carry())
    assert states == [CommandState.VERIFIED, CommandState.VERIFIED]
    assert relay_open is False
