"""The FastAPI application: routes are thin, errors are JSON with stable codes.

Domain errors map to HTTP status codes here and nowhere else:
``invalid_input`` 422, ``not_found`` 404, ``unauthorized`` 401,
``conflict``/``idempotency_conflict`` 409; request validation errors 422 with
the failing fields. The framework's own HTTP errors (an unknown path 404, a
wrong method 405) use the same ``{"error": {"code", "message"}}`` body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from meterpay.kernel.errors import Conflict, DomainError, InvalidInput, NotFound, Unauthorized
from meterpay.kernel.money import InvalidAmount
from meterpay.kernel.quantity import InvalidQuantity
from meterpay.runtime import Runtime
from meterpay.web import console, sandbox_routes
from meterpay.web.api import (
    arrears_routes,
    control_routes,
    counter_routes,
    notify_routes,
    payment_routes,
    push_routes,
    routes,
    settlement_routes,
)

_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 422),
    (Unauthorized, 401),
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
    # Providers sign their notifications themselves: no bearer dependency there.
    app.include_router(payment_routes.notify_router, prefix="/api/v1")
    console.mount(app)
    sandbox_routes.mount(app, rt)  # only when MP_SANDBOX_PAY built a sandbox
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(InvalidAmount, _value_error)
    app.add_exception_handler(InvalidQuantity, _value_error)

    @app.get("/", include_in_schema=False, response_model=None)
    def index(request: Request) -> Response | dict[str, str]:
        """A browser goes to the console; anything else gets the JSON index."""
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/console/supply", status_code=303)
        return {"name": "meterpay", "api": "/api/v1", "openapi": "/openapi.json", "docs": "/docs"}

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


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, DomainError):  # registered for DomainError only
        raise exc
    status = next((s for kind, s in _STATUS if isinstance(exc, kind)), 422)
    # RFC 7235: a 401 names the scheme the client should use.
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return _error(status, exc.code, exc.message, exc.details or None, headers)


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
