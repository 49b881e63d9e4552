"""Bulk import as background jobs: the dry run (``import.check``) and the import itself
(``import.apply``) of a file kept with the job.

Invariants:
- both run ``importer.import_sheet`` on the job's own input file, so what is imported is
  byte for byte what was checked (the apply job carries a copy of the checked file);
- an import's rows and its job's "done" commit in one transaction (``record_in``);
- a sheet with errors ends the job as failed, with every error in its report.
"""

from __future__ import annotations

import hashlib
from typing import Final

from sqlalchemy import Connection

from meterpay.auth.model import Principal
from meterpay.jobs import service as jobs
from meterpay.jobs.model import Job, JobKind, JobNotReady, JobState
from meterpay.jobs.service import File, Outcome, Reporter
from meterpay.kernel.errors import InvalidInput
from meterpay.runtime import Runtime
from meterpay.sites.importer import ImportReport, import_sheet

SUFFIXES: Final = (".xlsx", ".csv")


def start_check(rt: Runtime, *, site_id: int, site_code: str, sheet: File, by: Principal) -> Job:
    """Queue the dry run of ``sheet`` for a site."""
    if not sheet.data:
        raise InvalidInput("choose a file to import", field="file")
    if not sheet.name.lower().endswith(SUFFIXES):
        raise InvalidInput("choose an .xlsx or .csv file", field="file")
    params = {"site_code": site_code, "file_name": sheet.name, "digest": _digest(sheet.data)}
    return jobs.submit(
        rt, JobKind.IMPORT_CHECK, by=by, site_id=site_id, params=params, input_file=sheet
    )


def start_apply(rt: Runtime, check_job_id: int, *, by: Principal) -> Job:
    """Queue the import of the file a clean dry run checked."""
    check = jobs.job_for(rt, check_job_id, by)
    if check.kind is not JobKind.IMPORT_CHECK:
        raise InvalidInput(f"job {check.id} is not the check of an import")
    if check.state is not JobState.DONE:
        raise JobNotReady("only a file whose check found no error can be imported")
    return jobs.submit(
        rt,
        JobKind.IMPORT_APPLY,
        by=by,
        site_id=check.site_id,
        params={**check.params, "checked_by_job": check.id},
        input_file=jobs.input_of(rt, check),
    )


def report_of(job: Job) -> ImportReport | None:
    """The import report a finished import job left (None while it runs)."""
    return ImportReport.from_record(job.result) if job.result else None


def run_check(rt: Runtime, job: Job, reporter: Reporter) -> Outcome:
    return _run(rt, job, reporter, dry_run=True)


def run_apply(rt: Runtime, job: Job, reporter: Reporter) -> Outcome:
    return _run(rt, job, reporter, dry_run=False)


def _run(rt: Runtime, job: Job, reporter: Reporter, *, dry_run: bool) -> Outcome:
    sheet = jobs.input_of(rt, job)

    def written(conn: Connection, report: ImportReport) -> None:
        reporter.record_in(conn, Outcome(result=report.to_record()))

    report = import_sheet(
        rt,
        sheet.data,
        site_code=str(job.params["site_code"]),
        actor=job.started_by,
        dry_run=dry_run,
        progress=reporter,
        on_written=written,
    )
    failed = "" if report.ok else f"{len(report.errors)} errors in the file; nothing was written"
    return Outcome(result=report.to_record(), failed=failed, recorded=report.ok and not dry_run)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


HANDLERS: Final = {JobKind.IMPORT_CHECK: run_check, JobKind.IMPORT_APPLY: run_apply}
