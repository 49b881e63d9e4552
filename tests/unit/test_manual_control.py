"""The pure decisions behind manual and group control: who gets a command, who is
skipped and why, who must approve, and which moves an action may make."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meterpay.control.manual import (
    TRANSITIONS,
    ActionEvent,
    ActionState,
    AffectedMeter,
    ControlKind,
    NoRemoteSwitch,
    NotAwaitingApproval,
    ProtectedAccount,
    Scope,
    SelfApproval,
    check_approver,
    decide,
    needs_approval,
    next_state,
    require_reason,
    require_single_target,
)
from meterpay.kernel.errors import Conflict, InvalidInput

SINCE = datetime(2026, 10, 1, tzinfo=UTC)


def a_meter(meter_id: int, *, switch: bool = True, protected: str | None = None) -> AffectedMeter:
    return AffectedMeter(
        meter_id=meter_id,
        address=f"{meter_id:012d}",
        serial=None,
        utility="electricity",
        has_switch=switch,
        unit_id=meter_id,
        unit_code=f"1-{meter_id:04d}",
        account_id=100 + meter_id,
        account_number=f"E{meter_id}",
        supply_state="normal",
        protected_reason=protected,
        protected_by="operator:carol" if protected else None,
        protected_since=SINCE if protected else None,
    )


FLOOR = [a_meter(1), a_meter(2, protected="ICU 病房"), a_meter(3, switch=False)]


def ids(meters: tuple[AffectedMeter, ...]) -> list[int]:
    return [m.meter_id for m in meters]


def test_a_group_cut_commands_switchable_meters_and_skips_protected_ones() -> None:
    plan = decide(Scope.FLOOR, 7, 1, ControlKind.CUT, FLOOR)
    assert (ids(plan.meters), ids(plan.protected_skipped), ids(plan.without_switch)) == (
        [1],
        [2],
        [3],
    )
    assert plan.counts == {"meters": 1, "protected_skipped": 1, "without_switch": 1}
    assert plan.needs_approval


def test_a_restore_skips_no_protected_account_and_needs_no_approval() -> None:
    plan = decide(Scope.SITE, 1, 1, ControlKind.RESTORE, FLOOR)
    assert (ids(plan.meters), plan.protected_skipped) == ([1, 2], ())
    assert not plan.needs_approval


@pytest.mark.parametrize(
    ("scope", "kind", "expected"),
    [
        (Scope.METER, ControlKind.CUT, False),
        (Scope.METER, ControlKind.RESTORE, False),
        (Scope.FLOOR, ControlKind.CUT, True),
        (Scope.BUILDING, ControlKind.CUT, True),
        (Scope.SITE, ControlKind.CUT, True),
        (Scope.SITE, ControlKind.RESTORE, False),
    ],
)
def test_only_a_group_cut_needs_a_second_person(
    scope: Scope, kind: ControlKind, expected: bool
) -> None:
    assert needs_approval(scope, kind) is expected


def test_an_override_lets_one_protected_meter_be_cut_and_is_remembered() -> None:
    plan = decide(Scope.METER, 2, 1, ControlKind.CUT, [FLOOR[1]], override_protection=True)
    assert (ids(plan.meters), plan.override_protection) == ([2], True)
    assert plan.to_json()["override_protection"] is True
    assert plan.to_json()["meters"][0]["protected_since"] == SINCE.isoformat()


def test_an_override_is_refused_for_a_group() -> None:
    with pytest.raises(InvalidInput, match="group cuts always skip"):
        decide(Scope.BUILDING, 1, 1, ControlKind.CUT, FLOOR, override_protection=True)


def test_a_blank_protection_reason_does_not_protect() -> None:
    plan = decide(Scope.FLOOR, 1, 1, ControlKind.CUT, [a_meter(4, protected="  ")])
    assert ids(plan.meters) == [4]


@pytest.mark.parametrize(
    ("meter", "error"),
    [(FLOOR[1], ProtectedAccount), (FLOOR[2], NoRemoteSwitch)],
)
def test_a_single_meter_that_cannot_be_commanded_says_why(
    meter: AffectedMeter, error: type[Conflict]
) -> None:
    with pytest.raises(error):
        require_single_target(decide(Scope.METER, meter.meter_id, 1, ControlKind.CUT, [meter]))


def test_a_removed_single_meter_has_nothing_to_command() -> None:
    with pytest.raises(Conflict, match="removed"):
        require_single_target(decide(Scope.METER, 9, 1, ControlKind.CUT, []))


def test_a_group_with_nothing_to_command_is_still_a_valid_request() -> None:
    require_single_target(decide(Scope.FLOOR, 9, 1, ControlKind.CUT, []))


@pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
def test_a_blank_reason_is_refused(reason: str) -> None:
    with pytest.raises(InvalidInput, match="reason is required"):
        require_reason(reason)


def test_a_reason_is_kept_without_surrounding_blanks() -> None:
    assert require_reason("  漏水抢修 ") == "漏水抢修"


def test_an_awaiting_action_is_approved_or_rejected_once_and_never_again() -> None:
    assert next_state(1, ActionState.AWAITING_APPROVAL, ActionEvent.APPROVED) is (
        ActionState.EXECUTED
    )
    assert next_state(1, ActionState.AWAITING_APPROVAL, ActionEvent.REJECTED) is (
        ActionState.REJECTED
    )
    for state in (ActionState.EXECUTED, ActionState.REJECTED):
        for event in ActionEvent:
            assert (state, event) not in TRANSITIONS
            with pytest.raises(NotAwaitingApproval, match=f"is {state.value}"):
                next_state(1, state, event)


def test_the_requester_cannot_approve_but_anyone_else_can() -> None:
    with pytest.raises(SelfApproval):
        check_approver(1, "operator:alice", "operator:alice")
    check_approver(1, "operator:alice", "operator:bob")
