"""The portal's template environment (its own templates, the console's formats):
autoescaped, undefined names fail loudly; ``render`` adds who is signed in (``me``) and
the session's CSRF token (``csrf``) that every form carries."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from meterpay.web.console.formats import iso, yuan
from meterpay.web.console.templating import here
from meterpay.web.portal.words import component_key


def portal_templates(*, static: str, vendor: str) -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("meterpay.web.portal", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["yuan"] = yuan
    env.filters["iso"] = iso
    env.globals["here"] = here
    env.globals["component_key"] = component_key
    env.globals["static"] = static
    env.globals["vendor"] = vendor
    env.globals["version"] = version("meterpay")  # the static files' cache key
    return Jinja2Templates(env=env)


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    templates: Jinja2Templates = request.app.state.portal_templates
    me = getattr(request.state, "principal", None)
    found = {"me": me, "csrf": me.csrf_token if me is not None else ""} | context
    return templates.TemplateResponse(
        request, name, found, status_code=status, headers={"Cache-Control": "no-store"}
    )
