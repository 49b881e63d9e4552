"""Console pages: the control page (拉闸合闸) — a site's arrears policy, an account's
thresholds and protection (保电), and the forms for group cut and restore, whose preview,
request and approval pages are ``control_action_pages``. Parse, call one service, render.

- A refused form shows the control page again with the problem, for the site or the
  account the form named (``control_page_again``); "not found" and "forbidden" go to
  the error page.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import FormData
from starlette.responses import Response

from meterpay.auth.model import Permission as P
from meterpay.auth.model import Principal
from meterpay.control import console_view as view
from meterpay.control import manual
from meterpay.control import service as control
from meterpay.control.model import RestoreStyle, ThresholdOverrides, WarningLevel
from meterpay.kernel.errors import DomainError, Forbidden, InvalidInput, NotFound
from meterpay.kernel.quantity import Utility
from meterpay.sites.model import Site
from meterpay.sites.site_choice import pick, sites_in_reach
from meterpay.web.api.deps import Rt
from meterpay.web.console.admin_forms import (
    answer,
    form_of,
    money,
    number,
    page_of,
    text,
)
from meterpay.web.guard import Caller, allow

router = APIRouter(prefix="/console", include_in_schema=False)
WRITE = allow(P.CONTROL_WRITE)


# --- the control page -----------------------------------------------------------------------


def control_context(
    rt: Rt, me: Principal, site: Site | None, sites: list[Site], **more: Any
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sites": sites,
        "site": site,
        "q": "",
        "matches": [],
        "account": None,
        "preview": None,
        "problem": "",
        "scopes": tuple(manual.Scope),
        "kinds": tuple(manual.ControlKind),
        "utilities": tuple(Utility),
        "restore_styles": tuple(RestoreStyle),
    }
    if site is None:
        return base | more
    return (
        base
        | {
            "policies": {u: control.policy_fields(control.policy(rt, site.id, u)) for u in Utility},
            "places": view.places_of(rt, site.id),
            "awaiting": manual.list_actions(
                rt, site_id=site.id, state=manual.ActionState.AWAITING_APPROVAL, limit=50
            ),
            "recent": manual.list_actions(rt, site_id=site.id, limit=20),
            "may_approve": me.can(P.CONTROL_APPROVE, site.id),
        }
        | more
    )


def site_for(rt: Rt, me: Principal, site_id: int | None) -> tuple[Site | None, list[Site]]:
    sites = sites_in_reach(rt, me.sites_with(P.CONTROL_WRITE))
    return pick(sites, site_id), sites


@router.get(
    "/control",
    dependencies=[allow(P.CONTROL_WRITE, own_filter=True)],
    response_class=HTMLResponse,
)
def control_page(
    request: Request,
    rt: Rt,
    me: Caller,
    *,
    site_id: int | None = None,
    account_id: int | None = None,
    q: str = "",
    lang: str | None = None,
) -> Response:
    """拉闸合闸: policy, an account's lines and protection, group actions and approvals."""
    account = control.supply_view(rt, account_id, events=0) if account_id else None
    site, sites = site_for(rt, me, account.account.site_id if account else site_id)
    page = page_of(request, rt.clock.now(), site, lang)
    matches = view.accounts_matching(rt, site.id, q) if site and q else []
    context = control_context(rt, me, site, sites, q=q[:64], matches=matches, account=account)
    return answer(request, "control.html", page.context(**context))


async def control_page_again(
    request: Request, rt: Rt, me: Principal, form: FormData, *, problem: str, status: int = 422
) -> Response:
    """The control page again with the problem, for the site or account the form named."""
    try:
        account_id = number(form, "account_id")
    except InvalidInput:
        account_id = None
    account = control.supply_view(rt, account_id, events=0) if account_id else None
    site_id = account.account.site_id if account else _site_id(form)
    site, sites = site_for(rt, me, site_id)
    page = page_of(request, rt.clock.now(), site, text(form, "lang"))
    context = control_context(rt, me, site, sites, account=account, problem=problem)
    return answer(request, "control.html", page.context(**context), status)


def _site_id(form: FormData) -> int | None:
    try:
        return number(form, "site_id")
    except InvalidInput:
        return None


def _utility(form: FormData) -> Utility:
    raw = text(form, "utility", 20)
    if raw not in set(Utility):
        raise InvalidInput("utility must be electricity or water", field="utility")
    return Utility(raw)


def _level(form: FormData, name: str) -> WarningLevel | None:
    """``<name>_kind`` amount|days and the value ``<name>``; blank: not given."""
    raw = text(form, name, 20)
    if not raw:
        return None
    if text(form, f"{name}_kind", 10) == "days":
        days = number(form, name)
        if days is None or days < 1:
            raise InvalidInput(f"{name}: a whole number of days >= 1", field=name)
        return WarningLevel.of_days(days)
    amount = money(form, name)
    assert amount is not None  # noqa: S101  not blank
    return WarningLevel.of_amount(amount)


def _policy_changes(form: FormData) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in ("warning1", "warning2"):
        level = _level(form, name)
        if level is not None:
            shown = str(level.amount) if level.amount is not None else None
            changes[name] = {"amount": shown, "days": level.days}
    for name in ("credit_limit", "cutoff_point", "restore_point", "alarm_debt_margin"):
        if (amount := money(form, name)) is not None:
            changes[name] = str(amount)
    for name in (
        "notice_period_minutes",
        "final_notice_lead_minutes",
        "alarm_max_deferral_minutes",
    ):
        if (minutes := number(form, name)) is not None:
            changes[name] = minutes
    start, end = text(form, "friendly_start", 5), text(form, "friendly_end", 5)
    changes["friendly_hours"] = {"start": start, "end": end} if start and end else None
    changes["no_cutoff_on_rest_days"] = form.get("no_cutoff_on_rest_days") == "on"
    changes["automatic_cutoff"] = form.get("automatic_cutoff") == "on"
    if style := text(form, "restore_style", 20):
        changes["restore_style"] = style
    return changes


@router.post("/control/policy", dependencies=[WRITE], response_class=HTMLResponse)
async def save_policy(request: Request, rt: Rt, me: Caller) -> Response:
    """A site's arrears settings for one utility; the new rules apply at once."""
    form = await form_of(request)
    try:
        site_id = number(form, "site_id")
        if site_id is None:
            raise InvalidInput("site_id is required", field="site_id")
        control.set_policy(
            rt,
            site_id,
            _utility(form),
            _policy_changes(form),
            by=me.name,
            reason=text(form, "reason", 500),
        )
    except DomainError as exc:
        if isinstance(exc, NotFound | Forbidden):
            raise
        return await control_page_again(request, rt, me, form, problem=exc.message)
    en = "&lang=en" if text(form, "lang") == "en" else ""
    return RedirectResponse(f"/console/control?site_id={site_id}{en}#policy", status_code=303)


@router.post("/control/thresholds", dependencies=[WRITE], response_class=HTMLResponse)
async def save_thresholds(request: Request, rt: Rt, me: Caller) -> Response:
    """An account's own lines (blank: the site's), checked against the site's as a whole."""
    form = await form_of(request)
    try:
        account_id = _account_id(form)
        overrides = ThresholdOverrides(
            warning1=_level(form, "warning1"),
            warning2=_level(form, "warning2"),
            credit_limit=money(form, "credit_limit"),
            cutoff_point=money(form, "cutoff_point"),
            restore_point=money(form, "restore_point"),
        )
        control.set_account_thresholds(
            rt, account_id, overrides, by=me.name, reason=text(form, "reason", 500)
        )
    except DomainError as exc:
        if isinstance(exc, NotFound | Forbidden):
            raise
        return await control_page_again(request, rt, me, form, problem=exc.message)
    return _to_account(form, account_id)


def _account_id(form: FormData) -> int:
    found = number(form, "account_id")
    if found is None:
        raise InvalidInput("account_id is required", field="account_id")
    return found


def _to_account(form: FormData, account_id: int) -> Response:
    en = "&lang=en" if text(form, "lang") == "en" else ""
    return RedirectResponse(
        f"/console/control?account_id={account_id}{en}#account", status_code=303
    )


@router.post("/control/protection", dependencies=[WRITE], response_class=HTMLResponse)
async def save_protection(request: Request, rt: Rt, me: Caller) -> Response:
    """保电 on (with a reason) or off (with a reason)."""
    form = await form_of(request)
    try:
        account_id = _account_id(form)
        reason = text(form, "reason", 500)
        if text(form, "protect") == "off":
            control.unprotect(rt, account_id, reason=reason, by=me.name)
        else:
            control.protect(rt, account_id, reason=reason, by=me.name)
    except DomainError as exc:
        if isinstance(exc, NotFound | Forbidden):
            raise
        return await control_page_again(request, rt, me, form, problem=exc.message)
    return _to_account(form, account_id)
