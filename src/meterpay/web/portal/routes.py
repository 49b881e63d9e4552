"""Portal pages under /portal: parse, call one service, render. No queries here.

Each page names the account in its path, so the guard lets an owner in only to their
own accounts (another owner's is "not found"); staff who may see the site see what the
owner sees (support on the phone). The home page lists the signed-in owner's own
accounts and so needs only a signed-in caller: staff are sent to the console.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from meterpay.auth.model import Permission as P
from meterpay.control.owner_settings import OwnerSettings, owner_settings, save_owner_settings
from meterpay.kernel.errors import DomainError, InvalidInput
from meterpay.notify import service as notify
from meterpay.notify.model import Language
from meterpay.reports import owner
from meterpay.web.api.deps import Actor, Rt
from meterpay.web.console.formats import SiteClock
from meterpay.web.console.labels import Lang
from meterpay.web.guard import Caller, allow
from meterpay.web.portal import topup
from meterpay.web.portal.forms import form_fields, warning_of
from meterpay.web.portal.templating import render
from meterpay.web.portal.words import Words

router = APIRouter(prefix="/portal", include_in_schema=False)
router.include_router(topup.router)
SEE = allow(P.SITE_READ, owners=True)
SETTINGS = allow(P.CONTROL_WRITE, owners=True)


def page_context(rt: Rt, lang: str | None, timezone: str = "Asia/Shanghai") -> dict[str, Any]:
    language = Lang.of(lang)
    return {
        "w": Words(language),
        "lang": language,
        "clock": SiteClock.of(timezone, rt.clock.now(), language),
    }


@router.get("", response_class=HTMLResponse)
def home(request: Request, rt: Rt, me: Caller, lang: str | None = None) -> Response:
    """我的账户: every account of the owner's customers, balance and days left first."""
    if not me.is_owner:
        return RedirectResponse("/console/supply", status_code=303)
    found = owner.accounts_of(rt, me.customer_ids)
    return render(request, "home.html", page_context(rt, lang) | {"accounts": found})


@router.get("/accounts/{account_id}", dependencies=[SEE], response_class=HTMLResponse)
def account_page(
    request: Request, rt: Rt, account_id: int, wechat: str = "", lang: str | None = None
) -> Response:
    """One account: balance, days of use left, supply state, top-up, the other pages."""
    account = owner.owned_account(rt, account_id)
    notice = "wechat.linked" if wechat == "linked" and account.payer_openid else ""
    return topup.account_response(request, rt, account, lang, notice=notice)


@router.get("/accounts/{account_id}/usage", dependencies=[SEE], response_class=HTMLResponse)
def usage_page(request: Request, rt: Rt, account_id: int, lang: str | None = None) -> Response:
    """用量: bars by day and by month (ECharts, served by meterpay), the same as tables."""
    found = owner.usage(rt, account_id)
    chart = {
        "unit": found.account.utility.unit,
        "daily": [[p.label, str(p.quantity), str(p.cost.yuan)] for p in found.daily],
        "monthly": [[p.label, str(p.quantity), str(p.cost.yuan)] for p in found.monthly],
    }
    context = page_context(rt, lang, found.account.timezone)
    return render(
        request,
        "usage.html",
        context | {"u": found, "a": found.account, "chart": chart},
    )


@router.get("/accounts/{account_id}/bills", dependencies=[SEE], response_class=HTMLResponse)
def bills_page(
    request: Request,
    rt: Rt,
    account_id: int,
    month: Annotated[str | None, Query(max_length=7)] = None,
    lang: str | None = None,
) -> Response:
    """账单: the last 12 months' totals; one month's breakdown by tariff component."""
    found = owner.usage(rt, account_id)
    chosen = _month(month) if month else _month(found.monthly[-1].label)
    bill = owner.month_bill(rt, account_id, chosen)
    context = page_context(rt, lang, found.account.timezone)
    return render(
        request,
        "bills.html",
        context | {"a": found.account, "months": found.monthly[::-1], "bill": bill},
    )


def _month(text: str) -> date:
    try:
        return date.fromisoformat(f"{text}-01")
    except ValueError:
        raise InvalidInput(f"{text!r} is not a month (YYYY-MM)", field="month") from None


@router.get("/accounts/{account_id}/messages", dependencies=[SEE], response_class=HTMLResponse)
def messages_page(request: Request, rt: Rt, account_id: int, lang: str | None = None) -> Response:
    """消息: the account's in-app messages, newest first, unread marked."""
    account = owner.owned_account(rt, account_id)
    found = notify.inbox(rt, account_id=account_id, limit=100)
    context = page_context(rt, lang, account.timezone)
    return render(request, "messages.html", context | {"a": account, "messages": found})


@router.post(
    "/accounts/{account_id}/messages/{message_id}/read",
    dependencies=[SEE],
    response_class=HTMLResponse,
)
async def read_message(request: Request, rt: Rt, account_id: int, message_id: int) -> Response:
    """Mark one message read; htmx swaps the message in place, a plain form reloads."""
    form = await form_fields(request)
    await asyncio.to_thread(notify.mark_read, rt, account_id=account_id, message_id=message_id)
    if request.headers.get("hx-request"):
        return Response(status_code=204)
    back = f"/portal/accounts/{account_id}/messages?lang={Lang.of(form.get('lang')).value}"
    return RedirectResponse(back, status_code=303)


@router.get("/accounts/{account_id}/settings", dependencies=[SEE], response_class=HTMLResponse)
def settings_page(
    request: Request, rt: Rt, account_id: int, saved: bool = False, lang: str | None = None
) -> Response:
    """设置: my two low-balance alerts and how to reach me."""
    account = owner.owned_account(rt, account_id)
    current = owner_settings(rt, account_id)
    return _settings(request, rt, account, current, lang, saved=saved)


def _settings(
    request: Request,
    rt: Rt,
    account: owner.OwnedAccount,
    current: OwnerSettings,
    lang: str | None,
    *,
    saved: bool = False,
    problem: str = "",
    status: int = 200,
) -> Response:
    context = page_context(rt, lang, account.timezone) | {
        "a": account,
        "s": current,
        "saved": saved,
        "problem": problem,
        "languages": tuple(Language),
    }
    return render(request, "settings.html", context, status)


@router.post(
    "/accounts/{account_id}/settings", dependencies=[SETTINGS], response_class=HTMLResponse
)
async def save_settings(request: Request, rt: Rt, actor: Actor, account_id: int) -> Response:
    form = await form_fields(request)
    lang = form.get("lang")
    try:
        wanted = OwnerSettings(
            warning_of(form.get("warning1_kind", ""), form.get("warning1", ""), "warning1"),
            warning_of(form.get("warning2_kind", ""), form.get("warning2", ""), "warning2"),
            form.get("email", "")[:254],
            Language.of(form.get("language")),
        )
        await asyncio.to_thread(save_owner_settings, rt, account_id, wanted, by=actor)
    except (DomainError, ValueError) as exc:
        account = await asyncio.to_thread(owner.owned_account, rt, account_id)
        current = await asyncio.to_thread(owner_settings, rt, account_id)
        message = exc.message if isinstance(exc, DomainError) else str(exc)
        return _settings(request, rt, account, current, lang, problem=message, status=422)
    target = f"/portal/accounts/{account_id}/settings?saved=1&lang={Lang.of(lang).value}"
    return RedirectResponse(target, status_code=303)
