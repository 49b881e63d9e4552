"""Carries outbox commands to meters over a switching link, and verifies them by read-back.

A switching link is the DTU listener or the Modbus TCP poller: it can send a supply
command to a meter now and read the meter back at once (``SupplySwitch``). One
dispatcher runs beside each such link. Each round claims the due commands for meters
behind gateways of that link's transport (``control.outbox.claim(transports=...)``:
they are ``sent`` from then on, and come back if nothing answers before their next
try), sends each through the link, then reads the meter back at once:

- the meter refuses (abnormal reply, Modbus exception) -> ``failed``;
- it accepts                                          -> ``acknowledged``;
- the read-back shows the relay/valve as commanded    -> ``verified``;
- the read-back contradicts the command               -> ``failed`` (a person must look);
- no answer to the read-back, or it cannot tell yet   -> stays ``acknowledged``: the
  meter is read back again every 15 seconds (``outbox.claim(read_backs=True)``), after a
  restart too, until it shows the effect or the command's time to live ends.

A meter whose gateway is not connected here, or that stays silent, is left ``sent``:
its next try comes from the outbox's backoff, in this process or another. Commands for
meters behind other transports are never claimed here (MQTT gateways have their own
dispatcher, ``links.mqtt_command_dispatch``); one that nobody routes expires by its time
to live.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final, Protocol

from meterpay.control import outbox
from meterpay.control.commands import CommandEvent, CommandKind, CommandState
from meterpay.control.model import RestoreStyle
from meterpay.drivers.supply import CommandOutcome, SupplyAction, supply_confirmed
from meterpay.links.dtu_server import DtuServer
from meterpay.metering import link_service as links
from meterpay.metering import service as metering
from meterpay.metering.gateways import Transport
from meterpay.runtime import Runtime

log = logging.getLogger(__name__)

ACTIONS = {CommandKind.CUT: SupplyAction.DISCONNECT, CommandKind.RESTORE: SupplyAction.RECONNECT}
UNREACHABLE: Final = (ConnectionError, TimeoutError, LookupError)
"""The link or the meter is not there now: the command waits for its next try."""


def meter_route(rt: Runtime, meter_id: int, transport: Transport) -> tuple[str, str] | None:
    """The meter's gateway code and bus address, if it hangs on a gateway of ``transport``."""
    meter = metering.get_meter(rt, meter_id)
    if meter.gateway_id is None:
        return None
    gateway = links.get_gateway(rt, meter.gateway_id)
    if gateway.transport != transport:
        return None
    return gateway.code, meter.address


class SupplySwitch(Protocol):
    """A link that switches meters' supply and reads the result back at once."""

    @property
    def transport(self) -> Transport: ...

    async def command(
        self, gateway_code: str, address: str, action: SupplyAction
    ) -> CommandOutcome: ...

    async def confirm(self, gateway_code: str, address: str, action: SupplyAction) -> bool | None:
        """Whether the meter now shows ``action`` done; None if it cannot tell."""
        ...


class DtuSwitch:
    """The DTU listener as a ``SupplySwitch``: the read-back is a whole reading."""

    transport: Final = Transport.DTU

    def __init__(self, server: DtuServer) -> None:
        self._server = server

    async def command(
        self, gateway_code: str, address: str, action: SupplyAction
    ) -> CommandOutcome:
        return await self._server.command(gateway_code, address, action)

    async def confirm(self, gateway_code: str, address: str, action: SupplyAction) -> bool | None:
        return supply_confirmed(action, await self._server.read(gateway_code, address))


class CommandDispatcher:
    """One loop per process beside a switching link; ``run`` until ``stop``."""

    def __init__(
        self, rt: Runtime, link: DtuServer | SupplySwitch, *, every_s: float = 1.0
    ) -> None:
        self._rt = rt
        self._link: SupplySwitch = DtuSwitch(link) if isinstance(link, DtuServer) else link
        self._every_s = every_s

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.round()
            except Exception:  # the database may be away: the outbox keeps everything
                log.exception("command dispatch round failed (%s)", self._link.transport.value)
            try:
                async with asyncio.timeout(self._every_s):
                    await stop.wait()
            except TimeoutError:
                pass

    async def round(self) -> int:
        """Claim and carry out the due commands of this link's meters; how many were claimed."""
        transports = {self._link.transport}
        claimed = await asyncio.to_thread(
            outbox.claim, self._rt, transports=transports, read_backs=True
        )
        await asyncio.gather(*(self._carry(c) for c in claimed))
        return len(claimed)

    async def _carry(self, command: outbox.Command) -> None:
        action = ACTIONS.get(command.kind)
        if action is SupplyAction.RECONNECT and command.option == RestoreStyle.CLOSE_ALLOWED:
            action = SupplyAction.RECONNECT_ALLOWED
        if action is None:
            return  # reads and clock syncs go with the polls for now; they expire
        route = await asyncio.to_thread(
            meter_route, self._rt, command.meter_id, self._link.transport
        )
        if route is None:
            return  # moved to another link since the claim: the backoff brings it back
        code, address = route
        if command.state is CommandState.ACKNOWLEDGED:  # accepted before: only read it back
            await self._verify(command.id, code, address, action)
            return
        try:
            outcome = await self._link.command(code, address, action)
        except UNREACHABLE as exc:
            log.info("command %d for meter %s not carried: %s", command.id, address, exc)
            return  # left sent: the next try comes from the backoff
        except ValueError as exc:  # no remote switch in the model, or a reply that is not one
            await self._record(command.id, CommandEvent.REFUSED, str(exc))
            return
        if not outcome.accepted:
            await self._record(command.id, CommandEvent.REFUSED, ",".join(outcome.reasons))
            return
        await self._record(command.id, CommandEvent.ACCEPTED)
        await self._verify(command.id, code, address, action)

    async def _verify(self, command_id: int, code: str, address: str, action: SupplyAction) -> None:
        try:
            confirmed = await self._link.confirm(code, address, action)
        except (*UNREACHABLE, ValueError):
            return  # acknowledged: read back again later (``outbox.claim``) until it expires
        if confirmed is True:
            await self._record(command_id, CommandEvent.CONFIRMED)
        elif confirmed is False:
            await self._record(command_id, CommandEvent.REFUSED, f"read back: not {action.value}ed")

    async def _record(self, command_id: int, event: CommandEvent, error: str = "") -> None:
        await asyncio.to_thread(outbox.record, self._rt, command_id, event, error=error)
