"""The counter (收费台) and the demo's online top-up, as console pages: find an account,
take cash or a POS payment and print its receipt; or start a top-up the owner pays on
the sandbox provider's page. Parse, call one service, redirect.

Forms are read from the urlencoded body by hand (no multipart parser needed). The
services run in a thread: the sandbox's API lives in this same server. Each form
carries a one-time key made when it was shown, so a double click or a resubmitted page
takes the money once (the service's idempotency key).
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import InvalidOperation
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from meterpay.auth.model import Permission as P
from meterpay.kernel.errors import DomainError, InvalidInput
from meterpay.kernel.money import InvalidAmount, Money
from meterpay.ledger import cash
from meterpay.ledger.cash_model import PaymentMethod
from meterpay.payments import service as payments
from meterpay.payments.provider import Channel, ProviderName
from meterpay.sites.search import find_accounts
from meterpay.web.api.deps import Actor, Rt
from meterpay.web.console.labels import Lang, Words
from meterpay.web.console.templating import render
from meterpay.web.guard import Caller, allow

router = APIRouter(prefix="/console", include_in_schema=False)


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0].strip() for k, v in parse_qs(body, max_num_fields=20).items()}


def _amount(text: str) -> Money:
    try:
        return Money.from_yuan(text)
    except (InvalidAmount, InvalidOperation, ValueError) as exc:
        raise InvalidInput(f"not an amount of money: {text!r}", field="amount") from exc


def _page(
    request: Request,
    rt: Rt,
    q: str,
    lang: str | None,
    *,
    sites: frozenset[int] | None,
    problem: str = "",
    status: int = 200,
) -> Response:
    language = Lang.of(lang)
    response = render(
        request,
        "counter.html",
        {
            "w": Words(language),
            "lang": language,
            "q": q,
            "found": find_accounts(rt, q, site_ids=sites) if q else [],
            "key": uuid.uuid4().hex,
            "problem": problem,
            "sandbox": ProviderName.SANDBOX in rt.payments,
        },
    )
    response.status_code = status
    return response


@router.get(
    "/counter", dependencies=[allow(P.COUNTER, own_filter=True)], response_class=HTMLResponse
)
def counter_page(
    request: Request,
    rt: Rt,
    me: Caller,
    q: Annotated[str, Query(max_length=64)] = "",
    lang: str | None = None,
) -> Response:
    """收费台: find the account by number, unit or phone (on the cashier's sites); take
    the money."""
    return _page(request, rt, q, lang, sites=me.sites_with(P.COUNTER))


@router.post("/counter", dependencies=[allow(P.COUNTER)], response_class=HTMLResponse)
async def take_payment(request: Request, rt: Rt, actor: Actor, me: Caller) -> Response:
    form = await _form(request)
    try:
        issued = await asyncio.to_thread(
            cash.take_payment,
            rt,
            account_id=int(form.get("account_id", "0") or 0),
            amount=_amount(form.get("amount", "")),
            method=PaymentMethod(form.get("method", "cash")),
            idempotency_key=form.get("key", ""),
            cashier=actor,
            note=form.get("note", "")[:200],
        )
    except (DomainError, ValueError) as exc:
        return _page(
            request,
            rt,
            form.get("q", ""),
            form.get("lang"),
            sites=me.sites_with(P.COUNTER),
            problem=str(exc),
            status=422,
        )
    return RedirectResponse(f"/console/receipts/{issued.receipt.receipt_no}", status_code=303)


@router.post("/topup", dependencies=[allow(P.TOPUP)], response_class=HTMLResponse)
async def online_top_up(request: Request, rt: Rt, actor: Actor, me: Caller) -> Response:
    """The owner's online top-up (the demo's sandbox): an order, then its pay page."""
    form = await _form(request)
    try:
        order = await asyncio.to_thread(
            payments.create_order,
            rt,
            account_id=int(form.get("account_id", "0") or 0),
            amount=_amount(form.get("amount", "")),
            provider=ProviderName.SANDBOX,
            channel=Channel.NATIVE,
            requested_by=actor,
        )
    except (DomainError, ValueError) as exc:
        return _page(
            request,
            rt,
            form.get("q", ""),
            form.get("lang"),
            sites=me.sites_with(P.COUNTER),
            problem=str(exc),
            status=422,
        )
    return RedirectResponse(order.pay_url or "/console/counter", status_code=303)
