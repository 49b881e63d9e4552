"""Console pages: a site's arrears policy, an account's thresholds and protection (保电),
and group cut/restore with the "who would be affected" preview, a reason, the second
person's approval and each command's lifecycle. Parse, call one service, render.

- The preview and the request name the target as ``scope`` + ``scope_id``, the pair
  the guard resolves to a site: a target of another site is "not found".
- The action page refreshes its commands (htmx, every few seconds) while any is still
  on its way, so a person can leave a group command and come back to it.
- Self-approval is refused by ``control.manual`` (409); the page only says so.
"""

from __future__ import annotations

from typing import Any, Final

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
    is_htmx,
    money,
    number,
    page_of,
    text,
)
from meterpay.web.guard import Caller, allow

router = APIRouter(prefix="/console", include_in_schema=False)
WRITE = allow(P.CONTROL_WRITE)
APPROVE = allow(P.CONTROL_APPROVE)
POLL_SECONDS: Final = 3


# --- the control page -----------------------------------------------------------------------


def _control_context(
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


def _site_for(rt: Rt, me: Principal, site_id: int | None) -> tuple[Site | None, list[Site]]:
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
    site, sites = _site_for(rt, me, account.account.site_id if account else site_id)
    page = page_of(request, rt.clock.now(), site, lang)
    matches = view.accounts_matching(rt, site.id, q) if site and q else []
    context = _control_context(rt, me, site, sites, q=q[:64], matches=matches, account=account)
    return answer(request, "control.html", page.context(**context))


async def _redo(
    request: Request, rt: Rt, me: Principal, form: FormData, *, problem: str, status: int = 422
) -> Response:
    """The control page again with the problem, for the site or account the form named."""
    try:
        account_id = number(form, "account_id")
    except InvalidInput:
        account_id = None
    account = control.supply_view(rt, account_id, events=0) if account_id else None
    site_id = account.account.site_id if account else _site_id(form)
    site, sites = _site_for(rt, me, site_id)
    page = page_of(request, rt.clock.now(), site, text(form, "lang"))
    context = _control_context(rt, me, site, sites, account=account, problem=problem)
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
        return await _redo(request, rt, me, form, problem=exc.message)
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
        return await _redo(request, rt, me, form, problem=exc.message)
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
        return await _redo(request, rt, me, form, problem=exc.message)
    return _to_account(form, account_id)


# --- group cut and restore ------------------------------------------------------------------


def _target(form: FormData) -> tuple[manual.Scope, int, manual.ControlKind]:
    scope, kind = text(form, "scope", 20), text(form, "kind", 20)
    scope_id = number(form, "scope_id")
    if scope not in set(manual.Scope) or scope_id is None:
        raise InvalidInput("choose what to act on (scope and scope_id)", field="scope")
    if kind not in set(manual.ControlKind):
        raise InvalidInput("kind must be cut or restore", field="kind")
    return manual.Scope(scope), scope_id, manual.ControlKind(kind)


@router.post("/control/preview", dependencies=[WRITE], response_class=HTMLResponse)
async def preview(request: Request, rt: Rt, me: Caller) -> Response:
    """Who a cut or restore would affect now (nothing is written): the meters to command,
    the protected accounts a cut skips, the meters without a switch."""
    form = await form_of(request)
    page = page_of(request, rt.clock.now(), lang=text(form, "lang"))
    try:
        scope, scope_id, kind = _target(form)
        found = manual.preview(rt, scope=scope, scope_id=scope_id, kind=kind)
    except DomainError as exc:
        if isinstance(exc, NotFound | Forbidden):
            raise
        if is_htmx(request):
            context = page.context(preview=None, problem=exc.message)
            return answer(request, "_fragment_preview.html", context)
        return await _redo(request, rt, me, form, problem=exc.message)
    if is_htmx(request):
        return answer(request, "_fragment_preview.html", page.context(preview=found, problem=""))
    site, sites = _site_for(rt, me, found.site_id)
    context = _control_context(rt, me, site, sites, preview=found)
    return answer(
        request,
        "control.html",
        page_of(request, rt.clock.now(), site, page.lang.value).context(**context),
    )


@router.post("/control/actions", dependencies=[WRITE], response_class=HTMLResponse)
async def request_action(request: Request, rt: Rt, me: Caller) -> Response:
    """Cut or restore now, or (a group cut) wait for a second person's approval."""
    form = await form_of(request)
    try:
        scope, scope_id, kind = _target(form)
        if form.get("confirm") != "yes":
            raise InvalidInput("tick the box to confirm", field="confirm")
        action = manual.request(
            rt,
            scope=scope,
            scope_id=scope_id,
            kind=kind,
            reason=text(form, "reason", 500),
            requested_by=me.name,
            override_protection=scope is manual.Scope.METER and form.get("override") == "yes",
        )
    except DomainError as exc:
        if isinstance(exc, NotFound | Forbidden):
            raise
        return await _redo(
            request,
            rt,
            me,
            form,
            problem=exc.message,
            status=409 if exc.code != "invalid_input" else 422,
        )
    en = "?lang=en" if text(form, "lang") == "en" else ""
    return RedirectResponse(f"/console/control/actions/{action.id}{en}", status_code=303)


def _action_context(rt: Rt, me: Principal, action_id: int) -> dict[str, Any]:
    action = manual.get(rt, action_id)
    commands = view.action_commands(rt, action_id)
    return {
        "action": action,
        "commands": commands,
        "in_flight": any(c.in_flight for c in commands),
        "poll": POLL_SECONDS,
        "may_approve": me.can(P.CONTROL_APPROVE, action.site_id),
        "mine": action.requested_by == me.name,
        "problem": "",
        "site": next(iter(sites_in_reach(rt, frozenset({action.site_id}))), None),
    }


@router.get("/control/actions/{action_id}", dependencies=[WRITE], response_class=HTMLResponse)
def action_page(
    request: Request, rt: Rt, me: Caller, action_id: int, lang: str | None = None
) -> Response:
    """One control action: who asked, why, who decided, and each command's lifecycle."""
    context = _action_context(rt, me, action_id)
    page = page_of(request, rt.clock.now(), context["site"], lang)
    return answer(request, "control_action.html", page.context(**context))


@router.get(
    "/control/actions/{action_id}/commands", dependencies=[WRITE], response_class=HTMLResponse
)
def action_commands(
    request: Request, rt: Rt, me: Caller, action_id: int, lang: str | None = None
) -> Response:
    """The commands' part of the action page, which htmx asks for while any is in flight."""
    context = _action_context(rt, me, action_id)
    page = page_of(request, rt.clock.now(), context["site"], lang)
    return answer(request, "_fragment_action_commands.html", page.context(**context))


async def _decide(
    request: Request, rt: Rt, me: Principal, action_id: int, approve: bool
) -> Response:
    form = await form_of(request)
    reason = text(form, "reason", 500)
    try:
        if approve:
            manual.approve(rt, action_id, approver=me.name, reason=reason)
        else:
            manual.reject(rt, action_id, by=me.name, reason=reason)
    except DomainError as exc:
        if isinstance(exc, NotFound | Forbidden):
            raise
        context = _action_context(rt, me, action_id) | {"problem": exc.message}
        page = page_of(request, rt.clock.now(), context["site"], text(form, "lang"))
        status = 422 if exc.code == "invalid_input" else 409
        return answer(request, "control_action.html", page.context(**context), status)
    en = "?lang=en" if text(form, "lang") == "en" else ""
    return RedirectResponse(f"/console/control/actions/{action_id}{en}", status_code=303)


@router.post(
    "/control/actions/{action_id}/approve", dependencies=[APPROVE], response_class=HTMLResponse
)
async def approve(request: Request, rt: Rt, me: Caller, action_id: int) -> Response:
    """The second person's approval: the meters are worked out again and commanded."""
    return await _decide(request, rt, me, action_id, approve=True)


@router.post(
    "/control/actions/{action_id}/reject", dependencies=[APPROVE], response_class=HTMLResponse
)
async def reject(request: Request, rt: Rt, me: Caller, action_id: int) -> Response:
    return await _decide(request, rt, me, action_id, approve=False)
