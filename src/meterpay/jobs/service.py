"""Background jobs: start one, watch it, fetch what it made; and run them.

Use cases (one transaction each):
- ``submit``: queue a job of a kind the caller may start, with its input file;
- ``job_for`` / ``recent_for`` / ``file_for``: what a caller may see of jobs
  (``model.may_see``; anything else is "not found");
- ``run_next``: claim the oldest queued job and run its kind's handler, then record the
  outcome; ``recover_lost``: queue again (or fail) jobs whose runner vanished.

Invariants:
- a job is claimed by one runner at a time (row lock with SKIP LOCKED on PostgreSQL, a
  compare-and-set on the state everywhere), and only that runner may record its
  progress or outcome;
- a handler that writes (an import) records its outcome inside its own write
  transaction (``record_in``), so "imported" and "job done" commit together: a run that
  dies half-way leaves neither, and its re-run starts from a clean database;
- a failure is recorded with a message a person can act on; an unexpected error is
  logged in full and recorded as an internal error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection

from meterpay.auth.model import Principal, PrincipalKind
from meterpay.jobs import repository as repo
from meterpay.jobs.model import (
    HEARTBEAT_EVERY,
    KIND_PERMISSION,
    MAX_INPUT_BYTES,
    STALE_AFTER,
    Job,
    JobKind,
    JobLost,
    JobNotReady,
    JobState,
    Progress,
    after_loss,
    may_see,
    move,
)
from meterpay.kernel.errors import DomainError, Forbidden, InvalidInput, NotFound
from meterpay.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class File:
    name: str
    media_type: str
    data: bytes = field(repr=False)

    @property
    def parts(self) -> tuple[str, str, bytes]:
        return self.name, self.media_type, self.data


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a handler made: a report to show and/or a file to download."""

    result: dict[str, Any] | None = None
    output: File | None = None
    failed: str = ""
    """Set when the job ran to its end but its answer is "no" (e.g. errors in a sheet)."""
    recorded: bool = False
    """The handler recorded this outcome itself (``record_in``) in its own transaction."""


class Reporter:
    """Handed to a handler: ``reporter(stage, done, total)`` as it goes."""

    def __init__(self, rt: Runtime, job: Job, runner: str) -> None:
        self.rt, self.job, self.runner = rt, job, runner
        self._written = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        progress = Progress(stage, done, total)
        self.rt.live_jobs.put(self.job.id, progress)
        due = time.monotonic() - self._written >= HEARTBEAT_EVERY.total_seconds()
        if self.rt.db.is_postgres and due:  # SQLite: a running import holds the write lock
            self._written = time.monotonic()
            with self.rt.db.write() as conn:
                repo.write_progress(
                    conn,
                    self.job.id,
                    runner=self.runner,
                    progress=progress,
                    now=self.rt.clock.now(),
                )

    def record_in(self, conn: Connection, outcome: Outcome) -> None:
        """Record ``outcome`` inside the handler's own write transaction."""
        _record(conn, self.job.id, self.runner, outcome, self.rt.clock.now())


Handler = Callable[[Runtime, Job, Reporter], Outcome]


# --- starting and watching ----------------------------------------------------------------


def submit(
    rt: Runtime,
    kind: JobKind,
    *,
    by: Principal,
    site_id: int | None,
    params: Mapping[str, Any],
    input_file: File | None = None,
) -> Job:
    """Queue a job; the caller must hold the kind's permission where the job works."""
    permission = KIND_PERMISSION[kind]
    allowed = by.can(permission, site_id) if site_id is not None else by.holds_anywhere(permission)
    if not allowed or by.kind is PrincipalKind.OWNER:
        raise Forbidden(f"you may not start a {kind.value} job here")
    if input_file is not None and len(input_file.data) > MAX_INPUT_BYTES:
        limit = MAX_INPUT_BYTES // 1024 // 1024
        raise InvalidInput(f"the file is larger than {limit} MB", field="file")
    now = rt.clock.now()
    with rt.db.write() as conn:
        job_id = repo.insert_job(
            conn,
            {
                "kind": kind.value,
                "state": JobState.QUEUED.value,
                "site_id": site_id,
                "params": dict(params),
                "started_by": by.name,
                "started_by_user": by.id if by.kind is PrincipalKind.STAFF else None,
                "created_at": now,
            },
        )
        if input_file is not None:
            repo.insert_file(conn, job_id, "input", input_file.parts, now)
        return repo.job_by_id(conn, job_id)


def job_for(rt: Runtime, job_id: int, principal: Principal) -> Job:
    """One job as ``principal`` may see it, with this process's freshest progress."""
    with rt.db.read() as conn:
        job = repo.job_by_id(conn, job_id)
    if not may_see(principal, job):
        raise NotFound(f"no job {job_id}")
    return _live(rt, job)


def recent_for(rt: Runtime, principal: Principal, *, limit: int = 50) -> list[Job]:
    """The newest jobs ``principal`` started (that they may still see)."""
    if principal.kind is not PrincipalKind.STAFF:
        return []
    with rt.db.read() as conn:
        found = repo.recent_jobs(conn, user_id=principal.id, limit=limit)
    return [_live(rt, job) for job in found if may_see(principal, job)]


def file_for(rt: Runtime, job_id: int, principal: Principal) -> File:
    """What a finished job made, for ``principal`` to download."""
    job = job_for(rt, job_id, principal)
    if not job.has_output:
        raise JobNotReady("this job has made no file yet" if not job.finished else "no file")
    return _file(rt, job_id, "output")


def input_of(rt: Runtime, job: Job) -> File:
    """The file a job was started with (for its handler)."""
    return _file(rt, job.id, "input")


def _file(rt: Runtime, job_id: int, role: str) -> File:
    with rt.db.read() as conn:
        found = repo.file_of(conn, job_id, role)
    if found is None:
        raise NotFound(f"job {job_id} has no {role} file")
    return File(*found)


def _live(rt: Runtime, job: Job) -> Job:
    fresh = rt.live_jobs.get(job.id) if job.state is JobState.RUNNING else None
    return replace(job, progress=fresh) if fresh is not None else job


# --- running ------------------------------------------------------------------------------


def run_next(rt: Runtime, handlers: Mapping[JobKind, Handler], *, runner: str) -> bool:
    """Run the oldest queued job, if any; whether there was one."""
    with rt.db.read() as conn:  # an idle runner only reads (SQLite: no write lock taken)
        if not repo.any_queued(conn):
            return False
    with rt.db.write() as conn:
        job = repo.claim_next(conn, runner=runner, now=rt.clock.now())
    if job is None:
        return False
    try:
        outcome = _run(rt, job, handlers, runner)
        if not outcome.recorded:
            with rt.db.write() as conn:
                _record(conn, job.id, runner, outcome, rt.clock.now())
    finally:
        rt.live_jobs.drop(job.id)
    return True


def _run(rt: Runtime, job: Job, handlers: Mapping[JobKind, Handler], runner: str) -> Outcome:
    handler = handlers.get(job.kind)
    if handler is None:
        return Outcome(failed=f"this process cannot run {job.kind.value} jobs")
    try:
        return handler(rt, job, Reporter(rt, job, runner))
    except DomainError as exc:
        return Outcome(failed=exc.message)
    except Exception:
        log.exception("job %s (%s) failed", job.id, job.kind.value)
        return Outcome(failed="an internal error stopped the job; it is in the server's log")


def _record(conn: Connection, job_id: int, runner: str, outcome: Outcome, now: Any) -> None:
    state = move(JobState.RUNNING, JobState.FAILED if outcome.failed else JobState.DONE)
    if outcome.output is not None:
        repo.insert_file(conn, job_id, "output", outcome.output.parts, now)
    kept = repo.finish(
        conn,
        job_id,
        runner=runner,
        state=state,
        now=now,
        result=outcome.result,
        error=outcome.failed,
    )
    if not kept:  # taken for lost meanwhile and queued again: this run's work is void
        raise JobLost(f"job {job_id} was taken from runner {runner}")


def recover_lost(rt: Runtime, *, runner: str, at_start: bool = False) -> int:
    """Queue again (or fail, past ``MAX_ATTEMPTS``) the running jobs of other runners not
    heard of for ``STALE_AFTER``. A SQLite process starting is the only one there is: it
    takes every running job of another runner as lost (``at_start``)."""
    if not at_start and not rt.db.is_postgres:
        return 0  # SQLite writes no heartbeats while an import holds the lock
    now = rt.clock.now()
    everything = at_start and not rt.db.is_postgres
    heard_before = now if everything else now - STALE_AFTER
    with rt.db.write() as conn:
        lost = repo.lost_jobs(conn, heard_before=heard_before, not_runner=runner)
        for job_id, attempts in lost:
            to = move(JobState.RUNNING, after_loss(attempts))
            error = (
                "its runner stopped three times; start it again" if to is JobState.FAILED else ""
            )
            repo.set_state(conn, job_id, to, now=now, error=error)
    if lost:
        log.warning("jobs taken for lost: %s (runner %s)", [j for j, _ in lost], runner)
    return len(lost)
