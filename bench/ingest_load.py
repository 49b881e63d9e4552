"""Background ingest load: ``bench.ingest``'s gateway pushes for a fleet of meters, at
full speed, in a process of their own, until told to stop.

A benchmark of something else (e.g. ``bench.control_latency``) runs beside it, as a
production process shares its database with the ingest of other processes. The load
is ``bench.ingest``'s own: its ``Workload`` for the fleet ``set_up_fleet`` made, pushed
``batch`` readings per ``ingest_readings`` call, one interval after another (each
meter's readings in time order). The first push is a warm-up; the report counts the
readings pushed after it, so a benchmark can show the load was really there.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from bench.ingest import ACTOR, INTERVAL, Workload, connect_runtime
from meterpay.db.partitions import month_of
from meterpay.metering.ingest import ingest_readings

READY_TIMEOUT = 120.0  # seconds to start, build the workload, connect and push once
STOP_TIMEOUT = 60.0  # seconds for the push under way to finish after the stop


@dataclass(frozen=True)
class LoadSpec:
    """What to push: ``Workload.generate(meters, intervals, now, seed)`` (rebuilt in the
    load process: the same arguments give the same workload) for ``meter_ids``."""

    url: str
    meters: int
    intervals: int
    now: datetime
    seed: int
    meter_ids: list[int]
    batch: int


@dataclass(frozen=True)
class LoadReport:
    """Readings pushed after the warm-up push, in how long; ``exhausted`` if the workload
    ran out before the stop; or the traceback of a failure."""

    readings: int = 0
    seconds: float = 0.0
    exhausted: bool = False
    error: str | None = None

    @property
    def rate(self) -> float:
        return self.readings / self.seconds if self.seconds else 0.0


def _push_until_stopped(spec: LoadSpec, warm: Any, stop: Any, reports: Any) -> None:
    """Load process: push interval after interval until ``stop``; report. Never leaves the
    parent waiting: a failure is reported too."""
    try:
        work = Workload.generate(spec.meters, spec.intervals, spec.now, spec.seed)
        rt = connect_runtime(spec.url)
        try:
            last = work.start + INTERVAL * spec.intervals
            rt.partitions.ensure_with(rt.db.engine, {month_of(work.start), month_of(last)})
            reports.put(_push(rt, work, spec, warm, stop))
        finally:
            rt.db.dispose()
    except BaseException:
        reports.put(LoadReport(error=traceback.format_exc()))
    finally:
        warm.set()  # the parent stops waiting either way


def _push(rt: Any, work: Workload, spec: LoadSpec, warm: Any, stop: Any) -> LoadReport:
    pushed, started = 0, 0.0
    for i in range(spec.intervals):
        for batch in work.batches(spec.meter_ids, spec.batch, range(i, i + 1)):
            if stop.is_set():
                return LoadReport(pushed, time.perf_counter() - started)
            ingest_readings(rt, batch, actor=ACTOR)
            if not warm.is_set():
                started = time.perf_counter()
                warm.set()
            else:
                pushed += len(batch)
    return LoadReport(pushed, time.perf_counter() - started, exhausted=True)


class IngestLoad:
    """``with IngestLoad(spec) as load:`` — the load process runs (past its warm-up push)
    inside the block; ``load.report`` says what it did once the block is left."""

    def __init__(self, spec: LoadSpec) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._warm = ctx.Event()
        self._stop = ctx.Event()
        self._reports: Any = ctx.Queue()
        self._proc = ctx.Process(
            target=_push_until_stopped,
            args=(spec, self._warm, self._stop, self._reports),
            name="bench-ingest-load",
        )
        self.report: LoadReport | None = None

    def __enter__(self) -> IngestLoad:
        self._proc.start()
        if not self._warm.wait(timeout=READY_TIMEOUT):
            self._halt()
            raise RuntimeError("ingest load: the load process did not start pushing in time")
        if not self._proc.is_alive() or not self._reports.empty():
            self._halt()
            raise RuntimeError(f"ingest load: the load process failed:\n{self._error()}")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._halt()
        if kind is None and self.report is not None and self.report.error is not None:
            raise RuntimeError(f"ingest load: the load process failed:\n{self.report.error}")

    def _halt(self) -> None:
        self._stop.set()
        try:
            self.report = self._reports.get(timeout=STOP_TIMEOUT)
        except queue.Empty:
            self.report = LoadReport(error="no report from the load process")
        self._proc.join(timeout=STOP_TIMEOUT)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join()
        self._reports.close()

    def _error(self) -> str:
        if self.report is not None and self.report.error is not None:
            return self.report.error
        return "(no report)"
