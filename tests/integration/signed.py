"""Signed-in callers for the HTTP tests: API tokens, staff users with a role on a site,
owners; and a browser-like client that signs in through the real form."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from meterpay.auth import tokens, users
from meterpay.auth.model import Permission, Role
from meterpay.runtime import Runtime
from meterpay.web.app import create_app

PASSWORD = "correct horse battery"
ALL_SCOPES = tuple(Permission)


def token_for(
    rt: Runtime,
    *,
    name: str = "",
    scopes: tuple[Permission, ...] = ALL_SCOPES,
    sites: list[int] | None = None,
) -> str:
    """A fresh API token (all scopes on all sites unless narrowed); the audit log knows
    its holder as ``token:<name>``."""
    name = name or f"test-{len(tokens.list_tokens(rt)) + 1}"
    _, secret = tokens.create_token(rt, name=name, scopes=scopes, site_ids=sites, by=None)
    return secret


@contextmanager
def api_client(rt: Runtime, token: str | None = None) -> Iterator[TestClient]:
    """The app with an integrator's token in every request (an all-powerful one by default)."""
    with TestClient(create_app(rt)) as client:
        client.headers["Authorization"] = f"Bearer {token or token_for(rt, name='api')}"
        yield client


def staff_user(
    rt: Runtime, username: str, role: Role = Role.ADMIN, site_id: int | None = None
) -> int:
    member = users.create_staff(
        rt,
        username=username,
        display_name=username,
        password=PASSWORD,
        roles=[(role, site_id)],
        by=None,
        must_change_password=False,
    )
    return member.user.id


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign in through the form as a browser does; the session's CSRF token."""
    page = client.get("/sign-in")
    pre = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert pre, page.text
    done = client.post(
        "/sign-in",
        data={"csrf_token": pre.group(1), "username": username, "password": password},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    return csrf_of(client)


def csrf_of(client: TestClient) -> str:
    page = client.get("/account/password")
    found = re.search(r'<meta name="csrf-token" content="([^"]*)"', page.text) or re.search(
        r'name="csrf_token" value="([^"]+)"', page.text
    )
    assert found, page.text
    return found.group(1)


@contextmanager
def browser(rt: Runtime, username: str = "admin", role: Role = Role.ADMIN) -> Iterator[TestClient]:
    """A client signed in as a staff member with ``role`` on every site; its CSRF token
    is in ``client.csrf``."""
    staff_user(rt, username, role)
    with TestClient(create_app(rt)) as client:
        client.csrf = sign_in(client, username)
        yield client
