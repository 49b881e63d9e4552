"""Console pages: bulk import (批量导入) from Excel or CSV with a row-by-row report.
Parse, call one service, render.

The first upload is always a dry run (``sites.importer.import_sheet`` makes every check
and write, then rolls back) and shows every error by row and column. A clean file is
then imported from the report page: the file travels back in the form itself (base64),
so any server process can take the second step and nothing is kept between requests.
The importer checks the whole file again: it is all or nothing. Past imports are read
from the audit log (``site.import``), so the page shows them when revisited.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from meterpay.audit import service as audit
from meterpay.auth.model import Permission as P
from meterpay.auth.model import Principal
from meterpay.kernel.errors import DomainError, Forbidden, InvalidInput, NotFound
from meterpay.reports.sheets import XLSX
from meterpay.sites import importer
from meterpay.sites.import_template import template_sheet
from meterpay.sites.model import Site
from meterpay.sites.site_choice import pick, sites_in_reach
from meterpay.web.api.deps import Rt
from meterpay.web.console.admin_forms import answer, form_of, number, page_of, text
from meterpay.web.guard import Caller, allow

router = APIRouter(prefix="/console", include_in_schema=False)
MAX_BYTES: Final = 4 * 1024 * 1024
SUFFIXES: Final = (".xlsx", ".csv")


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
    base = {
        "sites": sites,
        "site": site,
        "report": None,
        "sheet": "",
        "file_name": "",
        "digest": "",
        "problem": "",
        "past": past,
        "kinds": importer.CREATED_KINDS,
    }
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


async def _sheet_of(form: FormData) -> tuple[bytes, str]:
    """The uploaded file, or the one a dry run's report sent back; its name."""
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        name = upload.filename[-120:]
        if not name.lower().endswith(SUFFIXES):
            raise InvalidInput("choose an .xlsx or .csv file", field="file")
        data = await upload.read(MAX_BYTES + 1)
    else:
        name = text(form, "file_name", 120)
        try:
            data = base64.b64decode(text(form, "sheet", MAX_BYTES * 2), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(
                "the form has expired: choose the file again", field="file"
            ) from None
    if not data:
        raise InvalidInput("choose a file to import", field="file")
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"the file is larger than {MAX_BYTES // 1024 // 1024} MB", field="file")
    return data, name


@router.post("/import", dependencies=[allow(P.SITE_WRITE)], response_class=HTMLResponse)
async def run_import(request: Request, rt: Rt, me: Caller) -> Response:
    """A dry run (the default), or the import of a file whose dry run was clean."""
    form = await form_of(request)
    sites = sites_in_reach(rt, me.sites_with(P.SITE_WRITE))
    site_id = _site_id(form)
    site = pick(sites, site_id) if site_id is not None else None
    page = page_of(request, rt.clock.now(), site, text(form, "lang"))
    dry_run = text(form, "mode", 10) != "import"
    try:
        if site is None:
            raise InvalidInput("choose the site to import into", field="site_id")
        data, name = await _sheet_of(form)
        report = importer.import_sheet(
            rt, data, site_code=site.code, actor=me.name, dry_run=dry_run
        )
    except DomainError as exc:
        if isinstance(exc, NotFound | Forbidden):
            raise
        context = _context(rt, me, site, sites, problem=exc.message)
        return answer(request, "import.html", page.context(**context), 422)
    context = _context(
        rt,
        me,
        site,
        sites,
        report=report,
        sheet=base64.b64encode(data).decode() if report.ok and dry_run else "",
        file_name=name,
        digest=hashlib.sha256(data).hexdigest()[:16],
    )
    return answer(request, "import.html", page.context(**context), 200 if report.ok else 422)


def _site_id(form: FormData) -> int | None:
    try:
        return number(form, "site_id")
    except InvalidInput:
        return None
