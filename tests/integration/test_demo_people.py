"""The demo's logins: one staff member per role and one owner, made once, each able to
sign in with the password the README lists and reaching what its role allows."""

from __future__ import annotations

from fastapi.testclient import TestClient

from meterpay.auth import service as auth
from meterpay.runtime import Runtime
from meterpay.sim import demo
from meterpay.sim.demo_people import OWNER, OWNER_PHONE, STAFF, logins_text, seed_people
from meterpay.web.app import create_app


def test_every_demo_login_signs_in_and_the_owner_sees_their_unit(rt: Runtime) -> None:
    site_id = demo.seed(rt, units_per_floor=1)
    seed_people(rt, site_id)
    seed_people(rt, site_id)  # a demo that runs again keeps its people
    for login in STAFF:
        signed = auth.sign_in(rt, login.who, login.password)
        assert [r.value for r, _ in signed.principal.roles] == [login.role.value]
    owner = auth.sign_in_owner(rt, OWNER_PHONE, OWNER.password)
    assert len(owner.principal.customer_ids) == 1
    with TestClient(create_app(rt)) as client:
        client.cookies.set("mp_session", owner.token)
        page = client.get("/portal")
        assert page.status_code == 200 and "1-0301" in page.text
    text = logins_text("http://127.0.0.1:8000")
    assert all(login.password in text for login in (*STAFF, OWNER))
