"""用微信支付 for an owner inside WeChat whose openid is not known yet: the button sends
the browser through WeChat's web authorization (snsapi_base) and back; the openid is
stored on the owner's own records and the top-up form then offers WeChat Pay. Parse,
call one service, render.

Owners only (staff have no WeChat of the owner's to link). The state sent to WeChat is
bound to the session; its nonce also sits in a cookie of this account's return path
(HttpOnly, SameSite=Lax: WeChat's redirect back is a top-level GET, which Lax lets
through), and the return clears it whatever the outcome, so a state is good once."""

from __future__ import annotations

import asyncio
from typing import Annotated, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from meterpay.kernel.errors import DomainError, NotFound
from meterpay.payments import wechat_payer
from meterpay.payments.wechat_oauth import STATE_TTL, BadOauthState, WechatOauthError
from meterpay.reports import owner
from meterpay.runtime import Runtime
from meterpay.web.api.deps import Rt
from meterpay.web.console.labels import Lang
from meterpay.web.guard import Caller, allow
from meterpay.web.portal import topup
from meterpay.web.portal.forms import form_fields
from meterpay.web.portal.words import Words

router = APIRouter(prefix="/portal", include_in_schema=False)
OWNERS = allow(None, owners=True)
COOKIE: Final = "mp_wx_oauth"


def _return_path(account_id: int) -> str:
    return f"/portal/accounts/{account_id}/wechat-pay"


@router.post(
    "/accounts/{account_id}/wechat-pay/authorize",
    dependencies=[OWNERS],
    response_class=HTMLResponse,
)
async def authorize(request: Request, rt: Rt, me: Caller, account_id: int) -> Response:
    """To WeChat's authorize page, with a fresh state for this session and account."""
    lang = Lang.of((await form_fields(request)).get("lang"))
    back = f"{rt.settings.public_url.rstrip('/')}{_return_path(account_id)}/authorized"
    try:
        found = await asyncio.to_thread(
            wechat_payer.start_authorization,
            rt,
            account_id,
            customer_ids=me.customer_ids,
            session_key=me.csrf_token,
            redirect_uri=f"{back}?lang={lang.value}",
        )
    except NotFound:
        raise
    except DomainError as exc:
        return await asyncio.to_thread(
            _problem, request, rt, account_id, lang, message=exc.message, status=422
        )
    response = RedirectResponse(found.url, status_code=303)
    response.set_cookie(
        COOKIE,
        found.nonce,
        max_age=int(STATE_TTL.total_seconds()),
        path=_return_path(account_id),
        httponly=True,
        samesite="lax",
        secure=rt.settings.public_url.startswith("https://"),
    )
    return response


@router.get(
    "/accounts/{account_id}/wechat-pay/authorized",
    dependencies=[OWNERS],
    response_class=HTMLResponse,
)
async def authorized(
    request: Request,
    rt: Rt,
    me: Caller,
    account_id: int,
    *,
    code: Annotated[str, Query(max_length=512)] = "",
    state: Annotated[str, Query(max_length=128)] = "",
    lang: str | None = None,
) -> Response:
    """WeChat's return: the code exchanged for the openid, stored, back to the top-up.
    A bad or replayed state (400) or WeChat's refusal (502) is said on the account page
    and stores nothing."""
    language = Lang.of(lang)
    response: Response
    try:
        await asyncio.to_thread(
            wechat_payer.link_payer,
            rt,
            account_id=account_id,
            code=code,
            state=state,
            cookie_nonce=request.cookies.get(COOKIE, ""),
            session_key=me.csrf_token,
            customer_ids=me.customer_ids,
            by=me.name,
            source_ip=request.client.host if request.client else None,
        )
        target = f"/portal/accounts/{account_id}?wechat=linked&lang={language.value}"
        response = RedirectResponse(target, status_code=303)
    except NotFound:
        raise
    except DomainError as exc:
        status = 400 if isinstance(exc, BadOauthState) else 422
        status = 502 if isinstance(exc, WechatOauthError) else status
        response = await asyncio.to_thread(
            _problem, request, rt, account_id, language, message=exc.message, status=status
        )
    response.delete_cookie(COOKIE, path=_return_path(account_id))
    return response


def _problem(
    request: Request, rt: Runtime, account_id: int, lang: Lang, *, message: str, status: int
) -> Response:
    account = owner.owned_account(rt, account_id)
    problem = f"{Words(lang).plain('wechat.failed')}: {message}"
    return topup.account_response(request, rt, account, lang.value, problem=problem, status=status)
