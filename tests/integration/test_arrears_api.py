"""Arrears control over HTTP: policies, thresholds, protection, supply, commands, alarms;
bad input is refused with a clear error and changes nothing."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from meterpay.control import service as control
from meterpay.db.schema import audit_log
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.runtime import Runtime
from tests.integration.builders import a_home
from tests.integration.http import API, error, ok


def test_a_site_policy_is_read_changed_and_audited(rt: Runtime, api: TestClient) -> None:
    home = a_home(rt)
    url = f"{API}/sites/{home.site.id}/arrears-policy/electricity"
    before = ok(api.get(url))
    assert before["notice_period_minutes"] == 3 * 24 * 60
    assert before["friendly_hours"] == {"start": "18:00", "end": "08:00"}
    assert before["stored"] is False
    changed = ok(
        api.put(
            url,
            json={
                "warning1": {"days": 5},
                "credit_limit": "10.00",
                "friendly_hours": {"start": "20:00", "end": "07:30"},
                "restore_style": "close_allowed",
                "reason": "业委会决议 owners' decision",
            },
        )
    )
    assert changed["warning1"] == {"amount": None, "days": 5}
    assert changed["credit_limit"] == "10.00"
    assert changed["friendly_hours"] == {"start": "20:00", "end": "07:30"}
    assert changed["restore_style"] == "close_allowed"
    assert changed["stored"] is True
    assert ok(api.get(url)) == changed
    with rt.db.read() as conn:
        actions = conn.execute(
            select(audit_log.c.action, audit_log.c.reason).where(
                audit_log.c.object_type == "site", audit_log.c.object_id == str(home.site.id)
            )
        ).all()
    assert ("control.policy", "业委会决议 owners' decision") in actions


def test_contradicting_or_malformed_settings_are_refused_and_change_nothing(
    rt: Runtime, api: TestClient
) -> None:
    home = a_home(rt)
    url = f"{API}/sites/{home.site.id}/arrears-policy/electricity"
    before = ok(api.get(url))
    bad = error(
        api.put(url, json={"restore_point": "-5.00", "credit_limit": "1.00", "reason": "x"}),
        422,
        "invalid_thresholds",
    )
    assert bad["details"]["field"] == "restore_point"
    error(
        api.put(url, json={"friendly_hours": {"start": "25:00", "end": "08:00"}}),
        422,
        "invalid_input",
    )
    error(
        api.put(url, json={"warning1": {"amount": "1.00", "days": 2}, "reason": "x"}),
        422,
        "invalid_thresholds",
    )
    assert ok(api.get(url)) == before
    error(api.get(f"{API}/sites/999/arrears-policy/electricity"), 404, "not_found")


def test_protection_thresholds_and_the_supply_view(rt: Runtime, api: TestClient) -> None:
    home = a_home(rt)
    account = f"{API}/accounts/{home.account.id}"
    error(api.put(f"{account}/protection", json={"reason": ""}), 422, "invalid_input")
    shown = ok(api.put(f"{account}/protection", json={"reason": "养老院 elderly home"}))
    assert shown["reason"] == "养老院 elderly home"
    lines = ok(
        api.put(f"{account}/thresholds", json={"warning1": {"amount": "80.00"}, "reason": "owner"})
    )
    assert lines["warning1"] == {"amount": "80.00", "days": None}
    view = ok(api.get(f"{account}/supply"))
    assert view["state"] == "normal"
    assert view["protection"]["reason"] == "养老院 elderly home"
    assert view["thresholds"]["warning1"]["amount"] == "80.00"
    assert api.delete(f"{account}/protection", params={"reason": "moved out"}).status_code == 204
    assert ok(api.get(f"{account}/supply"))["protection"] is None
    error(api.get(f"{API}/accounts/999/supply"), 404, "not_found")
    assert ok(api.get(f"{API}/sites/{home.site.id}/supply-states"))["normal"] == 1
    assert ok(api.get(f"{API}/commands", params={"account_id": home.account.id})) == []
    assert ok(api.get(f"{API}/alarms")) == []
    assert control.supply_view(rt, home.account.id).balance == Money(0)
    assert control.policy(rt, home.site.id, Utility.WATER).policy.automatic_cutoff is False


def test_a_holiday_override_is_stored(rt: Runtime, api: TestClient) -> None:
    response = api.put(f"{API}/holidays/2027-10-01", json={"day_type": "holiday", "note": "国庆"})
    assert response.status_code == 204
    error(api.put(f"{API}/holidays/2027-10-02", json={"day_type": "party"}), 422, "invalid_input")
