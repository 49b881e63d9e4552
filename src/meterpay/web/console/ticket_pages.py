"""Console pages: work orders (报修工单) for staff — a site's list by state, and one
ticket with the owner's photos, its history, and the next moves (assign, start,
finish, cancel) with a note the owner reads. Parse, call one service, render.

Seeing needs ``site.read``; working on a ticket needs ``meter.write`` (technicians,
operators, administrators)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from meterpay.auth.model import Permission as P
from meterpay.kernel.errors import DomainError
from meterpay.tickets import service as tickets
from meterpay.tickets.model import TicketState, moves_from
from meterpay.web.api.deps import Actor, Rt
from meterpay.web.console.formats import SiteClock
from meterpay.web.console.labels import Lang, Words
from meterpay.web.console.templating import render
from meterpay.web.guard import Caller, allow

router = APIRouter(prefix="/console", include_in_schema=False)
PAGE_SIZE = 50
DEFAULT_ZONE = "Asia/Shanghai"


def _page(rt: Rt, lang: str | None, zone: str) -> dict[str, Any]:
    language = Lang.of(lang)
    return {
        "w": Words(language),
        "lang": language,
        "clock": SiteClock.of(zone, rt.clock.now(), language),
    }


@router.get(
    "/tickets", dependencies=[allow(P.SITE_READ, own_filter=True)], response_class=HTMLResponse
)
def tickets_page(
    request: Request,
    rt: Rt,
    me: Caller,
    *,
    site_id: int | None = None,
    state: TicketState | None = None,
    before_id: int | None = None,
    lang: str | None = None,
) -> Response:
    """报修工单: newest first, filtered by state (a limited member names the site)."""
    found = tickets.ticket_list(
        rt,
        site_id=site_id,
        states=[state] if state else [],
        before_id=before_id,
        limit=PAGE_SIZE,
        visible=me.sites_with(P.SITE_READ),
    )
    zone = found[0].site_timezone if found else DEFAULT_ZONE
    return render(
        request,
        "tickets.html",
        _page(rt, lang, zone)
        | {
            "tickets": found,
            "state": state,
            "states": tuple(TicketState),
            "site_id": site_id,
            "more": found[-1].id if len(found) == PAGE_SIZE else None,
        },
    )


@router.get("/tickets/{ticket_id}", dependencies=[allow(P.SITE_READ)], response_class=HTMLResponse)
def ticket_page(
    request: Request,
    rt: Rt,
    ticket_id: int,
    lang: str | None = None,
) -> Response:
    """One work order: the owner's words and photos, the history, the next moves."""
    view = tickets.ticket_view(rt, ticket_id)
    return _ticket(request, rt, view, lang)


def _ticket(
    request: Request,
    rt: Rt,
    view: tickets.TicketView,
    lang: str | None,
    *,
    problem: str = "",
    status: int = 200,
) -> Response:
    response = render(
        request,
        "ticket.html",
        _page(rt, lang, view.ticket.site_timezone)
        | {"v": view, "t": view.ticket, "moves": moves_from(view.ticket.state), "problem": problem},
    )
    response.status_code = status
    return response


@router.post(
    "/tickets/{ticket_id}/moves", dependencies=[allow(P.METER_WRITE)], response_class=HTMLResponse
)
async def move_ticket(request: Request, rt: Rt, actor: Actor, ticket_id: int) -> Response:
    """Move the ticket (``to``) with a note; a refused move re-shows the page (409/422)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    form = {k: v[0].strip() for k, v in parse_qs(body, max_num_fields=20).items()}
    lang = form.get("lang")
    try:
        await asyncio.to_thread(
            tickets.move_ticket,
            rt,
            ticket_id,
            form.get("to", ""),
            by=actor,
            note=form.get("note", "")[:600],
            assignee=form.get("assignee") or None,
        )
    except DomainError as exc:
        view = await asyncio.to_thread(tickets.ticket_view, rt, ticket_id)
        status = 409 if exc.code == "illegal_ticket_move" else 422
        return _ticket(request, rt, view, lang, problem=exc.message, status=status)
    target = f"/console/tickets/{ticket_id}?lang={Lang.of(lang).value}"
    return RedirectResponse(target, status_code=303)
