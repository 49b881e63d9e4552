"""Work orders (报修) over the REST API: an owner (or staff for them) files a request for
an account with up to three photos (multipart); staff list a site's tickets and move
them along (assign, start, finish, cancel) with a note; the owner and the site's staff
read a ticket and its photos. Parse, call one service, answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from meterpay.auth.model import Permission as P
from meterpay.tickets import service as tickets
from meterpay.tickets.model import MAX_PHOTO_BYTES, MAX_PHOTOS, BadPhoto, Ticket, TicketState
from meterpay.web.api.deps import Actor, Rt
from meterpay.web.guard import allow
from meterpay.web.portal.ticket_pages import small_enough

router = APIRouter(tags=["tickets"])
Limit = Annotated[int, Query(ge=1, le=200)]
SEE: Final = allow(P.SITE_READ, owners=True)


class TicketOut(BaseModel):
    id: int
    site_id: int
    account_id: int
    unit_id: int
    description: str
    state: TicketState
    filed_by: str
    assignee: str | None
    photos: list[str] = Field(description="URLs of the photos, in order")
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class TicketEventOut(BaseModel):
    at: datetime
    actor: str
    from_state: TicketState | None
    to_state: TicketState
    note: str


class TicketDetail(TicketOut):
    events: list[TicketEventOut]


class TicketPage(BaseModel):
    items: list[TicketOut]
    next_before_id: int | None


class TicketMove(BaseModel):
    to: TicketState
    note: str = Field("", max_length=500)
    assignee: str | None = Field(None, max_length=120)
    """Who is assigned (a user name); the one assigning when left out."""


def _out(t: Ticket) -> dict[str, Any]:
    return {
        "id": t.id,
        "site_id": t.site_id,
        "account_id": t.account_id,
        "unit_id": t.unit_id,
        "description": t.description,
        "state": t.state,
        "filed_by": t.filed_by,
        "assignee": t.assignee,
        "photos": [f"/api/v1/tickets/{t.id}/photos/{n}" for n in range(1, t.photo_count + 1)],
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "closed_at": t.closed_at,
    }


_MULTIPART: Final = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["description"],
                    "properties": {
                        "description": {"type": "string", "maxLength": 1000},
                        "photos": {
                            "type": "array",
                            "maxItems": MAX_PHOTOS,
                            "items": {"type": "string", "format": "binary"},
                        },
                        "key": {"type": "string", "maxLength": 64},
                    },
                }
            }
        },
    }
}


@router.post(
    "/accounts/{account_id}/tickets",
    dependencies=[Depends(small_enough), SEE],
    response_model=TicketOut,
    status_code=201,
    openapi_extra=_MULTIPART,
)
async def file_ticket(request: Request, account_id: int, rt: Rt, actor: Actor) -> Any:
    """File a repair request (multipart: ``description``, up to three ``photos`` — JPEG,
    PNG or WebP, 5 MB each — and an optional idempotency ``key``). A refused photo
    stores nothing (422 ``bad_photo``)."""
    # The form is read here, not declared as parameters: the guard has read the body
    # already (a declared form would be parsed before the guard runs, from a spent stream).
    form = await request.form(max_files=MAX_PHOTOS + 1, max_fields=20)
    chosen = [p for p in form.getlist("photos") if isinstance(p, UploadFile) and p.filename]
    if len(chosen) > MAX_PHOTOS:
        raise BadPhoto(f"at most {MAX_PHOTOS} photos", field="photos")
    data = [await p.read(MAX_PHOTO_BYTES + 1) for p in chosen]
    filed = await run_in_threadpool(
        tickets.file_ticket,
        rt,
        account_id=account_id,
        description=_text(form.get("description"))[:2000],
        photos=data,
        by=actor,
        request_key=_text(form.get("key"))[:64],
    )
    return _out(filed)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


@router.get("/accounts/{account_id}/tickets", dependencies=[SEE], response_model=TicketPage)
def account_tickets(account_id: int, rt: Rt, limit: Limit = 50) -> Any:
    """The account's repair requests, newest first."""
    found = tickets.tickets_of_account(rt, account_id, limit=limit)
    return {"items": [_out(t) for t in found], "next_before_id": None}


@router.get("/tickets", dependencies=[allow(P.SITE_READ)], response_model=TicketPage)
def site_tickets(
    rt: Rt,
    site_id: int | None = None,
    state: Annotated[list[TicketState] | None, Query()] = None,
    before_id: int | None = None,
    limit: Limit = 50,
) -> Any:
    """A site's tickets (every site's for an all-sites holder), newest first; filter by
    ``state`` (repeatable), page with ``before_id``."""
    found = tickets.ticket_list(
        rt, site_id=site_id, states=state or [], before_id=before_id, limit=limit
    )
    more = found[-1].id if len(found) == limit else None
    return {"items": [_out(t) for t in found], "next_before_id": more}


@router.get("/tickets/{ticket_id}", dependencies=[SEE], response_model=TicketDetail)
def ticket(ticket_id: int, rt: Rt) -> Any:
    view = tickets.ticket_view(rt, ticket_id)
    events = [
        {
            "at": e.at,
            "actor": e.actor,
            "from_state": e.from_state,
            "to_state": e.to_state,
            "note": e.note,
        }
        for e in view.events
    ]
    return _out(view.ticket) | {"events": events}


@router.post(
    "/tickets/{ticket_id}/moves",
    dependencies=[allow(P.METER_WRITE)],
    response_model=TicketOut,
)
def move_ticket(ticket_id: int, body: TicketMove, rt: Rt, actor: Actor) -> Any:
    """Assign, start, finish or cancel (``to``), with a note the owner reads; an illegal
    move is 409 ``illegal_ticket_move``."""
    moved = tickets.move_ticket(
        rt, ticket_id, body.to, by=actor, note=body.note, assignee=body.assignee
    )
    return _out(moved)


@router.get("/tickets/{ticket_id}/photos/{position}", dependencies=[SEE])
def ticket_photo(
    ticket_id: int, rt: Rt, position: Annotated[int, Path(ge=1, le=MAX_PHOTOS)]
) -> Response:
    """One photo, as it was sent (only to the owner and the site's staff)."""
    found = tickets.photo(rt, ticket_id, position)
    return Response(
        found.data,
        media_type=found.media_type,
        headers={
            "Cache-Control": "private, max-age=3600",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'",
        },
    )
