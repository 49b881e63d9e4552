"""The operators' console (运营控制台): server-rendered pages, Chinese first.

Jinja2 templates with autoescaping, one small stylesheet and a few lines of script,
all served by meterpay itself (no CDN). Pages are thin like the API's routes: parse,
call one service, render. ``mount`` builds the template environment when the app is
created (nothing at import time) and adds the pages and the static files.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from meterpay.web.console import (
    admin_pages,
    control_action_pages,
    control_pages,
    counter_pages,
    dashboard_pages,
    import_pages,
    job_pages,
    place_pages,
    routes,
    tariff_pages,
    ticket_pages,
)
from meterpay.web.console.templating import console_templates

STATIC_PATH = "/console/static"


def mount(app: FastAPI) -> None:
    app.state.console_templates = console_templates(static=STATIC_PATH)
    for module in (
        dashboard_pages,
        place_pages,
        routes,
        counter_pages,
        ticket_pages,
        tariff_pages,
        control_pages,
        control_action_pages,
        import_pages,
        job_pages,
        admin_pages,
    ):
        app.include_router(module.router)
    app.mount(
        STATIC_PATH,
        StaticFiles(packages=[("meterpay.web.console", "static")]),
        name="console-static",
    )
