"""Periodic work, run by one leader among the processes.

On PostgreSQL the leader is whichever process holds a session-level advisory
lock (``pg_try_advisory_lock``) on a connection of its own; when that process
dies its connection closes, the lock is released and another process takes
over within one ``every_s``. On SQLite (one machine, usually one process) every
scheduler runs: the jobs are safe to run twice at once anyway (locked rows,
idempotent keys), the lock only saves the duplicate work.

Jobs (each one transaction per round, errors logged, never fatal):
- ``control.review.review_due``: deferred cut-offs, final notices, checks that
  cuts and restores got through;
- ``payments.service.settle_unpaid``: top-up orders without news are queried (a paid
  one is credited), expired ones closed at the provider and here;
- ``payments.reconcile.reconcile_due``: yesterday's statements, once they are ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, text

from meterpay.control.review import review_due
from meterpay.jobs.model import JobKind
from meterpay.jobs.service import Handler
from meterpay.notify.channels import channels_from
from meterpay.payments.reconcile import reconcile_due
from meterpay.payments.service import settle_unpaid
from meterpay.runtime import Runtime
from meterpay.workers.jobs import run_jobs
from meterpay.workers.notifications import run_notifications

log = logging.getLogger(__name__)

LEADER_LOCK: Final = 0x6D70_7363  # "mpsc": meterpay scheduler


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    run: Callable[[Runtime], int]


DEFAULT_JOBS: Final = (
    Job("arrears review", review_due),
    Job("unpaid top-up orders", settle_unpaid),
    Job("daily reconciliation", reconcile_due),
)


class Leadership:
    """Holds (or tries to take) the leader lock on a connection kept open for it."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._conn: Connection | None = None

    def is_leader(self) -> bool:
        if not self._rt.db.is_postgres:
            return True
        try:
            if self._conn is None:
                self._conn = self._rt.db.engine.connect()
                taken = self._conn.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK}
                ).scalar_one()
                self._conn.commit()
                if not taken:
                    self.release()
                    return False
                log.info("this process leads the scheduler")
                return True
            self._conn.execute(text("SELECT 1")).scalar_one()  # still connected, still ours
            self._conn.commit()
            return True
        except Exception:
            log.exception("the scheduler's leader connection failed")
            self.release()
            return False

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # already broken: nothing to release
                self._conn.close()  # closing the session releases the advisory lock
            self._conn = None


class Scheduler:
    """Runs ``jobs`` every ``every_s`` seconds while this process leads."""

    def __init__(
        self, rt: Runtime, *, jobs: tuple[Job, ...] = DEFAULT_JOBS, every_s: float = 5.0
    ) -> None:
        self._rt = rt
        self._jobs = jobs
        self._every_s = every_s
        self.leadership = Leadership(rt)

    def round(self) -> dict[str, int]:
        """One round of every job if this process leads; what each did."""
        done: dict[str, int] = {}
        if not self.leadership.is_leader():
            return done
        for job in self._jobs:
            try:
                done[job.name] = job.run(self._rt)
            except Exception:
                log.exception("scheduled job %s failed", job.name)
        return done

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await asyncio.to_thread(self.round)
                try:
                    async with asyncio.timeout(self._every_s):
                        await stop.wait()
                except TimeoutError:
                    pass
        finally:
            self.leadership.release()


class BackgroundWorkers:
    """The scheduler, the notification sender and (given ``job_handlers``) the background
    job runner, on a daemon thread of their own (beside a web server or the links)."""

    def __init__(
        self,
        rt: Runtime,
        *,
        every_s: float = 5.0,
        job_handlers: Mapping[JobKind, Handler] | None = None,
    ) -> None:
        self._rt = rt
        self._every_s = every_s
        self._job_handlers = job_handlers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="workers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            channels = channels_from(self._rt.settings)
            loops = [
                Scheduler(self._rt, every_s=self._every_s).run(self._stop),
                run_notifications(self._rt, channels, self._stop),
            ]
            if self._job_handlers is not None:
                loops.append(run_jobs(self._rt, self._job_handlers, self._stop))
            try:
                await asyncio.gather(*loops)
            finally:
                channels.close()

        try:
            asyncio.run(main())
        except Exception:
            log.exception("the workers stopped on an error")
