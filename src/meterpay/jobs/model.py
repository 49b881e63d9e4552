"""What a background job is and how it moves (plain data, no I/O).

A job lives through::

    queued -> running -> done
       ^         |   \\-> failed
       +---------+ (its runner vanished: queued again, at most ``MAX_ATTEMPTS`` runs)

Invariants:
- every move is in ``TRANSITIONS``; anything else raises ``IllegalJobMove``;
- done and failed are final; a job's input (an uploaded file) and its output (a
  workbook) never change once written;
- who may see a job is decided by ``may_see``: the permission its kind needs, held at
  the job's site; a job over several sites (``visible_sites``), by holders of it
  everywhere and by its starter while they still hold it on every one of those sites.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from meterpay.auth.model import Permission, Principal, PrincipalKind
from meterpay.kernel.errors import Conflict


class JobKind(StrEnum):
    IMPORT_CHECK = "import.check"
    """A dry run of an import: every check and write, then rolled back."""
    IMPORT_APPLY = "import.apply"
    EXPORT_SITE = "export.site"
    EXPORT_LEDGER = "export.ledger"
    EXPORT_AUDIT = "export.audit"


KIND_PERMISSION: Final[dict[JobKind, Permission]] = {
    JobKind.IMPORT_CHECK: Permission.SITE_WRITE,
    JobKind.IMPORT_APPLY: Permission.SITE_WRITE,
    JobKind.EXPORT_SITE: Permission.SITE_READ,
    JobKind.EXPORT_LEDGER: Permission.SITE_READ,
    JobKind.EXPORT_AUDIT: Permission.AUDIT_READ,
}


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


TRANSITIONS: Final[dict[JobState, frozenset[JobState]]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.DONE, JobState.FAILED, JobState.QUEUED}),
    JobState.DONE: frozenset(),
    JobState.FAILED: frozenset(),
}
FINAL: Final = frozenset(s for s, onward in TRANSITIONS.items() if not onward)
MAX_ATTEMPTS: Final = 3
STALE_AFTER: Final = timedelta(minutes=2)
"""A running job whose runner has not been heard of for this long is taken as lost."""
HEARTBEAT_EVERY: Final = timedelta(seconds=1)
"""How often a runner writes its progress (and so says it is alive)."""
MAX_INPUT_BYTES: Final = 4 * 1024 * 1024


class IllegalJobMove(Conflict):
    code = "illegal_job_move"


class JobNotReady(Conflict):
    code = "job_not_ready"


class JobLost(Conflict):
    """The runner was taken for lost and the job queued again: this run's work is void."""

    code = "job_lost"


def move(state: JobState, to: JobState) -> JobState:
    """The state after moving ``state`` to ``to``; a move not in the table raises."""
    if to not in TRANSITIONS[state]:
        raise IllegalJobMove(f"a {state.value} job cannot become {to.value}")
    return to


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a running job is: ``done`` of ``total`` steps of its ``stage``."""

    stage: str = ""
    done: int = 0
    total: int = 0

    @property
    def percent(self) -> int | None:
        """0-100, or None while the total is not known yet."""
        if self.total <= 0:
            return None
        return min(100, max(0, self.done * 100 // self.total))


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: JobKind
    state: JobState
    site_id: int | None
    params: dict[str, Any]
    started_by: str
    started_by_user: int | None
    progress: Progress
    result: dict[str, Any] | None
    output_name: str
    has_output: bool
    error: str
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.state in FINAL

    def elapsed(self, now: datetime) -> timedelta | None:
        if self.started_at is None:
            return None
        return (self.finished_at or now) - self.started_at


def may_see(principal: Principal, job: Job) -> bool:
    """Whether ``principal`` may read ``job`` (its page, its report, its file)."""
    permission = KIND_PERMISSION[job.kind]
    if job.site_id is not None:
        return principal.can(permission, job.site_id)
    reach = principal.sites_with(permission)
    if reach is None:
        return True
    spans = job.params.get("visible_sites")
    mine = principal.kind is PrincipalKind.STAFF and principal.id == job.started_by_user
    return mine and isinstance(spans, list) and set(spans) <= reach


def after_loss(job_attempts: int) -> JobState:
    """Where a job goes when its runner vanished: queued again, or failed for good."""
    return JobState.QUEUED if job_attempts < MAX_ATTEMPTS else JobState.FAILED
