"""Signing in and out in the browser: staff at /sign-in (user name, password, TOTP),
owners at /portal/sign-in (mobile number and SMS code, or password), a forced or
chosen password change at /account/password.

The sign-in forms are protected against login CSRF by a double-submit token: the page
sets a random ``mp_pre`` cookie and puts the same value in the form; a POST whose field
and cookie differ is refused. After sign-in the session cookie is HttpOnly, SameSite=Lax
and Secure when the deployment is served over HTTPS; ``next`` only ever leads to a path
of this site.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Final
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from meterpay.auth import owner_codes, users
from meterpay.auth import service as auth
from meterpay.auth.rules import OWNER_SESSION
from meterpay.auth.secrets import new_token, same
from meterpay.kernel.errors import DomainError, InvalidInput, TooManyAttempts
from meterpay.web.api.deps import Rt
from meterpay.web.console.labels import Lang, Words
from meterpay.web.console.templating import render
from meterpay.web.guard import SESSION_COOKIE, Caller, public

router = APIRouter(include_in_schema=False)
PRE_COOKIE: Final = "mp_pre"
PAGE = public("the sign-in pages: anyone may try to sign in")
STAFF_HOME: Final = "/console"
OWNER_HOME: Final = "/portal"


def sign_in_url(request: Request) -> str:
    """Where a browser that is not signed in goes: the owners' or the staff's page."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    page = "/portal/sign-in" if request.url.path.startswith("/portal") else "/sign-in"
    return f"{page}?next={quote(target, safe='')}"


def _local(next_path: str | None, default: str) -> str:
    """Only a path of this site: never another host (open redirects)."""
    path = (next_path or "").strip()
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return default
    return path


def _client(request: Request) -> auth.Client:
    return auth.Client(
        request.client.host if request.client else None, request.headers.get("user-agent")
    )


async def _form(request: Request) -> dict[str, str]:
    text = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0].strip() for k, v in parse_qs(text, max_num_fields=20).items()}


def _page(request: Request, name: str, context: dict[str, object], status: int = 200) -> Response:
    pre = request.cookies.get(PRE_COOKIE) or new_token()
    language = Lang.of(str(context.get("lang_value") or request.query_params.get("lang") or ""))
    response = render(request, name, {"w": Words(language), "lang": language, "pre": pre} | context)
    response.status_code = status
    response.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="strict", secure=_secure(request))
    return response


def _secure(request: Request) -> bool:
    rt = request.app.state.runtime
    return str(rt.settings.public_url).startswith("https://")


def _pre_ok(request: Request, form: dict[str, str]) -> bool:
    cookie = request.cookies.get(PRE_COOKIE, "")
    return bool(cookie) and same(cookie, form.get("csrf_token", ""))


def _signed_in(request: Request, signed: auth.SignedIn, home: str, next_path: str) -> Response:
    target = _local(next_path, home)
    if signed.must_change_password:
        target = "/account/password?" + urlencode({"next": target})
    response = RedirectResponse(target, status_code=303)
    # staff: a browser-session cookie (gone when the browser closes); owners on their
    # phones stay signed in for the session's whole life. The server enforces both.
    keep = int(OWNER_SESSION.absolute.total_seconds()) if signed.principal.is_owner else None
    response.set_cookie(
        SESSION_COOKIE,
        signed.token,
        max_age=keep,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(PRE_COOKIE)
    return response


def _problem(exc: DomainError) -> tuple[str, int]:
    return exc.message, 429 if isinstance(exc, TooManyAttempts) else 401 if isinstance(
        exc, auth.SignInFailed
    ) else 422


# --- staff ------------------------------------------------------------------------------


@router.get("/sign-in", dependencies=[PAGE], response_class=HTMLResponse)
def staff_page(
    request: Request, next: Annotated[str, Query(max_length=500)] = "", lang: str | None = None
) -> Response:
    return _page(
        request, "sign_in.html", {"next": next, "username": "", "totp": False, "problem": ""}
    )


@router.post("/sign-in", dependencies=[PAGE], response_class=HTMLResponse)
async def staff_sign_in(request: Request, rt: Rt) -> Response:
    form = await _form(request)
    context: dict[str, object] = {
        "next": form.get("next", ""),
        "username": form.get("username", ""),
        "totp": bool(form.get("totp")),
        "lang_value": form.get("lang", ""),
        "problem": "",
    }
    if not _pre_ok(request, form):
        context["problem"] = "the page has expired: please sign in again"
        return _page(request, "sign_in.html", context, 403)
    try:
        signed = await asyncio.to_thread(
            auth.sign_in,
            rt,
            form.get("username", ""),
            form.get("password", ""),
            totp=form.get("totp", ""),
            client=_client(request),
        )
    except auth.SecondFactorNeeded as exc:
        context |= {"totp": True, "problem": exc.message}
        return _page(request, "sign_in.html", context, 401)
    except DomainError as exc:
        context["problem"], status = _problem(exc)
        return _page(request, "sign_in.html", context, status)
    return _signed_in(request, signed, STAFF_HOME, form.get("next", ""))


@router.post("/sign-out", response_class=HTMLResponse)
async def sign_out(request: Request, rt: Rt, me: Caller) -> Response:
    await asyncio.to_thread(auth.sign_out, rt, me, client=_client(request))
    response = RedirectResponse("/portal/sign-in" if me.is_owner else "/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- owners -----------------------------------------------------------------------------


@router.get("/portal/sign-in", dependencies=[PAGE], response_class=HTMLResponse)
def owner_page(
    request: Request, next: Annotated[str, Query(max_length=500)] = "", lang: str | None = None
) -> Response:
    return _page(request, "owner_sign_in.html", _owner_context(next, ""))


def _owner_context(next_path: str, phone: str, **more: object) -> dict[str, object]:
    return {"next": next_path, "phone": phone, "sent": False, "shown": None, "problem": ""} | more


@router.post("/portal/sign-in/code", dependencies=[PAGE], response_class=HTMLResponse)
async def owner_code(request: Request, rt: Rt) -> Response:
    form = await _form(request)
    context = _owner_context(
        form.get("next", ""), form.get("phone", ""), lang_value=form.get("lang")
    )
    if not _pre_ok(request, form):
        context["problem"] = "the page has expired: please try again"
        return _page(request, "owner_sign_in.html", context, 403)
    try:
        sent = await asyncio.to_thread(
            owner_codes.request_code, rt, form.get("phone", ""), client=_client(request)
        )
    except DomainError as exc:
        context["problem"], status = _problem(exc)
        return _page(request, "owner_sign_in.html", context, status)
    context |= {"sent": True, "shown": sent.shown, "phone": sent.phone}
    return _page(request, "owner_sign_in.html", context)


@router.post("/portal/sign-in", dependencies=[PAGE], response_class=HTMLResponse)
async def owner_sign_in(request: Request, rt: Rt) -> Response:
    form = await _form(request)
    context = _owner_context(
        form.get("next", ""), form.get("phone", ""), lang_value=form.get("lang")
    )
    if not _pre_ok(request, form):
        context["problem"] = "the page has expired: please try again"
        return _page(request, "owner_sign_in.html", context, 403)
    try:
        if form.get("code"):
            signed = await asyncio.to_thread(
                owner_codes.sign_in_with_code,
                rt,
                form.get("phone", ""),
                form["code"],
                client=_client(request),
            )
        elif form.get("password"):
            signed = await asyncio.to_thread(
                auth.sign_in_owner,
                rt,
                form.get("phone", ""),
                form["password"],
                client=_client(request),
            )
        else:
            raise InvalidInput("enter the SMS code, or your password")
    except DomainError as exc:
        context["problem"], status = _problem(exc)
        return _page(request, "owner_sign_in.html", context, status)
    return _signed_in(request, signed, OWNER_HOME, form.get("next", ""))


# --- one's own password -------------------------------------------------------------------


@router.get("/account/password", response_class=HTMLResponse)
def password_page(
    request: Request, me: Caller, next: Annotated[str, Query(max_length=500)] = ""
) -> Response:
    return _page(
        request,
        "password.html",
        {"next": next, "forced": me.must_change_password, "problem": ""},
    )


@router.post("/account/password", response_class=HTMLResponse)
async def change_password(request: Request, rt: Rt, me: Caller) -> Response:
    form = await _form(request)
    context: dict[str, object] = {
        "next": form.get("next", ""),
        "forced": me.must_change_password,
        "lang_value": form.get("lang"),
        "problem": "",
    }
    if form.get("password") != form.get("again"):
        context["problem"] = Words(Lang.of(form.get("lang"))).plain("password.mismatch")
        return _page(request, "password.html", context, 422)
    try:
        await asyncio.to_thread(
            users.change_own_password,
            rt,
            me,
            form.get("old_password", ""),
            form.get("password", ""),
        )
    except DomainError as exc:
        context["problem"] = exc.message
        return _page(request, "password.html", context, 422)
    home = OWNER_HOME if me.is_owner else STAFF_HOME
    return RedirectResponse(_local(form.get("next"), home), status_code=303)


def error_page(request: Request, status: int, message: str) -> Response:
    language = Lang.of(request.query_params.get("lang"))
    response = render(
        request,
        "error.html",
        {"w": Words(language), "lang": language, "status": status, "message": message},
    )
    response.status_code = status
    return response
