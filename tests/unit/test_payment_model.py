"""Top-up orders: the state table, the site's limits, order numbers."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.money import Money
from meterpay.payments.model import (
    TRANSITIONS,
    IllegalOrderMove,
    Limits,
    OrderEvent,
    OrderState,
    OutsideLimits,
    move,
    out_trade_no,
)
from meterpay.payments.provider import ProviderName


@pytest.mark.parametrize("state", list(OrderState))
@pytest.mark.parametrize("event", list(OrderEvent))
def test_only_the_table_moves_an_order(state: OrderState, event: OrderEvent) -> None:
    if (state, event) in TRANSITIONS:
        assert move(state, event) is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(IllegalOrderMove):
            move(state, event)


def test_money_received_for_a_closed_order_is_still_credited() -> None:
    assert move(move(OrderState.CLOSED, OrderEvent.PAID), OrderEvent.CREDITED) is (
        OrderState.CREDITED
    )


def test_a_credited_order_is_never_credited_again() -> None:
    for event in (OrderEvent.PAID, OrderEvent.CREDITED):
        with pytest.raises(IllegalOrderMove):
            move(OrderState.CREDITED, event)


def test_limits_name_the_limit_they_refuse() -> None:
    limits = Limits(Money(1000), Money(50_000), Money(100_000))
    limits.check(Money(1000), today_so_far=Money(0))
    with pytest.raises(OutsideLimits, match=r"at least 10\.00"):
        limits.check(Money(999), today_so_far=Money(0))
    with pytest.raises(OutsideLimits, match=r"at most 500\.00"):
        limits.check(Money(50_001), today_so_far=Money(0))
    with pytest.raises(OutsideLimits, match=r"left today: 100\.00"):
        limits.check(Money(20_000), today_so_far=Money(90_000))
    with pytest.raises(InvalidInput):
        Limits(Money(0), Money(1), Money(1))
    with pytest.raises(InvalidInput):
        Limits(Money(10), Money(5), Money(100))


@given(st.sampled_from(list(ProviderName)), st.integers(1, 10**12 - 1), st.dates())
def test_order_numbers_are_unique_per_order_and_fit_both_providers(
    provider: ProviderName, order_id: int, day: date
) -> None:
    number = out_trade_no(provider, order_id, day)
    assert len(number) <= 32 and number.isalnum() and number.isupper()
    assert number != out_trade_no(provider, order_id + 1, day)
    assert number.endswith(f"{order_id:012d}")
