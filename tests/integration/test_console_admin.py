"""The console's administration and control pages: users and roles, the audit log,
tariff versions with the quote preview, group cut with a second person's approval (the
bulk import runs as a background job: ``test_jobs``)."""

from __future__ import annotations

import io
import re

import openpyxl  # type: ignore[import-untyped]
from fastapi.testclient import TestClient

from meterpay.auth.model import Role
from meterpay.control import manual
from meterpay.jobs import service as jobs
from meterpay.runtime import Runtime
from meterpay.web.app import create_app
from meterpay.web.console.job_pages import job_handlers
from tests.integration.builders import a_home
from tests.integration.console_builders import a_compound
from tests.integration.signed import browser, sign_in, staff_user

HTMX = {"HX-Request": "true"}


def _csrf(web: TestClient) -> str:
    return str(web.csrf)


def test_an_admin_creates_a_user_with_roles_and_sees_the_password_only_once(
    rt: Runtime,
) -> None:
    home = a_home(rt)
    with browser(rt, "admin1", Role.ADMIN) as web:
        page = web.get("/console/users")
        assert page.status_code == 200 and "用户与角色" in page.text
        made = web.post(
            "/console/users",
            data={
                "csrf_token": _csrf(web),
                "username": "wang",
                "display_name": "王<五>",
                "role": [f"cashier@{home.site.id}", f"operator@{home.site.id}"],
            },
        )
        assert made.status_code == 201, made.text
        shown = re.search(r'id="temporary-password">([^<]+)<', made.text)
        assert shown and len(shown.group(1)) == 12
        assert "王&lt;五&gt;" in made.text
        user_id = int(re.findall(r"/console/users/(\d+)/roles", made.text)[0])
        again = web.get(f"/console/users/{user_id}")
        assert again.status_code == 200 and shown.group(1) not in again.text
        changed = web.post(
            f"/console/users/{user_id}/roles",
            data={"csrf_token": _csrf(web), "role": f"cashier@{home.site.id}", "reason": "轮岗"},
            follow_redirects=False,
        )
        assert changed.status_code == 303
        found = web.get("/console/audit", params={"action": "user.", "q": "轮岗"})
        assert found.status_code == 200
        assert "user.roles" in found.text and "user:admin1" in found.text
        assert f"cashier@{home.site.id}, operator@{home.site.id}" in found.text  # before
        started = web.post(
            "/console/audit/export",
            data={"csrf_token": _csrf(web), "action": "user."},
            follow_redirects=False,
        )
        assert started.status_code == 303
        while jobs.run_next(rt, job_handlers(), runner="test"):
            pass
        exported = web.get(f"{started.headers['location']}/file")
        assert exported.headers["content-type"].startswith("application/vnd.openxml")
        rows = list(openpyxl.load_workbook(io.BytesIO(exported.content)).active.values)
        assert rows[1][4] == "user.roles" and len(rows) >= 3  # user.create too
        reset = web.post(
            f"/console/users/{user_id}/password-reset",
            data={"csrf_token": _csrf(web), "reason": "忘记密码"},
        )
        assert reset.status_code == 200 and 'id="temporary-password"' in reset.text
        forged = web.post("/console/users", data={"username": "x", "role": "admin@*"})
        assert forged.status_code == 403  # no CSRF token


def test_a_site_admin_sees_neither_another_sites_users_nor_its_audit(rt: Runtime) -> None:
    a, b = a_home(rt, code="AAA"), a_home(rt, code="BBB")
    other = staff_user(rt, "clerk-b", Role.CASHIER, b.site.id)
    staff_user(rt, "admin-a", Role.ADMIN, a.site.id)
    with TestClient(create_app(rt)) as web:
        sign_in(web, "admin-a")
        listed = web.get("/console/users")
        assert listed.status_code == 200 and "clerk-b" not in listed.text
        assert web.get(f"/console/users/{other}").status_code == 404
        assert web.get("/console/audit", params={"site_id": b.site.id}).status_code == 404
        mine = web.get("/console/audit", params={"site_id": a.site.id})
        assert mine.status_code == 200
        assert web.get("/console/tariffs", params={"site_id": b.site.id}).status_code == 404
        assert web.get(f"/console/tariffs/{b.tariff_id}").status_code == 404


def test_a_new_tariff_version_prices_the_quote_preview(rt: Runtime) -> None:
    home = a_home(rt, price="0.4883")
    with browser(rt, "admin1", Role.ADMIN) as web:
        page = web.get(f"/console/tariffs/{home.tariff_id}")
        assert page.status_code == 200 and "0.4883" in page.text
        now_quote = web.post(
            f"/console/tariffs/{home.tariff_id}/quote",
            data={"quantity": "100", "start": "2026-11-01T00:00", "end": "2026-11-02T00:00"},
            headers={"X-CSRF-Token": _csrf(web), **HTMX},
        )
        assert now_quote.status_code == 200 and "¥48.83" in now_quote.text
        assert "<html" not in now_quote.text  # a fragment for htmx
        added = web.post(
            f"/console/tariffs/{home.tariff_id}/versions",
            data={
                "csrf_token": _csrf(web),
                "effective_from": "2026-12-01T00:00",
                "mode": "tiered",
                "unit_price": "0.5",
                "cycle": "monthly",
                "up_to1": "50",
                "price1": "0.5",
                "price2": "0.8",
                "reason": "阶梯电价",
            },
            follow_redirects=False,
        )
        assert added.status_code == 303, added.text
        december = web.post(
            f"/console/tariffs/{home.tariff_id}/quote",
            data={"quantity": "100", "start": "2026-12-02T00:00", "end": "2026-12-03T00:00"},
            headers={"X-CSRF-Token": _csrf(web), **HTMX},
        )
        assert "¥65.00" in december.text  # 50 × 0.5 + 50 × 0.8
        bad = web.post(
            f"/console/tariffs/{home.tariff_id}/versions",
            data={
                "csrf_token": _csrf(web),
                "effective_from": "2027-01-01T00:00",
                "unit_price": "x",
            },
        )
        assert bad.status_code == 422 and 'class="problem"' in bad.text
        listing = web.get("/console/tariffs", params={"site_id": home.site.id})
        assert listing.status_code == 200 and "0.4883" in listing.text  # in force till Dec


def test_a_group_cut_is_previewed_requested_and_approved_only_by_another_person(
    rt: Runtime,
) -> None:
    compound = a_compound(rt)
    target = {"scope": "site", "scope_id": str(compound.site_id), "kind": "cut"}
    with browser(rt, "op1", Role.OPERATOR) as first:
        page = first.get("/console/control", params={"site_id": compound.site_id})
        assert page.status_code == 200 and "欠费策略" in page.text
        shown = first.post(
            "/console/control/preview",
            data=target,
            headers={"X-CSRF-Token": _csrf(first), **HTMX},
        )
        assert shown.status_code == 200
        expected = manual.preview(
            rt, scope=manual.Scope.SITE, scope_id=compound.site_id, kind=manual.ControlKind.CUT
        )
        meters = re.search(r'id="count-meters">(\d+)<', shown.text)
        protected = re.search(r'id="count-protected">(\d+)<', shown.text)
        assert meters and int(meters.group(1)) == len(expected.meters) > 0
        assert protected and int(protected.group(1)) == len(expected.protected_skipped) >= 1
        asked = first.post(
            "/console/control/actions",
            data={**target, "reason": "消防检修", "confirm": "yes", "csrf_token": _csrf(first)},
            follow_redirects=False,
        )
        assert asked.status_code == 303, asked.text
        action_url = asked.headers["location"]
        action_id = int(action_url.rsplit("/", 1)[-1])
        mine = first.post(f"{action_url}/approve", data={"csrf_token": _csrf(first)})
        assert mine.status_code == 409 and "second person" in mine.text
    assert manual.get(rt, action_id).state is manual.ActionState.AWAITING_APPROVAL
    with browser(rt, "op2", Role.OPERATOR) as second:
        approved = second.post(
            f"{action_url}/approve",
            data={"csrf_token": _csrf(second), "reason": "同意"},
            follow_redirects=False,
        )
        assert approved.status_code == 303
        page = second.get(action_url)
        assert page.status_code == 200 and "已执行" in page.text
        commands = second.get(f"{action_url}/commands")
        assert 'hx-trigger="every 3s"' in commands.text  # refreshing while in flight
    done = manual.get(rt, action_id)
    assert done.state is manual.ActionState.EXECUTED and done.commands_queued == len(
        expected.meters
    )


def test_thresholds_protection_policy_and_the_authenticator_are_set_from_the_pages(
    rt: Runtime,
) -> None:
    compound = a_compound(rt)
    account_id = compound.accounts["normal"]
    with browser(rt, "admin1", Role.ADMIN) as web:
        found = web.get(
            "/console/control", params={"site_id": compound.site_id, "q": "", "lang": "en"}
        )
        assert found.status_code == 200 and "Arrears policy" in found.text
        page = web.get("/console/control", params={"account_id": account_id})
        assert page.status_code == 200 and f'id="account-{account_id}"' in page.text
        lines = {"csrf_token": _csrf(web), "account_id": str(account_id), "reason": "大户"}
        saved = web.post(
            "/console/control/thresholds",
            data={**lines, "warning1": "50", "warning1_kind": "amount", "credit_limit": "20"},
            follow_redirects=False,
        )
        assert saved.status_code == 303, saved.text
        wrong = web.post(
            "/console/control/thresholds", data={**lines, "warning1": "3", "warning1_kind": "x"}
        )
        assert wrong.status_code in (303, 422)
        kept = web.post(
            "/console/control/protection",
            data={**lines, "protect": "on", "reason": "家中有透析病人"},
            follow_redirects=False,
        )
        assert kept.status_code == 303
        assert "家中有透析病人" in web.get(kept.headers["location"]).text
        policy = web.post(
            "/console/control/policy",
            data={
                "csrf_token": _csrf(web),
                "site_id": str(compound.site_id),
                "utility": "water",
                "notice_period_minutes": "4320",
                "final_notice_lead_minutes": "30",
                "automatic_cutoff": "",
                "reason": "水不自动停",
            },
            follow_redirects=False,
        )
        assert policy.status_code == 303, policy.text
        audit = web.get("/console/audit", params={"action": "control."})
        assert "control.protection" in audit.text and "control.account_thresholds" in audit.text
        totp = web.get("/console/totp")
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', totp.text)
        assert secret and "otpauth://totp/" in totp.text
        refused = web.post(
            "/console/totp",
            data={"csrf_token": _csrf(web), "secret": secret.group(1), "code": "000000"},
        )
        assert refused.status_code == 422
