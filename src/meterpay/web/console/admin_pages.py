"""Console pages: users and roles, the audit log, and one's own authenticator (TOTP).
Parse, call one service, render.

- A temporary password (a new user's, or after a reset) is shown once, in the answer to
  the POST that made it, never in a URL or a page that can be loaded again.
- Roles are a grid of checkboxes ``role@site`` (``@*``: every site) limited to the
  sites the administrator manages; ``meterpay.auth.users`` checks the reach again.
- The audit log is searched on the server, newest first, paged by ``before_id``; the
  same search exports to Excel as a background job (``exports``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import FormData
from starlette.responses import Response

from meterpay.audit import service as audit
from meterpay.auth import users
from meterpay.auth.model import STAFF_ROLES, Principal, Role
from meterpay.auth.model import Permission as P
from meterpay.auth.secrets import new_totp_secret, totp_uri
from meterpay.kernel.errors import DomainError, Forbidden, InvalidInput, NotFound
from meterpay.sites.site_choice import sites_in_reach
from meterpay.web.api.deps import Rt
from meterpay.web.console import exports
from meterpay.web.console.admin_forms import (
    DEFAULT_ZONE,
    answer,
    day_start,
    form_of,
    number_or_none,
    page_of,
    text,
)
from meterpay.web.console.job_pages import to_job
from meterpay.web.guard import Caller, allow

router = APIRouter(prefix="/console", include_in_schema=False)
MANAGE = allow(P.USER_MANAGE, own_filter=True)
AUDIT = allow(P.AUDIT_READ, own_filter=True)
AUDIT_PAGE: Final = 50
EVERY_SITE: Final = "*"


# --- users and roles ------------------------------------------------------------------------


def _roles_of(form: FormData) -> list[tuple[Role, int | None]]:
    """``admin@3`` / ``cashier@*`` checkboxes as (role, site)."""
    found: list[tuple[Role, int | None]] = []
    for value in form.getlist("role")[:200]:
        role, _, site = str(value).partition("@")
        try:
            found.append((Role(role), None if site == EVERY_SITE else int(site)))
        except ValueError:
            raise InvalidInput(f"not a role: {value!r}", field="role") from None
    if not found:
        raise InvalidInput("choose at least one role; to stop a user, disable them", field="role")
    return found


def _users_context(rt: Rt, me: Principal, **more: Any) -> dict[str, Any]:
    reach = me.sites_with(P.USER_MANAGE)
    sites = sites_in_reach(rt, reach)
    return {
        "sites": sites,
        "site_names": {s.id: s.name for s in sites},
        "every_site": reach is None,
        "staff_roles": STAFF_ROLES,
        "now": rt.clock.now(),
    } | more


@router.get("/users", dependencies=[MANAGE], response_class=HTMLResponse)
def users_page(
    request: Request, rt: Rt, me: Caller, site_id: int | None = None, lang: str | None = None
) -> Response:
    """用户与角色: the staff this administrator manages, and a form for a new one."""
    page = page_of(request, rt.clock.now(), lang=lang)
    staff = users.staff_list(rt, by=me)
    if site_id is not None:
        staff = [m for m in staff if any(s in (site_id, None) for _, s in m.roles)]
    context = _users_context(rt, me, staff=staff, site_id=site_id, problem="", created=None)
    return answer(request, "users.html", page.context(**context))


@router.post("/users", dependencies=[MANAGE], response_class=HTMLResponse)
async def create_user(request: Request, rt: Rt, me: Caller) -> Response:
    """A new staff member with a temporary password, shown once on the answer."""
    form = await form_of(request)
    page = page_of(request, rt.clock.now(), lang=text(form, "lang"))
    word = users.temporary_password()
    try:
        member = users.create_staff(
            rt,
            username=text(form, "username", 40),
            display_name=text(form, "display_name", 100),
            password=word,
            roles=_roles_of(form),
            by=me,
        )
    except DomainError as exc:
        staff = users.staff_list(rt, by=me)
        context = _users_context(rt, me, staff=staff, site_id=None, problem=exc.message)
        return answer(request, "users.html", page.context(**context, created=None), 422)
    return _user_answer(request, rt, me, member, page.context(temporary=word), status=201)


def _user_answer(
    request: Request,
    rt: Rt,
    me: Principal,
    member: users.StaffMember,
    context: dict[str, Any],
    *,
    status: int = 200,
) -> Response:
    held = {f"{role.value}@{site or EVERY_SITE}" for role, site in member.roles}
    full = _users_context(rt, me, member=member, held=held) | {"temporary": "", "problem": ""}
    return answer(request, "user.html", full | context, status=status)


@router.get("/users/{user_id}", dependencies=[MANAGE], response_class=HTMLResponse)
def user_page(
    request: Request, rt: Rt, me: Caller, user_id: int, lang: str | None = None
) -> Response:
    """One staff member: roles per site, lock and disabled state, and what to change."""
    page = page_of(request, rt.clock.now(), lang=lang)
    member = users.staff_member(rt, user_id, by=me)
    return _user_answer(request, rt, me, member, page.context())


UserChange = Callable[[FormData, str], users.StaffMember | str]
"""One change to a staff member, from the posted form and the reason given: the member as
changed, or a temporary password to show once."""


async def _change_user(
    request: Request, rt: Rt, me: Principal, user_id: int, change: UserChange
) -> Response:
    """The flow every change to a user shares: read the form, make the change, then back to
    the user's page (or the page again with the temporary password, or with the problem)."""
    form = await form_of(request)
    page = page_of(request, rt.clock.now(), lang=text(form, "lang"))
    try:
        made = change(form, text(form, "reason", 500))
    except DomainError as exc:
        if isinstance(exc, NotFound | Forbidden):
            raise  # the error page: hidden, or beyond this administrator's reach
        member = users.staff_member(rt, user_id, by=me)
        context = page.context(problem=exc.message)
        status = 409 if exc.code == "conflict" else 422
        return _user_answer(request, rt, me, member, context, status=status)
    if isinstance(made, str):
        member = users.staff_member(rt, user_id, by=me)
        return _user_answer(request, rt, me, member, page.context(temporary=made))
    lang = f"?lang={page.lang.value}" if page.lang.value == "en" else ""
    return RedirectResponse(f"/console/users/{user_id}{lang}", status_code=303)


@router.post("/users/{user_id}/roles", dependencies=[MANAGE], response_class=HTMLResponse)
async def set_roles(request: Request, rt: Rt, me: Caller, user_id: int) -> Response:
    def change(form: FormData, reason: str) -> users.StaffMember:
        return users.set_roles(rt, user_id, _roles_of(form), by=me, reason=reason)

    return await _change_user(request, rt, me, user_id, change)


@router.post("/users/{user_id}/password-reset", dependencies=[MANAGE], response_class=HTMLResponse)
async def reset_password(request: Request, rt: Rt, me: Caller, user_id: int) -> Response:
    """A temporary password, shown once here; the user's sessions end."""

    def change(_: FormData, reason: str) -> str:
        return users.reset_password(rt, user_id, by=me, reason=reason)

    return await _change_user(request, rt, me, user_id, change)


@router.post("/users/{user_id}/unlock", dependencies=[MANAGE], response_class=HTMLResponse)
async def unlock(request: Request, rt: Rt, me: Caller, user_id: int) -> Response:
    def change(_: FormData, __: str) -> users.StaffMember:
        return users.unlock(rt, user_id, by=me)

    return await _change_user(request, rt, me, user_id, change)


@router.post("/users/{user_id}/disable", dependencies=[MANAGE], response_class=HTMLResponse)
async def disable(request: Request, rt: Rt, me: Caller, user_id: int) -> Response:
    return await _change_user(request, rt, me, user_id, _disabled(rt, me, user_id, True))


@router.post("/users/{user_id}/enable", dependencies=[MANAGE], response_class=HTMLResponse)
async def enable(request: Request, rt: Rt, me: Caller, user_id: int) -> Response:
    return await _change_user(request, rt, me, user_id, _disabled(rt, me, user_id, False))


def _disabled(rt: Rt, me: Principal, user_id: int, disabled: bool) -> UserChange:
    return lambda _, reason: users.set_disabled(rt, user_id, disabled, by=me, reason=reason)


# --- the audit log --------------------------------------------------------------------------


def _audit_query(f: dict[str, Any], zone: str) -> audit.AuditQuery:
    """The search form's fields (``f``) as a query; days are on the site's clock."""
    return audit.AuditQuery(
        actor=f["actor"] or None,
        action=f["action"] or None,
        object_type=f["object_type"] or None,
        object_id=f["object_id"] or None,
        site_id=f["site_id"],
        since=day_start(f["since"], zone, "since"),
        until=day_start(f["until"], zone, "until", after=True),  # the "to" day is included
        text=f["q"] or None,
    )


def _filters(**given: Any) -> dict[str, Any]:
    return {k: v if k == "site_id" else (v or "").strip() for k, v in given.items()}


Short = Annotated[str | None, Query(max_length=120)]
Day = Annotated[str | None, Query(max_length=10)]


@router.get("/audit", dependencies=[AUDIT], response_class=HTMLResponse)
def audit_page(
    request: Request,
    rt: Rt,
    me: Caller,
    *,
    actor: Short = None,
    action: Short = None,
    object_type: Short = None,
    object_id: Short = None,
    site_id: int | None = None,
    since: Day = None,
    until: Day = None,
    q: Short = None,
    before_id: int | None = None,
    lang: str | None = None,
) -> Response:
    """审计日志: who changed what, when, from where and why; newest first."""
    visible = me.sites_with(P.AUDIT_READ)
    sites = sites_in_reach(rt, visible)
    site = next((s for s in sites if s.id == site_id), None)
    page = page_of(request, rt.clock.now(), site, lang)
    f = _filters(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        site_id=site_id,
        since=since,
        until=until,
        q=q,
    )
    query = _audit_query(f, page.zone)
    found = audit.search(rt, query, visible_sites=visible, before_id=before_id, limit=AUDIT_PAGE)
    more = found[-1].id if len(found) == AUDIT_PAGE else None
    context = page.context(
        entries=found,
        next_before_id=more,
        sites=sites,
        site_names={s.id: s.name for s in sites},
        f=f,
        before_id=before_id,
    )
    return answer(request, "audit.html", context)


@router.post("/audit/export", dependencies=[AUDIT])
async def export_audit(request: Request, rt: Rt, me: Caller) -> Response:
    """Start the export of the same search as an Excel workbook (a background job)."""
    form = await form_of(request)
    site_id = number_or_none(form, "site_id")
    visible = me.sites_with(P.AUDIT_READ)
    zone = next((s.timezone for s in sites_in_reach(rt, visible) if s.id == site_id), DEFAULT_ZONE)
    fields = ("actor", "action", "object_type", "object_id", "since", "until", "q")
    f = _filters(site_id=site_id, **{k: text(form, k, 120) for k in fields})
    job = exports.start_audit_export(rt, _audit_query(f, zone), zone=zone, by=me)
    return to_job(job, text(form, "lang", 8))


# --- one's own authenticator (TOTP) ---------------------------------------------------------

OWN = allow(P.SITE_READ, own_filter=True)
BASE32: Final = re.compile(r"[A-Z2-7]{16,64}")


def _totp_context(me: Principal, secret: str) -> dict[str, Any]:
    account = me.name.split(":", 1)[-1]
    return {"secret": secret, "uri": totp_uri(secret, account), "problem": "", "done": False}


@router.get("/totp", dependencies=[OWN], response_class=HTMLResponse)
def totp_page(request: Request, rt: Rt, me: Caller, lang: str | None = None) -> Response:
    """动态验证码: a new secret for an authenticator app; on once the app's code matches."""
    page = page_of(request, rt.clock.now(), lang=lang)
    return answer(request, "totp.html", page.context(**_totp_context(me, new_totp_secret())))


@router.post("/totp", dependencies=[OWN], response_class=HTMLResponse)
async def turn_on_totp(request: Request, rt: Rt, me: Caller) -> Response:
    form = await form_of(request)
    page = page_of(request, rt.clock.now(), lang=text(form, "lang"))
    secret = text(form, "secret", 64)
    try:
        if not BASE32.fullmatch(secret):
            raise InvalidInput("the form has expired: scan the new code", field="secret")
        users.turn_on_totp(rt, me, secret, text(form, "code", 12))
    except DomainError as exc:
        secret = secret if BASE32.fullmatch(secret) else new_totp_secret()
        context = _totp_context(me, secret) | {"problem": exc.message}
        return answer(request, "totp.html", page.context(**context), 422)
    return answer(request, "totp.html", page.context(**_totp_context(me, secret), done=True))
