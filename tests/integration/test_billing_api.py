"""Billing runs over HTTP: monthly fees, resale model 2 and what-if quotes for an account."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from meterpay.cli import main
from meterpay.kernel.quantity import Utility
from meterpay.metering.ingest import ingest_readings
from meterpay.runtime import Runtime
from tests.integration.http import API
from tests.integration.test_resale import _site_with_shops
from tests.integration.test_tariff_billing import BEIJING, _home, _readings


def test_the_monthly_fee_run_charges_once_over_http(api: TestClient, rt: Runtime) -> None:
    """POST /fees/runs twice: 10.00 charged the first time, nothing the second."""
    fee = {
        "energy": {"unit_price": "0.5"},
        "fixed_fees": [{"code": "service", "name": "月服务费", "amount": "10.00"}],
    }
    _home(rt, Utility.ELECTRICITY, fee)
    first = api.post(f"{API}/fees/runs", json={"month": "2026-11-01"}).json()
    again = api.post(f"{API}/fees/runs", json={"month": "2026-11-01"}).json()
    assert (first["total"], again["total"], again["already_charged"]) == ("10.00", "0.00", 1)
    bad = api.post(f"{API}/fees/runs", json={"month": "2026-11-15"})
    assert bad.status_code == 422


def test_a_supplier_bill_is_shared_over_http(api: TestClient, rt: Runtime) -> None:
    """PUT the site's supply model, POST the bill: shares add up, landlord keeps its part."""
    shop, landlord = _site_with_shops(rt, ["30", "10"])
    site_id = api.get(f"{API}/accounts/{shop}").json()["site_id"]
    assert (
        api.put(
            f"{API}/sites/{site_id}/supply/electricity",
            json={"resale_model": "shared", "catalog_price": "0.8000"},
        ).status_code
        == 204
    )
    body = {
        "utility": "electricity",
        "month": "2026-11-01",
        "amount": "40.00",
        "evidence": "国网 2026-11",
        "landlord_account_ids": [landlord],
    }
    result = api.post(f"{API}/sites/{site_id}/supplier-bills", json=body).json()
    assert result["shares"] == {str(shop): "30.00"}
    assert result["landlord_keeps"] == "10.00"
    assert api.get(f"{API}/accounts/{shop}").json()["balance"] == "-30.00"


def test_an_account_is_quoted_under_a_draft_tariff_over_http(api: TestClient, rt: Runtime) -> None:
    """Its year under the Beijing tiers would have cost 1470.90; its balance does not move."""
    _, account_id, meter_id = _home(rt, Utility.ELECTRICITY, {"energy": {"unit_price": "0.5"}})
    ingest_readings(rt, _readings(meter_id, ["2000", "3000"]), actor="test")
    before = api.get(f"{API}/accounts/{account_id}").json()["balance"]
    body = {
        "components": BEIJING,
        "start": "2026-01-01T00:00:00+08:00",
        "end": "2027-01-01T00:00:00+08:00",
    }
    result = api.post(f"{API}/accounts/{account_id}/quote", json=body).json()
    assert result["total"] == "1470.90"
    assert api.get(f"{API}/accounts/{account_id}").json()["balance"] == before == "-1500.00"
    bad = api.post(
        f"{API}/accounts/{account_id}/quote",
        json={**body, "components": {"energy": {"unit_price": "-1"}}},
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["details"]["field"].startswith("components.energy")


def test_the_fee_and_resale_commands_run_from_the_shell(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`meterpay fees run` and `meterpay resale share` do their runs and say what they did."""
    monkeypatch.setenv("MP_DATABASE_URL", rt.settings.database_url)
    _site_with_shops(rt, ["30", "10"])
    assert main(["fees", "run", "--month", "2026-11"]) == 0
    assert "固定费用" in capsys.readouterr().out
    args = [
        "resale",
        "share",
        "--site",
        "MALL",
        "--utility",
        "electricity",
        "--month",
        "2026-11",
        "--amount",
        "40.00",
        "--evidence",
        "国网 2026-11",
        "--landlord",
        "E-S1",
    ]
    assert main(args) == 0
    assert "分摊到 1 户" in capsys.readouterr().out
    assert main([*args[:-1], "E-NOPE"]) == 1
