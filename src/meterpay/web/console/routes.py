"""Console pages under /console: parse, call one service, render. No queries here.

The pages take the API's caller check: with ``MP_API_TOKENS`` set they need the bearer
token too, until the console's own sign-in arrives (open in the demo).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from meterpay.auth.model import Permission as P
from meterpay.control import overview
from meterpay.control.model import SupplyState
from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.money_words import capital_yuan
from meterpay.ledger import cash, settlement
from meterpay.ledger.cash_model import PaymentMethod
from meterpay.web.api.deps import Rt
from meterpay.web.console.formats import SiteClock
from meterpay.web.console.labels import Lang, Words
from meterpay.web.console.printing import FullClock, Paper
from meterpay.web.console.templating import render
from meterpay.web.guard import Caller, allow

router = APIRouter(prefix="/console", include_in_schema=False)

PAGE_SIZE: Final = 50
COUNTED: Final = tuple(SupplyState)
"""The state cards in the order an account moves through them (the enum's order)."""


@router.get(
    "/supply", dependencies=[allow(P.SITE_READ, own_filter=True)], response_class=HTMLResponse
)
def supply_page(
    request: Request,
    rt: Rt,
    me: Caller,
    *,
    site_id: int | None = None,
    state: SupplyState | None = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    lang: str | None = None,
) -> Response:
    """供应状态: accounts by supply state, the ones that need attention, and the latest
    events, commands, owners' messages and alarms of one site."""
    found = overview.supply_overview(
        rt,
        site_id,
        state=state,
        offset=(page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
        visible=me.sites_with(P.SITE_READ),
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


# --- the cash counter: printable receipts and shift reports (meterpay.ledger.cash) ---------


@router.get(
    "/receipts/{receipt_no}",
    dependencies=[allow(P.SITE_READ, owners=True)],
    response_class=HTMLResponse,
)
def receipt_page(
    request: Request,
    rt: Rt,
    receipt_no: Annotated[str, Path(max_length=64)],
    *,
    paper: str | None = None,
    lang: str | None = None,
) -> Response:
    """收款收据: one receipt, printable on an 80 mm roll or A6, with the amount in capital
    numerals and a stamp once it is reversed."""
    view = cash.receipt_view(rt, receipt_no)
    language = Lang.of(lang)
    return render(
        request,
        "receipt.html",
        {
            "v": view,
            "w": Words(language),
            "lang": language,
            "paper": Paper.of(paper),
            "clock": FullClock.of(view.timezone, language),
        },
    )


@router.get(
    "/cashier/shift", dependencies=[allow(P.COUNTER, own_filter=True)], response_class=HTMLResponse
)
def shift_page(
    request: Request,
    rt: Rt,
    me: Caller,
    *,
    cashier: Annotated[str | None, Query(max_length=120)] = None,
    date: Annotated[str | None, Query(max_length=10)] = None,
    site_id: int | None = None,
    paper: str | None = None,
    lang: str | None = None,
) -> Response:
    """收款员交班报表: a cashier's (or everyone's) day at the counter on the site's calendar,
    totals per method with the reversals, printable."""
    mine = me.sites_with(P.COUNTER)
    if site_id is None and mine is not None:  # a cashier of some sites: their first
        site_id = min(mine, default=None)
    day = cash.day_report(
        rt, site_id=site_id, day=_day(date), cashier=(cashier or "").strip() or None
    )
    language = Lang.of(lang)
    zone = day.site.timezone if day else "Asia/Shanghai"
    return render(
        request,
        "shift.html",
        {
            "day": day,
            "cashier": cashier,
            "methods": tuple(PaymentMethod),
            "net_words": capital_yuan(day.report.total_net.fen) if day else "",
            "reversed_ids": {line.receipt.id for line in day.report.reversals} if day else set(),
            "w": Words(language),
            "lang": language,
            "paper": Paper.of(paper),
            "clock": FullClock.of(zone, language),
            "short": SiteClock.of(zone, day.at if day else rt.clock.now(), language),
        },
    )


def _day(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a date (YYYY-MM-DD)", field="date") from None


# --- move-out settlements (meterpay.ledger.settlement): the printable settlement ----------


@router.get(
    "/settlements/{settlement_id}",
    dependencies=[allow(P.SITE_READ, owners=True)],
    response_class=HTMLResponse,
)
def settlement_page(
    request: Request,
    rt: Rt,
    settlement_id: int,
    *,
    paper: str | None = None,
    lang: str | None = None,
) -> Response:
    """退费结算单: what the owner moving out reads and signs — unit, account, final
    readings, charges, balance, payout or transfer, debt left, meters handed over. A6
    unless an 80 mm roll is asked for."""
    view = settlement.settlement_view(rt, settlement_id)
    language = Lang.of(lang)
    st = view.settlement
    return render(
        request,
        "settlement.html",
        {
            "v": view,
            "payout_words": capital_yuan(st.payout_amount.fen),
            "debt_words": capital_yuan(st.debt.fen),
            "w": Words(language),
            "lang": language,
            "paper": Paper.of(paper or Paper.A6.value),
            "clock": FullClock.of(view.timezone, language),
        },
    )
