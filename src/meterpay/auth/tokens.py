"""API tokens for integrators: a name, scopes (permissions) and the sites they reach.

Invariants:
- the token is shown once, when made; only its SHA-256 and its first characters (to
  recognise it in a list) are kept;
- a token never reaches further than its maker: every scope on every named site (or on
  every site) must be the maker's own;
- revoking is immediate and final; making and revoking are audited.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from meterpay.audit import repository as audit
from meterpay.auth import repository as repo
from meterpay.auth import secrets as sec
from meterpay.auth.model import ApiToken, Permission, Principal
from meterpay.kernel.errors import Forbidden, InvalidInput, NotFound
from meterpay.runtime import Runtime
from meterpay.sites import repository as sites


def create_token(
    rt: Runtime,
    *,
    name: str,
    scopes: Iterable[Permission | str],
    site_ids: Iterable[int] | None,
    by: Principal | None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token and its secret value (shown once). ``by`` None: the command line."""
    label = name.strip()[:80]
    if not label:
        raise InvalidInput("a token needs a name", field="name")
    try:
        wanted = sorted({Permission(s) for s in scopes})
    except ValueError as exc:
        raise InvalidInput(f"unknown scope: {exc}", field="scopes") from None
    if not wanted:
        raise InvalidInput("a token needs at least one scope", field="scopes")
    reach = sorted(set(site_ids)) if site_ids is not None else None
    now = rt.clock.now()
    secret = "mpt_" + sec.new_token()
    with rt.db.write() as conn:
        for site_id in reach or []:
            sites.site(conn, site_id)
        _within_reach(by, wanted, reach)
        token_id = repo.insert_token(
            conn,
            {
                "name": label,
                "token_hash": sec.digest(secret),
                "prefix": secret[:10],
                "scopes": [p.value for p in wanted],
                "site_ids": reach,
                "created_by": by.name if by else "cli",
                "created_at": now,
                "expires_at": expires_at,
            },
        )
        audit.record(
            conn,
            at=now,
            actor=by.name if by else "cli",
            action="token.create",
            object_type="api_token",
            object_id=token_id,
            after={
                "name": label,
                "scopes": ",".join(p.value for p in wanted),
                "sites": "*" if reach is None else ",".join(map(str, reach)),
            },
        )
        found = repo.token(conn, token_id)
    assert found is not None  # noqa: S101  inserted above
    return found, secret


def _within_reach(by: Principal | None, scopes: list[Permission], reach: list[int] | None) -> None:
    if by is None:
        return
    for scope in scopes:
        mine = by.sites_with(scope)
        if mine is None:
            continue
        if reach is None or not set(reach) <= mine:
            raise Forbidden(f"you cannot grant {scope.value} beyond your own sites")


def revoke_token(rt: Runtime, token_id: int, *, by: Principal, reason: str = "") -> ApiToken:
    now = rt.clock.now()
    with rt.db.write() as conn:
        found = repo.token(conn, token_id)
        if found is None:
            raise NotFound(f"API token {token_id} does not exist", token_id=token_id)
        _within_reach(by, [Permission(s) for s in found.scopes], found.site_ids)
        if found.revoked_at is None:
            repo.save_token(conn, token_id, revoked_at=now)
            audit.record(
                conn,
                at=now,
                actor=by.name,
                action="token.revoke",
                object_type="api_token",
                object_id=token_id,
                before={"name": found.name},
                reason=reason,
            )
        revoked = repo.token(conn, token_id)
    assert revoked is not None  # noqa: S101
    return revoked


def list_tokens(rt: Runtime) -> list[ApiToken]:
    with rt.db.read() as conn:
        return repo.tokens(conn)
