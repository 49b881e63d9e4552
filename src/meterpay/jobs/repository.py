"""Queries on background jobs and their files. Never commits: the service's transaction
does.

A runner owns a job while ``runner`` names it and the state is running: every write of
progress or of the outcome is conditional on that, so a runner that was taken for lost
(and whose job was queued again) cannot overwrite the new run's work.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, Select, exists, insert, select, update

from meterpay.db.schema import job_files, jobs
from meterpay.jobs.model import Job, JobKind, JobState, Progress
from meterpay.kernel.errors import NotFound

_OUTPUT = job_files.c.job_id == jobs.c.id, job_files.c.role == "output"


def _query() -> Select[Any]:
    name = select(job_files.c.name).where(*_OUTPUT).correlate(jobs).scalar_subquery()
    return select(
        jobs,
        name.label("output_name"),
        exists().where(*_OUTPUT).correlate(jobs).label("has_output"),
    )


def _job(row: RowMapping) -> Job:
    return Job(
        id=row["id"],
        kind=JobKind(row["kind"]),
        state=JobState(row["state"]),
        site_id=row["site_id"],
        params=dict(row["params"] or {}),
        started_by=row["started_by"],
        started_by_user=row["started_by_user"],
        progress=Progress(row["stage"], row["done"], row["total"]),
        result=row["result"],
        output_name=row["output_name"] or "",
        has_output=bool(row["has_output"]),
        error=row["error"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def insert_job(conn: Connection, values: Mapping[str, Any]) -> int:
    return int(conn.execute(insert(jobs).values(**values).returning(jobs.c.id)).scalar_one())


def insert_file(
    conn: Connection, job_id: int, role: str, file: tuple[str, str, bytes], now: datetime
) -> None:
    """Keep a job's ``input`` or ``output`` file: (name, media type, bytes)."""
    name, media_type, data = file
    values = {"job_id": job_id, "role": role, "name": name, "media_type": media_type}
    conn.execute(insert(job_files).values(**values, size=len(data), data=data, created_at=now))


def file_of(conn: Connection, job_id: int, role: str) -> tuple[str, str, bytes] | None:
    """The job's ``input`` or ``output`` file: its name, media type and bytes."""
    query = select(job_files.c.name, job_files.c.media_type, job_files.c.data).where(
        job_files.c.job_id == job_id, job_files.c.role == role
    )
    row = conn.execute(query).one_or_none()
    return None if row is None else (row[0], row[1], bytes(row[2]))


def job_by_id(conn: Connection, job_id: int) -> Job:
    row = conn.execute(_query().where(jobs.c.id == job_id)).mappings().one_or_none()
    if row is None:
        raise NotFound(f"no job {job_id}")
    return _job(row)


def recent_jobs(conn: Connection, *, user_id: int | None, limit: int) -> list[Job]:
    """The newest jobs started by ``user_id`` (every job when None)."""
    query = _query().order_by(jobs.c.id.desc()).limit(limit)
    if user_id is not None:
        query = query.where(jobs.c.started_by_user == user_id)
    return [_job(row) for row in conn.execute(query).mappings()]


def any_queued(conn: Connection) -> bool:
    return conn.execute(select(exists().where(jobs.c.state == JobState.QUEUED))).scalar_one()


def claim_next(conn: Connection, *, runner: str, now: datetime) -> Job | None:
    """Take the oldest queued job for ``runner``; None when there is none (or another
    runner took it first)."""
    oldest = select(jobs.c.id).where(jobs.c.state == JobState.QUEUED).order_by(jobs.c.id)
    if conn.dialect.name == "postgresql":
        oldest = oldest.with_for_update(skip_locked=True)
    job_id = conn.execute(oldest.limit(1)).scalar_one_or_none()
    if job_id is None:
        return None
    taken = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state == JobState.QUEUED)
        .values(
            state=JobState.RUNNING,
            runner=runner,
            attempts=jobs.c.attempts + 1,
            started_at=now,
            heartbeat_at=now,
            stage="",
            done=0,
            total=0,
        )
    )
    return job_by_id(conn, job_id) if taken.rowcount == 1 else None


def write_progress(
    conn: Connection, job_id: int, *, runner: str, progress: Progress, now: datetime
) -> bool:
    """Record progress (and that the runner lives); False if the job is no longer its."""
    values = {"stage": progress.stage, "done": progress.done, "total": progress.total}
    return _owned_update(conn, job_id, runner, heartbeat_at=now, **values)


def finish(
    conn: Connection,
    job_id: int,
    *,
    runner: str,
    state: JobState,
    now: datetime,
    result: dict[str, Any] | None = None,
    error: str = "",
) -> bool:
    """Record the outcome of the runner's run; False if the job is no longer its."""
    return _owned_update(
        conn, job_id, runner, state=state, result=result, error=error[:500], finished_at=now
    )


def _owned_update(conn: Connection, job_id: int, runner: str, **values: Any) -> bool:
    owned = jobs.c.id == job_id, jobs.c.runner == runner, jobs.c.state == JobState.RUNNING
    return conn.execute(update(jobs).where(*owned).values(**values)).rowcount == 1


def lost_jobs(
    conn: Connection, *, heard_before: datetime, not_runner: str
) -> list[tuple[int, int]]:
    """Running jobs of other runners not heard of since ``heard_before``: (id, attempts)."""
    query = select(jobs.c.id, jobs.c.attempts).where(
        jobs.c.state == JobState.RUNNING,
        jobs.c.heartbeat_at < heard_before,
        jobs.c.runner != not_runner,
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [(int(r[0]), int(r[1])) for r in conn.execute(query)]


def set_state(
    conn: Connection, job_id: int, state: JobState, *, now: datetime, error: str = ""
) -> None:
    finished = now if state in (JobState.DONE, JobState.FAILED) else None
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(state=state, runner=None, error=error[:500], finished_at=finished)
    )
