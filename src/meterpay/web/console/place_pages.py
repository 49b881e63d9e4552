"""Console pages: the site tree (site, building, floor, unit) and the unit, account and meter
pages. Parse, call one service, render.

Tables are filtered, sorted and paged on the server (links, no script needed); the
site's table and an account's ledger export to Excel as background jobs (``exports``,
``job_pages``) — the same rows as on screen, every page of them.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from meterpay.auth.model import Permission as P
from meterpay.control.model import SupplyState
from meterpay.kernel.errors import InvalidInput
from meterpay.reports import account_view, meter_view, places, unit_view
from meterpay.web.api.deps import Rt
from meterpay.web.console import exports
from meterpay.web.console.admin_forms import form_of, number, text
from meterpay.web.console.formats import SiteClock
from meterpay.web.console.job_pages import to_job
from meterpay.web.console.labels import WORDS, Lang, Words
from meterpay.web.console.templating import render
from meterpay.web.guard import Caller, allow

router = APIRouter(prefix="/console", include_in_schema=False)

PAGE_SIZE: Final = 50
COMPONENT_WORDS: Final = frozenset(k for k in WORDS if k.startswith("component."))
Page = Annotated[int, Query(ge=1, le=100_000)]
Words_ = Annotated[str, Query(max_length=100)]
Sort = Annotated[str | None, Query(max_length=20)]


@router.get(
    "/sites", dependencies=[allow(P.SITE_READ, own_filter=True)], response_class=HTMLResponse
)
def sites_page(request: Request, rt: Rt, me: Caller, *, lang: str | None = None) -> Response:
    """项目列表: the sites the caller sees, with their sizes."""
    found = places.site_index(rt, me.sites_with(P.SITE_READ))
    language = Lang.of(lang)
    return render(
        request,
        "sites.html",
        {"found": found, "w": Words(language), "lang": language},
    )


@router.get("/sites/{site_id}", dependencies=[allow(P.SITE_READ)], response_class=HTMLResponse)
def site_page(
    request: Request,
    rt: Rt,
    site_id: int,
    *,
    state: SupplyState | None = None,
    building_id: int | None = None,
    floor_id: int | None = None,
    q: Words_ = "",
    sort: Sort = None,
    page: Page = 1,
    lang: str | None = None,
) -> Response:
    """One site: buildings and floors, and its units with their accounts, meters, balance
    and supply state — filtered, searched, sorted, paged."""
    where = places.PlaceFilter(state, building_id, floor_id, q)
    sorting = places.Sorting.parse(sort)
    language = Lang.of(lang)
    found = places.site_page(
        rt, site_id, where=where, sort=sorting, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE
    )
    return render(
        request,
        "site.html",
        {
            "s": found,
            "where": where,
            "sorting": sorting,
            "sort_keys": tuple(places.SortKey),
            "states": tuple(SupplyState),
            "page": page,
            "w": Words(language),
            "lang": language,
            "clock": SiteClock.of(found.site.timezone, found.at, language),
        },
    )


@router.get("/units/{unit_id}", dependencies=[allow(P.SITE_READ)], response_class=HTMLResponse)
def unit_page(request: Request, rt: Rt, unit_id: int, *, lang: str | None = None) -> Response:
    """One unit: where it is, its accounts and its meters."""
    found = unit_view.unit_page(rt, unit_id)
    language = Lang.of(lang)
    return render(
        request,
        "unit.html",
        {
            "u": found,
            "w": Words(language),
            "lang": language,
            "clock": SiteClock.of(found.site.timezone, found.at, language),
        },
    )


@router.get(
    "/accounts/{account_id}", dependencies=[allow(P.SITE_READ)], response_class=HTMLResponse
)
def account_page(
    request: Request,
    rt: Rt,
    account_id: int,
    *,
    page: Page = 1,
    lang: str | None = None,
) -> Response:
    """One account: balance, state, thresholds, the ledger newest first, charges with
    their tariff components, top-ups, orders, messages sent."""
    language = Lang.of(lang)
    found = account_view.account_page(
        rt, account_id, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE
    )
    return render(
        request,
        "account.html",
        {
            "a": found,
            "page": page,
            "words_known": COMPONENT_WORDS,
            "w": Words(language),
            "lang": language,
            "clock": SiteClock.of(found.site.timezone, found.at, language),
        },
    )


@router.get("/meters/{meter_id}", dependencies=[allow(P.SITE_READ)], response_class=HTMLResponse)
def meter_page(request: Request, rt: Rt, meter_id: int, *, lang: str | None = None) -> Response:
    """One meter: latest readings, use by day, raw frames, commands and their lifecycle."""
    found = meter_view.meter_page(rt, meter_id)
    language = Lang.of(lang)
    chart = {
        "kind": "bars",
        "x": [f"{d.day.month}/{d.day.day}" for d in found.use],
        "unit": found.unit,
        "series": [
            {
                "name": Words(language).plain("mview.use"),
                "data": [str(d.quantity) for d in found.use],
            }
        ],
    }
    return render(
        request,
        "meter.html",
        {
            "m": found,
            "chart": chart,
            "w": Words(language),
            "lang": language,
            "clock": SiteClock.of(found.site.timezone, found.at, language),
        },
    )


# --- Excel, as background jobs -----------------------------------------------------------


@router.post("/sites/{site_id}/export", dependencies=[allow(P.SITE_READ)])
async def export_site(request: Request, rt: Rt, me: Caller, site_id: int) -> Response:
    """Start the export of the site's table as filtered and sorted on screen."""
    form = await form_of(request)
    state = text(form, "state", 20)
    where = places.PlaceFilter(
        _supply_state(state),
        number(form, "building_id"),
        number(form, "floor_id"),
        text(form, "q", 100),
    )
    lang = text(form, "lang", 8)
    job = exports.start_site_export(
        rt, site_id, where=where, sort=text(form, "sort", 20) or None, lang=Lang.of(lang), by=me
    )
    return to_job(job, lang)


@router.post("/accounts/{account_id}/export", dependencies=[allow(P.SITE_READ)])
async def export_ledger(request: Request, rt: Rt, me: Caller, account_id: int) -> Response:
    """Start the export of the account's whole ledger."""
    form = await form_of(request)
    lang = text(form, "lang", 8)
    job = exports.start_ledger_export(rt, account_id, lang=Lang.of(lang), by=me)
    return to_job(job, lang)


def _supply_state(raw: str) -> SupplyState | None:
    if not raw:
        return None
    try:
        return SupplyState(raw)
    except ValueError:
        raise InvalidInput(f"no supply state {raw!r}", field="state") from None
