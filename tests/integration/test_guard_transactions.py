"""How many transactions authorization costs a request: the caller and every id the
request names (path, query and body) are read in one read transaction; a session's
last-seen time (a token's last use) is written at most once a minute, in a write of its
own; and a body that cannot be read is still refused only after the caller and the
path's ids are checked."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select

from meterpay.auth import rules
from meterpay.auth.model import Permission, Role
from meterpay.db.engine import Database
from meterpay.db.schema import api_tokens, user_sessions
from meterpay.kernel.clock import FixedClock
from meterpay.runtime import Runtime
from meterpay.web.app import create_app
from tests.integration.builders import Home, a_home
from tests.integration.signed import sign_in, staff_user, token_for


class CountedDatabase:
    """The test's database, counting the transactions the app opens through it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.reads = 0
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        self.reads += 1
        with self.db.read() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        self.writes += 1
        with self.db.write() as conn:
            yield conn

    def during(self, call: Callable[[], httpx.Response]) -> tuple[int, int, int]:
        """The status of ``call`` and the (reads, writes) it opened."""
        self.reads = self.writes = 0
        status = call().status_code
        return status, self.reads, self.writes


def _counted(rt: Runtime) -> tuple[Runtime, CountedDatabase]:
    db = CountedDatabase(rt.db)
    return dataclasses.replace(rt, db=db), db  # type: ignore[arg-type]  # a Database look-alike


def _two_sites(rt: Runtime) -> tuple[Home, Home]:
    return a_home(rt, code="A"), a_home(rt, code="B")


def _last_seen(rt: Runtime) -> tuple[Any, Any]:
    with rt.db.read() as conn:
        row = conn.execute(select(user_sessions.c.last_seen_at, user_sessions.c.expires_at)).one()
    return row[0], row[1]


def test_a_session_request_naming_ids_reads_caller_and_ids_in_one_transaction(
    rt: Runtime,
) -> None:
    """A cashier of site A naming site B's account (path, query or body) is refused
    after exactly one read, and no write while the session was seen within a minute."""
    here, there = _two_sites(rt)
    staff_user(rt, "cashier1", Role.CASHIER, here.site.id)
    counted, db = _counted(rt)
    with TestClient(create_app(counted)) as client:
        csrf = sign_in(client, "cashier1")
        by_path = db.during(lambda: client.get(f"/api/v1/accounts/{there.account.id}"))
        payment = {
            "account_id": there.account.id,
            "amount": "10.00",
            "method": "cash",
            "idempotency_key": "k1",
        }
        by_query_and_body = db.during(
            lambda: client.post(
                f"/api/v1/counter/payments?site_id={here.site.id}",
                json=payment,
                headers={"X-CSRF-Token": csrf},
            )
        )
    assert by_path == (404, 1, 0)
    assert by_query_and_body == (404, 1, 0)


def test_a_session_seen_a_minute_ago_is_touched_in_one_write_after_the_read(
    rt: Runtime,
) -> None:
    """After a minute the session's last-seen and idle expiry move on, in one write
    transaction of its own; the next request within the minute writes nothing."""
    here, there = _two_sites(rt)
    staff_user(rt, "cashier1", Role.CASHIER, here.site.id)
    counted, db = _counted(rt)
    assert isinstance(rt.clock, FixedClock)
    with TestClient(create_app(counted)) as client:
        sign_in(client, "cashier1")
        _, expires_before = _last_seen(rt)
        rt.clock.advance(rules.TOUCH_EVERY + timedelta(seconds=1))
        first = db.during(lambda: client.get(f"/api/v1/accounts/{there.account.id}"))
        seen, expires = _last_seen(rt)
        again = db.during(lambda: client.get(f"/api/v1/accounts/{there.account.id}"))
    assert first == (404, 1, 1)
    assert seen == rt.clock.now() and expires > expires_before
    assert again == (404, 1, 0)


def test_a_token_request_reads_once_and_records_its_use_at_most_once_a_minute(
    rt: Runtime,
) -> None:
    """A token of site A: its first use is written once; within the minute, only the
    one read."""
    here, there = _two_sites(rt)
    token = token_for(rt, scopes=(Permission.SITE_READ,), sites=[here.site.id])
    counted, db = _counted(rt)
    with TestClient(create_app(counted)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        first = db.during(lambda: client.get(f"/api/v1/accounts/{there.account.id}"))
        again = db.during(lambda: client.get(f"/api/v1/accounts/{there.account.id}"))
        own = db.during(lambda: client.get(f"/api/v1/accounts/{here.account.id}"))
    with rt.db.read() as conn:
        assert conn.execute(select(api_tokens.c.last_used_at)).scalar_one() == rt.clock.now()
    assert first == (404, 1, 1)
    assert again == (404, 1, 0)
    assert own[0] == 200  # the route's own reads follow the one of authorization


def test_a_request_without_credentials_opens_no_transaction(rt: Runtime) -> None:
    """No cookie and no token: 401 before any database work."""
    here, _ = _two_sites(rt)
    counted, db = _counted(rt)
    with TestClient(create_app(counted)) as client:
        answer = db.during(lambda: client.get(f"/api/v1/accounts/{here.account.id}"))
    assert answer == (401, 0, 0)


def test_a_body_too_large_is_refused_only_after_the_caller_and_the_path(rt: Runtime) -> None:
    """The body is read before the caller is known, but its problem keeps its place:
    an unknown caller is 401 and an unknown path id 404, before the form's 413."""
    here, _ = _two_sites(rt)
    staff_user(rt, "cashier1", Role.CASHIER, here.site.id)
    huge = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": "999999999",
    }
    with TestClient(create_app(rt)) as client:
        csrf = sign_in(client, "cashier1")
        headers = {**huge, "X-CSRF-Token": csrf}

        def post(path: str) -> int:
            return client.post(path, content=b"a=b", headers=headers).status_code

        assert post("/api/v1/counter/receipts/NO-SUCH/reverse") == 404
        assert post("/api/v1/counter/payments") == 413
        client.cookies.set("mp_session", "not-a-session")
        assert post("/api/v1/counter/payments") == 401
