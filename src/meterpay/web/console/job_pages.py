"""Console pages: background jobs (后台任务) — an import's check and import, exports to
Excel. Parse, call one service, render.

Starting a job answers at once with its page (303); the page polls its own status part
(htmx, every second) until the job ends, then shows the report or the download. The
page can be left: the job goes on, and "后台任务" lists the caller's jobs to come back to.
Who may see a job is the job service's decision (``jobs.model.may_see``); a job the
caller may not see is "not found", like any other object.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from meterpay.auth.model import Permission as P
from meterpay.jobs import service as jobs
from meterpay.jobs.model import Job, JobKind
from meterpay.jobs.service import Handler
from meterpay.sites import import_jobs
from meterpay.sites.importer import CREATED_KINDS
from meterpay.sites.site_choice import sites_in_reach
from meterpay.web.api.deps import Rt
from meterpay.web.console import exports
from meterpay.web.console.admin_forms import answer, page_of
from meterpay.web.guard import Caller, allow

router = APIRouter(prefix="/console", include_in_schema=False)
POLL_S: Final = 1
IMPORTS: Final = frozenset({JobKind.IMPORT_CHECK, JobKind.IMPORT_APPLY})
MINE = allow(P.SITE_READ, own_filter=True)


def job_handlers() -> dict[JobKind, Handler]:
    """What each kind of job does (for the job runner of ``BackgroundWorkers``)."""
    return {**import_jobs.HANDLERS, **exports.HANDLERS}


def to_job(job: Job, lang: str | None = None) -> Response:
    """Where a page sends its caller once it has started a job."""
    suffix = "?lang=en" if lang and lang.startswith("en") else ""
    return RedirectResponse(f"/console/jobs/{job.id}{suffix}", status_code=303)


@router.get("/jobs", dependencies=[MINE], response_class=HTMLResponse)
def jobs_page(request: Request, rt: Rt, me: Caller, lang: str | None = None) -> Response:
    """后台任务: the caller's own jobs, newest first."""
    page = page_of(request, rt.clock.now(), lang=lang)
    found = jobs.recent_for(rt, me)
    return answer(request, "jobs.html", page.context(jobs=found, **_names(rt, me)))


@router.get("/jobs/{job_id}", dependencies=[MINE], response_class=HTMLResponse)
def job_page(
    request: Request,
    rt: Rt,
    me: Caller,
    job_id: int,
    *,
    partial: bool = False,
    lang: str | None = None,
) -> Response:
    """One job: its progress while it runs, then its report or its file."""
    job = jobs.job_for(rt, job_id, me)
    page = page_of(request, rt.clock.now(), lang=lang)
    context = page.context(job=job, poll=POLL_S, **_report(job))
    if partial:  # the part the page polls: no more than the job itself
        return answer(request, "_job_status.html", context)
    return answer(request, "job.html", context | _names(rt, me))


@router.get("/jobs/{job_id}/file", dependencies=[MINE])
def job_file(rt: Rt, me: Caller, job_id: int) -> Response:
    """What the job made (a workbook), to download."""
    found = jobs.file_for(rt, job_id, me)
    return Response(
        found.data,
        media_type=found.media_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(found.name)}",
            "Cache-Control": "no-store",
        },
    )


@router.post("/jobs/{job_id}/import", dependencies=[allow(P.SITE_WRITE, own_filter=True)])
def import_checked(rt: Rt, me: Caller, job_id: int, lang: str | None = None) -> Response:
    """Import the file whose check (this job) found no error: a job of its own."""
    return to_job(import_jobs.start_apply(rt, job_id, by=me), lang)


def _report(job: Job) -> dict[str, Any]:
    if job.kind not in IMPORTS:
        return {"report": None, "kinds": CREATED_KINDS}
    return {"report": import_jobs.report_of(job), "kinds": CREATED_KINDS}


def _names(rt: Rt, me: Caller) -> dict[str, Any]:
    reach = sites_in_reach(rt, me.sites_with(P.SITE_READ))
    return {"site_names": {s.id: s.name for s in reach}}
