"""Outbox commands to Modbus TCP meters over real sockets: the relay coil or register is
written from the meter's model, then read back; pymodbus's own server plays the gateway.

Behind it: unit 1 (the default model, relay on coil 0), unit 3 (a vendor relay register),
unit 5 (a relay that springs back: the write is echoed, the read-back says closed) and
unit 7 (refuses every write with exception 04, server device failure).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from meterpay.control import outbox
from meterpay.control.commands import CommandKind, CommandState
from meterpay.drivers import modbus
from meterpay.drivers.models import MeterModel, ModbusModel, bundled_models, load_model_text
from meterpay.drivers.supply import (
    SupplyAction,
    relay_read_back,
    relay_read_request,
    supply_command,
)
from meterpay.links.command_dispatch import CommandDispatcher
from meterpay.links.modbus_endpoint import ModbusTcpTimings
from meterpay.links.modbus_tcp import ModbusTcpPoller, ModbusTcpSettings
from meterpay.links.runner import BackgroundLinks, Links
from meterpay.links.sink import LinkSink
from meterpay.metering.gateways import Transport
from meterpay.metering.meters import Protocol
from meterpay.runtime import Runtime
from meterpay.sim.meter_modbus import ModbusMeter
from meterpay.sites.model import UnitKind
from tests.integration.builders import LinkedMeter, LinkedSite, a_linked_site
from tests.integration.polled import until

FAST = ModbusTcpTimings(timeout_s=0.3, retries=1, reconnect_min_s=0.05, reconnect_max_s=0.5)
REGISTER_RELAY = load_model_text(
    """\
id: test-register-relay
maker: test
utility: electricity
protocol: modbus_tcp
registers:
  - {field: total, function: holding, address: 0x0020, type: float32, every_minutes: 15}
relay: {style: register, address: 0x0010, disconnect_value: 0x0001, reconnect_value: 0x0000}
""",
    "test-register-relay.yaml",
)
MODELS: Mapping[str, MeterModel] = {**bundled_models(), REGISTER_RELAY.id: REGISTER_RELAY}
COIL, REGISTER, SPRINGS_BACK, REFUSES = "1", "3", "5", "7"
CUT, RESTORE = CommandKind.CUT, CommandKind.RESTORE


def _blocks() -> tuple[list[SimData], ...]:
    bits = [SimData(0, count=16, values=True, datatype=DataType.BITS)]  # relays closed
    words = [SimData(0, count=0x120, values=0, datatype=DataType.REGISTERS)]
    return (bits, list(bits), words, list(words))


async def _springs_back(  # noqa: PLR0917  pymodbus calls a device action with six positionals
    function: int,
    start: int,
    address: int,
    count: int,
    registers: list[int],
    values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    """Takes the write (and echoes it), then the relay falls back closed."""
    if values is None and function == modbus.FunctionCode.READ_COILS:
        registers[address - start] = 1
    return None


async def _refuses_writes(*args: object) -> ExcCodes | None:
    return ExcCodes.DEVICE_FAILURE if args[-1] is not None else None


class Gateway:
    """pymodbus's server as the Modbus TCP gateway, and a second client to look inside."""

    def __init__(self) -> None:
        self.server: ModbusTcpServer | None = None
        self.port = 0

    async def up(self) -> None:
        self.server = ModbusTcpServer(
            [
                SimDevice(int(COIL), simdata=_blocks()),
                SimDevice(int(REGISTER), simdata=_blocks()),
                SimDevice(int(SPRINGS_BACK), simdata=_blocks(), action=_springs_back),
                SimDevice(int(REFUSES), simdata=_blocks(), action=_refuses_writes),
            ],
            address=("127.0.0.1", 0),
        )
        await self.server.serve_forever(background=True)
        self.port = self.server.transport.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self.server is not None:
            await self.server.shutdown()

    async def relay_coil(self, unit: str) -> bool:
        async with AsyncModbusTcpClient("127.0.0.1", port=self.port) as client:
            return bool((await client.read_coils(0, count=1, device_id=int(unit))).bits[0])

    async def relay_register(self, unit: str) -> int:
        async with AsyncModbusTcpClient("127.0.0.1", port=self.port) as client:
            reply = await client.read_holding_registers(0x10, count=1, device_id=int(unit))
            return int(reply.registers[0])


def a_site_behind(rt: Runtime, port: int) -> LinkedSite:
    models = {REGISTER: REGISTER_RELAY.id}
    return a_linked_site(
        rt,
        code="MBC",
        gateway_code=f"127.0.0.1:{port}",
        transport=Transport.MODBUS_TCP,
        meters=[
            LinkedMeter(a, Protocol.MODBUS, models.get(a))
            for a in (COIL, REGISTER, SPRINGS_BACK, REFUSES)
        ],
        price=Decimal("0.5"),
        kind=UnitKind.SHOP,
    )


def _queue(rt: Runtime, meter_id: int, kind: CommandKind, cause: str) -> outbox.Command:
    return outbox.queue(rt, meter_id=meter_id, kind=kind, cause_key=cause, requested_by="test")


def test_a_cut_and_a_restore_through_the_running_links_are_verified_by_read_back(
    rt: Runtime,
) -> None:
    """``Links`` with Modbus runs a dispatcher beside the poller: the cut opens coil 0 of
    unit 1, the restore closes it, and the read-back verifies each."""
    gateway = Gateway()

    async def carry() -> list[tuple[CommandState, bool]]:
        await gateway.up()
        site = a_site_behind(rt, gateway.port)
        settings = ModbusTcpSettings(timings=FAST)
        running = BackgroundLinks(Links(site.live, modbus=settings))
        await asyncio.to_thread(running.start)
        seen = []
        try:
            for kind in (CUT, RESTORE):
                command = _queue(site.live, site.meter_ids[COIL], kind, f"test:{kind.value}")

                async def settled(c: outbox.Command = command) -> bool:
                    state = (await asyncio.to_thread(outbox.get, site.live, c.id)).state
                    return state in (CommandState.VERIFIED, CommandState.FAILED)

                await until(settled)
                state = (await asyncio.to_thread(outbox.get, site.live, command.id)).state
                seen.append((state, await gateway.relay_coil(COIL)))
        finally:
            await asyncio.to_thread(running.stop)
            await gateway.down()
        return seen

    assert asyncio.run(carry()) == [(CommandState.VERIFIED, False), (CommandState.VERIFIED, True)]


def test_a_refusal_or_a_relay_that_does_not_stay_fails_and_a_register_relay_is_verified(
    rt: Runtime,
) -> None:
    """Exception 04 to the write fails the command with its name; a relay that reads back
    closed after a cut fails it; a vendor relay register is written and read back."""
    gateway = Gateway()

    async def carry() -> tuple[dict[str, outbox.Command], int]:
        await gateway.up()
        site = a_site_behind(rt, gateway.port)
        sink = LinkSink(site.live, actor="modbus", flush_seconds=0.1)
        sink.start()
        poller = ModbusTcpPoller(site.live, sink, ModbusTcpSettings(timings=FAST), models=MODELS)
        await poller.start()
        dispatcher = CommandDispatcher(site.live, poller)
        done = {}
        try:
            await until(lambda: _connected(poller, site.gateway_code))
            for address in (REGISTER, SPRINGS_BACK, REFUSES):
                command = _queue(site.live, site.meter_ids[address], CUT, f"test:{address}")
                assert await dispatcher.round() == 1
                done[address] = await asyncio.to_thread(outbox.get, site.live, command.id)
            register = await gateway.relay_register(REGISTER)
        finally:
            await poller.stop()
            await asyncio.to_thread(sink.stop)
            await gateway.down()
        return done, register

    done, register = asyncio.run(carry())
    assert done[REGISTER].state is CommandState.VERIFIED
    assert register == 0x0001  # the vendor's "disconnect" value
    assert (done[SPRINGS_BACK].state, done[SPRINGS_BACK].last_error) == (
        CommandState.FAILED,
        "read back: not disconnected",
    )
    assert (done[REFUSES].state, done[REFUSES].last_error) == (
        CommandState.FAILED,
        "server_device_failure",
    )


async def _connected(poller: ModbusTcpPoller, code: str) -> bool:
    endpoint = poller.endpoints.get(code)
    return endpoint is not None and endpoint.connected


def test_the_simulated_modbus_meter_obeys_its_relay_coil_and_reads_it_back() -> None:
    """The simulator's DIN-rail meter: FC05 opens and closes the relay, FC01 shows it."""
    model = load_model_text(
        bundled_models()["generic-dts-modbus-tcp"]
        .model_dump_json()
        .replace('"modbus_tcp"', '"modbus_rtu"'),
        "rtu.yaml",
    )
    assert isinstance(model, ModbusModel)
    meter = ModbusMeter(model, "9")
    at = datetime(2026, 11, 1, tzinfo=UTC)
    for action, opened in ((SupplyAction.DISCONNECT, True), (SupplyAction.RECONNECT, False)):
        write = supply_command(model, "9", action, now=at)
        assert meter.answer(write.frame, at) == write.frame  # the echo
        assert meter.relay_open is opened
        read = relay_read_request(model, "9")
        reply = meter.answer(modbus.encode_rtu(read), at)
        assert reply is not None
        assert relay_read_back(model, action, read, modbus.decode_rtu(reply)) is True
        other = SupplyAction.RECONNECT if opened else SupplyAction.DISCONNECT
        assert relay_read_back(model, other, read, modbus.decode_rtu(reply)) is False
