"""Console pages: the site tree (site, building, floor, unit) and the unit, account and meter
pages. Parse, call one service, render.

Tables are filtered, sorted and paged on the server (links, no script needed); the
site's table and an account's ledger export to Excel with ``?format=xlsx`` — the same
rows as on screen, every page of them.
"""

from __future__ import annotations

from typing import Annotated, Final
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from meterpay.auth.model import Permission as P
from meterpay.control.model import SupplyState
from meterpay.kernel.errors import InvalidInput
from meterpay.reports import account_view, meter_view, places, unit_view
from meterpay.reports.sheets import XLSX, Column, workbook
from meterpay.web.api.deps import Rt
from meterpay.web.console.formats import SiteClock
from meterpay.web.console.labels import WORDS, Lang, Words
from meterpay.web.console.templating import render
from meterpay.web.guard import Caller, allow

router = APIRouter(prefix="/console", include_in_schema=False)

PAGE_SIZE: Final = 50
COMPONENT_WORDS: Final = frozenset(k for k in WORDS if k.startswith("component."))
Page = Annotated[int, Query(ge=1, le=100_000)]
Words_ = Annotated[str, Query(max_length=100)]
Sort = Annotated[str | None, Query(max_length=20)]
Format = Annotated[str | None, Query(max_length=8, alias="format")]


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
    format: Format = None,
    lang: str | None = None,
) -> Response:
    """One site: buildings and floors, and its units with their accounts, meters, balance
    and supply state — filtered, searched, sorted, paged; or all of them as Excel."""
    where = places.PlaceFilter(state, building_id, floor_id, q)
    sorting = places.Sorting.parse(sort)
    language = Lang.of(lang)
    if _excel(format):
        site, rows = places.site_rows_for_export(rt, site_id, where=where, sort=sorting)
        return _site_sheet(site, rows, Words(language))
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
    format: Format = None,
    lang: str | None = None,
) -> Response:
    """One account: balance, state, thresholds, the ledger newest first, charges with
    their tariff components, top-ups, orders, messages sent; or the ledger as Excel."""
    language = Lang.of(lang)
    if _excel(format):
        site, head, ledger = account_view.ledger_for_export(rt, account_id)
        return _ledger_sheet(site, head, ledger, Words(language))
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


# --- Excel ------------------------------------------------------------------------------------


def _excel(format: str | None) -> bool:
    if format is None or format == "html":
        return False
    if format == "xlsx":
        return True
    raise InvalidInput(f"cannot export as {format!r}: xlsx or html", field="format")


def _title(w: Words, key: str) -> str:
    zh, en = w.pair(key)
    return f"{zh} {en}"


def _site_sheet(site: places.SiteSummary, rows: list[places.PlaceRow], w: Words) -> Response:
    keys = ["pcol.building", "pcol.floor", "col.unit", "col.owner", "pcol.phone", "col.account"]
    keys += ["col.utility", "pcol.meters", "col.balance", "col.state"]
    columns = [Column(_title(w, k), 16) for k in keys]
    data = (
        (
            r.building or "",
            r.floor or "",
            f"{r.unit_code} {r.unit_name}",
            r.owner or "",
            r.phone or "",
            r.number or "",
            w.plain(f"utility.{r.utility.value}") if r.utility else "",
            " ".join(m.address for m in r.meters),
            r.balance,
            w.plain(f"state.{r.state.value}") if r.state else w.plain("place.vacant"),
        )
        for r in rows
    )
    body = workbook(site.code, columns, data, zone=site.timezone)
    return _download(body, f"{site.code}-accounts.xlsx")


def _ledger_sheet(
    site: places.SiteSummary,
    head: account_view.AccountHead,
    ledger: account_view.LedgerPage,
    w: Words,
) -> Response:
    keys = ("col.time", "col.kind", "pcol.amount", "pcol.balance_after", "pcol.memo")
    columns = [Column(_title(w, k), 18) for k in (*keys, "pcol.actor")]
    columns[0] = Column(f"{columns[0].title} ({site.timezone})", 20)
    data = (
        (e.at, w.plain(f"entry.{e.kind.value}"), e.amount, e.balance_after, e.memo, e.actor)
        for e in ledger.rows
    )
    body = workbook(head.number, columns, data, zone=site.timezone)
    return _download(body, f"{head.number}-ledger.xlsx")


def _download(body: bytes, filename: str) -> Response:
    return Response(
        body,
        media_type=XLSX,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "Cache-Control": "no-store",
        },
    )
