"""The console's template environment: autoescaped HTML, undefined names fail loudly
(a misspelt field is an error in the tests, never an empty cell), and the formats and
labels every page uses."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from meterpay.web.console.formats import iso, yuan
from meterpay.web.console.labels import cause_key
from meterpay.web.console.navigation import nav_for


def console_templates(*, static: str) -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("meterpay.web.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["yuan"] = yuan
    env.filters["iso"] = iso
    env.globals["cause_key"] = cause_key
    env.globals["here"] = here
    env.globals["nav_for"] = nav_for
    env.globals["static"] = static
    env.globals["version"] = version("meterpay")  # the static files' cache key
    return Jinja2Templates(env=env)


def render(request: Request, name: str, context: dict[str, Any]) -> Response:
    """A page; it knows who is signed in (``me``) and the session's CSRF token (``csrf``),
    which every form that changes something carries."""
    templates: Jinja2Templates = request.app.state.console_templates
    me = getattr(request.state, "principal", None)
    found = {"me": me, "csrf": me.csrf_token if me is not None else ""} | context
    return templates.TemplateResponse(request, name, found, headers={"Cache-Control": "no-store"})


def here(request: Request, **changes: Any) -> str:
    """This page's path and query with some parameters changed (``None`` drops one);
    relative, so it stays right behind a proxy."""
    params = dict(request.query_params)
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = str(value)
    return request.url.path + ("?" + urlencode(params) if params else "")
