"""Console pages: group cut and restore (拉闸/合闸 of a meter, a floor, a building or a
site) with the "who would be affected" preview, a reason, the second person's approval
and each command's lifecycle. Parse, call one service, render.

- The preview and the request name the target as ``scope`` + ``scope_id``, the pair
  the guard resolves to a site: a target of another site is "not found".
- The action page refreshes its commands (htmx, every few seconds) while any is still
  on its way, so a person can leave a group command and come back to it.
- Self-approval is refused by ``control.manual`` (409); the page only says so.
- A form that is refused shows the control page again (``control_pages``) with the problem.
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
from meterpay.kernel.errors import DomainError, Forbidden, InvalidInput, NotFound
from meterpay.sites.site_choice import sites_in_reach
from meterpay.web.api.deps import Rt
from meterpay.web.console.admin_forms import answer, form_of, is_htmx, number, page_of, text
from meterpay.web.console.control_pages import WRITE, control_context, control_page_again, site_for
from meterpay.web.guard import Caller, allow

router = APIRouter(prefix="/console", include_in_schema=False)
APPROVE = allow(P.CONTROL_APPROVE)
POLL_SECONDS: Final = 3


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
        return await control_page_again(request, rt, me, form, problem=exc.message)
    if is_htmx(request):
        return answer(request, "_fragment_preview.html", page.context(preview=found, problem=""))
    site, sites = site_for(rt, me, found.site_id)
    context = control_context(rt, me, site, sites, preview=found)
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
        return await control_page_again(
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
