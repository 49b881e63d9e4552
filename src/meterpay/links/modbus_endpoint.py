"""One Modbus TCP endpoint: a pymodbus client kept connected, its meters polled on schedule.

We dial the endpoint (an Ethernet meter, or RS-485 meters behind a converter in
Modbus TCP mode); each meter behind it is a unit id. A loop connects, polls each
meter on its model's schedule (every register group every ``every_minutes``, sped up
by ``poll_speed`` for demos and tests), hands readings to the sink, and reconnects
with backoff when the link drops.

Invariants:
- at most one request in flight per endpoint: polls and commands take turns on one
  lock, because a converter's RS-485 side is half-duplex; a command waits for the
  request in flight only, never for a whole round;
- a meter that answers is heard (and keeps its gateway's ``last_seen_at`` fresh, at
  most once a minute); one that stays silent through every resend (pymodbus
  resends ``retries`` times), or whose gateway answers 0x0A/0x0B for it, is silent and
  the rest of its round is skipped (it would time out too);
- a dropped link is not a meter's silence: nobody is marked, the round ends and the
  client reconnects after a backoff that doubles from ``reconnect_min_s`` to
  ``reconnect_max_s`` and resets once a meter has answered;
- every frame is handed to the frame log as the bytes on the wire (pymodbus's packet
  trace); a request left unanswered, and a Modbus exception, are logged with a note;
- neither an exception reply nor a malformed one ends the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from meterpay.drivers import modbus, polling
from meterpay.drivers.errors import FrameError
from meterpay.drivers.models import ModbusModel, Protocol
from meterpay.drivers.polling import PollRequest, ReplyFrame, Request
from meterpay.drivers.supply import (
    CommandOutcome,
    SupplyAction,
    command_outcome,
    relay_read_back,
    relay_read_request,
    supply_command,
)
from meterpay.links import modbus_calls as calls
from meterpay.links.modbus_calls import TcpEndpoint
from meterpay.links.readings import reading_in
from meterpay.links.schedule import PollSchedule
from meterpay.links.sink import LinkSink
from meterpay.metering import link_service as links
from meterpay.metering.gateways import Direction, FrameRecord, LinkedMeter
from meterpay.metering.meters import ReadingSource
from meterpay.runtime import Runtime

log = logging.getLogger(__name__)

PolledMeter = tuple[LinkedMeter, ModbusModel]
SEEN_EVERY_S = 60.0  # how often answers move a gateway's last_seen_at (a write each)


@dataclass(frozen=True, slots=True)
class ModbusTcpTimings:
    timeout_s: float = 3.0
    """Per try: how long to wait for a reply (and for the TCP connect)."""
    retries: int = 2
    """Resends before a meter counts as silent."""
    poll_speed: float = 1.0
    """Schedules run this many times faster (demo and simulation)."""
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 300.0


class Endpoint:
    """The loop behind one Modbus TCP gateway; ``run`` until ``stop``."""

    def __init__(
        self,
        code: str,
        address: TcpEndpoint,
        meters: Sequence[PolledMeter],
        *,
        rt: Runtime,
        sink: LinkSink,
        timings: ModbusTcpTimings,
    ) -> None:
        self.code = code
        self.address = address
        self._rt = rt
        self._sink = sink
        self._t = timings
        self._meters: dict[int, PolledMeter] = {}
        self._schedule = PollSchedule()
        self._lock = asyncio.Lock()  # one request in flight, polls and commands alike
        self._wake = asyncio.Event()
        self._stopping = False
        self._client: AsyncModbusTcpClient | None = None
        self._answered = False
        self._seen_at = float("-inf")
        # what the packet trace needs to attribute and log the request in flight
        self._in_flight: int | None = None
        self._tries = 0
        self._received = b""
        self._reply_raw = b""
        self.update_meters(meters)

    # --- public --------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    @property
    def meters(self) -> list[PolledMeter]:
        return list(self._meters.values())

    def update_meters(self, meters: Sequence[PolledMeter]) -> None:
        """Poll these meters from now on: new ones at once, known ones on their old due times."""
        now = time.monotonic()
        self._meters = {meter.id: (meter, model) for meter, model in meters}
        due: dict[tuple[int, int], float] = {}
        for meter, model in meters:
            for minutes in {register.every_minutes for register in model.registers}:
                due[(meter.id, minutes)] = self._schedule.due.get((meter.id, minutes), now)
        self._schedule.due = due
        self._wake.set()

    async def run(self) -> None:
        """Connect, poll until the link drops, reconnect after a backoff; until ``stop``."""
        backoff = self._t.reconnect_min_s
        while not self._stopping:
            self._answered = False
            try:
                await self._connection()
            except Exception:  # a bug or the database away: log it, keep the endpoint alive
                log.exception("Modbus TCP %s: the link loop failed", self.code)
            if self._answered:
                backoff = self._t.reconnect_min_s
            await self._pause(backoff)
            backoff = min(backoff * 2, self._t.reconnect_max_s)

    def stop(self) -> None:
        """End the loop: the request in flight fails, the connection closes."""
        self._stopping = True
        self._wake.set()
        if self._client is not None:
            self._client.close()

    async def command(self, address: str, action: SupplyAction) -> CommandOutcome:
        """Switch the meter at ``address`` (after the request in flight); its acknowledgement.

        ``NoRemoteSwitch`` if its model has none, ``ConnectionError`` if the endpoint is
        not connected, ``TimeoutError`` if the meter does not answer, ``UnexpectedReply``
        if what came back does not echo the write.
        """
        meter, model = self._meter_at(address)
        command = supply_command(model, address, action, now=self._rt.clock.now())
        reply = await self._ask(meter.id, address, _message(command.request))
        return command_outcome(command, reply)

    async def relay_holds(self, address: str, action: SupplyAction) -> bool | None:
        """Read the relay of the meter at ``address`` back: whether it is where ``action``
        puts it; None if the meter cannot say (an exception reply). Raises as ``command``."""
        meter, model = self._meter_at(address)
        request = relay_read_request(model, address)
        reply = await self._ask(meter.id, address, request)
        return relay_read_back(model, action, request, reply)

    async def _ask(self, meter_id: int, address: str, request: modbus.Message) -> modbus.Message:
        """One request out of the poll schedule: the meter's reply, or ``ConnectionError``
        (no link) or ``TimeoutError`` (the meter stayed silent)."""
        client = self._client
        if client is None or not client.connected:
            raise ConnectionError(f"Modbus TCP {self.code} is not connected")
        try:
            reply = await self._transact(client, meter_id, request)
        except _LinkLost as exc:
            raise ConnectionError(f"Modbus TCP {self.code} disconnected") from exc
        if reply is None:
            self._sink.silent(meter_id)
            raise TimeoutError(f"meter {address} on {self.code} did not answer")
        self._heard(meter_id)
        return reply

    # --- one connection ------------------------------------------------------------------

    async def _connection(self) -> None:
        client = AsyncModbusTcpClient(
            self.address.host,
            port=self.address.port,
            name=self.code,
            timeout=self._t.timeout_s,
            retries=self._t.retries,
            reconnect_delay=0,  # we reconnect ourselves: with backoff, and online/offline state
            trace_packet=self._trace_packet,
            trace_pdu=self._trace_pdu,
            trace_connect=self._trace_connect,
        )
        try:
            if self._stopping:
                return
            if not await client.connect():
                log.info("Modbus TCP %s: cannot connect to %s", self.code, self.address)
                return
            self._client = client
            await self._online(client)
        finally:
            self._client = None
            client.close()

    async def _online(self, client: AsyncModbusTcpClient) -> None:
        gateway = await asyncio.to_thread(
            links.gateway_connected, self._rt, self.code, remote_addr=str(self.address)
        )
        log.info("Modbus TCP %s connected with %d meters", self.code, len(self._meters))
        try:
            await self._work(client)
        finally:
            try:
                await asyncio.to_thread(
                    links.gateway_disconnected,
                    self._rt,
                    self.code,
                    connected_at=gateway.connected_at,
                )
            except Exception:  # the database away: the next connect marks it again
                log.exception("Modbus TCP %s: marking it offline failed", self.code)
            log.info("Modbus TCP %s disconnected", self.code)

    async def _work(self, client: AsyncModbusTcpClient) -> None:
        try:
            while not self._stopping and client.connected:
                now = time.monotonic()
                due = self._schedule.next_round(now)
                if due is not None:
                    await self._poll_round(client, *due)
                    continue
                await self._pause(self._schedule.wait_s(now))
        except _LinkLost:
            pass  # the endpoint went away mid-request: not the meter's silence

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` or until woken (new meters, a dropped link, ``stop``)."""
        if self._stopping:
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    # --- one round -----------------------------------------------------------------------

    async def _poll_round(
        self, client: AsyncModbusTcpClient, meter_id: int, intervals: list[int]
    ) -> None:
        meter, model = self._meters[meter_id]
        for minutes in intervals:  # rescheduled first: a silent meter waits a full interval
            self._schedule.due[(meter_id, minutes)] = (
                time.monotonic() + minutes * 60 / self._t.poll_speed
            )
        answers: list[tuple[PollRequest, ReplyFrame]] = []
        for minutes in intervals:
            for poll in polling.poll_requests(model, meter.address, every_minutes=minutes):
                reply = await self._transact(client, meter.id, _message(poll.request))
                if reply is None:
                    self._sink.silent(meter.id)
                    return
                answers.append((poll, reply))
        self._heard(meter.id)
        self._hand_over(meter, model, answers)

    def _hand_over(
        self,
        meter: LinkedMeter,
        model: ModbusModel,
        answers: list[tuple[PollRequest, ReplyFrame]],
    ) -> None:
        """The round's reading to the sink, decoded by the model (``modbus_values``)."""
        try:
            reading = polling.reading_from_replies(model, meter.address, answers)
        except FrameError as exc:
            log.warning(
                "Modbus TCP %s unit %s: unreadable reply: %s", self.code, meter.address, exc
            )
            return
        found = reading_in(
            meter.id,
            reading,
            at=self._rt.clock.now(),
            source=ReadingSource.MODBUS,
            zone=ZoneInfo(self._rt.settings.default_timezone),
        )
        if found is not None:  # None: an hourly-only round, or the energy read was refused
            self._sink.put_reading(found)

    def _heard(self, meter_id: int) -> None:
        """A meter answered: it is online, the link works, and the gateway is still there."""
        self._sink.heard(meter_id)
        self._answered = True
        now = time.monotonic()
        if now - self._seen_at >= SEEN_EVERY_S:
            self._seen_at = now
            self._sink.gateway_seen(self.code)

    def _meter_at(self, address: str) -> PolledMeter:
        for meter, model in self._meters.values():
            if meter.address == address:
                return meter, model
        raise LookupError(f"no meter {address} on Modbus TCP {self.code}")

    # --- one request ---------------------------------------------------------------------

    async def _transact(
        self, client: AsyncModbusTcpClient, meter_id: int, request: modbus.Message
    ) -> modbus.Message | None:
        """The meter's reply to ``request``, or None if it stayed silent."""
        async with self._lock:
            if self._stopping or not client.connected:
                raise _LinkLost
            self._in_flight, self._tries, self._reply_raw = meter_id, 0, b""
            try:
                pdu = await calls.send(client, request)
            except ModbusException as exc:
                if not client.connected:
                    raise _LinkLost from exc
                self._log(Direction.RX, b"", meter_id, f"no reply after {self._tries} tries")
                return None
            finally:
                self._in_flight = None
        reply = calls.reply_message(pdu)
        self._log(Direction.RX, self._reply_raw, meter_id, calls.describe(reply))
        return None if calls.meter_absent(reply) else reply

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        """pymodbus shows us every ADU sent and every buffer received: the frame log's bytes."""
        if sending:
            self._tries += 1
            self._log(Direction.TX, data, self._in_flight, f"try {self._tries}")
        else:
            self._received = data  # may hold a late reply too: ``_trace_pdu`` picks ours
        return data

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self._reply_raw = calls.frame_in(self._received, pdu.transaction_id)
        return pdu

    def _trace_connect(self, connected: bool) -> None:
        if not connected:
            self._wake.set()  # an idle loop notices the drop now, not at the next poll

    def _log(self, direction: Direction, data: bytes, meter_id: int | None, note: str) -> None:
        self._sink.put_frame(
            FrameRecord.of(
                self._rt.clock.now(),
                self.code,
                direction,
                Protocol.MODBUS_TCP.value,
                data,
                meter_id=meter_id,
                note=note,
            )
        )


class _LinkLost(Exception):
    """The connection closed while a request was in flight (or before it was sent)."""


def _message(request: Request) -> modbus.Message:
    """A Modbus model's requests are Modbus messages; anything else is a wiring bug."""
    if not isinstance(request, modbus.Message):
        raise TypeError(f"a {type(request).__name__} cannot go out on Modbus TCP")
    return request
