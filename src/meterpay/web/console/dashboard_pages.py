"""Console pages: the dashboard (仪表盘): meters online, accounts by supply state, today's money,
open alarms, trends. Parse, call one service, render.

The dashboard is the console's home (``/console``). A staff member limited to some sites
sees only those (``own_filter``); naming one (``?site_id=``) narrows it to that site,
which the guard has checked they see.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from meterpay.auth.model import Permission as P
from meterpay.control.model import SupplyState
from meterpay.metering.gateways import LinkStatus
from meterpay.reports import dashboard
from meterpay.web.api.deps import Rt
from meterpay.web.console.formats import SiteClock
from meterpay.web.console.labels import Lang, Words
from meterpay.web.console.templating import render
from meterpay.web.guard import Caller, allow

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("", dependencies=[allow(P.SITE_READ, own_filter=True)], response_class=HTMLResponse)
def dashboard_page(
    request: Request,
    rt: Rt,
    me: Caller,
    *,
    site_id: int | None = None,
    lang: str | None = None,
) -> Response:
    """仪表盘: the caller's sites (or one of them) at a glance."""
    found = dashboard.dashboard(rt, visible=me.sites_with(P.SITE_READ), site_id=site_id)
    language = Lang.of(lang)
    return render(
        request,
        "dashboard.html",
        {
            "d": found,
            "w": Words(language),
            "lang": language,
            "clock": SiteClock.of(found.zone, found.at, language),
            "states": tuple(SupplyState),
            "links": tuple(LinkStatus),
            "trend": _trend_chart(found, Words(language)),
        },
    )


def _trend_chart(found: dashboard.Dashboard, w: Words) -> dict[str, object]:
    """The trend as ``static/charts.js`` draws it: money as decimal strings (exact)."""
    return {
        "kind": "bars",
        "x": [f"{d.day.month}/{d.day.day}" for d in found.trend],
        "unit": "¥",
        "series": [
            {"name": w.plain("dash.top_ups_today"), "data": [str(d.top_ups) for d in found.trend]},
            {"name": w.plain("dash.charges_today"), "data": [str(d.charges) for d in found.trend]},
        ],
    }
