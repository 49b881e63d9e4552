"""Where polling links hand what they learn: readings, raw frames, meters heard or silent.

A link's event loop must never wait on the database, and the database is used
best in batches; so links put items here without blocking and one worker
thread writes them in batches: readings through ``ingest_readings`` (one
transaction per batch, idempotent), frames through ``log_frames``, link state
through ``mark_meters``.

Invariants:
- a reading handed over is ingested or kept for the next try: a failed batch
  (the database is down) is retried with backoff, never dropped, until ``stop``;
  a reading the service refuses as bad input is isolated by halving the batch,
  logged and dropped, so it never holds the others back;
- on ``stop`` everything handed over before it is written (or reported as
  unwritten in the log if the database is still down);
- a reading lost with the process (killed before its batch committed) costs
  nothing but resolution: registers are cumulative, so the next poll bills the
  whole interval since the last stored reading.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

from meterpay.kernel.errors import DomainError
from meterpay.metering import link_service as links
from meterpay.metering.gateways import FrameRecord
from meterpay.metering.ingest import ingest_readings
from meterpay.metering.meters import ReadingIn
from meterpay.runtime import Runtime

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass
class _Batch:
    readings: list[ReadingIn] = field(default_factory=list)
    frames: list[FrameRecord] = field(default_factory=list)
    heard: set[int] = field(default_factory=set)
    silent: set[int] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return (
            len(self.readings)
            + len(self.frames)
            + len(self.heard)
            + len(self.silent)
            + len(self.seen)
        )


Item = ReadingIn | FrameRecord | tuple[str, int] | tuple[str, str]


class LinkSink:
    """A batching writer on its own thread; ``put_*`` never blocks the caller."""

    def __init__(
        self,
        rt: Runtime,
        *,
        actor: str,
        batch_size: int = 1000,
        flush_seconds: float = 0.5,
        log_frames: bool = True,
    ) -> None:
        self._rt = rt
        self._actor = actor
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._log_frames = log_frames
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._handed = 0
        self._ingested = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="link-sink", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything handed over so far, then end the worker."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def put_reading(self, reading: ReadingIn) -> None:
        with self._lock:
            self._handed += 1
        self._queue.put(reading)

    def put_frame(self, record: FrameRecord) -> None:
        if self._log_frames:
            self._queue.put(record)

    def heard(self, meter_id: int) -> None:
        self._queue.put(("heard", meter_id))

    def silent(self, meter_id: int) -> None:
        self._queue.put(("silent", meter_id))

    def gateway_seen(self, code: str) -> None:
        """Traffic from a gateway (a heartbeat): it is still there."""
        self._queue.put(("seen", code))

    @property
    def pending_readings(self) -> int:
        """Readings handed over and not yet committed."""
        with self._lock:
            return self._handed - self._ingested

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._collect()
            if len(batch):
                self._write(batch, final=stopping)

    def _collect(self) -> tuple[_Batch, bool]:
        batch = _Batch()
        deadline = time.monotonic() + self._flush_seconds
        while len(batch) < self._batch_size:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                return batch, True
            _add(batch, item)
        return batch, False

    def _write(self, batch: _Batch, *, final: bool) -> None:
        for attempt, pause in enumerate((*RETRY_BACKOFF_S, None)):
            try:
                self._write_once(batch)
                return
            except Exception:  # the database may be away: keep the batch, try again
                log.exception("link sink: writing a batch failed (attempt %d)", attempt + 1)
                if pause is None or (final and attempt >= 2):
                    break
                time.sleep(pause)
        log.error(
            "link sink: gave up on %d readings (the next poll bills their consumption)",
            len(batch.readings),
        )
        with self._lock:
            self._ingested += len(batch.readings)

    def _ingest(self, readings: list[ReadingIn]) -> None:
        """Ingest a batch; a reading the service refuses (bad input, not a database
        failure) is found by halving, logged and dropped, and the rest go in."""
        try:
            ingest_readings(self._rt, readings, actor=self._actor)
        except (DomainError, ValueError) as exc:  # not a database failure: bad input
            if len(readings) == 1:
                log.error("link sink: reading refused, dropped: %s (%s)", readings[0], exc)
                return
            for half in _halves(readings):
                self._ingest(half)

    def _write_once(self, batch: _Batch) -> None:
        if batch.readings:
            self._ingest(batch.readings)
            with self._lock:
                self._ingested += len(batch.readings)
            batch.readings = []
        if batch.frames:
            links.log_frames(self._rt, batch.frames)
            batch.frames = []
        if batch.heard or batch.silent:
            links.mark_meters(
                self._rt, heard=sorted(batch.heard), silent=sorted(batch.silent - batch.heard)
            )
            batch.heard, batch.silent = set(), set()
        for code in sorted(batch.seen):
            links.gateway_seen(self._rt, code)
        batch.seen = set()


def _halves(items: list[ReadingIn]) -> tuple[list[ReadingIn], list[ReadingIn]]:
    middle = len(items) // 2
    return items[:middle], items[middle:]


def _add(batch: _Batch, item: Item) -> None:
    if isinstance(item, ReadingIn):
        batch.readings.append(item)
    elif isinstance(item, FrameRecord):
        batch.frames.append(item)
    elif item[0] == "seen":
        batch.seen.add(str(item[1]))
    elif item[0] == "heard":
        batch.heard.add(int(item[1]))
        batch.silent.discard(int(item[1]))
    else:
        batch.silent.add(int(item[1]))
        batch.heard.discard(int(item[1]))
