"""The command lifecycle: every legal move, every illegal one refused, retries and expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import product

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterpay.control.commands import (
    FINAL,
    MAX_ATTEMPTS,
    MAX_RETRY,
    TRANSITIONS,
    CommandEvent,
    CommandKind,
    CommandState,
    IllegalCommandMove,
    Schedule,
    due,
    move,
    retry_after,
)

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def test_a_command_goes_from_pending_to_verified_through_sent_and_acknowledged() -> None:
    state = CommandState.PENDING
    for event in (CommandEvent.DISPATCHED, CommandEvent.ACCEPTED, CommandEvent.CONFIRMED):
        state = move(state, event)
    assert state is CommandState.VERIFIED


def test_no_answer_sends_a_command_back_to_pending_for_another_try() -> None:
    assert move(CommandState.SENT, CommandEvent.NO_ANSWER) is CommandState.PENDING


@pytest.mark.parametrize(("state", "event"), list(product(CommandState, CommandEvent)))
def test_every_move_outside_the_table_is_refused(state: CommandState, event: CommandEvent) -> None:
    """The table is the lifecycle: a move it does not name raises, final states are final."""
    if (state, event) in TRANSITIONS:
        assert state not in FINAL
        assert move(state, event) is TRANSITIONS[(state, event)]
        return
    with pytest.raises(IllegalCommandMove):
        move(state, event)


def test_retries_double_from_thirty_seconds_up_to_the_cap() -> None:
    assert [retry_after(n) for n in (1, 2, 3)] == [
        timedelta(seconds=30),
        timedelta(seconds=60),
        timedelta(seconds=120),
    ]
    assert retry_after(40) == MAX_RETRY
    with pytest.raises(ValueError, match="at least 1"):
        retry_after(0)


def test_a_cut_lives_an_hour_and_a_restore_a_week() -> None:
    assert Schedule.for_kind(CommandKind.CUT, T0).expires_at == T0 + timedelta(hours=1)
    assert Schedule.for_kind(CommandKind.RESTORE, T0).expires_at == T0 + timedelta(days=7)


@given(
    st.sampled_from(list(CommandState)),
    st.integers(min_value=0, max_value=20),
    st.integers(min_value=-7200, max_value=7200),
    st.integers(min_value=-7200, max_value=7200),
)
def test_an_expired_command_is_never_dispatched(
    state: CommandState, attempts: int, now_s: int, next_s: int
) -> None:
    """Past its time to live a command can only expire; final ones are left alone."""
    schedule = Schedule.for_kind(CommandKind.CUT, T0)
    now = T0 + timedelta(seconds=now_s)
    decision = due(state, attempts, schedule, T0 + timedelta(seconds=next_s), now)
    if state in FINAL:
        assert decision is None
    elif schedule.expired(now):
        assert decision is CommandEvent.TIMED_OUT
    else:
        assert decision is not CommandEvent.TIMED_OUT
        if decision is CommandEvent.DISPATCHED:
            assert state is CommandState.PENDING and now >= T0 + timedelta(seconds=next_s)
            assert attempts < MAX_ATTEMPTS
    if decision is not None:
        move(state, decision)  # whatever it advises is a legal move
