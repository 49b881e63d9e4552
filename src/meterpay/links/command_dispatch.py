"""Carries outbox commands to meters over the DTU listener, and verifies them by read-back.

Each round claims the due commands (``control.outbox.claim``: they are ``sent``
from then on, and come back if nothing answers before their next try), sends
each through the DTU its meter hangs on, then reads the meter at once:

- the meter refuses (abnormal reply)                 -> ``failed``;
- it accepts                                         -> ``acknowledged``;
- the read-back shows the relay/valve as commanded   -> ``verified``;
- the read-back contradicts the command              -> ``failed`` (a person must look);
- no read-back state (the model reads none)          -> stays ``acknowledged`` until
  a later reading or its time to live decides.

A meter whose DTU is not connected here, or that stays silent, is left ``sent``:
its next try comes from the outbox's backoff, in this process or another.
"""

from __future__ import annotations

import asyncio
import logging

from meterpay.control import outbox
from meterpay.control.commands import CommandEvent, CommandKind
from meterpay.drivers.supply import SupplyAction, supply_confirmed
from meterpay.links.dtu_server import DtuServer
from meterpay.metering import link_service as links
from meterpay.metering import service as metering
from meterpay.runtime import Runtime

log = logging.getLogger(__name__)

ACTIONS = {CommandKind.CUT: SupplyAction.DISCONNECT, CommandKind.RESTORE: SupplyAction.RECONNECT}


class CommandDispatcher:
    """One loop per process beside the DTU listener; ``run`` until ``stop``."""

    def __init__(self, rt: Runtime, server: DtuServer, *, every_s: float = 1.0) -> None:
        self._rt = rt
        self._server = server
        self._every_s = every_s

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.round()
            except Exception:  # the database may be away: the outbox keeps everything
                log.exception("command dispatch round failed")
            try:
                async with asyncio.timeout(self._every_s):
                    await stop.wait()
            except TimeoutError:
                pass

    async def round(self) -> int:
        """Claim and carry out the due commands; how many were claimed."""
        claimed = await asyncio.to_thread(outbox.claim, self._rt)
        await asyncio.gather(*(self._carry(c) for c in claimed))
        return len(claimed)

    async def _carry(self, command: outbox.Command) -> None:
        action = ACTIONS.get(command.kind)
        if action is None:
            return  # reads and clock syncs go with the polls for now; they expire
        meter = await asyncio.to_thread(metering.get_meter, self._rt, command.meter_id)
        if meter.gateway_id is None:
            return
        gateway = await asyncio.to_thread(links.get_gateway, self._rt, meter.gateway_id)
        try:
            outcome = await self._server.command(gateway.code, meter.address, action)
        except (ConnectionError, TimeoutError, LookupError) as exc:
            log.info("command %d for meter %s not carried: %s", command.id, meter.address, exc)
            return  # left sent: the next try comes from the backoff
        except ValueError as exc:  # the meter's model has no remote switch
            await self._record(command.id, CommandEvent.REFUSED, str(exc))
            return
        if not outcome.accepted:
            await self._record(command.id, CommandEvent.REFUSED, ",".join(outcome.reasons))
            return
        await self._record(command.id, CommandEvent.ACCEPTED)
        await self._verify(command.id, gateway.code, meter.address, action)

    async def _verify(self, command_id: int, code: str, address: str, action: SupplyAction) -> None:
        try:
            reading = await self._server.read(code, address)
        except (ConnectionError, TimeoutError, LookupError, ValueError):
            return  # acknowledged; a later reading or the time to live decides
        confirmed = supply_confirmed(action, reading)
        if confirmed is True:
            await self._record(command_id, CommandEvent.CONFIRMED)
        elif confirmed is False:
            await self._record(command_id, CommandEvent.REFUSED, f"read back: not {action.value}ed")

    async def _record(self, command_id: int, event: CommandEvent, error: str = "") -> None:
        await asyncio.to_thread(outbox.record, self._rt, command_id, event, error=error)
