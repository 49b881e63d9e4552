"""Retry backoff, per-recipient rate limits and which warnings a newer message makes
stale; the message lifecycle as a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterpay.notify.model import IllegalMessageMove, MessageState, Outcome, Topic, move
from meterpay.notify.rules import (
    FIRST_RETRY,
    MAX_RETRY,
    RATE_WINDOW,
    http_outcome,
    next_allowed,
    retry_after,
    superseded,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_retries_double_from_thirty_seconds_up_to_an_hour() -> None:
    assert [retry_after(n).total_seconds() for n in range(1, 9)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
    ]
    with pytest.raises(ValueError, match="at least 1"):
        retry_after(0)


@given(st.integers(min_value=1, max_value=10_000))
def test_a_retry_never_waits_less_than_the_first_nor_more_than_the_cap(attempts: int) -> None:
    assert FIRST_RETRY <= retry_after(attempts) <= MAX_RETRY
    assert retry_after(attempts) <= retry_after(attempts + 1)


sends = st.lists(st.integers(min_value=0, max_value=3 * 3600), max_size=30).map(
    lambda offsets: [NOW - timedelta(seconds=s) for s in offsets]
)


@given(sends=sends, limit=st.integers(min_value=1, max_value=10))
def test_the_next_allowed_send_never_puts_more_than_the_limit_in_any_window(
    sends: list[datetime], limit: int
) -> None:
    allowed = next_allowed(sends, limit, NOW)
    at = allowed or NOW
    assert at >= NOW
    assert next_allowed(sends, limit, at) is None  # it really fits then
    in_window = [t for t in [*sends, at] if at - RATE_WINDOW < t <= at]
    assert len(in_window) <= limit
    if allowed is not None:  # and not a second earlier
        assert next_allowed(sends, limit, allowed - timedelta(seconds=1)) is not None


def test_no_limit_means_send_now() -> None:
    assert next_allowed([NOW] * 100, None, NOW) is None


def test_only_low_balance_warnings_are_superseded() -> None:
    assert superseded(Topic.WARNING1, [Topic.WARNING2])
    assert superseded(Topic.WARNING2, [Topic.TOP_UP_RECEIPT])
    assert not superseded(Topic.WARNING1, [])
    for topic in set(Topic) - {Topic.WARNING1, Topic.WARNING2}:
        assert not superseded(topic, [Topic.WARNING1])


def test_http_answers_split_into_sent_retry_and_failed() -> None:
    assert http_outcome(204) is Outcome.SENT
    assert [http_outcome(s) for s in (408, 429, 500, 503)] == [Outcome.RETRY] * 4
    assert [http_outcome(s) for s in (301, 400, 401, 410)] == [Outcome.FAILED] * 4


def test_final_states_are_never_left() -> None:
    for state in (MessageState.SENT, MessageState.FAILED, MessageState.SKIPPED):
        for outcome in [None, *Outcome]:
            with pytest.raises(IllegalMessageMove):
                move(state, outcome)
    assert move(MessageState.SENDING, Outcome.RETRY) is MessageState.PENDING
