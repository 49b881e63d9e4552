"""Polling Modbus TCP meters: every ``modbus_tcp`` gateway is an endpoint we dial.

A gateway with transport ``modbus_tcp`` stands for one Modbus TCP endpoint: an
Ethernet meter, or an RS-485-to-Ethernet converter in Modbus TCP mode. Its code is
where it listens, ``host[:port]`` (port 502 if left out; an IPv6 host in brackets,
``[fd00::7]:502``). Its meters are the unit ids behind it: a meter's ``address`` is
its unit id (``"1"``..``"247"``) and its ``model`` a bundled Modbus model (RTU or TCP:
the register map is the same, pymodbus does the framing); a meter that names no
model, or one we do not know, is polled with ``default_model``.

Unlike a DTU, a Modbus TCP endpoint does not dial in: the poller reads the gateways
from the database, runs one ``Endpoint`` loop per gateway, and re-reads the list
every ``refresh_s`` so new gateways and meters are polled and removed ones dropped.

Invariants:
- at most one loop (one connection) per gateway code in this process;
- a gateway whose code is not ``host[:port]`` and a meter whose unit id or model
  cannot be polled are logged once and left out, never fatal;
- ``stop`` ends every loop; a gateway that was online is marked offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from meterpay.config import Settings
from meterpay.drivers.models import MeterModel, ModbusModel, bundled_models
from meterpay.drivers.polling import unit_id
from meterpay.drivers.supply import CommandOutcome, SupplyAction
from meterpay.links.modbus_calls import TcpEndpoint, parse_endpoint
from meterpay.links.modbus_endpoint import Endpoint, ModbusTcpTimings, PolledMeter
from meterpay.links.sink import LinkSink
from meterpay.metering import link_service as links
from meterpay.metering.gateways import Gateway, LinkedMeter, Transport
from meterpay.runtime import Runtime

log = logging.getLogger(__name__)

DEFAULT_MODEL: Final = "generic-dts-modbus-tcp"
GATEWAY_PAGE: Final = 500
STOP_GRACE_S: Final = 10.0

Plans = dict[str, tuple[TcpEndpoint, list[PolledMeter]]]


@dataclass(frozen=True, slots=True)
class ModbusTcpSettings:
    timings: ModbusTcpTimings = field(default_factory=ModbusTcpTimings)
    refresh_s: float = 60.0
    """How often the gateways and their meters are re-read from the database."""
    default_model: str = DEFAULT_MODEL
    """The model of a meter that names none (or one we do not know)."""

    @staticmethod
    def from_settings(settings: Settings) -> ModbusTcpSettings:
        """The poller's settings (``MP_MODBUS_*``)."""
        return ModbusTcpSettings(
            timings=ModbusTcpTimings(
                timeout_s=settings.modbus_timeout_s,
                retries=settings.modbus_retries,
                poll_speed=settings.modbus_poll_speed,
                reconnect_min_s=settings.modbus_reconnect_min_s,
                reconnect_max_s=settings.modbus_reconnect_max_s,
            ),
            refresh_s=settings.modbus_refresh_s,
            default_model=settings.modbus_default_model,
        )


class ModbusTcpPoller:
    """One ``Endpoint`` loop per ``modbus_tcp`` gateway; ``start``/``stop`` on the loop.

    It is also the way supply commands reach these meters (``command`` then ``confirm``,
    used by ``links.command_dispatch``): they wait for the request in flight, not a round."""

    transport: Final = Transport.MODBUS_TCP

    def __init__(
        self,
        rt: Runtime,
        sink: LinkSink,
        settings: ModbusTcpSettings | None = None,
        *,
        models: Mapping[str, MeterModel] | None = None,
    ) -> None:
        self._rt = rt
        self._sink = sink
        self._settings = settings or ModbusTcpSettings()
        self._models = models if models is not None else bundled_models()
        self._endpoints: dict[str, Endpoint] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watch: asyncio.Task[None] | None = None
        self._warned: set[tuple[str, str]] = set()

    @property
    def endpoints(self) -> Mapping[str, Endpoint]:
        return dict(self._endpoints)

    async def start(self) -> None:
        """Start a loop per gateway now, then re-read the gateways every ``refresh_s``."""
        await self._refresh_logged()
        self._watch = asyncio.create_task(self._watch_loop(), name="modbus-tcp-refresh")

    async def stop(self) -> None:
        """Stop every loop; a request in flight is abandoned (registers are cumulative:
        the next poll reads what it would have)."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        for endpoint in self._endpoints.values():
            endpoint.stop()
        self._endpoints.clear()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                async with asyncio.timeout(STOP_GRACE_S):
                    await asyncio.gather(*self._tasks, return_exceptions=True)
            except TimeoutError:
                log.warning("Modbus TCP: %d loops did not stop in time", len(self._tasks))

    async def command(
        self, gateway_code: str, address: str, action: SupplyAction
    ) -> CommandOutcome:
        """Disconnect or reconnect the meter at unit ``address`` behind ``gateway_code``."""
        endpoint = self._endpoints.get(gateway_code)
        if endpoint is None:
            raise LookupError(f"no Modbus TCP gateway {gateway_code} is polled")
        return await endpoint.command(address, action)

    async def confirm(self, gateway_code: str, address: str, action: SupplyAction) -> bool | None:
        """Read the relay back: whether it is where ``action`` puts it (None: cannot tell)."""
        endpoint = self._endpoints.get(gateway_code)
        if endpoint is None:
            raise LookupError(f"no Modbus TCP gateway {gateway_code} is polled")
        return await endpoint.relay_holds(address, action)

    async def refresh(self) -> None:
        """Loops for new gateways, none for removed ones, every loop's meters brought up to date."""
        plans = await asyncio.to_thread(self._read_plans)
        for code in set(self._endpoints) - set(plans):
            log.info("Modbus TCP %s is no longer a gateway: stopping its loop", code)
            self._endpoints.pop(code).stop()
        for code, (address, meters) in plans.items():
            endpoint = self._endpoints.get(code)
            if endpoint is None:
                self._launch(code, address, meters)
            else:  # the code is the address: the same code is the same endpoint
                endpoint.update_meters(meters)

    # --- the loops -------------------------------------------------------------------------

    def _launch(self, code: str, address: TcpEndpoint, meters: list[PolledMeter]) -> None:
        endpoint = Endpoint(
            code, address, meters, rt=self._rt, sink=self._sink, timings=self._settings.timings
        )
        self._endpoints[code] = endpoint
        task = asyncio.create_task(endpoint.run(), name=f"modbus-tcp {code}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.refresh_s)
            await self._refresh_logged()

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except Exception:  # the database may be away: keep the loops we have, try again later
            log.exception("Modbus TCP: reading the gateways failed")

    # --- what to poll (runs on a worker thread: it reads the database) -----------------------

    def _read_plans(self) -> Plans:
        plans: Plans = {}
        for gateway in self._modbus_gateways():
            try:
                address = parse_endpoint(gateway.code)
            except ValueError as exc:
                self._warn_once(gateway.code, "", f"{exc}; not polled")
                continue
            meters = links.meters_on(self._rt, gateway.code)
            plans[gateway.code] = (address, self._with_models(gateway.code, meters))
        return plans

    def _modbus_gateways(self) -> list[Gateway]:
        found: list[Gateway] = []
        after: int | None = None
        while True:
            page = links.list_gateways(self._rt, after_id=after, limit=GATEWAY_PAGE)
            found += [g for g in page if g.transport == Transport.MODBUS_TCP]
            if len(page) < GATEWAY_PAGE:
                return found
            after = page[-1].id

    def _with_models(self, code: str, meters: list[LinkedMeter]) -> list[PolledMeter]:
        polled = []
        for meter in meters:
            model = self._model_of(code, meter)
            try:
                unit_id(meter.address)
            except ValueError as exc:
                self._warn_once(code, meter.address, f"{exc}; not polled")
                continue
            if model is not None:
                polled.append((meter, model))
        return polled

    def _model_of(self, code: str, meter: LinkedMeter) -> ModbusModel | None:
        named = self._models.get(meter.model or "")
        if named is None and meter.model:
            self._warn_once(code, meter.address, f"unknown model {meter.model}: using the default")
        model = named or self._models.get(self._settings.default_model)
        if not isinstance(model, ModbusModel):
            model_id = model.id if model is not None else self._settings.default_model
            problem = f"model {model_id} is not a Modbus model"
        elif model.utility != meter.utility:  # never bill water from an energy register
            problem = f"model {model.id} meters {model.utility}, the meter {meter.utility}"
        else:
            return model
        self._warn_once(code, meter.address, f"{problem}; not polled")
        return None

    def _warn_once(self, code: str, address: str, problem: str) -> None:
        """Refreshes repeat every minute: say each problem once per process."""
        if (code, address + problem) not in self._warned:
            self._warned.add((code, address + problem))
            where = f"unit {address}" if address else "gateway"
            log.warning("Modbus TCP %s %s: %s", code, where, problem)
