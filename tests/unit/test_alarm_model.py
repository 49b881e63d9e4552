"""The alarm lifecycle: open -> acknowledged -> closed, nothing else."""

from __future__ import annotations

import pytest

from meterpay.alarms.model import (
    MOVES,
    SEVERITY,
    AlarmKind,
    AlarmState,
    IllegalAlarmMove,
    check_move,
)


@pytest.mark.parametrize("state", list(AlarmState))
@pytest.mark.parametrize("to", list(AlarmState))
def test_only_the_listed_moves_are_allowed(state: AlarmState, to: AlarmState) -> None:
    if (state, to) in MOVES:
        check_move(state, to)
    else:
        with pytest.raises(IllegalAlarmMove):
            check_move(state, to)


def test_a_closed_alarm_cannot_be_acknowledged_or_closed_again() -> None:
    for to in AlarmState:
        with pytest.raises(IllegalAlarmMove):
            check_move(AlarmState.CLOSED, to)


def test_every_kind_has_a_severity_and_supply_faults_are_critical() -> None:
    assert set(SEVERITY) == set(AlarmKind)
    for kind in (AlarmKind.BYPASS, AlarmKind.RELAY_MISMATCH, AlarmKind.COMMAND_FAILED):
        assert SEVERITY[kind].value == "critical"
