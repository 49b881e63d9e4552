"""The account page and its top-up (充值): the owner picks an amount and a way to pay
that is configured here — the sandbox (demo) opens its pay page, Alipay its payment
link (which opens the Alipay app), WeChat Pay a JSAPI payment inside WeChat's browser
(offered when the owner's WeChat openid is known; inside WeChat without one, 用微信支付
gets it first through WeChat's web authorization: ``wechat_link``). One order per
submission; the money arrives only with the provider's verified notification, never
from this page."""

from __future__ import annotations

import asyncio
from typing import Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from meterpay.auth.model import Permission as P
from meterpay.kernel.errors import DomainError, InvalidInput
from meterpay.payments import service as payments
from meterpay.payments import wechat_payer
from meterpay.payments.provider import Channel, ProviderName
from meterpay.payments.registry import takes_payments
from meterpay.reports import owner
from meterpay.runtime import Runtime
from meterpay.web.api.deps import Actor, Rt
from meterpay.web.console.formats import SiteClock
from meterpay.web.console.labels import Lang
from meterpay.web.guard import allow
from meterpay.web.portal.forms import amount_of, form_fields
from meterpay.web.portal.templating import render
from meterpay.web.portal.words import Words

router = APIRouter()
QUICK_AMOUNTS: Final = ("50", "100", "200", "500")
_ORDER: Final = (ProviderName.WECHAT, ProviderName.ALIPAY, ProviderName.SANDBOX)


def providers_for(rt: Runtime, account: owner.OwnedAccount) -> list[ProviderName]:
    """The ways this owner can pay for this account: the providers with a merchant for its
    site (its own, or the default); WeChat only with an openid."""
    return [
        name
        for name in _ORDER
        if takes_payments(rt, name, account.site_code)
        and (name is not ProviderName.WECHAT or account.payer_openid)
    ]


def in_wechat(request: Request) -> bool:
    """WeChat's own browser (its User-Agent says ``MicroMessenger``)."""
    return "MicroMessenger" in request.headers.get("user-agent", "")


def offers_wechat_link(request: Request, rt: Runtime, account: owner.OwnedAccount) -> bool:
    """用微信支付 through web authorization: an owner inside WeChat, no openid known yet,
    and the site's WeChat merchant has its official account's AppSecret here."""
    me = getattr(request.state, "principal", None)
    return (
        in_wechat(request)
        and bool(me and me.is_owner)
        and not account.payer_openid
        and account.status == "open"
        and wechat_payer.may_authorize(rt, account.account_id)
    )


def account_response(
    request: Request,
    rt: Runtime,
    account: owner.OwnedAccount,
    lang: str | None,
    *,
    problem: str = "",
    notice: str = "",
    status: int = 200,
) -> Response:
    language = Lang.of(lang)
    context: dict[str, Any] = {
        "w": Words(language),
        "lang": language,
        "clock": SiteClock.of(account.timezone, rt.clock.now(), language),
        "a": account,
        "providers": providers_for(rt, account),
        "wechat_link": offers_wechat_link(request, rt, account),
        "quick": QUICK_AMOUNTS,
        "problem": problem,
        "notice": notice,
    }
    return render(request, "account.html", context, status)


@router.post(
    "/accounts/{account_id}/top-up",
    dependencies=[allow(P.TOPUP, owners=True)],
    response_class=HTMLResponse,
)
async def top_up(request: Request, rt: Rt, actor: Actor, account_id: int) -> Response:
    """An order at the chosen provider, then where the owner pays it."""
    form = await form_fields(request)
    lang = form.get("lang")
    account = await asyncio.to_thread(owner.owned_account, rt, account_id)
    try:
        provider = _provider(form.get("provider", ""), providers_for(rt, account))
        jsapi = provider is ProviderName.WECHAT
        order = await asyncio.to_thread(
            payments.create_order,
            rt,
            account_id=account_id,
            amount=amount_of(form.get("other") or form.get("amount", "")),
            provider=provider,
            channel=Channel.JSAPI if jsapi else Channel.NATIVE,
            requested_by=actor,
            payer_openid=account.payer_openid if jsapi else None,
        )
    except DomainError as exc:
        return account_response(request, rt, account, lang, problem=exc.message, status=422)
    back = f"/portal/accounts/{account_id}?lang={Lang.of(lang).value}"
    if provider is ProviderName.SANDBOX and order.pay_url:
        return RedirectResponse(f"{order.pay_url}?back={quote(back, safe='/')}", status_code=303)
    if provider is ProviderName.ALIPAY and order.code_url:
        return RedirectResponse(order.code_url, status_code=303)
    language = Lang.of(lang)
    return render(
        request,
        "wechat_pay.html",
        {
            "w": Words(language),
            "lang": language,
            "a": account,
            "order": order,
            "jsapi": order.jsapi_params,
            "back": back,
        },
    )


def _provider(text: str, offered: list[ProviderName]) -> ProviderName:
    for name in offered:
        if name.value == text:
            return name
    if not text and len(offered) == 1:
        return offered[0]
    raise InvalidInput("choose a way to pay that is offered here", field="provider")
