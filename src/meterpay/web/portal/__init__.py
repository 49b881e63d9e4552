"""The owners' portal (业主端): mobile-first pages under /portal that fit inside WeChat's
browser — balances, top-up, usage, bills, messages, repair requests, settings. Served by
meterpay itself (no CDN; ECharts and htmx from the console's vendor folder); ``mount``
builds the template environment and adds the pages and the static files when the app
is created (nothing at import time)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from meterpay.web.portal import routes, ticket_pages, wechat_link
from meterpay.web.portal.templating import portal_templates

STATIC_PATH = "/portal/static"
VENDOR_PATH = "/console/static/vendor"


def mount(app: FastAPI) -> None:
    app.state.portal_templates = portal_templates(static=STATIC_PATH, vendor=VENDOR_PATH)
    app.include_router(routes.router)
    app.include_router(ticket_pages.router)
    app.include_router(wechat_link.router)
    app.mount(
        STATIC_PATH,
        StaticFiles(packages=[("meterpay.web.portal", "static")]),
        name="portal-static",
    )
