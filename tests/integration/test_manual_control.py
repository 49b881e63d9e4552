"""Manual and group supply control on SQLite and PostgreSQL: who would be affected, a
second person for a group cut, one command per meter, protected accounts skipped, and
every step in the audit log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from meterpay.control import manual, outbox
from meterpay.control.manual import (
    ActionState,
    ControlKind,
    NoRemoteSwitch,
    NotAwaitingApproval,
    ProtectedAccount,
    Scope,
    SelfApproval,
)
from meterpay.db.schema import accounts, audit_log, commands
from meterpay.kernel.errors import InvalidInput, NotFound
from meterpay.kernel.quantity import Utility
from meterpay.metering import service as metering
from meterpay.metering.meters import Protocol
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.sites.model import UnitKind
from meterpay.tariffs import service as tariffs
from meterpay.web.app import create_app
from tests.integration.builders import ACTOR, a_home
from tests.integration.signed import token_for

ALICE, BOB = "operator:alice", "operator:bob"
CUT, RESTORE = ControlKind.CUT, ControlKind.RESTORE


@dataclass
class Compound:
    """Building A (floors 1 and 2) and building B (floor 1) of one site.

    A-0102's account is protected (a home dialysis patient); A-0103 is a water meter
    without a valve meterpay can switch; A-0104's meter was removed.
    """

    site_id: int
    buildings: dict[str, int]
    floors: dict[str, int]
    meters: dict[str, int]
    accounts: dict[str, int]


def a_compound(rt: Runtime) -> Compound:
    site = sites.create_site(rt, code="MC", name="应急小区", actor=ACTOR)
    tariff = tariffs.create_flat_tariff(
        rt,
        site_id=site.id,
        code="E",
        name="电价",
        utility=Utility.ELECTRICITY,
        unit_price="0.5",
        effective_from=rt.clock.now() - timedelta(days=30),
        actor=ACTOR,
    )
    found = Compound(site.id, {}, {}, {}, {})
    layout = {"A1": ["A-0101", "A-0102", "A-0103", "A-0104"], "A2": ["A-0201"], "B1": ["B-0101"]}
    for floor_code, unit_codes in layout.items():
        building_code, level = floor_code[0], int(floor_code[1])
        if building_code not in found.buildings:
            found.buildings[building_code] = sites.create_building(
                rt, site_id=site.id, code=building_code, name=f"{building_code}栋", actor=ACTOR
            ).id
        floor = sites.create_floor(
            rt, building_id=found.buildings[building_code], level=level, actor=ACTOR
        )
        found.floors[floor_code] = floor.id
        for code in unit_codes:
            _a_unit_with_meter(rt, found, tariff.id, floor.id, code)
    _protect(rt, found.accounts["A-0102"], "居家透析", "operator:carol")
    metering.update_meter(rt, found.meters["A-0104"], status="removed", actor=ACTOR, reason="拆表")
    return found


def _a_unit_with_meter(
    rt: Runtime, found: Compound, tariff_id: int, floor_id: int, code: str
) -> None:
    unit = sites.create_unit(
        rt,
        site_id=found.site_id,
        code=code,
        name=code,
        kind=UnitKind.HOME,
        floor_id=floor_id,
        actor=ACTOR,
    )
    address = f"{len(found.meters) + 1:012d}"
    if code == "A-0103":  # a common water meter: no account, no valve
        meter = metering.register_meter(
            rt,
            unit_id=unit.id,
            utility=Utility.WATER,
            protocol=Protocol.CJT188,
            address=address,
            initial_total=Decimal(0),
            actor=ACTOR,
        )
    else:
        account = sites.open_account(
            rt, unit_id=unit.id, utility=Utility.ELECTRICITY, tariff_id=tariff_id, actor=ACTOR
        )
        found.accounts[code] = account.id
        meter = metering.register_meter(
            rt,
            unit_id=unit.id,
            utility=Utility.ELECTRICITY,
            protocol=Protocol.DLT645_2007,
            address=address,
            account_id=account.id,
            initial_total=Decimal(0),
            has_switch=True,
            actor=ACTOR,
        )
    found.meters[code] = meter.id


def _protect(rt: Runtime, account_id: int, reason: str, by: str) -> None:
    with rt.db.write() as conn:
        conn.execute(
            update(accounts)
            .where(accounts.c.id == account_id)
            .values(protected_reason=reason, protected_by=by, protected_since=rt.clock.now())
        )


def _units(meters: tuple[manual.AffectedMeter, ...]) -> list[str]:
    return [m.unit_code for m in meters]


def _commands(rt: Runtime) -> list[dict[str, Any]]:
    with rt.db.read() as conn:
        rows = conn.execute(select(commands).order_by(commands.c.id)).mappings()
        return [dict(row) for row in rows]


def _audit(rt: Runtime, object_type: str, object_id: int) -> list[dict[str, Any]]:
    with rt.db.read() as conn:
        query = (
            select(audit_log)
            .where(audit_log.c.object_type == object_type)
            .where(audit_log.c.object_id == str(object_id))
            .order_by(audit_log.c.id)
        )
        return [dict(row) for row in conn.execute(query).mappings()]


def _group_cut(rt: Runtime, c: Compound, scope: Scope = Scope.BUILDING) -> manual.ControlAction:
    scope_id = {Scope.BUILDING: c.buildings["A"], Scope.FLOOR: c.floors["A1"]}.get(scope, c.site_id)
    return manual.request(
        rt, scope=scope, scope_id=scope_id, kind=CUT, reason="A栋漏水抢修", requested_by=ALICE
    )


# --- preview ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "place", "expected"),
    [
        (Scope.METER, "A-0101", ["A-0101"]),
        (Scope.FLOOR, "A1", ["A-0101"]),
        (Scope.BUILDING, "A", ["A-0101", "A-0201"]),
        (Scope.SITE, "site", ["A-0101", "A-0201", "B-0101"]),
    ],
)
def test_a_cut_preview_lists_the_switchable_meters_of_its_scope_and_nothing_else(
    rt: Runtime, scope: Scope, place: str, expected: list[str]
) -> None:
    """Removed meters are out of scope; another site's meters never appear."""
    c = a_compound(rt)
    a_home(rt, code="OTHER")
    scope_id = {
        Scope.METER: c.meters.get(place),
        Scope.FLOOR: c.floors.get(place),
        Scope.BUILDING: c.buildings.get(place),
        Scope.SITE: c.site_id,
    }[scope]
    assert scope_id is not None
    shown = manual.preview(rt, scope=scope, scope_id=scope_id, kind=CUT)
    assert _units(shown.meters) == expected
    assert shown.site_id == c.site_id
    assert shown.needs_approval is (scope is not Scope.METER)
    assert "A-0104" not in _units(shown.meters + shown.protected_skipped + shown.without_switch)


def test_a_group_cut_preview_skips_protected_accounts_and_says_who_protected_them(
    rt: Runtime,
) -> None:
    c = a_compound(rt)
    shown = manual.preview(rt, scope=Scope.FLOOR, scope_id=c.floors["A1"], kind=CUT)
    [skipped] = shown.protected_skipped
    assert (skipped.unit_code, skipped.account_id) == ("A-0102", c.accounts["A-0102"])
    assert (skipped.protected_reason, skipped.protected_by) == ("居家透析", "operator:carol")
    assert _units(shown.without_switch) == ["A-0103"]
    assert shown.counts == {"meters": 1, "protected_skipped": 1, "without_switch": 1}
    [meter] = shown.meters
    assert (meter.meter_id, meter.supply_state, meter.address) == (
        c.meters["A-0101"],
        "normal",
        "000000000001",
    )


def test_a_restore_never_skips_a_protected_account(rt: Runtime) -> None:
    c = a_compound(rt)
    shown = manual.preview(rt, scope=Scope.FLOOR, scope_id=c.floors["A1"], kind=RESTORE)
    assert _units(shown.meters) == ["A-0101", "A-0102"]
    assert shown.protected_skipped == ()
    assert shown.needs_approval is False


@pytest.mark.parametrize("scope", list(Scope))
def test_a_preview_of_an_unknown_place_is_not_found(rt: Runtime, scope: Scope) -> None:
    a_compound(rt)
    with pytest.raises(NotFound, match=f"{scope.value} 9999 does not exist"):
        manual.preview(rt, scope=scope, scope_id=9999, kind=CUT)


# --- group cuts and approval ----------------------------------------------------------------


def test_a_group_cut_waits_and_its_requester_cannot_approve_it(rt: Runtime) -> None:
    c = a_compound(rt)
    action = _group_cut(rt, c)
    assert action.state is ActionState.AWAITING_APPROVAL
    assert (action.commands_queued, action.decided_by) == (0, None)
    assert [m["unit_code"] for m in action.preview["requested"]["meters"]] == ["A-0101", "A-0201"]
    assert _commands(rt) == []
    with pytest.raises(SelfApproval, match="a second person"):
        manual.approve(rt, action.id, approver=ALICE)
    assert manual.get(rt, action.id).state is ActionState.AWAITING_APPROVAL
    assert _commands(rt) == []


def test_a_second_person_approves_and_each_meter_gets_exactly_one_command(rt: Runtime) -> None:
    c = a_compound(rt)
    action = _group_cut(rt, c)
    rt.clock.advance(timedelta(minutes=5))  # type: ignore[attr-defined]
    done = manual.approve(rt, action.id, approver=BOB, reason="已核实")
    assert (done.state, done.decided_by, done.commands_queued) == (ActionState.EXECUTED, BOB, 2)
    assert done.decided_at == rt.clock.now()
    queued = _commands(rt)
    assert {(q["meter_id"], q["cause_key"]) for q in queued} == {
        (c.meters[u], f"manual:{action.id}:{c.meters[u]}") for u in ("A-0101", "A-0201")
    }
    first = next(q for q in queued if q["meter_id"] == c.meters["A-0101"])
    assert (first["kind"], first["account_id"], first["requested_by"], first["reason"]) == (
        "cut",
        c.accounts["A-0101"],
        ALICE,
        "A栋漏水抢修",
    )
    with pytest.raises(NotAwaitingApproval, match="is executed"):
        manual.approve(rt, action.id, approver="operator:dan")
    assert len(_commands(rt)) == 2


def test_two_people_approving_at_once_execute_it_once(pg_rt: Runtime) -> None:
    """On PostgreSQL the action's row lock makes the second approver wait, then refuses him."""
    c = a_compound(pg_rt)
    action = _group_cut(pg_rt, c, Scope.SITE)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def approve_as(person: str) -> None:
        barrier.wait()
        try:
            manual.approve(pg_rt, action.id, approver=person)
            outcomes.append("executed")
        except NotAwaitingApproval:
            outcomes.append("refused")

    threads = [threading.Thread(target=approve_as, args=(p,)) for p in (BOB, "operator:dan")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["executed", "refused"]
    assert len(_commands(pg_rt)) == 3
    assert manual.get(pg_rt, action.id).commands_queued == 3


def test_the_approval_works_out_the_meters_again(rt: Runtime) -> None:
    """An account protected after the request, or a meter removed since, gets no command."""
    c = a_compound(rt)
    action = _group_cut(rt, c, Scope.SITE)
    _protect(rt, c.accounts["B-0101"], "ICU 病房", "operator:carol")
    metering.update_meter(rt, c.meters["A-0201"], status="removed", actor=ACTOR, reason="换表")
    done = manual.approve(rt, action.id, approver=BOB)
    assert [q["meter_id"] for q in _commands(rt)] == [c.meters["A-0101"]]
    executed = done.preview["executed"]
    assert [m["unit_code"] for m in executed["protected_skipped"]] == ["A-0102", "B-0101"]
    assert len(done.preview["requested"]["meters"]) == 3


def test_a_rejected_cut_queues_nothing_and_stays_rejected(rt: Runtime) -> None:
    c = a_compound(rt)
    action = _group_cut(rt, c)
    with pytest.raises(InvalidInput, match="reason is required"):
        manual.reject(rt, action.id, by=BOB, reason="  ")
    turned_down = manual.reject(rt, action.id, by=BOB, reason="先通知住户")
    assert (turned_down.state, turned_down.decided_by) == (ActionState.REJECTED, BOB)
    with pytest.raises(NotAwaitingApproval):
        manual.approve(rt, action.id, approver=BOB)
    with pytest.raises(NotAwaitingApproval):
        manual.reject(rt, action.id, by=BOB, reason="again")
    assert _commands(rt) == []


def test_a_group_restore_is_carried_out_at_once_protected_accounts_included(
    rt: Runtime,
) -> None:
    c = a_compound(rt)
    action = manual.request(
        rt,
        scope=Scope.BUILDING,
        scope_id=c.buildings["A"],
        kind=RESTORE,
        reason="抢修完毕",
        requested_by=ALICE,
    )
    assert (action.state, action.commands_queued) == (ActionState.EXECUTED, 3)
    assert sorted(q["meter_id"] for q in _commands(rt)) == sorted(
        c.meters[u] for u in ("A-0101", "A-0102", "A-0201")
    )
    assert {q["kind"] for q in _commands(rt)} == {"restore"}
    with pytest.raises(NotAwaitingApproval):
        manual.approve(rt, action.id, approver=BOB)


# --- one meter ------------------------------------------------------------------------------


def test_a_single_meter_cut_is_carried_out_at_once(rt: Runtime) -> None:
    c = a_compound(rt)
    action = manual.request(
        rt,
        scope=Scope.METER,
        scope_id=c.meters["A-0101"],
        kind=CUT,
        reason="表箱冒烟",
        requested_by=ALICE,
    )
    assert (action.state, action.commands_queued, action.site_id) == (
        ActionState.EXECUTED,
        1,
        c.site_id,
    )
    [command] = _commands(rt)
    assert command["cause_key"] == f"manual:{action.id}:{c.meters['A-0101']}"


def test_a_single_meter_cut_of_a_protected_account_needs_the_override(rt: Runtime) -> None:
    c = a_compound(rt)
    meter_id = c.meters["A-0102"]
    with pytest.raises(ProtectedAccount, match="居家透析"):
        manual.request(
            rt, scope=Scope.METER, scope_id=meter_id, kind=CUT, reason="漏电", requested_by=ALICE
        )
    assert _commands(rt) == []
    action = manual.request(
        rt,
        scope=Scope.METER,
        scope_id=meter_id,
        kind=CUT,
        reason="漏电, 已与家属确认",
        requested_by=ALICE,
        override_protection=True,
    )
    assert action.preview["executed"]["override_protection"] is True
    assert [q["meter_id"] for q in _commands(rt)] == [meter_id]
    [overridden] = [
        entry
        for entry in _audit(rt, "account", c.accounts["A-0102"])
        if entry["action"] == "account.protection_overridden"
    ]
    assert (overridden["action"], overridden["actor"], overridden["reason"]) == (
        "account.protection_overridden",
        ALICE,
        "漏电, 已与家属确认",
    )
    assert overridden["before"]["protected_reason"] == "居家透析"


def test_the_override_is_refused_for_a_group(rt: Runtime) -> None:
    c = a_compound(rt)
    with pytest.raises(InvalidInput, match="group cuts always skip"):
        manual.request(
            rt,
            scope=Scope.FLOOR,
            scope_id=c.floors["A1"],
            kind=CUT,
            reason="x",
            requested_by=ALICE,
            override_protection=True,
        )


def test_a_meter_without_a_switch_cannot_be_cut_and_a_blank_reason_is_refused(
    rt: Runtime,
) -> None:
    c = a_compound(rt)
    with pytest.raises(NoRemoteSwitch):
        manual.request(
            rt,
            scope=Scope.METER,
            scope_id=c.meters["A-0103"],
            kind=CUT,
            reason="x",
            requested_by=ALICE,
        )
    with pytest.raises(InvalidInput, match="reason is required"):
        manual.request(
            rt,
            scope=Scope.METER,
            scope_id=c.meters["A-0101"],
            kind=CUT,
            reason=" ",
            requested_by=ALICE,
        )
    assert manual.list_actions(rt) == []


# --- audit and listing ----------------------------------------------------------------------


def test_every_request_and_decision_is_in_the_audit_log_with_who_why_before_and_after(
    rt: Runtime,
) -> None:
    c = a_compound(rt)
    approved = _group_cut(rt, c)
    manual.approve(rt, approved.id, approver=BOB, reason="已核实")
    rejected = _group_cut(rt, c, Scope.FLOOR)
    manual.reject(rt, rejected.id, by=BOB, reason="先通知住户")
    request, approval = _audit(rt, "control_action", approved.id)
    assert (request["action"], request["actor"], request["reason"]) == (
        "control_action.request",
        ALICE,
        "A栋漏水抢修",
    )
    assert request["before"] is None
    assert request["after"]["state"] == "awaiting_approval"
    assert request["after"]["protected_skipped"] == 1
    assert request["site_id"] == c.site_id
    assert (approval["action"], approval["actor"], approval["reason"]) == (
        "control_action.approve",
        BOB,
        "已核实",
    )
    assert approval["before"]["state"] == "awaiting_approval"
    assert (approval["after"]["state"], approval["after"]["commands_queued"]) == ("executed", 2)
    _, rejection = _audit(rt, "control_action", rejected.id)
    assert (rejection["action"], rejection["actor"], rejection["reason"]) == (
        "control_action.reject",
        BOB,
        "先通知住户",
    )
    assert rejection["after"]["state"] == "rejected"


def test_the_list_shows_newest_first_with_the_commands_current_states(rt: Runtime) -> None:
    c = a_compound(rt)
    cut = _group_cut(rt, c)
    manual.approve(rt, cut.id, approver=BOB)
    waiting = _group_cut(rt, c, Scope.FLOOR)
    outbox.claim(rt, limit=1)
    listed = manual.list_actions(rt, site_id=c.site_id)
    assert [a.id for a in listed] == [waiting.id, cut.id]
    assert listed[1].command_states == {"pending": 1, "sent": 1}
    assert listed[0].command_states == {}
    assert [a.id for a in manual.list_actions(rt, state=ActionState.EXECUTED)] == [cut.id]
    assert manual.list_actions(rt, site_id=c.site_id + 1) == []
    assert manual.get(rt, cut.id).command_states == {"pending": 1, "sent": 1}
    with pytest.raises(NotFound):
        manual.get(rt, 9999)


# --- over HTTP ------------------------------------------------------------------------------

API = "/api/v1/control-actions"
ALICE_KEY, BOB_KEY = "alice", "bob"
_TOKENS: dict[str, str] = {}
"""The two people's API tokens, by name (made afresh by ``guarded`` for each test)."""


def _as(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {_TOKENS[name]}"}


def _actor(name: str) -> str:
    return f"token:{name}"


@pytest.fixture
def guarded(rt: Runtime) -> Iterator[TestClient]:
    """The API with one token per person, so the two can be told apart."""
    for name in (ALICE_KEY, BOB_KEY):
        _TOKENS[name] = token_for(rt, name=name)
    with TestClient(create_app(rt)) as client:
        yield client


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert body["code"] == code
    return body


def test_over_http_a_group_cut_needs_a_second_caller(rt: Runtime, guarded: TestClient) -> None:
    c = a_compound(rt)
    target = {"scope": "floor", "scope_id": c.floors["A1"], "kind": "cut"}
    shown = guarded.post(f"{API}/preview", json=target, headers=_as(ALICE_KEY))
    assert shown.status_code == 200, shown.text
    assert shown.json()["counts"] == {"meters": 1, "protected_skipped": 1, "without_switch": 1}
    assert shown.json()["needs_approval"] is True
    assert shown.json()["protected_skipped"][0]["protected_by"] == "operator:carol"
    asked = guarded.post(API, json={**target, "reason": "漏水"}, headers=_as(ALICE_KEY))
    assert asked.status_code == 201, asked.text
    action = asked.json()
    assert (action["state"], action["requested_by"]) == ("awaiting_approval", _actor(ALICE_KEY))
    approve = f"{API}/{action['id']}/approve"
    _error(guarded.post(approve, json={}, headers=_as(ALICE_KEY)), 409, "self_approval")
    approved = guarded.post(approve, json={"reason": "ok"}, headers=_as(BOB_KEY))
    assert approved.status_code == 200, approved.text
    assert (approved.json()["state"], approved.json()["decided_by"]) == (
        "executed",
        _actor(BOB_KEY),
    )
    assert approved.json()["command_states"] == {"pending": 1}
    _error(guarded.post(approve, json={}, headers=_as(BOB_KEY)), 409, "not_awaiting_approval")
    got = guarded.get(f"{API}/{action['id']}", headers=_as(BOB_KEY)).json()
    assert (got["commands_queued"], got["command_states"]) == (1, {"pending": 1})
    listed = guarded.get(API, params={"state": "executed"}, headers=_as(BOB_KEY)).json()
    assert [a["id"] for a in listed["items"]] == [action["id"]]
    assert len(_commands(rt)) == 1


def test_over_http_bad_input_is_422_and_unknown_things_are_404(
    rt: Runtime, guarded: TestClient
) -> None:
    c = a_compound(rt)
    bob = _as(BOB_KEY)
    target = {"scope": "building", "scope_id": c.buildings["A"], "kind": "cut"}
    _error(guarded.post(API, json={**target, "reason": "  "}, headers=bob), 422, "invalid_input")
    _error(guarded.post(API, json=target, headers=bob), 422, "invalid_input")
    _error(
        guarded.post(API, json={**target, "scope": "street", "reason": "x"}, headers=bob),
        422,
        "invalid_input",
    )
    _error(
        guarded.post(API, json={**target, "kind": "throttle", "reason": "x"}, headers=bob),
        422,
        "invalid_input",
    )
    _error(
        guarded.post(f"{API}/preview", json={**target, "extra": 1}, headers=bob),
        422,
        "invalid_input",
    )
    _error(guarded.get(API, params={"limit": 0}, headers=bob), 422, "invalid_input")
    _error(
        guarded.post(f"{API}/preview", json={**target, "scope_id": 9999}, headers=bob),
        404,
        "not_found",
    )
    _error(guarded.get(f"{API}/9999", headers=bob), 404, "not_found")
    _error(guarded.post(f"{API}/9999/approve", json={}, headers=bob), 404, "not_found")
    _error(guarded.post(f"{API}/9999/reject", json={"reason": "x"}, headers=bob), 404, "not_found")
    _error(guarded.post(API, json={**target, "reason": "x"}), 401, "unauthorized")
    meter = {"scope": "meter", "scope_id": c.meters["A-0102"], "kind": "cut", "reason": "漏电"}
    _error(guarded.post(API, json=meter, headers=bob), 409, "protected_account")
    asked = guarded.post(API, json={**target, "reason": "x"}, headers=bob).json()
    reject = f"{API}/{asked['id']}/reject"
    _error(guarded.post(reject, json={}, headers=bob), 422, "invalid_input")
    rejected = guarded.post(reject, json={"reason": "不需要了"}, headers=bob)
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
    _error(
        guarded.post(reject, json={"reason": "again"}, headers=bob), 409, "not_awaiting_approval"
    )
    assert _commands(rt) == []
