"""The command outbox on SQLite and PostgreSQL: queued once, claimed once, resumed after a
crash, expired when late, final states final."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from meterpay.control import outbox
from meterpay.control.commands import (
    MAX_ATTEMPTS,
    CommandEvent,
    CommandKind,
    CommandState,
    IllegalCommandMove,
)
from meterpay.kernel.clock import FixedClock
from meterpay.runtime import Runtime
from tests.integration.builders import a_home


def _clock(rt: Runtime) -> FixedClock:
    assert isinstance(rt.clock, FixedClock)
    return rt.clock


def _cut(rt: Runtime, meter_id: int, cause: str = "arrears:1:episode:1") -> outbox.Command:
    return outbox.queue(
        rt, meter_id=meter_id, kind=CommandKind.CUT, cause_key=cause, requested_by="policy"
    )


def test_deciding_again_queues_no_second_command(rt: Runtime) -> None:
    home = a_home(rt)
    first = _cut(rt, home.meter.id)
    again = _cut(rt, home.meter.id)
    assert again.id == first.id and again.state is CommandState.PENDING
    assert first.expires_at == first.created_at + timedelta(hours=1)


def test_a_claimed_command_is_not_claimed_again_until_its_retry_is_due(rt: Runtime) -> None:
    home = a_home(rt)
    command = _cut(rt, home.meter.id)
    [taken] = outbox.claim(rt)
    assert (taken.id, taken.state, taken.attempts) == (command.id, CommandState.SENT, 1)
    assert outbox.claim(rt) == []
    _clock(rt).advance(timedelta(seconds=31))  # no answer within the first retry pause
    [again] = outbox.claim(rt)  # as after a crash: resumed, sent again, counted
    assert (again.id, again.state, again.attempts) == (command.id, CommandState.SENT, 2)


def test_an_answered_command_is_verified_by_its_read_back(rt: Runtime) -> None:
    home = a_home(rt)
    command = _cut(rt, home.meter.id)
    outbox.claim(rt)
    outbox.record(rt, command.id, CommandEvent.ACCEPTED)
    done = outbox.record(rt, command.id, CommandEvent.CONFIRMED)
    assert done.state is CommandState.VERIFIED
    _clock(rt).advance(timedelta(hours=2))
    assert outbox.claim(rt) == []  # final: never touched again
    with pytest.raises(IllegalCommandMove):
        outbox.record(rt, command.id, CommandEvent.REFUSED)


def test_a_late_command_expires_instead_of_being_sent(rt: Runtime) -> None:
    home = a_home(rt)
    command = _cut(rt, home.meter.id)
    _clock(rt).advance(timedelta(hours=1))
    assert outbox.claim(rt) == []
    assert outbox.get(rt, command.id).state is CommandState.EXPIRED


def test_a_command_that_is_never_answered_fails_after_its_last_try(rt: Runtime) -> None:
    home = a_home(rt)
    command = outbox.queue(
        rt,
        meter_id=home.meter.id,
        kind=CommandKind.RESTORE,
        cause_key="topup:1",
        requested_by="policy",
    )
    for _ in range(MAX_ATTEMPTS):
        assert [c.id for c in outbox.claim(rt)] == [command.id]
        _clock(rt).advance(timedelta(hours=1))
    assert outbox.claim(rt) == []
    final = outbox.get(rt, command.id)
    assert (final.state, final.attempts) == (CommandState.FAILED, MAX_ATTEMPTS)


def test_two_dispatchers_never_claim_the_same_command(pg_rt: Runtime) -> None:
    home = a_home(pg_rt)
    for n in range(40):
        _cut(pg_rt, home.meter.id, cause=f"arrears:{n}")
    claimed: list[list[int]] = [[], []]

    def dispatcher(slot: int) -> None:
        while batch := outbox.claim(pg_rt, limit=3):
            claimed[slot].extend(c.id for c in batch)

    threads = [threading.Thread(target=dispatcher, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = claimed[0] + claimed[1]
    assert len(everything) == len(set(everything)) == 40
