"""The Modbus TCP poller against pymodbus's own server over real sockets.

pymodbus's ``ModbusTcpServer`` plays a Modbus TCP gateway with six units behind it:
three meters whose energy registers (float32, each in its model's word order, encoded
by pymodbus, not by our codec) grow with every read; one that never answers; one the
gateway answers 0x0B for (target failed to respond); and one that refuses the model's
registers (exception 02). The poller reads the gateways from the database, polls on a
sped-up schedule, and every reading is billed through the real ingest path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from sqlalchemy import select

from meterpay.db.schema import frame_log
from meterpay.drivers.models import MeterModel, bundled_models, load_model_text
from meterpay.drivers.supply import SupplyAction
from meterpay.kernel.clock import SystemClock
from meterpay.kernel.quantity import Utility
from meterpay.ledger import service as ledger
from meterpay.links.modbus_endpoint import ModbusTcpTimings
from meterpay.links.modbus_tcp import ModbusTcpPoller, ModbusTcpSettings
from meterpay.links.sink import LinkSink
from meterpay.metering import link_service as links
from meterpay.metering import service as metering
from meterpay.metering.gateways import Transport
from meterpay.metering.meters import Protocol
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.sites.model import UnitKind
from tests.integration.builders import ACTOR, LinkedMeter, LinkedSite, a_linked_site
from tests.integration.polled import assert_billed_exactly_once, readings_per_meter, until

PRICE = Decimal("0.4883")
OPENING = Decimal("100")
STEP = Decimal("1.25")  # kWh per read: exact in float32, so the registers carry it exactly
FAST = ModbusTcpTimings(
    timeout_s=0.3, retries=1, poll_speed=1500, reconnect_min_s=0.05, reconnect_max_s=0.5
)
# A meter with low word first (CDAB) and a vendor relay register instead of a coil.
CDAB_MODEL = load_model_text(
    """\
id: test-cdab-register-relay
maker: test
utility: electricity
protocol: modbus_tcp
registers:
  - {field: total, function: holding, address: 0x0020, type: float32, word_order: little,
     every_minutes: 15}
relay: {style: register, address: 0x0010, disconnect_value: 0x0001, reconnect_value: 0x0000}
""",
    "test-cdab-register-relay.yaml",
)
MODELS: Mapping[str, MeterModel] = {**bundled_models(), CDAB_MODEL.id: CDAB_MODEL}
BILLED = ("1", "2", "3")  # default model (holding, ABCD), Eastron SDM120 (input), CDAB
NO_REPLY, GATEWAY_SAYS_SILENT, REFUSES = "4", "5", "6"


@dataclass
class FieldMeter:
    """A meter as the server holds it: its energy register grows by STEP on every read."""

    unit: int
    function: int  # 3 holding, 4 input
    address: int
    word_order: Literal["big", "little"]
    total: Decimal = OPENING
    writes: list[tuple[int, int, list[int] | list[bool]]] = field(default_factory=list)

    async def action(  # noqa: PLR0917  pymodbus calls a device action with six positionals
        self,
        function: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if values is not None:  # a write: the test checks what reached the meter
            self.writes.append((function, address, list(values)))
        elif function == self.function and address == self.address and count == 2:
            self.total += STEP
            words = AsyncModbusTcpClient.convert_to_registers(
                float(self.total), AsyncModbusTcpClient.DATATYPE.FLOAT32, self.word_order
            )
            registers[address - start : address - start + 2] = words
        return None


def _blocks(first_register: int = 0) -> tuple[list[SimData], ...]:
    bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
    words = [SimData(first_register, count=0x120, values=0, datatype=DataType.REGISTERS)]
    return (bits, list(bits), words, list(words))


async def _gateway_target_silent(*_: object) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE


@dataclass
class FarEnd:
    """The far end: the meters behind one Modbus TCP gateway, and the server playing it."""

    meters: dict[str, FieldMeter]
    port: int = 0
    server: ModbusTcpServer | None = None

    def devices(self) -> list[SimDevice]:
        devices = [
            SimDevice(m.unit, simdata=_blocks(), action=m.action) for m in self.meters.values()
        ]
        devices.append(
            SimDevice(int(GATEWAY_SAYS_SILENT), _blocks(), action=_gateway_target_silent)
        )
        devices.append(SimDevice(int(REFUSES), _blocks(first_register=0x200)))
        return devices

    async def up(self) -> None:
        """Serve (again) on the same port; the meters keep their registers."""
        self.server = ModbusTcpServer(
            self.devices(), address=("127.0.0.1", self.port), trace_packet=_drop_replies_of_4
        )
        await self.server.serve_forever(background=True)
        self.port = self.server.transport.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None


def _drop_replies_of_4(sending: bool, data: bytes) -> bytes:
    """Unit 4 hangs off the converter but never answers: its replies vanish."""
    return b"" if sending and len(data) > 6 and data[6] == int(NO_REPLY) else data


def a_far_end() -> FarEnd:
    return FarEnd(
        {
            "1": FieldMeter(1, 3, 0x0100, "big"),
            "2": FieldMeter(2, 4, 0x0048, "big"),
            "3": FieldMeter(3, 3, 0x0020, "little"),
            NO_REPLY: FieldMeter(4, 3, 0x0100, "big"),
        }
    )


def a_site_behind(rt: Runtime, port: int) -> LinkedSite:
    """One Modbus TCP gateway at ``127.0.0.1:port`` with units 1..6, all on a flat tariff."""
    models = {"2": "eastron-sdm120-modbus", "3": CDAB_MODEL.id}
    addresses = ("1", "2", "3", NO_REPLY, GATEWAY_SAYS_SILENT, REFUSES)
    return a_linked_site(
        rt,
        code="MB",
        gateway_code=f"127.0.0.1:{port}",
        transport=Transport.MODBUS_TCP,
        # no model: the poller's default Modbus TCP model
        meters=[LinkedMeter(a, Protocol.MODBUS, models.get(a)) for a in addresses],
        price=PRICE,
        kind=UnitKind.SHOP,
        initial_total=OPENING,
    )


def _poller(site: LinkedSite, sink: LinkSink, refresh_s: float = 60.0) -> ModbusTcpPoller:
    settings = ModbusTcpSettings(timings=FAST, refresh_s=refresh_s)
    return ModbusTcpPoller(site.live, sink, settings, models=MODELS)


def _each_polled(site: LinkedSite, rounds: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        counts = await asyncio.to_thread(readings_per_meter, site.live, "modbus")
        return all(counts.get(site.meter_ids[a], 0) >= rounds for a in BILLED)

    return check


def _billed_exactly_once(rt: Runtime, site: LinkedSite, far_end: FarEnd) -> None:
    """Each meter's charges add up to the price of all it used since installation."""
    for address in BILLED:
        last = assert_billed_exactly_once(rt, site.meter_ids[address], opening=OPENING, price=PRICE)
        assert last > OPENING
        assert last <= far_end.meters[address].total  # never more than the register
        assert (last - OPENING) % STEP == 0  # float32 decoded to the exact Decimal
    assert ledger.verify_ledger(rt) == []


def _notes(rt: Runtime, meter_id: int) -> set[str]:
    return {str(frame["note"]) for frame in links.recent_frames(rt, meter_id=meter_id, limit=500)}


def test_modbus_tcp_meters_are_polled_and_every_reading_billed(rt: Runtime) -> None:
    far_end = a_far_end()

    async def poll() -> LinkedSite:
        await far_end.up()
        site = a_site_behind(rt, far_end.port)
        sink = LinkSink(site.live, actor="modbus", flush_seconds=0.1)
        sink.start()
        poller = _poller(site, sink)
        await poller.start()
        try:
            await until(_each_polled(site, rounds=3))
        finally:
            await poller.stop()
            await asyncio.to_thread(sink.stop)
            await far_end.down()
        return site

    site = asyncio.run(poll())
    _billed_exactly_once(rt, site, far_end)
    status = {a: metering.get_meter(rt, m).link_status for a, m in site.meter_ids.items()}
    assert status == {
        "1": "online",
        "2": "online",
        "3": "online",
        NO_REPLY: "offline",
        GATEWAY_SAYS_SILENT: "offline",
        REFUSES: "online",  # it answers, with exceptions: there, but not billable
    }
    refusing = site.meter_ids[REFUSES]
    assert readings_per_meter(rt, "modbus").get(refusing) is None
    assert "exception 0x02 illegal_data_address" in _notes(rt, refusing)
    assert "no reply after 2 tries" in _notes(rt, site.meter_ids[NO_REPLY])
    assert "exception 0x0B gateway_target_failed_to_respond" in _notes(
        rt, site.meter_ids[GATEWAY_SAYS_SILENT]
    )
    with rt.db.read() as conn:
        sent = conn.execute(
            select(frame_log.c.hex).where(
                frame_log.c.meter_id == site.meter_ids["1"], frame_log.c.direction == "tx"
            )
        ).scalars()
        # the bytes on the wire: MBAP (any transaction id), unit 1, read 2 holding regs at 0x0100
        assert any(h.endswith("00 00 00 06 01 03 01 00 00 02") for h in sent)
    gateway = links.gateway_by_code(rt, site.gateway_code)
    assert gateway.status == "offline"  # after the stop
    assert gateway.remote_addr == site.gateway_code
    assert gateway.last_seen_at is not None and gateway.connected_at is not None
    assert gateway.last_seen_at > gateway.connected_at  # answers showed it was there


def test_the_gateway_going_away_and_coming_back_loses_nothing_and_bills_nothing_twice(
    rt: Runtime,
) -> None:
    far_end = a_far_end()

    async def poll() -> LinkedSite:
        await far_end.up()
        site = a_site_behind(rt, far_end.port)
        sink = LinkSink(site.live, actor="modbus", flush_seconds=0.1)
        sink.start()
        poller = _poller(site, sink)
        await poller.start()
        try:
            await until(_each_polled(site, rounds=2))
            await far_end.down()
            await until(lambda: _offline(site))
            await asyncio.sleep(0.5)  # a few reconnects fail before it is back
            before = await asyncio.to_thread(readings_per_meter, site.live, "modbus")
            await far_end.up()
            polled_before = max(before[site.meter_ids[a]] for a in BILLED)
            await until(_each_polled(site, rounds=polled_before + 2))  # only a reconnect can
        finally:
            await poller.stop()
            await asyncio.to_thread(sink.stop)
            await far_end.down()
        return site

    site = asyncio.run(poll())
    _billed_exactly_once(rt, site, far_end)
    for address in BILLED:  # a dropped link is not the meters' silence
        assert metering.get_meter(rt, site.meter_ids[address]).link_status == "online"


async def _offline(site: LinkedSite) -> bool:
    gateway = await asyncio.to_thread(links.gateway_by_code, site.live, site.gateway_code)
    return gateway.status == "offline"


@pytest.mark.parametrize("action", [SupplyAction.DISCONNECT, SupplyAction.RECONNECT])
def test_a_relay_command_writes_the_coil_or_the_vendor_register(
    rt: Runtime, action: SupplyAction
) -> None:
    far_end = a_far_end()

    async def command() -> tuple[bool, bool]:
        await far_end.up()
        site = a_site_behind(rt, far_end.port)
        sink = LinkSink(site.live, actor="modbus", flush_seconds=0.1)
        sink.start()
        poller = _poller(site, sink)
        await poller.start()
        try:
            await until(lambda: _connected(poller, site.gateway_code))
            coil = await poller.command(site.gateway_code, "1", action)
            register = await poller.command(site.gateway_code, "3", action)
            return coil.accepted, register.accepted
        finally:
            await poller.stop()
            await asyncio.to_thread(sink.stop)
            await far_end.down()

    assert asyncio.run(command()) == (True, True)
    off = action is SupplyAction.DISCONNECT
    assert far_end.meters["1"].writes == [(5, 0x0000, [not off])]  # FC05: the relay coil
    assert far_end.meters["3"].writes == [(6, 0x0010, [1 if off else 0])]  # FC06: vendor values


async def _connected(poller: ModbusTcpPoller, code: str) -> bool:
    endpoint = poller.endpoints.get(code)
    return endpoint is not None and endpoint.connected


def test_a_gateway_registered_while_the_poller_runs_is_polled_without_a_restart(
    rt: Runtime,
) -> None:
    far_end = a_far_end()

    async def poll() -> LinkedSite:
        await far_end.up()
        live = Runtime(db=rt.db, clock=SystemClock(), settings=rt.settings)
        sink = LinkSink(live, actor="modbus", flush_seconds=0.1)
        sink.start()
        poller = ModbusTcpPoller(
            live, sink, ModbusTcpSettings(timings=FAST, refresh_s=0.2), models=MODELS
        )
        await poller.start()
        try:
            assert poller.endpoints == {}
            site = await asyncio.to_thread(a_site_behind, rt, far_end.port)
            await until(_each_polled(site, rounds=1))
        finally:
            await poller.stop()
            await asyncio.to_thread(sink.stop)
            await far_end.down()
        return site

    site = asyncio.run(poll())
    _billed_exactly_once(rt, site, far_end)


def test_meters_are_polled_with_their_model_or_the_default_and_unpollable_ones_left_out(
    rt: Runtime,
) -> None:
    site = sites.create_site(rt, code="MB2", name="车库", actor=ACTOR)
    gateway = links.create_gateway(
        rt,
        site_id=site.id,
        code="127.0.0.1:1",
        name="无人应答",
        transport=Transport.MODBUS_TCP,
        actor=ACTOR,
    )
    links.create_gateway(
        rt,
        site_id=site.id,
        code="not a host",
        name="写错",
        transport=Transport.MODBUS_TCP,
        actor=ACTOR,
    )
    meters = {  # address, model, utility -> polled with
        ("1", None, Utility.ELECTRICITY): "generic-dts-modbus-tcp",
        ("2", "no-such-model", Utility.ELECTRICITY): "generic-dts-modbus-tcp",
        ("3", "eastron-sdm120-modbus", Utility.ELECTRICITY): "eastron-sdm120-modbus",
        ("4", "generic-645-1997", Utility.ELECTRICITY): None,  # not a Modbus model
        ("300", None, Utility.ELECTRICITY): None,  # not a unit id
        ("5", None, Utility.WATER): None,  # an energy model cannot bill water
    }
    for address, model, utility in meters:
        unit = sites.create_unit(
            rt, site_id=site.id, code=f"G-{address}", name=address, kind=UnitKind.SHOP, actor=ACTOR
        )
        metering.register_meter(
            rt,
            unit_id=unit.id,
            utility=utility,
            protocol=Protocol.MODBUS,
            address=address,
            gateway_id=gateway.id,
            model=model,
            actor=ACTOR,
        )

    async def plan() -> dict[str, str]:
        live = Runtime(db=rt.db, clock=SystemClock(), settings=rt.settings)
        sink = LinkSink(live, actor="modbus")
        sink.start()
        poller = ModbusTcpPoller(live, sink, ModbusTcpSettings(timings=FAST))
        await poller.start()
        try:
            assert set(poller.endpoints) == {"127.0.0.1:1"}  # the bad code is left out
            endpoint = poller.endpoints["127.0.0.1:1"]
            return {meter.address: model.id for meter, model in endpoint.meters}
        finally:
            await poller.stop()
            await asyncio.to_thread(sink.stop)

    polled = asyncio.run(plan())
    assert polled == {a: m for (a, _, _), m in meters.items() if m is not None}
    assert links.gateway_by_code(rt, "127.0.0.1:1").status == "offline"  # nothing listens
