"""Signing in, staying signed in, signing out: passwords (argon2), lock-out and address
limits, TOTP, sessions that expire, CSRF on every form, owners' SMS codes, administrators'
password resets, integrators' tokens — each through the real pages and API."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from meterpay.auth import owner_codes, rules, tokens, users
from meterpay.auth.model import Permission, Principal, Role
from meterpay.auth.service import principal_of_user
from meterpay.db.schema import audit_log, user_sessions
from meterpay.db.schema import users as users_table
from meterpay.kernel.clock import FixedClock
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.web.app import create_app
from tests.integration.builders import ACTOR, a_home
from tests.integration.signed import PASSWORD, csrf_of, sign_in, staff_user, token_for

HTML = {"Accept": "text/html"}


def _pre(client: TestClient, page: str = "/sign-in") -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(page).text)
    assert found
    return found.group(1)


def _try(client: TestClient, username: str, password: str, **more: str) -> int:
    data = {"csrf_token": _pre(client), "username": username, "password": password, **more}
    status: int = client.post("/sign-in", data=data, follow_redirects=False).status_code
    return status


def _actions(rt: Runtime, action: str) -> int:
    with rt.db.read() as conn:
        return len(conn.execute(select(audit_log.c.id).where(audit_log.c.action == action)).all())


def test_a_staff_member_signs_in_sees_who_they_are_and_signs_out(rt: Runtime) -> None:
    home = a_home(rt)
    staff_user(rt, "cashier1", Role.CASHIER, home.site.id)
    with TestClient(create_app(rt)) as client:
        csrf = sign_in(client, "Cashier1")  # user names are not case-sensitive
        me = client.get("/api/v1/me").json()
        assert me["name"] == "user:cashier1"
        assert me["roles"] == [{"role": "cashier", "site_id": home.site.id}]
        cookie = client.cookies["mp_session"]
        with rt.db.read() as conn:  # only the token's hash is kept
            stored = conn.execute(select(user_sessions.c.token_hash)).scalars().all()
        assert cookie not in stored and len(stored) == 1
        out = client.post("/sign-out", data={"csrf_token": csrf}, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/sign-in"
        client.cookies.set("mp_session", cookie)  # a copied cookie is dead too
        assert client.get("/api/v1/me").status_code == 401
    assert _actions(rt, "auth.sign_in") == 1 and _actions(rt, "auth.sign_out") == 1


def test_five_wrong_passwords_lock_the_user_until_an_admin_unlocks(rt: Runtime) -> None:
    user_id = staff_user(rt, "cashier1", Role.CASHIER)
    with TestClient(create_app(rt)) as client:
        for _ in range(rules.MAX_FAILURES):
            assert _try(client, "cashier1", "wrong password!") == 401
        assert _try(client, "cashier1", PASSWORD) == 429  # locked, even with the right one
        assert _try(client, "nobody-here", "wrong password!") == 401  # no hint who exists
    admin = staff_user(rt, "admin1", Role.ADMIN)
    users.unlock(rt, user_id, by=_principal(rt, admin))
    with TestClient(create_app(rt)) as client:
        assert _try(client, "cashier1", PASSWORD) == 303
    assert _actions(rt, "security.sign_in_failed") == rules.MAX_FAILURES + 2
    assert _actions(rt, "user.unlock") == 1


def test_the_lock_lifts_by_itself_after_a_quarter_of_an_hour(rt: Runtime) -> None:
    staff_user(rt, "cashier1", Role.CASHIER)
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    with TestClient(create_app(rt)) as client:
        for _ in range(rules.MAX_FAILURES):
            _try(client, "cashier1", "wrong password!")
        clock.advance(rules.LOCK_FOR + timedelta(seconds=1))
        assert _try(client, "cashier1", PASSWORD) == 303


def test_many_failures_from_one_address_slow_it_down_whatever_names_it_tries(
    rt: Runtime,
) -> None:
    staff_user(rt, "cashier1", Role.CASHIER)
    with TestClient(create_app(rt)) as client:
        for n in range(rules.ADDRESS_MAX_FAILURES):
            assert _try(client, f"guess{n:03d}", "wrong password!") == 401
        assert _try(client, "cashier1", PASSWORD) == 429
        assert client.post("/sign-in", data={}).status_code == 403  # no pre-token: refused


def test_totp_is_asked_after_the_password_and_a_code_is_good_once(rt: Runtime) -> None:
    user_id = staff_user(rt, "admin1", Role.ADMIN)
    secret = pyotp.random_base32()
    now = rt.clock.now().timestamp()
    code = pyotp.TOTP(secret).at(now)
    users.turn_on_totp(rt, _principal(rt, user_id), secret, code)
    with TestClient(create_app(rt)) as client:
        assert _try(client, "admin1", PASSWORD) == 401
        assert _try(client, "admin1", PASSWORD, totp="000000") == 401
        assert _try(client, "admin1", PASSWORD, totp=code) == 401  # used when it was set up
        later = pyotp.TOTP(secret).at(now + 30)
        rt.clock.advance(timedelta(seconds=30))  # type: ignore[attr-defined]
        assert _try(client, "admin1", PASSWORD, totp=later) == 303
        assert _try(client, "admin1", PASSWORD, totp=later) == 401  # replayed


def test_a_session_ends_after_its_idle_time(rt: Runtime) -> None:
    staff_user(rt, "operator1", Role.OPERATOR)
    with TestClient(create_app(rt)) as client:
        sign_in(client, "operator1")
        rt.clock.advance(rules.STAFF_SESSION.idle - timedelta(minutes=1))  # type: ignore[attr-defined]
        assert client.get("/api/v1/me").status_code == 200  # and this keeps it alive
        rt.clock.advance(rules.STAFF_SESSION.idle - timedelta(minutes=1))  # type: ignore[attr-defined]
        assert client.get("/api/v1/me").status_code == 200
        rt.clock.advance(rules.STAFF_SESSION.idle + timedelta(minutes=1))  # type: ignore[attr-defined]
        assert client.get("/api/v1/me").status_code == 401
        page = client.get("/console/supply", headers=HTML, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/sign-in?next=")


def test_a_form_without_the_sessions_csrf_token_changes_nothing(rt: Runtime) -> None:
    home = a_home(rt)
    staff_user(rt, "operator1", Role.OPERATOR)
    with TestClient(create_app(rt)) as client:
        csrf = sign_in(client, "operator1")
        url = f"/api/v1/accounts/{home.account.id}/thresholds"
        body = {"warning1": "50.00", "reason": "test"}
        refused = client.put(url, json=body)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
        forged = client.put(url, json=body, headers={"X-CSRF-Token": csrf + "x"})
        assert forged.status_code == 403
        assert client.put(url, json=body, headers={"X-CSRF-Token": csrf}).status_code != 403


def test_after_sign_in_the_browser_goes_back_only_to_a_page_of_this_site(rt: Runtime) -> None:
    staff_user(rt, "operator1", Role.OPERATOR)
    with TestClient(create_app(rt)) as client:
        for asked, landed in (
            ("/console/counter", "/console/counter"),
            ("//evil.example/x", "/console"),
            ("https://evil.example/", "/console"),
        ):
            data = {
                "csrf_token": _pre(client),
                "username": "operator1",
                "password": PASSWORD,
                "next": asked,
            }
            done = client.post("/sign-in", data=data, follow_redirects=False)
            assert done.headers["location"] == landed


def test_an_admins_reset_forces_a_new_password_and_ends_the_old_sessions(rt: Runtime) -> None:
    home = a_home(rt)
    user_id = staff_user(rt, "cashier1", Role.CASHIER, home.site.id)
    admin = _principal(rt, staff_user(rt, "admin1", Role.ADMIN, home.site.id))
    with TestClient(create_app(rt)) as old, TestClient(create_app(rt)) as new:
        sign_in(old, "cashier1")
        temporary = users.reset_password(rt, user_id, by=admin, reason="forgot it")
        assert old.get("/api/v1/me").status_code == 401
        done = new.post(
            "/sign-in",
            data={"csrf_token": _pre(new), "username": "cashier1", "password": temporary},
            follow_redirects=False,
        )
        assert done.headers["location"].startswith("/account/password")
        assert new.get("/api/v1/sites").status_code == 403  # nothing until it is changed
        csrf = csrf_of(new)
        changed = new.post(
            "/account/password",
            data={
                "csrf_token": csrf,
                "old_password": temporary,
                "password": "a brand new one",
                "again": "a brand new one",
            },
            follow_redirects=False,
        )
        assert changed.status_code == 303
        assert new.get("/api/v1/sites").status_code == 200
    with rt.db.read() as conn:
        hashes = conn.execute(select(users_table.c.password_hash)).scalars().all()
    assert all(h.startswith("$argon2id$") for h in hashes)


def test_an_admin_of_one_site_cannot_grant_roles_elsewhere(rt: Runtime) -> None:
    east, west = a_home(rt, code="EAST"), a_home(rt, code="WEST")
    admin = _principal(rt, staff_user(rt, "admin1", Role.ADMIN, east.site.id))
    with pytest.raises(Exception, match="cannot grant"):
        users.create_staff(
            rt,
            username="spy1",
            display_name="",
            password=PASSWORD,
            roles=[(Role.OPERATOR, west.site.id)],
            by=admin,
        )
    with pytest.raises(Exception, match="cannot grant"):
        users.create_staff(
            rt,
            username="spy2",
            display_name="",
            password=PASSWORD,
            roles=[(Role.ADMIN, None)],
            by=admin,
        )


def test_an_owner_signs_in_with_an_sms_code_and_sees_only_their_accounts(rt: Runtime) -> None:
    home, other = a_home(rt), a_home(rt, code="EAST")
    me = sites.create_customer(
        rt, site_id=home.site.id, name="业主", phone="13900001111", actor=ACTOR
    )
    sites.update_account(rt, home.account.id, customer_id=me.id, actor=ACTOR)
    shown = rt.settings.model_copy(update={"show_sign_in_codes": True})
    demo = Runtime(rt.db, rt.clock, shown)
    with TestClient(create_app(demo)) as client:
        pre = _pre(client, "/portal/sign-in")
        sent = client.post(
            "/portal/sign-in/code", data={"csrf_token": pre, "phone": "139 0000 1111"}
        )
        code = re.search(r'id="demo-code">(\d{6})<', sent.text)
        assert code, sent.text
        wrong = client.post(
            "/portal/sign-in", data={"csrf_token": pre, "phone": "13900001111", "code": "000000"}
        )
        assert wrong.status_code == 401
        done = client.post(
            "/portal/sign-in",
            data={"csrf_token": pre, "phone": "13900001111", "code": code.group(1)},
            follow_redirects=False,
        )
        assert done.status_code == 303 and done.headers["location"] == "/portal"
        assert client.get(f"/api/v1/accounts/{home.account.id}").status_code == 200
        assert client.get(f"/api/v1/accounts/{other.account.id}").status_code == 404
        assert client.get("/api/v1/accounts", params={"site_id": home.site.id}).status_code == 404
        again = client.post(  # a code is good once
            "/portal/sign-in",
            data={
                "csrf_token": _pre(client, "/portal/sign-in"),
                "phone": "13900001111",
                "code": code.group(1),
            },
        )
        assert again.status_code == 401


def test_a_number_nobody_registered_gets_the_same_answer_and_no_code(rt: Runtime) -> None:
    shown = Runtime(rt.db, rt.clock, rt.settings.model_copy(update={"show_sign_in_codes": True}))
    sent = owner_codes.request_code(shown, "13700000000")
    assert sent.shown is None and sent.phone == "13700000000"
    with pytest.raises(Exception, match="a moment ago"):  # and it counts against the limits
        owner_codes.request_code(shown, "13700000000")


def test_without_an_sms_gateway_a_code_is_refused_not_lost(rt: Runtime) -> None:
    home = a_home(rt)
    me = sites.create_customer(
        rt, site_id=home.site.id, name="业主", phone="13900001111", actor=ACTOR
    )
    sites.update_account(rt, home.account.id, customer_id=me.id, actor=ACTOR)
    with pytest.raises(owner_codes.CodeNotSent):
        owner_codes.request_code(rt, "13900001111")


def test_a_token_reaches_its_scopes_on_its_sites_until_it_is_revoked(rt: Runtime) -> None:
    east, west = a_home(rt, code="EAST"), a_home(rt, code="WEST")
    secret = token_for(rt, name="erp", scopes=(Permission.SITE_READ,), sites=[east.site.id])
    bearer = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(rt)) as client:
        assert client.get(f"/api/v1/accounts/{east.account.id}", headers=bearer).status_code == 200
        assert client.get(f"/api/v1/accounts/{west.account.id}", headers=bearer).status_code == 404
        listed = client.get("/api/v1/sites", headers=bearer).json()["items"]
        assert [s["code"] for s in listed] == ["EAST"]
        site = {"code": "NEW", "name": "新"}
        assert client.post("/api/v1/sites", json=site, headers=bearer).status_code == 403
        made = tokens.list_tokens(rt)[0]
        admin = _principal(rt, staff_user(rt, "admin1", Role.ADMIN))
        tokens.revoke_token(rt, made.id, by=admin, reason="leaked")
        assert client.get("/api/v1/sites", headers=bearer).status_code == 401


def test_the_audit_log_is_searchable_by_who_and_what_within_ones_sites(rt: Runtime) -> None:
    east, west = a_home(rt, code="EAST"), a_home(rt, code="WEST")
    staff_user(rt, "operator1", Role.OPERATOR, east.site.id)
    with TestClient(create_app(rt)) as client:
        sign_in(client, "operator1")
        found = client.get("/api/v1/audit", params={"action": "site."}).json()["items"]
        assert {e["site_id"] for e in found} <= {east.site.id}
        assert client.get("/api/v1/audit", params={"site_id": west.site.id}).status_code == 404
    with TestClient(create_app(rt)) as client:
        client.headers["Authorization"] = f"Bearer {token_for(rt)}"
        signed = client.get("/api/v1/audit", params={"action": "auth.sign_in"}).json()["items"]
        assert [e["actor"] for e in signed] == ["user:operator1"]


def _principal(rt: Runtime, user_id: int) -> Principal:
    return principal_of_user(rt, user_id)
