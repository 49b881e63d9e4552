"""Owners for the portal's and the work orders' HTTP tests: a customer with a mobile
number on an account, and a browser signed in as them through the real owners' form."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from meterpay.auth import users
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.web.app import create_app
from tests.integration.signed import PASSWORD, csrf_of, sign_in, staff_user

ACTOR = "test"


def owner_of(rt: Runtime, account_id: int, site_id: int, phone: str, **contact: str) -> int:
    """A customer with ``phone`` who holds the account (and a portal password)."""
    customer = sites.create_customer(
        rt, site_id=site_id, name=f"业主{phone[-4:]}", phone=phone, actor=ACTOR, **contact
    )
    sites.update_account(rt, account_id, customer_id=customer.id, actor=ACTOR)
    users.set_owner_password(rt, phone, PASSWORD, by=ACTOR)
    return customer.id


def sign_in_owner(client: TestClient, phone: str) -> str:
    """Through the owners' form, as a phone does; the session's CSRF token."""
    page = client.get("/portal/sign-in")
    pre = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert pre, page.text
    done = client.post(
        "/portal/sign-in",
        data={"csrf_token": pre.group(1), "phone": phone, "password": PASSWORD},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/portal", done.text
    return csrf_of(client)


@contextmanager
def owner_browser(rt: Runtime, phone: str) -> Iterator[TestClient]:
    with TestClient(create_app(rt)) as client:
        client.headers["X-CSRF-Token"] = sign_in_owner(client, phone)
        yield client


@contextmanager
def staff_browser(
    rt: Runtime, name: str, role: object, site_id: int | None
) -> Iterator[TestClient]:
    staff_user(rt, name, role, site_id)  # type: ignore[arg-type]
    with TestClient(create_app(rt)) as client:
        client.headers["X-CSRF-Token"] = sign_in(client, name)
        yield client
