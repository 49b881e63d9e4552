"""The REST API under /api/v1, end to end through FastAPI's TestClient.

Every test runs on SQLite and on PostgreSQL (the ``rt`` fixture). What the
API promises its integrators: money as decimal strings, times as ISO 8601
with an offset, idempotent readings and top-ups, keyset paging, and errors as
``{"error": {"code", "message"}}`` with stable codes — where bad input
changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from meterpay.db import schema
from meterpay.runtime import Runtime
from meterpay.web.app import create_app
from tests.conftest import START
from tests.integration.http import API, Json, created, error, ok
from tests.integration.signed import token_for

INSTALLED = START - timedelta(days=1)
A_YEAR_AGO = START - timedelta(days=365)
MONEY = re.compile(r"^-?\d+\.\d{2}$")
WITH_OFFSET = re.compile(r"(Z|[+-]\d{2}:\d{2})$")


# --- readable helpers -------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.isoformat()


def at(moment: str) -> datetime:
    """Parse an API time, insisting that it carries an offset."""
    assert WITH_OFFSET.search(moment), f"{moment} has no offset"
    parsed = datetime.fromisoformat(moment)
    assert parsed.utcoffset() is not None
    return parsed


@dataclass(frozen=True)
class Compound:
    """One site, one flat electricity tariff, one home, its account and its meter at 0."""

    site_id: int
    tariff_id: int
    unit_id: int
    account_id: int
    meter_id: int


def a_compound(api: TestClient, *, code: str = "GREEN", price: str = "0.4883") -> Compound:
    site = created(api.post(f"{API}/sites", json={"code": code, "name": "绿地小区"}))
    tariff = created(
        api.post(
            f"{API}/tariffs",
            json={
                "site_id": site["id"],
                "code": "elec-flat",
                "name": "居民电价",
                "utility": "electricity",
                "unit_price": price,
                "effective_from": iso(A_YEAR_AGO),
            },
        )
    )
    unit = created(
        api.post(f"{API}/units", json={"site_id": site["id"], "code": "1-0101", "name": "1栋101"})
    )
    account = created(
        api.post(
            f"{API}/accounts",
            json={"unit_id": unit["id"], "utility": "electricity", "tariff_id": tariff["id"]},
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
                "installed_at": iso(INSTALLED),
                "max_rate_per_hour": "20",
            },
        )
    )
    return Compound(site["id"], tariff["id"], unit["id"], account["id"], meter["id"])


def reading(meter_id: int, read_at: datetime | str, total: str) -> Json:
    when = read_at if isinstance(read_at, str) else iso(read_at)
    return {"meter_id": meter_id, "read_at": when, "total": total}


def post_readings(api: TestClient, *items: Json) -> Json:
    return ok(api.post(f"{API}/readings", json={"readings": list(items)}))


def top_up(api: TestClient, account_id: int, amount: str, key: str) -> Json:
    body = {"amount": amount, "idempotency_key": key}
    return ok(api.post(f"{API}/accounts/{account_id}/top-ups", json=body))


def balance(api: TestClient, account_id: int) -> str:
    found: str = ok(api.get(f"{API}/accounts/{account_id}"))["balance"]
    return found


SNAPSHOT_TABLES = (
    schema.sites,
    schema.buildings,
    schema.units,
    schema.customers,
    schema.accounts,
    schema.tariffs,
    schema.tariff_versions,
    schema.meters,
    schema.readings,
    schema.charges,
    schema.transfers,
    schema.audit_log,
)


def row_counts(rt: Runtime) -> dict[str, int]:
    """How many rows each table holds: "changes nothing" means these stay put."""
    with rt.db.read() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in SNAPSHOT_TABLES
        }


# --- places -----------------------------------------------------------------------------------


def test_a_site_is_created_read_listed_and_renamed(api: TestClient, rt: Runtime) -> None:
    """A site comes back as it was sent, with its default time zone and creation time."""
    site = created(api.post(f"{API}/sites", json={"code": "GREEN", "name": "绿地小区"}))
    assert site["code"] == "GREEN"
    assert site["timezone"] == "Asia/Shanghai"
    assert at(site["created_at"]) == rt.clock.now()
    assert ok(api.get(f"{API}/sites/{site['id']}")) == site

    renamed = ok(
        api.patch(f"{API}/sites/{site['id']}", json={"name": "绿地二期", "timezone": "Asia/Urumqi"})
    )
    assert (renamed["name"], renamed["timezone"], renamed["code"]) == (
        "绿地二期",
        "Asia/Urumqi",
        "GREEN",
    )
    assert ok(api.get(f"{API}/sites"))["items"] == [renamed]


def test_buildings_and_floors_are_created_renamed_listed_and_deleted(api: TestClient) -> None:
    """A building with floors cannot be deleted; once its floors are gone, it can."""
    site = created(api.post(f"{API}/sites", json={"code": "GREEN", "name": "绿地小区"}))
    building = created(
        api.post(f"{API}/buildings", json={"site_id": site["id"], "code": "B1", "name": "1栋"})
    )
    renamed = ok(api.patch(f"{API}/buildings/{building['id']}", json={"name": "一号楼"}))
    assert renamed == {**building, "name": "一号楼"}
    assert ok(api.get(f"{API}/buildings", params={"site_id": site["id"]}))["items"] == [renamed]

    floor = created(api.post(f"{API}/floors", json={"building_id": building["id"], "level": 3}))
    assert floor["name"] == "3层"
    assert ok(api.get(f"{API}/floors/{floor['id']}")) == floor
    listed = ok(api.get(f"{API}/floors", params={"building_id": building["id"]}))
    assert listed["items"] == [floor]

    error(api.delete(f"{API}/buildings/{building['id']}"), 409, "conflict")
    assert api.delete(f"{API}/floors/{floor['id']}").status_code == 204
    error(api.get(f"{API}/floors/{floor['id']}"), 404, "not_found")
    assert api.delete(f"{API}/buildings/{building['id']}").status_code == 204
    error(api.get(f"{API}/buildings/{building['id']}"), 404, "not_found")


def test_a_unit_is_created_on_a_floor_patched_listed_and_deleted(api: TestClient) -> None:
    """A unit's area travels as a decimal string; its kind and area can be patched."""
    site = created(api.post(f"{API}/sites", json={"code": "GREEN", "name": "绿地小区"}))
    building = created(
        api.post(f"{API}/buildings", json={"site_id": site["id"], "code": "B1", "name": "1栋"})
    )
    floor = created(api.post(f"{API}/floors", json={"building_id": building["id"], "level": 1}))
    unit = created(
        api.post(
            f"{API}/units",
            json={
                "site_id": site["id"],
                "floor_id": floor["id"],
                "code": "1-0101",
                "name": "1栋101",
                "area_m2": "88.5",
            },
        )
    )
    assert (unit["kind"], unit["area_m2"], unit["floor_id"]) == ("home", "88.50", floor["id"])

    patched = ok(api.patch(f"{API}/units/{unit['id']}", json={"kind": "shop", "area_m2": "90.25"}))
    assert (patched["kind"], patched["area_m2"], patched["name"]) == ("shop", "90.25", "1栋101")
    assert ok(api.get(f"{API}/units/{unit['id']}")) == patched
    assert ok(api.get(f"{API}/units", params={"floor_id": floor["id"]}))["items"] == [patched]

    assert api.delete(f"{API}/units/{unit['id']}").status_code == 204
    error(api.get(f"{API}/units/{unit['id']}"), 404, "not_found")


def test_a_unit_on_a_floor_of_another_site_is_refused(api: TestClient, rt: Runtime) -> None:
    """A floor belongs to one site; a unit elsewhere cannot hang from it."""
    green = created(api.post(f"{API}/sites", json={"code": "GREEN", "name": "绿地小区"}))
    blue = created(api.post(f"{API}/sites", json={"code": "BLUE", "name": "蓝湾小区"}))
    building = created(
        api.post(f"{API}/buildings", json={"site_id": green["id"], "code": "B1", "name": "1栋"})
    )
    floor = created(api.post(f"{API}/floors", json={"building_id": building["id"], "level": 1}))
    before = row_counts(rt)
    body = {"site_id": blue["id"], "floor_id": floor["id"], "code": "1-0101", "name": "1栋101"}
    error(api.post(f"{API}/units", json=body), 422, "invalid_input")
    assert row_counts(rt) == before


# --- customers and accounts -------------------------------------------------------------------


def test_a_customer_is_created_found_by_phone_patched_and_deleted(api: TestClient) -> None:
    """Customers can be looked up by phone; a patch changes only what it names."""
    site = created(api.post(f"{API}/sites", json={"code": "GREEN", "name": "绿地小区"}))
    customer = created(
        api.post(
            f"{API}/customers",
            json={"site_id": site["id"], "name": "张三", "phone": "13800000000"},
        )
    )
    created(api.post(f"{API}/customers", json={"site_id": site["id"], "name": "李四"}))
    assert customer["kind"] == "person"
    assert at(customer["created_at"])

    found = ok(api.get(f"{API}/customers", params={"phone": "13800000000"}))
    assert found["items"] == [customer]
    patched = ok(api.patch(f"{API}/customers/{customer['id']}", json={"email": "z3@example.com"}))
    assert patched == {**customer, "email": "z3@example.com"}

    assert api.delete(f"{API}/customers/{customer['id']}").status_code == 204
    error(api.get(f"{API}/customers/{customer['id']}"), 404, "not_found")


def test_an_account_opens_at_zero_and_its_thresholds_change_by_patch(api: TestClient) -> None:
    """Thresholds are sent and shown in 元 as decimal strings; unset ones are null."""
    home = a_compound(api)
    customer = created(api.post(f"{API}/customers", json={"site_id": home.site_id, "name": "张三"}))
    unit = created(
        api.post(f"{API}/units", json={"site_id": home.site_id, "code": "1-0102", "name": "102"})
    )
    account = created(
        api.post(
            f"{API}/accounts",
            json={
                "unit_id": unit["id"],
                "utility": "electricity",
                "tariff_id": home.tariff_id,
                "customer_id": customer["id"],
                "warning1": "20",
                "credit_limit": "50.5",
            },
        )
    )
    assert account["number"] == "E-1-0102"
    assert (account["balance"], account["status"], account["supply_state"]) == (
        "0.00",
        "open",
        "normal",
    )
    assert account["thresholds"] == {
        "warning1": "20.00",
        "warning2": None,
        "credit_limit": "50.50",
        "disconnect": None,
        "reconnect": None,
    }

    patched = ok(
        api.patch(
            f"{API}/accounts/{account['id']}",
            json={"warning2": "10.00", "credit_limit": None, "reason": "业主申请"},
        )
    )
    assert patched["thresholds"] == {
        **account["thresholds"],
        "warning2": "10.00",
        "credit_limit": None,
    }
    assert ok(api.get(f"{API}/accounts/{account['id']}")) == patched
    listed = ok(api.get(f"{API}/accounts", params={"customer_id": customer["id"]}))
    assert listed["items"] == [patched]


def test_an_account_cannot_be_priced_by_a_tariff_of_another_utility(
    api: TestClient, rt: Runtime
) -> None:
    """Electricity money never pays for water: a water tariff on a power account is refused."""
    home = a_compound(api)
    water = created(
        api.post(
            f"{API}/tariffs",
            json={
                "site_id": home.site_id,
                "code": "water-flat",
                "name": "居民水价",
                "utility": "water",
                "unit_price": "3.45",
                "effective_from": iso(A_YEAR_AGO),
            },
        )
    )
    before = row_counts(rt)
    patch = {"tariff_id": water["id"]}
    error(api.patch(f"{API}/accounts/{home.account_id}", json=patch), 422, "invalid_input")
    assert ok(api.get(f"{API}/accounts/{home.account_id}"))["tariff_id"] == home.tariff_id
    assert row_counts(rt) == before


def test_an_account_cannot_belong_to_a_customer_of_another_site(
    api: TestClient, rt: Runtime
) -> None:
    """Neither on opening nor by a later patch does an account cross to another site."""
    home = a_compound(api)
    blue = created(api.post(f"{API}/sites", json={"code": "BLUE", "name": "蓝湾小区"}))
    stranger = created(api.post(f"{API}/customers", json={"site_id": blue["id"], "name": "王五"}))
    unit = created(
        api.post(f"{API}/units", json={"site_id": home.site_id, "code": "1-0102", "name": "102"})
    )
    before = row_counts(rt)
    body = {
        "unit_id": unit["id"],
        "utility": "electricity",
        "tariff_id": home.tariff_id,
        "customer_id": stranger["id"],
    }
    error(api.post(f"{API}/accounts", json=body), 422, "invalid_input")
    patch = {"customer_id": stranger["id"]}
    error(api.patch(f"{API}/accounts/{home.account_id}", json=patch), 422, "invalid_input")
    assert ok(api.get(f"{API}/accounts/{home.account_id}"))["customer_id"] is None
    assert row_counts(rt) == before


# --- meters and tariffs -----------------------------------------------------------------------


def test_a_meter_is_registered_read_listed_and_patched(api: TestClient) -> None:
    """A new meter starts at its initial reading; quantities are decimal strings."""
    home = a_compound(api)
    meter = ok(api.get(f"{API}/meters/{home.meter_id}"))
    assert (meter["status"], meter["multiplier"], meter["account_id"]) == (
        "active",
        1,
        home.account_id,
    )
    assert (meter["last_total"], meter["max_rate_per_hour"], meter["register_capacity"]) == (
        "0.0000",
        "20.0000",
        None,
    )
    assert at(meter["installed_at"]) == INSTALLED
    assert at(meter["last_read_at"]) == INSTALLED

    patched = ok(
        api.patch(
            f"{API}/meters/{home.meter_id}",
            json={"has_switch": True, "max_rate_per_hour": "30", "reason": "换了带继电器的表"},
        )
    )
    assert patched == {**meter, "has_switch": True, "max_rate_per_hour": "30.0000"}
    listed = ok(api.get(f"{API}/meters", params={"account_id": home.account_id}))
    assert listed["items"] == [patched]


def test_a_second_active_meter_at_the_same_address_is_a_conflict(
    api: TestClient, rt: Runtime
) -> None:
    """Within a site, a protocol address names one active meter."""
    home = a_compound(api)
    before = row_counts(rt)
    body = {
        "unit_id": home.unit_id,
        "utility": "electricity",
        "protocol": "dlt645_2007",
        "address": "000000000101",
    }
    error(api.post(f"{API}/meters", json=body), 409, "conflict")
    assert row_counts(rt) == before


def test_a_flat_tariff_is_created_and_gets_a_new_version(api: TestClient) -> None:
    """Prices are 4-decimal strings; versions are listed by their effective date."""
    home = a_compound(api)
    tariff = ok(api.get(f"{API}/tariffs/{home.tariff_id}"))
    assert (tariff["utility"], tariff["code"]) == ("electricity", "elec-flat")
    assert [v["unit_price"] for v in tariff["versions"]] == ["0.4883"]
    assert at(tariff["versions"][0]["effective_from"]) == A_YEAR_AGO

    next_month = START + timedelta(days=30)
    changed = created(
        api.post(
            f"{API}/tariffs/{home.tariff_id}/versions",
            json={"unit_price": "0.5", "effective_from": iso(next_month), "reason": "调价"},
        )
    )
    assert [(at(v["effective_from"]), v["unit_price"]) for v in changed["versions"]] == [
        (A_YEAR_AGO, "0.4883"),
        (next_month, "0.5000"),
    ]
    assert ok(api.get(f"{API}/tariffs", params={"site_id": home.site_id}))["items"] == [changed]

    again = {"unit_price": "0.6", "effective_from": iso(next_month)}
    error(api.post(f"{API}/tariffs/{home.tariff_id}/versions", json=again), 409, "conflict")
    assert ok(api.get(f"{API}/tariffs/{home.tariff_id}")) == changed


def test_consumption_is_priced_by_the_version_in_force_when_it_was_used(api: TestClient) -> None:
    """Ten kWh before a price change cost the old price, ten after it the new one."""
    home = a_compound(api, price="0.5")
    change = START - timedelta(hours=12)
    body = {"unit_price": "1", "effective_from": iso(change)}
    created(api.post(f"{API}/tariffs/{home.tariff_id}/versions", json=body))

    result = post_readings(
        api,
        reading(home.meter_id, change, "10"),
        reading(home.meter_id, START - timedelta(hours=1), "20"),
    )
    assert [r["charge"] for r in result["results"]] == ["5.00", "10.00"]
    assert balance(api, home.account_id) == "-15.00"


# --- paging -----------------------------------------------------------------------------------


def test_lists_page_by_id_with_after_id_and_next_after_id(api: TestClient) -> None:
    """Following next_after_id visits every site once, in id order, and then stops."""
    codes = [f"S{n}" for n in range(5)]
    for code in codes:
        created(api.post(f"{API}/sites", json={"code": code, "name": code}))
    pages: list[list[Json]] = []
    after_id: int | None = None
    while True:
        params = {"limit": 2} | ({"after_id": after_id} if after_id is not None else {})
        page = ok(api.get(f"{API}/sites", params=params))
        pages.append(page["items"])
        after_id = page["next_after_id"]
        if after_id is None:
            break
        assert after_id == page["items"][-1]["id"]
    assert [len(p) for p in pages] == [2, 2, 1]
    seen = [site for page in pages for site in page]
    assert [s["code"] for s in seen] == codes
    assert [s["id"] for s in seen] == sorted(s["id"] for s in seen)


def test_paging_combines_with_a_filter(api: TestClient) -> None:
    """A filtered list pages over the matching rows only."""
    green = created(api.post(f"{API}/sites", json={"code": "GREEN", "name": "绿地小区"}))
    blue = created(api.post(f"{API}/sites", json={"code": "BLUE", "name": "蓝湾小区"}))
    for n in range(3):
        for site in (green, blue):
            body = {"site_id": site["id"], "code": f"U{n}", "name": f"U{n}"}
            created(api.post(f"{API}/units", json=body))
    first = ok(api.get(f"{API}/units", params={"site_id": blue["id"], "limit": 2}))
    rest = ok(
        api.get(
            f"{API}/units",
            params={"site_id": blue["id"], "limit": 2, "after_id": first["next_after_id"]},
        )
    )
    units = first["items"] + rest["items"]
    assert [(u["site_id"], u["code"]) for u in units] == [(blue["id"], f"U{n}") for n in range(3)]
    assert rest["next_after_id"] is None


# --- readings ---------------------------------------------------------------------------------


def test_posting_the_same_readings_batch_twice_bills_once_and_says_duplicate(
    api: TestClient, rt: Runtime
) -> None:
    """The second delivery of a batch is all duplicates: no reading, no money moves."""
    home = a_compound(api)
    top_up(api, home.account_id, "100", "cash-1")
    batch = [
        reading(home.meter_id, START - timedelta(hours=3), "4"),
        reading(home.meter_id, START - timedelta(hours=2), "7"),
        reading(home.meter_id, START - timedelta(hours=1), "10"),
    ]
    first = post_readings(api, *batch)
    assert first["counts"] == {"received": 3, "valid": 3}
    assert first["charged"] == "4.88"
    assert balance(api, home.account_id) == "95.12"
    before = row_counts(rt)

    second = post_readings(api, *batch)
    assert second["counts"] == {"received": 3, "duplicate": 3}
    assert second["charged"] == "0.00"
    assert [(r["stored"], r["quality"], r["reading_id"]) for r in second["results"]] == [
        (False, "duplicate", None)
    ] * 3
    assert balance(api, home.account_id) == "95.12"
    assert row_counts(rt) == before


def test_money_is_a_decimal_string_and_times_carry_an_offset(api: TestClient) -> None:
    """10 kWh at 0.4883 costs "4.88" and leaves "95.12"; a +08:00 time keeps its instant."""
    home = a_compound(api)
    paid = top_up(api, home.account_id, "100", "cash-1")
    assert (paid["amount"], paid["balance"]) == ("100.00", "100.00")

    result = post_readings(api, reading(home.meter_id, "2026-11-01T07:00:00+08:00", "10"))
    (one,) = result["results"]
    assert at(one["read_at"]) == START - timedelta(hours=1)
    assert (one["quality"], one["consumption"], one["charge"]) == ("valid", "10.0000", "4.88")
    assert result["charged"] == "4.88"

    account = ok(api.get(f"{API}/accounts/{home.account_id}"))
    history = ok(api.get(f"{API}/accounts/{home.account_id}/ledger"))["items"]
    amounts = [account["balance"], paid["amount"], *(e["amount"] for e in history)]
    assert amounts == ["95.12", "100.00", "-4.88", "100.00"]
    assert all(isinstance(a, str) and MONEY.match(a) for a in amounts)
    for moment in [account["opened_at"], *(e["at"] for e in history)]:
        assert at(moment) == START


def test_a_reading_more_than_five_minutes_ahead_is_kept_but_not_billed(api: TestClient) -> None:
    """Four minutes ahead of our clock is drift; ten minutes ahead is 'future'."""
    home = a_compound(api)
    drift = post_readings(api, reading(home.meter_id, START + timedelta(minutes=4), "10"))
    assert drift["results"][0]["quality"] == "valid"
    future = post_readings(api, reading(home.meter_id, START + timedelta(minutes=10), "12"))
    (one,) = future["results"]
    assert (one["stored"], one["quality"], one["flags"], one["charge"]) == (
        True,
        "suspect",
        ["future"],
        "0.00",
    )
    assert balance(api, home.account_id) == "-4.88"


def test_a_readings_batch_with_an_unknown_meter_is_refused_whole(
    api: TestClient, rt: Runtime
) -> None:
    """No reading of the batch is stored, so the good one bills when sent again alone."""
    home = a_compound(api)
    good = reading(home.meter_id, START - timedelta(hours=1), "10")
    before = row_counts(rt)
    response = api.post(
        f"{API}/readings", json={"readings": [good, reading(home.meter_id + 999, START, "1")]}
    )
    problem = error(response, 422, "invalid_input")
    assert problem["details"]["unknown"] == [home.meter_id + 999]
    assert row_counts(rt) == before
    assert post_readings(api, good)["counts"] == {"received": 1, "valid": 1}


# --- money ------------------------------------------------------------------------------------


def test_a_cash_top_up_repeated_with_its_key_moves_money_once(api: TestClient, rt: Runtime) -> None:
    """The repeat answers with the same transfer, says duplicate, and changes nothing."""
    home = a_compound(api)
    first = top_up(api, home.account_id, "50", "counter-7-0001")
    assert (first["amount"], first["balance"], first["duplicate"]) == ("50.00", "50.00", False)
    before = row_counts(rt)

    again = top_up(api, home.account_id, "50.00", "counter-7-0001")
    assert again == {**first, "duplicate": True}
    assert balance(api, home.account_id) == "50.00"
    assert row_counts(rt) == before


def test_the_same_top_up_key_with_another_amount_is_an_idempotency_conflict(
    api: TestClient, rt: Runtime
) -> None:
    """A key names one request; reusing it for a different amount is refused."""
    home = a_compound(api)
    top_up(api, home.account_id, "50", "counter-7-0001")
    before = row_counts(rt)
    body = {"amount": "60", "idempotency_key": "counter-7-0001"}
    response = api.post(f"{API}/accounts/{home.account_id}/top-ups", json=body)
    error(response, 409, "idempotency_conflict")
    assert balance(api, home.account_id) == "50.00"
    assert row_counts(rt) == before


def test_the_ledger_history_is_newest_first_and_pages_with_before_id(api: TestClient) -> None:
    """Passing each page's last id as before_id walks the whole history once."""
    home = a_compound(api)
    for n in range(1, 5):
        top_up(api, home.account_id, str(n), f"cash-{n}")
    post_readings(api, reading(home.meter_id, START - timedelta(hours=1), "10"))

    pages: list[list[Json]] = []
    before_id: int | None = None
    while True:
        params = {"limit": 2} | ({"before_id": before_id} if before_id is not None else {})
        page = ok(api.get(f"{API}/accounts/{home.account_id}/ledger", params=params))
        pages.append(page["items"])
        before_id = page["next_before_id"]
        if before_id is None:
            break
    entries = [e for page in pages for e in page]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    assert [(e["kind"], e["amount"]) for e in entries] == [
        ("charge", "-4.88"),
        ("top_up", "4.00"),
        ("top_up", "3.00"),
        ("top_up", "2.00"),
        ("top_up", "1.00"),
    ]
    assert entries[1]["key"] == "topup:cash:cash-4"


# --- meter replacement ------------------------------------------------------------------------


def test_replacing_a_meter_bills_the_old_meters_rest_and_the_new_meters_advance(
    api: TestClient,
) -> None:
    """Billed: old final - old last (15 - 10) + new reading - new initial (7 - 3)."""
    home = a_compound(api, price="1")
    post_readings(api, reading(home.meter_id, START - timedelta(hours=3), "10"))
    assert balance(api, home.account_id) == "-10.00"

    replaced_at = START - timedelta(hours=2)
    new = created(
        api.post(
            f"{API}/meters/{home.meter_id}/replace",
            json={
                "final_total": "15",
                "replaced_at": iso(replaced_at),
                "new_address": "000000000202",
                "new_initial_total": "3",
                "reason": "表计烧坏",
            },
        )
    )
    assert (new["unit_id"], new["account_id"], new["status"]) == (
        home.unit_id,
        home.account_id,
        "active",
    )
    assert (new["last_total"], at(new["installed_at"])) == ("3.0000", replaced_at)
    assert ok(api.get(f"{API}/meters/{home.meter_id}"))["status"] == "removed"
    assert balance(api, home.account_id) == "-15.00"

    post_readings(api, reading(new["id"], START - timedelta(hours=1), "7"))
    assert balance(api, home.account_id) == "-19.00"
    charges = ok(api.get(f"{API}/accounts/{home.account_id}/ledger"))["items"]
    assert [e["amount"] for e in charges] == ["-4.00", "-5.00", "-10.00"]


def test_a_removed_meter_cannot_be_replaced_again(api: TestClient, rt: Runtime) -> None:
    """The second replacement of the same meter is a conflict and changes nothing."""
    home = a_compound(api)
    body = {
        "final_total": "15",
        "replaced_at": iso(START - timedelta(hours=2)),
        "new_address": "000000000202",
        "reason": "表计烧坏",
    }
    created(api.post(f"{API}/meters/{home.meter_id}/replace", json=body))
    before = row_counts(rt)
    again = {**body, "replaced_at": iso(START - timedelta(hours=1)), "new_address": "303"}
    error(api.post(f"{API}/meters/{home.meter_id}/replace", json=again), 409, "conflict")
    assert row_counts(rt) == before


# --- errors -----------------------------------------------------------------------------------

UNKNOWN = 987_654


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/sites/{id}", None),
        ("PATCH", "/sites/{id}", {"name": "x"}),
        ("GET", "/buildings/{id}", None),
        ("GET", "/floors/{id}", None),
        ("GET", "/units/{id}", None),
        ("DELETE", "/units/{id}", None),
        ("GET", "/customers/{id}", None),
        ("GET", "/accounts/{id}", None),
        ("GET", "/accounts/{id}/ledger", None),
        ("POST", "/accounts/{id}/top-ups", {"amount": "1", "idempotency_key": "k"}),
        ("GET", "/tariffs/{id}", None),
        ("GET", "/meters/{id}", None),
        ("PATCH", "/meters/{id}", {"has_switch": True}),
        ("POST", "/buildings", {"site_id": "{id}", "code": "B1", "name": "1栋"}),
    ],
)
def test_an_unknown_id_is_404_not_found(
    api: TestClient, method: str, path: str, body: Json | None
) -> None:
    """Whatever the verb, an id that names nothing is a not_found error in JSON."""
    sent = {k: UNKNOWN if v == "{id}" else v for k, v in (body or {}).items()}
    response = api.request(method, API + path.format(id=UNKNOWN), json=sent if body else None)
    error(response, 404, "not_found")


def test_an_unknown_path_is_a_json_404(api: TestClient) -> None:
    """Even the framework's own 404 uses the error body clients parse."""
    error(api.get(f"{API}/no-such-thing"), 404, "not_found")


BadPayload = Callable[[Compound], tuple[str, str, Json]]

BAD_PAYLOADS: dict[str, BadPayload] = {
    "a top-up of 10.005 as a JSON number": lambda c: (
        "POST",
        f"/accounts/{c.account_id}/top-ups",
        {"amount": 10.005, "idempotency_key": "k-1"},
    ),
    "a top-up of 10.005 as text": lambda c: (
        "POST",
        f"/accounts/{c.account_id}/top-ups",
        {"amount": "10.005", "idempotency_key": "k-1"},
    ),
    "a negative top-up": lambda c: (
        "POST",
        f"/accounts/{c.account_id}/top-ups",
        {"amount": "-5", "idempotency_key": "k-1"},
    ),
    "a top-up with an unknown field": lambda c: (
        "POST",
        f"/accounts/{c.account_id}/top-ups",
        {"amount": "5", "idempotency_key": "k-1", "currency": "CNY"},
    ),
    "a reading without an offset": lambda c: (
        "POST",
        "/readings",
        {"readings": [reading(c.meter_id, "2026-10-31T23:00:00", "10")]},
    ),
    "a negative reading": lambda c: (
        "POST",
        "/readings",
        {"readings": [reading(c.meter_id, START - timedelta(hours=1), "-1")]},
    ),
    "a reading with five decimals": lambda c: (
        "POST",
        "/readings",
        {"readings": [reading(c.meter_id, START - timedelta(hours=1), "10.00001")]},
    ),
    "a reading with an unknown field": lambda c: (
        "POST",
        "/readings",
        {"readings": [{**reading(c.meter_id, START - timedelta(hours=1), "10"), "kwh": 1}]},
    ),
    "an empty readings batch": lambda c: ("POST", "/readings", {"readings": []}),
    "a site with an unknown field": lambda c: (
        "POST",
        "/sites",
        {"code": "BLUE", "name": "蓝湾", "owner": "x"},
    ),
    "a site in an unknown time zone": lambda c: (
        "POST",
        "/sites",
        {"code": "BLUE", "name": "蓝湾", "timezone": "Mars/Olympus"},
    ),
    "a site renamed to null": lambda c: ("PATCH", f"/sites/{c.site_id}", {"name": None}),
    "a site moved to a null time zone": lambda c: (
        "PATCH",
        f"/sites/{c.site_id}",
        {"timezone": None},
    ),
    "a tariff priced to five decimals": lambda c: (
        "POST",
        "/tariffs",
        {
            "site_id": c.site_id,
            "code": "t2",
            "name": "t2",
            "utility": "electricity",
            "unit_price": "0.48831",
            "effective_from": iso(START),
        },
    ),
    "a tariff version without an offset": lambda c: (
        "POST",
        f"/tariffs/{c.tariff_id}/versions",
        {"unit_price": "0.5", "effective_from": "2026-12-01T00:00:00"},
    ),
    "a threshold with three decimals": lambda c: (
        "PATCH",
        f"/accounts/{c.account_id}",
        {"warning1": "1.005"},
    ),
    "a meter with a register capacity of 0": lambda c: (
        "POST",
        "/meters",
        {
            "unit_id": c.unit_id,
            "utility": "electricity",
            "protocol": "dlt645_2007",
            "address": "999",
            "register_capacity": "0",
        },
    ),
    "a meter patched to a maximum rate of 0": lambda c: (
        "PATCH",
        f"/meters/{c.meter_id}",
        {"max_rate_per_hour": "0"},
    ),
    "a meter replaced at a time without an offset": lambda c: (
        "POST",
        f"/meters/{c.meter_id}/replace",
        {
            "final_total": "15",
            "replaced_at": "2026-10-31T22:00:00",
            "new_address": "202",
            "reason": "x",
        },
    ),
}


@pytest.mark.parametrize("case", list(BAD_PAYLOADS))
def test_a_bad_payload_is_422_invalid_input_and_changes_nothing(
    api: TestClient, rt: Runtime, case: str
) -> None:
    """Refused before anything is written: every table and the balance stay as they were."""
    home = a_compound(api)
    top_up(api, home.account_id, "100", "cash-1")
    before = row_counts(rt)
    method, path, body = BAD_PAYLOADS[case](home)

    error(api.request(method, API + path, json=body), 422, "invalid_input")
    assert row_counts(rt) == before
    assert balance(api, home.account_id) == "100.00"
    assert ok(api.get(f"{API}/sites/{home.site_id}"))["name"] == "绿地小区"
    assert ok(api.get(f"{API}/meters/{home.meter_id}"))["max_rate_per_hour"] == "20.0000"


def test_a_validation_error_names_the_failing_field(api: TestClient) -> None:
    """Clients learn which field to fix, not only that something is wrong."""
    home = a_compound(api)
    bad = reading(home.meter_id, "2026-10-31T23:00:00", "10")
    problem = error(api.post(f"{API}/readings", json={"readings": [bad]}), 422, "invalid_input")
    assert [d["field"] for d in problem["details"]] == ["readings.0.read_at"]


def test_a_duplicate_site_code_is_a_409_conflict_and_adds_no_site(
    api: TestClient, rt: Runtime
) -> None:
    """Site codes are unique; the loser of the race gets a conflict, not a second site."""
    created(api.post(f"{API}/sites", json={"code": "GREEN", "name": "绿地小区"}))
    before = row_counts(rt)
    error(api.post(f"{API}/sites", json={"code": "GREEN", "name": "又一个"}), 409, "conflict")
    assert row_counts(rt) == before
    assert [s["name"] for s in ok(api.get(f"{API}/sites"))["items"]] == ["绿地小区"]


# --- API tokens and the description -----------------------------------------------------------


@pytest.fixture
def guarded(rt: Runtime) -> Iterator[TestClient]:
    """The API with no credentials of its own: each request brings its header."""
    with TestClient(create_app(rt)) as client:
        yield client


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", "Basic c2VjcmV0", "mpt_secret"],
)
def test_a_request_without_a_valid_bearer_token_is_401(
    guarded: TestClient, rt: Runtime, authorization: str | None
) -> None:
    """Reads and writes alike are refused, and the refused write leaves no trace."""
    headers = {} if authorization is None else {"Authorization": authorization}
    before = row_counts(rt)
    refused = guarded.get(f"{API}/sites", headers=headers)
    error(refused, 401, "unauthorized")
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    site = {"code": "GREEN", "name": "绿地小区"}
    error(guarded.post(f"{API}/sites", json=site, headers=headers), 401, "unauthorized")
    assert row_counts(rt) == before


def test_a_valid_bearer_token_opens_the_api(guarded: TestClient, rt: Runtime) -> None:
    """An integrator's token works, whatever the case of the scheme."""
    secret = token_for(rt)
    for scheme in ("Bearer", "bearer"):
        headers = {"Authorization": f"{scheme} {secret}"}
        site = {"code": f"S-{scheme}", "name": "绿地小区"}
        created(guarded.post(f"{API}/sites", json=site, headers=headers))
        assert ok(guarded.get(f"{API}/sites", headers=headers))["items"]


def test_the_openapi_description_is_served_and_lists_the_readings_endpoint(
    guarded: TestClient,
) -> None:
    """Integrators can read /openapi.json without a token and find POST /api/v1/readings."""
    document = ok(guarded.get("/openapi.json"))
    assert "post" in document["paths"]["/api/v1/readings"]
    assert "/api/v1/accounts/{account_id}/top-ups" in document["paths"]
