"""Request dependencies: the runtime, and the name the audit log records for the caller
(who the caller is, and whether they may, is ``web.guard``'s)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from meterpay.runtime import Runtime
from meterpay.web.guard import Caller


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def actor_name(principal: Caller) -> str:
    return principal.name


Rt = Annotated[Runtime, Depends(runtime)]
Actor = Annotated[str, Depends(actor_name)]
