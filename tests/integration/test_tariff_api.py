"""Tariffs through the REST API: a newcomer defines real Chinese tariffs and quotes them.

Every figure comes from ``shared/reference/tariffs.md``: the Beijing residential
tiers (3000 kWh in a year cost 1470.90 元), the Shanghai time-of-use price
(peak 200 + valley 100 kWh cost 154.10 元) and Beijing tap water with its
resource and sewage fees (200 m³ cost 1040.00 元). Every test runs on SQLite
and on PostgreSQL (the ``rt`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from meterpay.cli import main
from meterpay.db import schema
from meterpay.runtime import Runtime
from meterpay.tariffs.components import TariffComponents
from meterpay.tariffs.files import FileFormat, load_tariff
from meterpay.tariffs.reference import BEIJING_POWER as BEIJING
from meterpay.tariffs.reference import BEIJING_WATER, SHANGHAI_TOU
from tests.integration.http import API, Json, created, error, ok

NEW_YEAR = "2026-01-01T00:00:00+08:00"


@pytest.fixture
def site_id(api: TestClient) -> int:
    found: int = created(api.post(f"{API}/sites", json={"code": "JIA", "name": "嘉园小区"}))["id"]
    return found


# --- readable helpers -------------------------------------------------------------------------


def define(
    api: TestClient,
    site_id: int,
    components: Json,
    *,
    code: str = "res",
    utility: str = "electricity",
    **extra: Any,
) -> Json:
    body = {
        "site_id": site_id,
        "code": code,
        "name": "居民阶梯电价",
        "utility": utility,
        "effective_from": NEW_YEAR,
        "components": components,
        **extra,
    }
    return created(api.post(f"{API}/tariffs", json=body))


def usage(quantity: str, start: str, end: str, **more: Any) -> Json:
    return {"quantity": quantity, "start": start, "end": end, **more}


def quote(api: TestClient, tariff_id: int, *profile: Json, **more: Any) -> Json:
    return ok(api.post(f"{API}/tariffs/{tariff_id}/quote", json={"profile": list(profile), **more}))


def every_row(rt: Runtime) -> dict[str, list[str]]:
    """Every row of every table, as text: "changes nothing" means this stays equal."""
    with rt.db.read() as conn:
        return {
            table.name: sorted(repr(tuple(row)) for row in conn.execute(select(table)))
            for table in schema.metadata.sorted_tables
        }


A_YEAR = (NEW_YEAR, "2027-01-01T00:00:00+08:00")
JUNE = ("2026-06-01T00:00:00+08:00", "2026-07-01T00:00:00+08:00")


# --- the reference amounts --------------------------------------------------------------------


def test_a_newcomer_gets_1470_90_for_3000_kwh_a_year_under_the_beijing_tiers(
    api: TestClient, site_id: int
) -> None:
    """2880 kWh at 0.4883 and 120 kWh at 0.5383: the boundary splits exactly."""
    tariff = define(api, site_id, BEIJING)
    assert tariff["warnings"] == []
    assert tariff["versions"][0]["components"]["tiers"]["steps"][1] == {
        "up_to": "4800",
        "markup": "0.05",
    }

    found = quote(api, tariff["id"], usage("3000", *A_YEAR))
    assert found["total"] == "1470.90"
    assert found["totals"] == {"energy": "1470.90"}
    assert [
        (ln["tier"], ln["quantity"], ln["unit_price"], ln["amount"]) for ln in found["lines"]
    ] == [
        (1, "2880.0000", "0.4883", "1406.304"),
        (2, "120.0000", "0.5383", "64.596"),
    ]
    assert found["state"] == {"cycle_start": "2026-01-01", "consumed": "3000.0000"}


def test_the_boundary_value_belongs_to_the_lower_tier(api: TestClient, site_id: int) -> None:
    """2880 kWh is all tier 1; the 2881st kWh is the first of tier 2."""
    tariff_id = define(api, site_id, BEIJING)["id"]
    assert [ln["tier"] for ln in quote(api, tariff_id, usage("2880", *A_YEAR))["lines"]] == [1]
    assert quote(api, tariff_id, usage("2881", *A_YEAR))["total"] == "1406.84"


def test_a_quote_continues_from_the_accounts_place_in_its_tier_cycle(
    api: TestClient, site_id: int
) -> None:
    """With 2000 kWh already used this year, 1000 more cost what the last 1000 of 3000 did."""
    tariff_id = define(api, site_id, BEIJING)["id"]
    state = {"cycle_start": "2026-01-01", "consumed": "2000"}
    found = quote(api, tariff_id, usage("1000", *JUNE), state=state)
    assert found["total"] == "494.30"  # 880 x 0.4883 + 120 x 0.5383 = 1470.90 - 976.60
    assert found["state"]["consumed"] == "3000.0000"


def test_the_shanghai_tou_tariff_prices_peak_200_and_valley_100_registers_at_154_10(
    api: TestClient, site_id: int
) -> None:
    """The meter's registers decide the split between peak and valley."""
    tariff_id = define(api, site_id, SHANGHAI_TOU, code="sh-tou")["id"]
    registers = {"peak": "200", "valley": "100"}
    found = quote(api, tariff_id, usage("300", *JUNE, registers=registers))
    assert found["total"] == "154.10"
    assert [(ln["period"], ln["quantity"], ln["amount"]) for ln in found["lines"]] == [
        ("peak", "200.0000", "123.40"),
        ("valley", "100.0000", "30.70"),
    ]


def test_300_kwh_over_june_from_timestamps_alone_also_cost_154_10(
    api: TestClient, site_id: int
) -> None:
    """Without registers, 16 peak hours of every 24 make 200 peak and 100 valley kWh."""
    tariff_id = define(api, site_id, SHANGHAI_TOU, code="sh-tou")["id"]
    found = quote(api, tariff_id, usage("300", *JUNE))
    assert found["total"] == "154.10"
    assert [(ln["tier"], ln["period"], ln["quantity"]) for ln in found["lines"]] == [
        (1, "peak", "200.0000"),
        (1, "valley", "100.0000"),
    ]


def test_200_m3_of_beijing_water_cost_1040_with_each_body_its_own_total(
    api: TestClient, site_id: int
) -> None:
    """水费 454.00 to the supplier, 水资源费 314.00 and 污水处理费 272.00 each on its own line."""
    tariff_id = define(api, site_id, BEIJING_WATER, code="water", utility="water")["id"]
    found = quote(api, tariff_id, usage("200", *A_YEAR))
    assert found["total"] == "1040.00"
    assert found["totals"] == {
        "energy": "454.00",
        "surcharge:water_resource": "314.00",
        "surcharge:sewage": "272.00",
    }
    assert [(ln["component"], ln["tier"], ln["quantity"]) for ln in found["lines"]] == [
        ("energy", 1, "180.0000"),
        ("energy", 2, "20.0000"),
        ("surcharge:water_resource", None, "200.0000"),
        ("surcharge:sewage", None, "200.0000"),
    ]


def test_a_quote_across_a_new_version_prices_each_part_by_the_version_in_force(
    api: TestClient, site_id: int
) -> None:
    """A price change on 1 July applies to the second half of a two-month profile only."""
    tariff_id = define(api, site_id, {"energy": {"unit_price": "0.5"}}, code="flat")["id"]
    change = {"effective_from": JUNE[1], "unit_price": "0.6", "reason": "调价"}
    created(api.post(f"{API}/tariffs/{tariff_id}/versions", json=change))
    found = quote(
        api,
        tariff_id,
        usage("100", JUNE[0], JUNE[1]),
        usage("100", JUNE[1], "2026-08-01T00:00:00+08:00"),
    )
    assert found["total"] == "110.00"


# --- defining and reading tariffs -------------------------------------------------------------


def test_get_and_list_show_every_versions_components(api: TestClient, site_id: int) -> None:
    """What was sent comes back in the stored form, in the tariff and in the list."""
    tariff = define(api, site_id, SHANGHAI_TOU, code="sh-tou")
    one = ok(api.get(f"{API}/tariffs/{tariff['id']}"))
    assert one == tariff
    components = one["versions"][0]["components"]
    assert components["time_of_use"]["prices"] == SHANGHAI_TOU["time_of_use"]["prices"]
    assert ok(api.get(f"{API}/tariffs", params={"site_id": site_id}))["items"] == [one]


def test_unit_price_alone_still_defines_a_flat_tariff(api: TestClient, site_id: int) -> None:
    """The old shorthand keeps working and shows as the energy component."""
    body = {
        "site_id": site_id,
        "code": "flat",
        "name": "平价",
        "utility": "electricity",
        "unit_price": "0.4883",
        "effective_from": NEW_YEAR,
    }
    version = created(api.post(f"{API}/tariffs", json=body))["versions"][0]
    assert version["unit_price"] == "0.4883"
    assert version["components"]["energy"] == {"unit_price": "0.4883"}
    assert version["components"]["tiers"] is None


def test_a_top_up_fee_comes_with_the_article_44_warning(api: TestClient, site_id: int) -> None:
    """物业管理条例 第四十四条: the fee is stored, but the API says it is unlawful in most cases."""
    with_fee = {"energy": {"unit_price": "0.4883"}, "topup_fee": {"percent": "1"}}
    tariff = define(api, site_id, with_fee)
    assert any("第四十四条" in warning for warning in tariff["warnings"])
    assert ok(api.get(f"{API}/tariffs/{tariff['id']}"))["warnings"] == tariff["warnings"]


def test_a_catalog_price_warns_of_every_price_above_it(api: TestClient, site_id: int) -> None:
    """Resale model 1: tiers 2 and 3 above the 0.4883 catalog price each draw a warning."""
    tariff = define(api, site_id, BEIJING, catalog_price="0.4883")
    assert [w.split("单价")[0] for w in tariff["warnings"]] == ["第2档", "第3档"]
    assert define(api, site_id, BEIJING, code="res2", catalog_price="0.79")["warnings"] == []


INVALID_COMPONENTS: dict[str, tuple[Json, str]] = {
    "a tier limit below the previous one": (
        {
            "energy": {"unit_price": "0.4883"},
            "tiers": {
                "cycle": "yearly",
                "steps": [{"up_to": "2880", "markup": "0"}, {"up_to": "100", "markup": "0.05"}],
            },
        },
        "components.tiers.steps[1].up_to",
    ),
    "a price as a JSON number": (
        {"energy": {"unit_price": 0.4883}},
        "components.energy.unit_price",
    ),
    "a price with five decimals": (
        {"energy": {"unit_price": "0.48831"}},
        "components.energy.unit_price",
    ),
    "an unknown key": (
        {"energy": {"unit_price": "0.4883"}, "discount": "0.1"},
        "components.discount",
    ),
    "windows leaving a gap": (
        {
            "energy": {"unit_price": "0.617"},
            "time_of_use": {
                "prices": {"peak": {"price": "0.617"}, "valley": {"price": "0.307"}},
                "schedules": [
                    {
                        "windows": [
                            {"period": "peak", "start": "06:00", "end": "21:00"},
                            {"period": "valley", "start": "22:00", "end": "06:00"},
                        ]
                    }
                ],
            },
        },
        "components.time_of_use.schedules[0].windows",
    ),
}


@pytest.mark.parametrize("case", list(INVALID_COMPONENTS))
def test_invalid_components_are_422_tariff_invalid_naming_the_field(
    api: TestClient, rt: Runtime, site_id: int, case: str
) -> None:
    """The error names the request field and the rule, and nothing is written."""
    components, field = INVALID_COMPONENTS[case]
    before = every_row(rt)
    body = {
        "site_id": site_id,
        "code": "bad",
        "name": "错误",
        "utility": "electricity",
        "effective_from": NEW_YEAR,
        "components": components,
    }
    problem = error(api.post(f"{API}/tariffs", json=body), 422, "tariff_invalid")
    assert problem["details"]["field"] == field
    assert problem["details"]["rule"]
    assert problem["message"].startswith(f"{field}: ")
    assert every_row(rt) == before


def test_components_and_unit_price_together_are_refused(api: TestClient, site_id: int) -> None:
    """A version's prices come one way or the other, never both."""
    body = {
        "site_id": site_id,
        "code": "both",
        "name": "两者",
        "utility": "electricity",
        "effective_from": NEW_YEAR,
        "components": BEIJING,
        "unit_price": "0.4883",
    }
    error(api.post(f"{API}/tariffs", json=body), 422, "invalid_input")


# --- versions once they have priced consumption ----------------------------------------------


def a_metered_home(api: TestClient, site_id: int, tariff_id: int) -> int:
    """A home on the tariff with its meter installed at 0 on New Year; the meter's id."""
    unit = created(
        api.post(f"{API}/units", json={"site_id": site_id, "code": "1-0101", "name": "1栋101"})
    )
    account = created(
        api.post(
            f"{API}/accounts",
            json={"unit_id": unit["id"], "utility": "electricity", "tariff_id": tariff_id},
        )
    )
    meter = created(
        api.post(
            f"{API}/meters",
            json={
                "unit_id": unit["id"],
                "utility": "electricity",
                "protocol": "dlt645_2007",
                "address": "000000000101",
                "account_id": account["id"],
                "installed_at": NEW_YEAR,
            },
        )
    )
    meter_id: int = meter["id"]
    return meter_id


def test_a_version_can_be_corrected_until_it_bills_then_editing_is_409(
    api: TestClient, site_id: int
) -> None:
    """Re-rating by edit is impossible: once readings were billed, add a new version instead."""
    tariff = define(api, site_id, BEIJING)
    path = f"{API}/tariffs/{tariff['id']}/versions/{tariff['versions'][0]['id']}"
    corrected = {**BEIJING, "energy": {"unit_price": "0.4884"}}
    fixed = ok(api.put(path, json={"components": corrected, "reason": "录入错误"}))
    assert fixed["versions"][0]["components"]["energy"] == {"unit_price": "0.4884"}

    meter_id = a_metered_home(api, site_id, tariff["id"])
    readings = [{"meter_id": meter_id, "read_at": "2026-02-01T00:00:00+08:00", "total": "100"}]
    assert ok(api.post(f"{API}/readings", json={"readings": readings}))["charged"] == "48.84"

    again = {"components": BEIJING, "reason": "再改"}
    error(api.put(path, json=again), 409, "conflict")
    assert ok(api.get(f"{API}/tariffs/{tariff['id']}")) == fixed


def test_a_quote_changes_no_rows(api: TestClient, rt: Runtime, site_id: int) -> None:
    """A quote reads the tariff and nothing else: no account, ledger or audit row moves."""
    tariff_id = define(api, site_id, BEIJING)["id"]
    meter_id = a_metered_home(api, site_id, tariff_id)
    readings = [{"meter_id": meter_id, "read_at": "2026-02-01T00:00:00+08:00", "total": "100"}]
    ok(api.post(f"{API}/readings", json={"readings": readings}))
    before = every_row(rt)

    state = {"cycle_start": "2026-01-01", "consumed": "100"}
    assert quote(api, tariff_id, usage("3000", *JUNE), state=state)["total"]
    assert every_row(rt) == before


def test_a_quote_of_an_unknown_tariff_is_404(api: TestClient) -> None:
    error(
        api.post(f"{API}/tariffs/987654/quote", json={"profile": [usage("1", *JUNE)]}),
        404,
        "not_found",
    )


def test_a_quote_with_a_usage_ending_before_it_starts_is_422(api: TestClient, site_id: int) -> None:
    """The usage's own rule comes back with its code and the field."""
    tariff_id = define(api, site_id, BEIJING)["id"]
    response = api.post(
        f"{API}/tariffs/{tariff_id}/quote", json={"profile": [usage("1", JUNE[1], JUNE[0])]}
    )
    assert error(response, 422, "invalid_usage")["details"] == {"field": "end"}


# --- the same tariffs as files, through the CLI -----------------------------------------------

BEIJING_WATER_YAML = """\
# 北京居民用水：年阶梯 180 / 260 m³，水资源费与污水处理费各成一行
code: bj-water
name: 北京居民阶梯水价
utility: water
effective_from: 2026-01-01T00:00:00+08:00
components:
  energy: {unit_price: 2.07}
  tiers:
    cycle: yearly
    steps:
      - {up_to: 180, markup: 0}
      - {up_to: 260, markup: 2}
      - {up_to: null, markup: 4}
  surcharges:
    - {code: water_resource, name: 水资源费, unit_price: 1.57, government_levy: true}
    - {code: sewage, name: 污水处理费, unit_price: 1.36, government_levy: true}
"""


@pytest.fixture
def cli(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """``meterpay`` run on the test's database; returns the exit code."""
    monkeypatch.setenv("MP_DATABASE_URL", rt.settings.database_url)
    return lambda *args: main(list(args))


def test_the_cli_imports_exports_and_quotes_a_yaml_tariff(
    api: TestClient,
    cli: Callable[..., int],
    site_id: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An operator's YAML file becomes the tariff the API shows, and quotes 1040.00 元."""
    tariff_file = tmp_path / "bj-water.yaml"
    tariff_file.write_text(BEIJING_WATER_YAML, encoding="utf-8")
    assert cli("tariff", "import", str(tariff_file), "--site", "JIA") == 0
    (tariff,) = ok(api.get(f"{API}/tariffs", params={"site_id": site_id}))["items"]
    assert (
        tariff["versions"][0]["components"] == TariffComponents.from_dict(BEIJING_WATER).to_dict()
    )
    capsys.readouterr()

    assert cli("tariff", "export", str(tariff["id"])) == 0
    exported = capsys.readouterr().out
    assert "name: 北京居民阶梯水价" in exported
    assert load_tariff(exported, FileFormat.YAML) == load_tariff(
        BEIJING_WATER_YAML, FileFormat.YAML
    )

    profile = tmp_path / "year.csv"
    profile.write_text(f"quantity,start,end\n200,{A_YEAR[0]},{A_YEAR[1]}\n", encoding="utf-8")
    assert cli("tariff", "quote", str(tariff["id"]), "--profile", str(profile)) == 0
    table = capsys.readouterr().out
    assert "第2档" in table
    assert "小计 水资源费: 314.00 元" in table
    assert table.rstrip().endswith("1040.00 元")


def test_the_cli_refuses_a_bad_file_naming_the_field_and_imports_nothing(
    rt: Runtime,
    cli: Callable[..., int],
    site_id: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Validation happens before any write: the error names the field, the database stays."""
    before = every_row(rt)
    tariff_file = tmp_path / "bad.yaml"
    tariff_file.write_text(BEIJING_WATER_YAML.replace("up_to: 260", "up_to: 100"), "utf-8")
    assert cli("tariff", "import", str(tariff_file), "--site", "JIA") == 1
    assert "components.tiers.steps[1].up_to" in capsys.readouterr().err
    assert every_row(rt) == before
