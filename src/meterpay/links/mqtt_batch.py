"""One batch of MQTT deliveries, handed to the metering services (synchronous).

The consumer (``links.mqtt``) collects deliveries and calls these handlers in
worker threads. Each handler acknowledges its deliveries only once what they
carry is committed or judged unusable:

- readings: one ``ingest_readings`` call per gateway (``actor="mqtt:<code>"``),
  then the PUBACKs. If the database fails, the handler raises before any
  acknowledgement and the deliveries are tried again; if the broker
  redelivers after a crash, the idempotent ingest makes the repeat harmless.
- bad input is acknowledged (redelivery cannot fix it), logged, written to the
  frame log with a note, and counted. A reading that breaks the schema or
  names an unknown address is dropped alone; a message the ingest refuses is
  dropped whole (found by halving the gateway's messages, so it never takes
  another message's readings with it).
- online state, seen times and the frame log are written after the PUBACKs:
  they are best effort and never hold a reading back; a meter's or gateway's
  heard/seen time is refreshed at most once a minute per process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Generic, TypeVar

from sqlalchemy.exc import DataError, DBAPIError, StatementError

from meterpay.kernel.errors import InvalidInput, NotFound
from meterpay.links.mqtt_commands import CommandResult, CommandResultHandler
from meterpay.links.mqtt_delivery import (
    Delivery,
    Garbage,
    ReadingsContent,
    ResultContent,
    StatusContent,
)
from meterpay.links.mqtt_payloads import GatewayReading
from meterpay.metering import link_service as links
from meterpay.metering.gateways import Direction, FrameRecord, GatewayStatus
from meterpay.metering.ingest import ingest_readings
from meterpay.metering.meters import ReadingIn, ReadingSource
from meterpay.runtime import Runtime

log = logging.getLogger("meterpay.links.mqtt")

FRAME_PROTOCOL = "mqtt-json"
LOGGED_BYTES = 512  # of a refused payload, in the frame log: enough to see what it was
MARK_EVERY_SECONDS = 60.0  # resolution of meters' last_heard_at and gateways' last_seen_at


@dataclass
class LinkCounters:
    """What the consumer has seen since it started (thread-safe increments)."""

    messages: int = 0
    readings: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected_messages: int = 0
    rejected_readings: int = 0
    statuses: int = 0
    command_results: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **amounts: int) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}


def is_bad_input(exc: BaseException) -> bool:
    """Refused for what it says (redelivery would fail the same way), as opposed
    to a database or network failure worth trying again."""
    if isinstance(exc, InvalidInput | NotFound | ValueError | DataError):
        return True
    # a value a column type refused while binding; DBAPIError is a server-side failure
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


@dataclass
class _Message:
    """One readings delivery on its way: its readings for the ingest, its problems."""

    delivery: Delivery
    readings: list[ReadingIn]
    problems: list[str]
    size: int


Acknowledge = Callable[[Delivery], object]
_Key = TypeVar("_Key", int, str)


class _Freshness(Generic[_Key]):
    """When this process last marked each meter (or gateway) as heard. Marks are
    refreshed at most once per ``every`` seconds each: otherwise a busy link would
    write every meter row twice per batch, once for its reading and once for the mark."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._marked: dict[_Key, float] = {}
        self._pruned = time.monotonic()
        self._lock = threading.Lock()

    def due(self, keys: Iterable[_Key]) -> set[_Key]:
        """The keys not marked lately, taken as marked from now on."""
        now = time.monotonic()
        with self._lock:
            if now - self._pruned > self._every:  # forget old marks: memory stays bounded
                self._marked = {k: t for k, t in self._marked.items() if now - t < self._every}
                self._pruned = now
            due = {k for k in keys if now - self._marked.get(k, now - self._every) >= self._every}
            self._marked.update(dict.fromkeys(due, now))
            return due


class BatchHandler:
    """Handles deliveries against the services; ``ack`` sends the PUBACK."""

    def __init__(
        self,
        rt: Runtime,
        ack: Acknowledge,
        on_result: CommandResultHandler,
        counters: LinkCounters,
    ) -> None:
        self._rt = rt
        self._ack = ack
        self._on_result = on_result
        self.counters = counters
        self._heard: _Freshness[int] = _Freshness(MARK_EVERY_SECONDS)
        self._seen: _Freshness[str] = _Freshness(MARK_EVERY_SECONDS)

    # --- readings -----------------------------------------------------------------

    def readings(self, code: str, work: Sequence[tuple[Delivery, ReadingsContent]]) -> None:
        """Ingest one gateway's readings messages, then acknowledge them all."""
        wanted = {r.address for _, c in work for r in c.message.readings}
        ids = links.meter_ids_by_address(self._rt, code, wanted)
        known = bool(ids) or self._gateway_known(code)
        messages = [self._resolve(d, c, ids, known=known) for d, c in work]
        self._ingest(code, messages)
        for d, _ in work:
            self._ack(d)
        self.counters.add(
            messages=len(messages),
            readings=sum(m.size for m in messages),
            rejected_readings=sum(m.size - len(m.readings) for m in messages),
            rejected_messages=sum(1 for m in messages if m.problems and not m.readings),
        )
        heard = self._heard.due({r.meter_id for m in messages for r in m.readings})
        if heard:
            self._after_commit(lambda: links.mark_meters(self._rt, heard=sorted(heard)))
        if known and self._seen.due({code}):
            self._after_commit(lambda: links.gateway_seen(self._rt, code))
        self._refused(code, [(m.delivery, _summary(m)) for m in messages if m.problems])

    def _resolve(
        self, d: Delivery, content: ReadingsContent, ids: dict[str, int], *, known: bool
    ) -> _Message:
        problems = [str(bad.error) for bad in content.message.rejected]
        if not known:
            problems.append(f"no gateway has the code {content.gateway_code!r}")
            return _Message(d, [], problems, content.message.size)
        readings: list[ReadingIn] = []
        for r in content.message.readings:
            meter_id = ids.get(r.address)
            if meter_id is None:
                problems.append(f"no active meter at address {r.address!r}")
                continue
            readings.append(_reading_in(meter_id, r))
        return _Message(d, readings, problems, content.message.size)

    def _ingest(self, code: str, messages: list[_Message]) -> None:
        """Ingest the messages' readings together; on a refusal, halve and retry
        until the refused message stands alone, and drop only that one."""
        batch = [r for m in messages for r in m.readings]
        if not batch:
            return
        try:
            result = ingest_readings(self._rt, batch, actor=f"mqtt:{code}")
        except Exception as exc:
            if not is_bad_input(exc):
                raise
            if len(messages) == 1:
                messages[0].problems.append(f"ingest refused the message: {exc}")
                messages[0].readings.clear()
                return
            half = len(messages) // 2
            self._ingest(code, messages[:half])
            self._ingest(code, messages[half:])
            return
        stored = sum(1 for o in result.outcomes if o.stored)
        self.counters.add(stored=stored, duplicates=len(result.outcomes) - stored)

    def _gateway_known(self, code: str) -> bool:
        try:
            links.gateway_by_code(self._rt, code)
        except NotFound:
            return False
        return True

    # --- status, command results, garbage -----------------------------------------

    def status(self, d: Delivery, content: StatusContent) -> None:
        """A gateway's retained status or its Last Will: online or offline."""
        code, status = content.gateway_code, content.status
        known = status is not None and self._gateway_known(code)
        if status is GatewayStatus.ONLINE and known:
            links.gateway_seen(self._rt, code)
        elif status is GatewayStatus.OFFLINE and known:
            links.gateway_disconnected(self._rt, code, connected_at=None)
        self._ack(d)
        if status is None:  # a cleared retained status: nothing to say
            return
        self.counters.add(messages=1, statuses=1)
        if known:
            log.info("gateway %s is %s", code, status.value)
        else:
            self.counters.add(rejected_messages=1)
            self._refused(code, [(d, f"status of an unknown gateway {code!r}")])

    def command_result(self, d: Delivery, content: ResultContent) -> None:
        """Hand a command result to the handler, then acknowledge it."""
        problem = None
        try:
            self._on_result(content.gateway_code, content.result)
        except (InvalidInput, NotFound) as exc:
            problem = f"command result refused: {exc}"
        self._ack(d)
        self.counters.add(messages=1, command_results=1)
        if problem is not None:
            self.counters.add(rejected_messages=1)
            self._refused(content.gateway_code, [(d, problem)])
        else:
            self._after_commit(lambda: self._log_result(content.gateway_code, d, content.result))

    def garbage(self, work: Sequence[tuple[Delivery, Garbage]]) -> None:
        """Messages that are not what their topic says: acknowledged, logged, counted."""
        for d, _ in work:
            self._ack(d)
        self.counters.add(messages=len(work), rejected_messages=len(work))
        by_code: dict[str, list[tuple[Delivery, str]]] = {}
        for d, g in work:
            by_code.setdefault(g.gateway_code, []).append((d, str(g.error)))
        for code, refused in by_code.items():
            self._refused(code, refused)

    # --- after the commit: best effort --------------------------------------------

    def _refused(self, code: str, refused: Iterable[tuple[Delivery, str]]) -> None:
        now = self._rt.clock.now()
        records = []
        for d, note in refused:
            log.warning("mqtt %s: %s", d.topic[:120], note[:2000])
            records.append(
                FrameRecord.of(
                    now, code, Direction.RX, FRAME_PROTOCOL, d.payload[:LOGGED_BYTES], note=note
                )
            )
        self._after_commit(lambda: links.log_frames(self._rt, records))

    def _log_result(self, code: str, d: Delivery, result: CommandResult) -> None:
        meter_id = links.meter_ids_by_address(self._rt, code, [result.address]).get(result.address)
        note = f"command {result.command_id}: {result.outcome.value}"
        at = self._rt.clock.now()
        data = d.payload[:LOGGED_BYTES]
        record = FrameRecord.of(
            at, code, Direction.RX, FRAME_PROTOCOL, data, meter_id=meter_id, note=note
        )
        links.log_frames(self._rt, [record])

    def _after_commit(self, step: Callable[[], object]) -> None:
        """Bookkeeping after the PUBACK: a failure is logged, the batch goes on."""
        try:
            step()
        except Exception:
            log.exception("mqtt: bookkeeping after a batch failed (readings are safe)")


def _reading_in(meter_id: int, r: GatewayReading) -> ReadingIn:
    return ReadingIn(
        meter_id=meter_id,
        read_at=r.read_at,
        total=r.total,
        source=ReadingSource.MQTT,
        tip=r.tip,
        peak=r.peak,
        flat=r.flat,
        valley=r.valley,
        status_word=r.status_word,
    )


def _summary(m: _Message) -> str:
    """The count first, then each problem (the frame log keeps 200 characters)."""
    problems = "; ".join(m.problems)
    if not m.size:
        return problems
    return f"{m.size - len(m.readings)} of {m.size} readings refused: {problems}"
