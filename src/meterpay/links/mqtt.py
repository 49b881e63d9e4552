"""The MQTT link: gateways' readings in, acknowledged only after they are committed.

Several meterpay processes consume side by side through one shared
subscription (``$share/{group}/{prefix}/gw/+/readings``): the broker hands
each message to one member of the group. Each process has a stable client id
and a persistent session, so what it received but had not acknowledged when
it died is delivered to it again when it comes back under the same id.

The loop: collect deliveries into a batch (up to ``batch_readings`` readings
or ``batch_seconds`` after the first one), ingest each gateway's readings in a
worker thread (``ingest_readings`` is synchronous), PUBACK them after the
commit, then collect the next batch. Invariants:

- never lose a reading: nothing is acknowledged before its transaction has
  committed; a batch the database refuses is kept and tried again after a
  backoff, and the broker redelivers whatever a crash left unacknowledged;
- never bill twice: redelivery only repeats an idempotent ingest, keyed by
  (meter, read_at);
- bad input never stops the loop: it is acknowledged, logged and counted
  (``links.mqtt_batch``);
- one batch at a time per process, so one process keeps each gateway's
  messages in the order it received them.

Stop: set the ``stop`` event (the CLI does on SIGTERM/SIGINT); the current
batch is finished and acknowledged, then the client disconnects. Messages
received but not yet batched stay unacknowledged and come back on the next
connection of the same client id.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from meterpay.config import Settings
from meterpay.kernel.errors import InvalidInput
from meterpay.links.mqtt_batch import BatchHandler, LinkCounters
from meterpay.links.mqtt_commands import CommandResultHandler, log_command_result
from meterpay.links.mqtt_delivery import (
    Delivery,
    Garbage,
    ReadingsContent,
    ResultContent,
    StatusContent,
)
from meterpay.links.mqtt_session import Broker, ConsumerSession, SessionOptions
from meterpay.runtime import Runtime

log = logging.getLogger("meterpay.links.mqtt")

RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
REPORT_EVERY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    session: SessionOptions
    batch_readings: int
    batch_seconds: float
    ingest_threads: int

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        broker: str | None = None,
        client_id: str | None = None,
        group: str | None = None,
    ) -> ConsumerOptions:
        """The settings (``MP_MQTT_*``), with the command line's overrides."""
        return cls(
            session=SessionOptions(
                broker=Broker.parse(broker or settings.mqtt_broker_url),
                client_id=_checked(
                    "client_id", client_id or settings.mqtt_client_id or default_client_id()
                ),
                group=_checked("group", group or settings.mqtt_group),
                prefix=settings.mqtt_topic_prefix,
                receive_maximum=settings.mqtt_receive_maximum,
                session_expiry_seconds=settings.mqtt_session_expiry_seconds,
                keepalive_seconds=settings.mqtt_keepalive_seconds,
            ),
            batch_readings=settings.mqtt_batch_readings,
            batch_seconds=settings.mqtt_batch_ms / 1000,
            ingest_threads=settings.mqtt_ingest_threads,
        )


def default_client_id() -> str:
    """Stable across restarts of one host's process; set ``MP_MQTT_CLIENT_ID`` when a
    host runs several consumers (two clients with one id keep evicting each other)."""
    host = re.sub(r"[^0-9A-Za-z_.-]", "-", socket.gethostname())
    return f"meterpay-{host}"[:64]


_NAME = re.compile(r"[0-9A-Za-z_.-]{1,64}")  # no '/', '+', '#': group ids sit in topic filters


def _checked(field: str, value: str) -> str:
    if not _NAME.fullmatch(value):
        raise InvalidInput(f"{field} {value!r} is not 1-64 of [0-9A-Za-z_.-]", field=field)
    return value


class MqttConsumer:
    """Consumes readings, gateway statuses and command results until ``stop`` is set."""

    def __init__(
        self,
        rt: Runtime,
        options: ConsumerOptions,
        *,
        on_command_result: CommandResultHandler = log_command_result,
    ) -> None:
        self._rt = rt
        self._options = options
        self._on_result = on_command_result
        self.counters = LinkCounters()
        self._inbox = _Inbox()
        self._session: ConsumerSession | None = None

    @property
    def subscribed(self) -> bool:
        """True while connected with every subscription granted."""
        return self._session is not None and self._session.subscribed.is_set()

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        session = ConsumerSession(
            self._options.session, lambda d: _call_soon(loop, self._inbox.put, d)
        )
        self._session = session
        handler = BatchHandler(self._rt, session.ack, self._on_result, self.counters)
        workers = ThreadPoolExecutor(self._options.ingest_threads, thread_name_prefix="mqtt-ingest")
        session.start()
        try:
            await self._loop(stop, handler, workers)
        finally:
            await loop.run_in_executor(None, session.stop)
            workers.shutdown(wait=True)
            log.info(
                "mqtt %s: stopped; %s", self._options.session.client_id, self.counters.snapshot()
            )

    async def _loop(
        self, stop: asyncio.Event, handler: BatchHandler, workers: ThreadPoolExecutor
    ) -> None:
        retry_in = RETRY_FIRST_SECONDS
        reported = time.monotonic()
        while not stop.is_set():
            batch = await self._inbox.next_batch(
                stop, self._options.batch_readings, self._options.batch_seconds
            )
            failed = await self._handle(batch, handler, workers) if batch else []
            if failed:
                self._inbox.put_back(failed)
                self.counters.add(retries=1)
                log.warning(
                    "mqtt: %d messages kept for another try in %.1f s", len(failed), retry_in
                )
                await _sleep(stop, retry_in)
                retry_in = min(retry_in * 2, RETRY_MAX_SECONDS)
            elif batch:
                retry_in = RETRY_FIRST_SECONDS
            if time.monotonic() - reported > REPORT_EVERY_SECONDS:
                reported = time.monotonic()
                log.info("mqtt %s: %s", self._options.session.client_id, self.counters.snapshot())

    async def _handle(
        self, batch: Sequence[Delivery], handler: BatchHandler, workers: ThreadPoolExecutor
    ) -> list[Delivery]:
        """Handle one batch; return the deliveries that must be tried again."""
        loop = asyncio.get_running_loop()
        plan = _Plan.of(batch)
        failed: list[Delivery] = []
        if plan.garbage and not await _run(loop, workers, handler.garbage, plan.garbage):
            failed.extend(d for d, _ in plan.garbage)
        # Gateways in parallel, one transaction each: they lock different meters (the shared
        # ledger rows are held briefly; the ingest retries a deadlock). SQLite serializes them.
        jobs = [
            loop.run_in_executor(workers, handler.readings, code, work)
            for code, work in plan.readings.items()
        ]
        outcomes = await asyncio.gather(*jobs, return_exceptions=True)
        for work, outcome in zip(plan.readings.values(), outcomes, strict=True):
            if isinstance(outcome, BaseException):
                _log_failure(outcome, len(work))
                failed.extend(d for d, _ in work)
        # Statuses after readings: a Last Will in this batch has the final word.
        for d, status in plan.statuses:
            if not await _run(loop, workers, handler.status, d, status):
                failed.append(d)
        for d, result in plan.results:
            if not await _run(loop, workers, handler.command_result, d, result):
                failed.append(d)
        return failed


@dataclass
class _Plan:
    """A batch sorted by what its deliveries carry (arrival order kept within each)."""

    readings: dict[str, list[tuple[Delivery, ReadingsContent]]]
    statuses: list[tuple[Delivery, StatusContent]]
    results: list[tuple[Delivery, ResultContent]]
    garbage: list[tuple[Delivery, Garbage]]

    @classmethod
    def of(cls, batch: Iterable[Delivery]) -> _Plan:
        plan = cls({}, [], [], [])
        for d in batch:
            c = d.content
            if isinstance(c, ReadingsContent):
                plan.readings.setdefault(c.gateway_code, []).append((d, c))
            elif isinstance(c, StatusContent):
                plan.statuses.append((d, c))
            elif isinstance(c, ResultContent):
                plan.results.append((d, c))
            else:
                plan.garbage.append((d, c))
        return plan


class _Inbox:
    """Deliveries waiting for a batch. Only the event loop touches it (paho's thread
    hands deliveries over with ``call_soon_threadsafe``), and a delivery leaves it
    only by being put in a batch: none is dropped while waiting."""

    def __init__(self) -> None:
        self._items: deque[Delivery] = deque()
        self._arrived = asyncio.Event()

    def put(self, delivery: Delivery) -> None:
        self._items.append(delivery)
        self._arrived.set()

    def put_back(self, deliveries: Sequence[Delivery]) -> None:
        self._items.extendleft(reversed(deliveries))

    async def next_batch(
        self, stop: asyncio.Event, max_weight: int, window: float
    ) -> list[Delivery]:
        """The next batch: waits for a first delivery, then up to ``window`` seconds
        more while the batch holds fewer than ``max_weight`` readings."""
        while not self._items:
            if stop.is_set():
                return []
            self._arrived.clear()
            await _first(self._arrived, stop, timeout=None)
        deadline = time.monotonic() + window
        batch: list[Delivery] = []
        weight = 0
        while weight < max_weight:
            if self._items:
                batch.append(self._items.popleft())
                weight += batch[-1].weight
                continue
            left = deadline - time.monotonic()
            if left <= 0 or stop.is_set():
                break
            self._arrived.clear()
            await _first(self._arrived, stop, timeout=left)
        return batch


async def _first(event: asyncio.Event, stop: asyncio.Event, *, timeout: float | None) -> None:
    waits = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(stop.wait())}
    _, pending = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for waiting in pending:
        waiting.cancel()


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when asked to stop."""
    await _first(stop, stop, timeout=seconds)


async def _run(
    loop: asyncio.AbstractEventLoop,
    workers: ThreadPoolExecutor,
    fn: Callable[..., object],
    *args: object,
) -> bool:
    try:
        await loop.run_in_executor(workers, fn, *args)
    except Exception as exc:
        _log_failure(exc, 1)
        return False
    return True


def _log_failure(exc: BaseException, messages: int) -> None:
    log.error(
        "mqtt: %d messages not handled, kept for another try: %r", messages, exc, exc_info=exc
    )


def _call_soon(
    loop: asyncio.AbstractEventLoop, fn: Callable[[Delivery], None], delivery: Delivery
) -> None:
    try:
        loop.call_soon_threadsafe(fn, delivery)
    except RuntimeError:  # the loop has closed: the message stays unacknowledged, redelivered
        log.debug("mqtt: event loop closed; mid %s left for redelivery", delivery.mid)
