"""Console pages under /console: parse, call one service, render. No queries here.

The pages take the API's caller check: with ``MP_API_TOKENS`` set they need the bearer
token too, until the console's own sign-in arrives (open in the demo).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from meterpay.control import overview
from meterpay.control.model import SupplyState
from meterpay.web.api.deps import Rt, caller
from meterpay.web.console.formats import SiteClock
from meterpay.web.console.labels import Lang, Words
from meterpay.web.console.templating import render

router = APIRouter(prefix="/console", dependencies=[Depends(caller)], include_in_schema=False)

PAGE_SIZE: Final = 50
COUNTED: Final = tuple(SupplyState)
"""The state cards in the order an account moves through them (the enum's order)."""


@router.get("/supply", response_class=HTMLResponse)
def supply_page(
    request: Request,
    rt: Rt,
    *,
    site_id: int | None = None,
    state: SupplyState | None = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    lang: str | None = None,
) -> Response:
    """供应状态: accounts by supply state, the ones that need attention, and the latest
    events, commands, owners' messages and alarms of one site."""
    found = overview.supply_overview(
        rt, site_id, state=state, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE
    )
    language = Lang.of(lang)
    clock = SiteClock.of(found.site.timezone, found.at, language) if found else None
    return render(
        request,
        "supply.html",
        {
            "ov": found,
            "w": Words(language),
            "lang": language,
            "clock": clock,
            "counted": COUNTED,
            "state": state,
            "page": page,
        },
    )
