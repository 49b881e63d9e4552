"""Who is asking and whether they may: every page and API route names its rule with
``allow(...)`` (or ``public``), and this module checks it before the route runs.

- The caller is an API token (``Authorization: Bearer mpt_…``) or a session cookie
  (``mp_session``); neither: 401 for the API, the sign-in page for a browser.
- A request with a session cookie that changes something (POST, PUT, PATCH, DELETE)
  carries the session's CSRF token in ``X-CSRF-Token`` or a ``csrf_token`` form field,
  else 403: another site's page cannot act with the user's cookie. Token requests
  carry no ambient credential and need none.
- The ids the request names are resolved to their sites (``auth.targets``), in the
  same read transaction that finds the caller (``auth.service.access_of``), and
  ``auth.model.decide`` answers: an object of a site the caller does not see is 404,
  a permission the caller lacks is 403.
- A staff member or token limited to some sites asks for lists with a filter naming
  one of them (``site_id``, ``account_id``, …) unless the route filters by the caller
  itself (``own_filter``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from meterpay.auth import service as auth
from meterpay.auth import targets
from meterpay.auth.model import Decision, Permission, Principal, decide
from meterpay.auth.secrets import same
from meterpay.kernel.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from meterpay.runtime import Runtime

SESSION_COOKIE: Final = "mp_session"
CSRF_HEADER: Final = "x-csrf-token"
CSRF_FIELD: Final = "csrf_token"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_FORM_BYTES: Final = 20_000_000
"""The largest form (photos included) a page may post."""


class NotSignedIn(Unauthorized):
    code = "unauthorized"


class CsrfRejected(Forbidden):
    code = "csrf_failed"


class BodyTooLarge(InvalidInput):
    code = "too_large"


class PasswordChangeRequired(Forbidden):
    code = "password_change_required"


@dataclass(frozen=True, slots=True)
class Rule:
    """What a route needs. ``permission`` None with ``owners``: a route for owners only."""

    permission: Permission | None
    owners: bool = False
    everywhere: bool = False
    """Deployment-wide (reconciliation, holidays): only an all-sites holder."""
    own_filter: bool = False
    """The route filters its list by the caller itself."""


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def principal_of(request: Request) -> Principal | None:
    """The caller, found once per request."""
    if hasattr(request.state, "principal"):
        found: Principal | None = request.state.principal
        return found
    return (await _access(request, _credential(request))).principal


def _credential(request: Request) -> auth.Credential | None:
    """An API token if the request carries one, else its session cookie."""
    scheme, _, presented = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and presented.strip():
        return auth.Credential(auth.CredentialKind.TOKEN, presented.strip())
    if cookie := request.cookies.get(SESSION_COOKIE):
        return auth.Credential(auth.CredentialKind.SESSION, cookie)
    return None


async def _access(
    request: Request,
    credential: auth.Credential | None,
    named: Sequence[tuple[str, Any]] = (),
    in_body: Sequence[tuple[str, Any]] = (),
) -> auth.Access:
    """The caller and the sites of the ids their request names, in one call to ``auth``."""
    rt = _runtime(request)
    access = await run_in_threadpool(auth.access_of, rt, credential, named, in_body)
    token = credential is not None and credential.kind is auth.CredentialKind.TOKEN
    if token and access.principal is None:
        raise NotSignedIn("the API token is unknown, revoked or expired")
    request.state.principal = access.principal
    return access


def allow(
    permission: Permission | None,
    *,
    owners: bool = False,
    everywhere: bool = False,
    own_filter: bool = False,
) -> Any:
    """The dependency a route lists to state its rule (a ``Depends``)."""
    rule = Rule(permission, owners, everywhere, own_filter)

    async def check(request: Request) -> Principal:
        return await _check(request, rule)

    check.rule = rule  # type: ignore[attr-defined]  # read by the authorization tests
    return Depends(check)


def rule_of(dependency: Callable[..., Any]) -> Rule | None:
    found = getattr(dependency, "rule", None)
    return found if isinstance(found, Rule) else None


async def _check(request: Request, rule: Rule) -> Principal:
    credential = _credential(request)
    named = targets.named_ids({**request.query_params, **request.path_params})
    # the body is read before the caller is known, so that one read finds both; a body
    # that cannot be read is refused only where the checks below reach it
    in_body = targets.body_ids((await _body(request)).fields) if credential is not None else []
    access = await _access(request, credential, named, in_body)
    principal = access.principal
    if principal is None:
        raise NotSignedIn("sign in first, or send an API token: Authorization: Bearer <token>")
    if principal.must_change_password:
        raise PasswordChangeRequired("choose a new password first: /account/password")
    if principal.session_id is not None and request.method not in SAFE_METHODS:
        await _check_csrf(request, principal)
    if access.named.missing:  # the path or a filter names nothing
        raise NotFound(f"{access.named.missing[0]} does not exist")
    await _body_fields(request)  # a body that could not be read is refused here
    # an unknown id in the body is the use case's to refuse (422), not ours
    resolved = targets.Resolved(
        access.named.targets + access.in_body.targets,
        access.in_body.missing,
        access.named.everywhere or access.in_body.everywhere,
    )
    _check_rule(principal, rule, resolved, bool(named or in_body))
    return principal


def _check_rule(principal: Principal, rule: Rule, resolved: targets.Resolved, named: bool) -> None:
    permission = rule.permission
    everywhere = rule.everywhere or resolved.everywhere
    if everywhere and (permission is None or principal.sites_with(permission) is not None):
        raise (NotFound if named else Forbidden)("this is for administrators of every site")
    decision = decide(principal, permission, resolved.targets, owners=rule.owners)
    if decision is Decision.HIDE:
        raise NotFound("no such object here")
    if decision is Decision.FORBID:
        raise Forbidden("your role does not allow this")
    scoped = permission is not None and principal.sites_with(permission) is not None
    unnamed = not resolved.targets and not resolved.missing
    if scoped and unnamed and not rule.own_filter and not everywhere:
        raise Forbidden("name the site (site_id, or an account, meter, …) you work on")


async def _check_csrf(request: Request, principal: Principal) -> None:
    presented = request.headers.get(CSRF_HEADER, "")
    if not presented:
        fields = await _body_fields(request)
        value = fields.get(CSRF_FIELD) if isinstance(fields, Mapping) else None
        presented = value if isinstance(value, str) else ""
    if not presented or not same(presented, principal.csrf_token):
        raise CsrfRejected("the form has expired or came from elsewhere: reload the page")


@dataclass(frozen=True, slots=True)
class _Body:
    fields: Any
    problem: Exception | None = None
    """Why the body could not be read (too large, a broken form…)."""


async def _body_fields(request: Request) -> Any:
    """The body's fields: parsed JSON, or a form's text fields; None when neither."""
    body = await _body(request)
    if body.problem is not None:
        raise body.problem
    return body.fields


async def _body(request: Request) -> _Body:
    """The body, read once per request; a problem reading it is kept, to be raised by
    ``_body_fields`` where the checks need the body."""
    if not hasattr(request.state, "guard_body"):
        try:
            request.state.guard_body = _Body(await _read_fields(request))
        except Exception as exc:  # re-raised by _body_fields, unchanged
            request.state.guard_body = _Body(None, exc)
    body: _Body = request.state.guard_body
    return body


async def _read_fields(request: Request) -> Any:
    """Parsed JSON, or a form's text fields; None for a safe method or another kind. The
    raw body stays readable by the route (Starlette keeps it); a form the framework has
    parsed already (routes with ``Form``/``File`` parameters) is read from its cache."""
    if request.method in SAFE_METHODS:
        return None
    kind = request.headers.get("content-type", "")
    if kind.startswith("application/json"):
        return _json(await _raw(request))
    if kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        _check_size(request)
        # kept for the route, which may read the raw body; a RuntimeError: the framework
        # parsed the form before the dependencies ran (``form()`` then answers its copy)
        with contextlib.suppress(RuntimeError):
            await request.body()
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    return None


async def _raw(request: Request) -> bytes:
    try:
        return await request.body()
    except RuntimeError:  # consumed by the framework: JSON bodies are not, forms may be
        return b""


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        return None  # the route's own validation answers 422


def _check_size(request: Request) -> None:
    """A form larger than ``MAX_FORM_BYTES`` (or of unknown size) is refused before it
    is read: an upload is never held in memory unbounded."""
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise BodyTooLarge("send the form with its Content-Length")
    if int(length) > MAX_FORM_BYTES:
        raise BodyTooLarge(f"a form may be at most {MAX_FORM_BYTES // 1_000_000} MB")


def public(reason: str) -> Any:
    """A route anyone may call, for ``reason`` (signed by its caller, a sign-in page…)."""

    async def open_route() -> None:
        return None

    open_route.public = reason  # type: ignore[attr-defined]
    return Depends(open_route)


async def signed_in(request: Request) -> Principal:
    """Any signed-in caller (their own settings, sign-out)."""
    principal = await principal_of(request)
    if principal is None:
        raise NotSignedIn("sign in first")
    if principal.session_id is not None and request.method not in SAFE_METHODS:
        await _check_csrf(request, principal)
    return principal


Caller = Annotated[Principal, Depends(signed_in)]
