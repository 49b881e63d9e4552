"""Request dependencies: the runtime and the caller (API token)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from meterpay.kernel.errors import Unauthorized
from meterpay.runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The actor name written to the audit log; checks the bearer token if any are set."""
    tokens = runtime(request).settings.token_set
    if not tokens:
        return "api"
    scheme, _, presented = (authorization or "").strip().partition(" ")
    presented = presented.strip()
    if scheme.lower() == "bearer" and presented:  # the scheme is case-insensitive (RFC 7235)
        for token in tokens:
            if hmac.compare_digest(presented, token):
                return "api:" + hashlib.sha256(token.encode()).hexdigest()[:8]
    raise Unauthorized("a valid API token is required: Authorization: Bearer <token>")


Rt = Annotated[Runtime, Depends(runtime)]
Actor = Annotated[str, Depends(caller)]
