"""The FastAPI application: routes are thin, errors are JSON with stable codes.

Domain errors map to HTTP status codes here and nowhere else:
``invalid_input`` 422, ``not_found`` 404, ``unauthorized`` 401, ``forbidden`` 403,
``conflict``/``idempotency_conflict`` 409, ``too_many_attempts`` 429 (with
``Retry-After``); request validation errors 422 with the failing fields. The
framework's own HTTP errors (an unknown path 404, a wrong method 405) use the same
``{"error": {"code", "message"}}`` body. A browser that is not signed in and asks for
a page (not ``/api/``) is sent to the sign-in page instead of a 401.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from meterpay.kernel.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyAttempts,
    Unauthorized,
)
from meterpay.kernel.money import InvalidAmount
from meterpay.kernel.quantity import InvalidQuantity
from meterpay.runtime import Runtime
from meterpay.web import console, portal, sandbox_routes, sign_in_pages
from meterpay.web.api import (
    arrears_routes,
    auth_routes,
    control_routes,
    counter_routes,
    notify_routes,
    payment_routes,
    push_routes,
    routes,
    settlement_routes,
    ticket_routes,
)
from meterpay.web.guard import BodyTooLarge, PasswordChangeRequired, principal_of, public
from meterpay.web.sign_in_pages import error_page, sign_in_url

_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (BodyTooLarge, 413),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 422),
    (Unauthorized, 401),
    (Forbidden, 403),
    (TooManyAttempts, 429),
)
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def create_app(rt: Runtime) -> FastAPI:
    app = FastAPI(
        title="meterpay",
        version="0.1.0",
        description="物业水电预付费系统 API — prepaid water and electricity for property managers.",
    )
    app.state.runtime = rt
    app.include_router(routes.router, prefix="/api/v1")
    app.include_router(notify_routes.router, prefix="/api/v1")
    # Platforms (CTWing, OneNET) sign their pushes themselves: no bearer dependency there.
    app.include_router(push_routes.router, prefix="/api/v1")
    app.include_router(control_routes.router, prefix="/api/v1")
    app.include_router(arrears_routes.router, prefix="/api/v1")
    app.include_router(payment_routes.router, prefix="/api/v1")
    app.include_router(counter_routes.router, prefix="/api/v1")
    app.include_router(settlement_routes.router, prefix="/api/v1")
    app.include_router(auth_routes.router, prefix="/api/v1")
    app.include_router(ticket_routes.router, prefix="/api/v1")
    # Providers sign their notifications themselves: no bearer dependency there.
    app.include_router(payment_routes.notify_router, prefix="/api/v1")
    app.include_router(sign_in_pages.router)
    console.mount(app)
    portal.mount(app)
    sandbox_routes.mount(app, rt)  # only when MP_SANDBOX_PAY built a sandbox
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(InvalidAmount, _value_error)
    app.add_exception_handler(InvalidQuantity, _value_error)

    @app.get(
        "/",
        dependencies=[public("the front door: says where to go")],
        include_in_schema=False,
        response_model=None,
    )
    async def index(request: Request) -> Response | dict[str, str]:
        """A browser goes to its home (the console for staff, the portal for owners) or
        to the sign-in page; anything else gets the JSON index."""
        if "text/html" not in request.headers.get("accept", ""):
            return {"name": "meterpay", "api": "/api/v1", "openapi": "/openapi.json"}
        me = await principal_of(request)
        if me is None:
            return RedirectResponse("/sign-in", status_code=303)
        home = sign_in_pages.OWNER_HOME if me.is_owner else sign_in_pages.STAFF_HOME
        return RedirectResponse(home, status_code=303)

    return app


def _error(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if details:
        body["error"]["details"] = details
    return JSONResponse(status_code=status, content=body, headers=headers)


async def _domain_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, DomainError):  # registered for DomainError only
        raise exc
    status = next((s for kind, s in _STATUS if isinstance(exc, kind)), 422)
    if status == 401 and _wants_page(request):
        return RedirectResponse(sign_in_url(request), status_code=303)
    if isinstance(exc, PasswordChangeRequired) and _wants_page(request):
        return RedirectResponse("/account/password?next=" + request.url.path, status_code=303)
    if status in (403, 404) and _wants_page(request):
        return error_page(request, status, exc.message)
    headers: dict[str, str] = {}
    if status == 401:  # RFC 7235: a 401 names the scheme the client should use
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, TooManyAttempts):
        headers["Retry-After"] = str(max(1, exc.retry_after_s))
    return _error(status, exc.code, exc.message, exc.details or None, headers or None)


def _wants_page(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/"):
        return False
    return request.method == "GET" or "text/html" in request.headers.get("accept", "")


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for this type only
        raise exc
    fields = [
        {"field": ".".join(str(p) for p in e["loc"][1:]) or "body", "problem": e["msg"]}
        for e in exc.errors()
    ]
    return _error(422, "invalid_input", "the request is not valid", fields)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, HTTPException):  # registered for this type only
        raise exc
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return _error(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _value_error(_: Request, exc: Exception) -> JSONResponse:
    return _error(422, "invalid_input", str(exc))
