"""报修 in the portal: the owner's repair requests for an account, a form with up to
three photos (multipart), each request's progress, and the owner's withdrawal of a
request not yet started. Parse, call one service, render.

The photos are checked by the service (first bytes, size, count) before anything is
stored; a refusal re-shows the form with the reason (422) and stores nothing. The form
carries a one-time key, so sending it twice files one request."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import UploadFile
from starlette.responses import Response

from meterpay.auth.model import Permission as P
from meterpay.kernel.errors import Conflict, DomainError, InvalidInput
from meterpay.reports import owner
from meterpay.tickets import service as tickets
from meterpay.tickets.model import MAX_PHOTO_BYTES, MAX_PHOTOS, OWNER_MAY_CANCEL, BadPhoto
from meterpay.web.api.deps import Actor, Rt
from meterpay.web.console.formats import SiteClock
from meterpay.web.console.labels import Lang
from meterpay.web.guard import Caller, allow
from meterpay.web.portal.forms import form_fields
from meterpay.web.portal.templating import render
from meterpay.web.portal.words import Words

router = APIRouter(prefix="/portal", include_in_schema=False)
SEE = allow(P.SITE_READ, owners=True)
OWNERS = allow(None, owners=True)
"""Withdrawing a request is the owner's own word: staff cancel from the console."""
MAX_BODY: Final = MAX_PHOTOS * MAX_PHOTO_BYTES + 64 * 1024
"""The largest form worth reading: three photos at their limit and the text."""


async def small_enough(request: Request) -> None:
    """Refuse a declared body larger than three photos before anything reads it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise BadPhoto(
            f"at most {MAX_PHOTOS} photos of {MAX_PHOTO_BYTES // 2**20} MB each", field="photos"
        )


SMALL = Depends(small_enough)


def _context(rt: Rt, account: owner.OwnedAccount, lang: str | None) -> dict[str, Any]:
    language = Lang.of(lang)
    return {
        "w": Words(language),
        "lang": language,
        "clock": SiteClock.of(account.timezone, rt.clock.now(), language),
        "a": account,
        "max_photos": MAX_PHOTOS,
    }


def _tickets_page(
    request: Request,
    rt: Rt,
    account_id: int,
    lang: str | None,
    *,
    problem: str = "",
    description: str = "",
    sent: bool = False,
    status: int = 200,
) -> Response:
    account = owner.owned_account(rt, account_id)
    context = _context(rt, account, lang) | {
        "tickets": tickets.tickets_of_account(rt, account_id),
        "problem": problem,
        "description": description,
        "sent": sent,
        "key": uuid.uuid4().hex,
    }
    return render(request, "tickets.html", context, status)


@router.get("/accounts/{account_id}/tickets", dependencies=[SEE], response_class=HTMLResponse)
def tickets_page(
    request: Request, rt: Rt, account_id: int, sent: bool = False, lang: str | None = None
) -> Response:
    """报修: my requests for this account and a form for a new one."""
    return _tickets_page(request, rt, account_id, lang, sent=sent)


@router.post(
    "/accounts/{account_id}/tickets", dependencies=[SMALL, SEE], response_class=HTMLResponse
)
async def file_ticket(request: Request, rt: Rt, actor: Actor, account_id: int) -> Response:
    form = await request.form(max_files=MAX_PHOTOS + 1, max_fields=20)
    lang = _text(form.get("lang"))
    description = _text(form.get("description"))[:2000]
    try:
        photos = await _photos(form.getlist("photos"))
        await asyncio.to_thread(
            tickets.file_ticket,
            rt,
            account_id=account_id,
            description=description,
            photos=photos,
            by=actor,
            request_key=_text(form.get("key"))[:64],
        )
    except DomainError as exc:
        return await asyncio.to_thread(
            _tickets_page,
            request,
            rt,
            account_id,
            lang,
            problem=exc.message,
            description=description,
            status=422,
        )
    target = f"/portal/accounts/{account_id}/tickets?sent=1&lang={Lang.of(lang).value}"
    return RedirectResponse(target, status_code=303)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


async def _photos(parts: list[Any]) -> list[bytes]:
    """The photos' bytes (empty file inputs left out), none read past the limit."""
    found: list[bytes] = []
    for part in parts:
        if not isinstance(part, UploadFile) or not part.filename:
            continue
        if len(found) >= MAX_PHOTOS:
            raise BadPhoto(f"at most {MAX_PHOTOS} photos", field="photos")
        found.append(await part.read(MAX_PHOTO_BYTES + 1))
    return found


@router.get("/tickets/{ticket_id}", dependencies=[SEE], response_class=HTMLResponse)
def ticket_page(
    request: Request, rt: Rt, ticket_id: int, cancelled: bool = False, lang: str | None = None
) -> Response:
    """One request: what was asked, its photos, its progress with the staff's notes, and
    for its owner, while work has not started, a way to withdraw it."""
    return _ticket_page(request, rt, ticket_id, lang, cancelled=cancelled)


def _ticket_page(
    request: Request,
    rt: Rt,
    ticket_id: int,
    lang: str | None,
    *,
    cancelled: bool = False,
    problem: str = "",
    reason: str = "",
    status: int = 200,
) -> Response:
    view = tickets.ticket_view(rt, ticket_id)
    account = owner.owned_account(rt, view.ticket.account_id)
    me = getattr(request.state, "principal", None)
    context = _context(rt, account, lang) | {
        "v": view,
        "may_cancel": bool(me and me.is_owner) and view.ticket.state in OWNER_MAY_CANCEL,
        "cancelled": cancelled,
        "problem": problem,
        "reason": reason,
    }
    return render(request, "ticket.html", context, status)


@router.post("/tickets/{ticket_id}/cancel", dependencies=[OWNERS], response_class=HTMLResponse)
async def cancel_ticket(request: Request, rt: Rt, me: Caller, ticket_id: int) -> Response:
    """The owner withdraws their request (open or assigned only), with an optional reason;
    once work has started the page says so and nothing changes."""
    form = await form_fields(request)
    lang, reason = form.get("lang"), form.get("reason", "")[:2000]  # the service says if long
    try:
        await asyncio.to_thread(
            tickets.cancel_by_owner,
            rt,
            ticket_id,
            customer_ids=me.customer_ids,
            by=me.name,
            reason=reason,
        )
    except (InvalidInput, Conflict) as exc:
        status = 409 if isinstance(exc, Conflict) else 422
        return await asyncio.to_thread(
            _ticket_page,
            request,
            rt,
            ticket_id,
            lang,
            problem=exc.message,
            reason=reason,
            status=status,
        )
    target = f"/portal/tickets/{ticket_id}?cancelled=1&lang={Lang.of(lang).value}"
    return RedirectResponse(target, status_code=303)
