"""Console pages: bulk import (批量导入) from Excel or CSV with a row-by-row report.
Parse, call one service, render.

An upload starts a background job (``sites.import_jobs``): first always a dry run, which
makes every check and write and then rolls back, and reports every error by row and
column on the job's page (``job_pages``), with its progress while it runs. A clean check
is imported from that page: the import job takes the very file that was checked (kept
with the job), checks it again and writes it all or nothing. Past imports are read from
the audit log (``site.import``), so the page shows them when revisited.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from meterpay.audit import service as audit
from meterpay.auth.model import Permission as P
from meterpay.auth.model import Principal
from meterpay.jobs.model import MAX_INPUT_BYTES
from meterpay.jobs.service import File
from meterpay.kernel.errors import DomainError, Forbidden, InvalidInput, NotFound
from meterpay.reports.sheets import XLSX
from meterpay.sites import import_jobs
from meterpay.sites.import_template import template_sheet
from meterpay.sites.model import Site
from meterpay.sites.site_choice import pick, sites_in_reach
from meterpay.web.api.deps import Rt
from meterpay.web.console.admin_forms import answer, form_of, number_or_none, page_of, text
from meterpay.web.console.job_pages import to_job
from meterpay.web.guard import Caller, allow

router = APIRouter(prefix="/console", include_in_schema=False)


def _context(
    rt: Rt, me: Principal, site: Site | None, sites: list[Site], **more: Any
) -> dict[str, Any]:
    past = (
        audit.search(
            rt,
            audit.AuditQuery(action="site.import", site_id=site.id),
            visible_sites=me.sites_with(P.SITE_WRITE),
            limit=20,
        )
        if site
        else []
    )
    base = {"sites": sites, "site": site, "problem": "", "past": past}
    return base | more


@router.get(
    "/import", dependencies=[allow(P.SITE_WRITE, own_filter=True)], response_class=HTMLResponse
)
def import_page(
    request: Request, rt: Rt, me: Caller, site_id: int | None = None, lang: str | None = None
) -> Response:
    """批量导入: choose the site and the file; the first step is a dry run."""
    sites = sites_in_reach(rt, me.sites_with(P.SITE_WRITE))
    site = pick(sites, site_id)
    page = page_of(request, rt.clock.now(), site, lang)
    return answer(request, "import.html", page.context(**_context(rt, me, site, sites)))


@router.get("/import/template", dependencies=[allow(P.SITE_WRITE, own_filter=True)])
def import_template() -> Response:
    """The blank sheet with every column the importer knows."""
    return Response(
        template_sheet(),
        media_type=XLSX,
        headers={"Content-Disposition": 'attachment; filename="meterpay-import.xlsx"'},
    )


async def _sheet_of(form: FormData) -> File:
    """The uploaded file (empty when none was chosen: ``import_jobs`` says so), read to
    one byte past the limit, so that a larger one is refused without reading it all."""
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return File("", "", b"")
    data = await upload.read(MAX_INPUT_BYTES + 1)
    return File(upload.filename[-120:], upload.content_type or "application/octet-stream", data)


@router.post("/import", dependencies=[allow(P.SITE_WRITE)], response_class=HTMLResponse)
async def run_import(request: Request, rt: Rt, me: Caller) -> Response:
    """Start the dry run of an uploaded file (a background job) and show its page."""
    form = await form_of(request)
    sites = sites_in_reach(rt, me.sites_with(P.SITE_WRITE))
    site_id = number_or_none(form, "site_id")
    site = pick(sites, site_id) if site_id is not None else None
    lang = text(form, "lang")
    try:
        if site is None:
            raise InvalidInput("choose the site to import into", field="site_id")
        sheet = await _sheet_of(form)
        job = import_jobs.start_check(rt, site_id=site.id, site_code=site.code, sheet=sheet, by=me)
    except DomainError as exc:
        if isinstance(exc, NotFound | Forbidden):
            raise
        page = page_of(request, rt.clock.now(), site, lang)
        context = _context(rt, me, site, sites, problem=exc.message)
        return answer(request, "import.html", page.context(**context), 422)
    return to_job(job, lang)
