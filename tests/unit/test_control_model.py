"""Supply states, thresholds and the arrears policy: what may move where, and what is refused."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from meterpay.control.model import (
    TRANSITIONS,
    ArrearsPolicy,
    FriendlyHours,
    IllegalTransition,
    InvalidThresholds,
    Protection,
    RestoreStyle,
    SupplyEvent,
    SupplyState,
    ThresholdOverrides,
    Thresholds,
    WarningLevel,
    effective_thresholds,
    transition,
)
from meterpay.kernel.errors import DomainError
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility

S, E = SupplyState, SupplyEvent

# The legal moves, written out once more by hand: the table must be exactly this.
LEGAL = {
    (S.NORMAL, E.FELL_BELOW_WARNING1, S.LOW),
    (S.NORMAL, E.FELL_BELOW_WARNING2, S.VERY_LOW),
    (S.NORMAL, E.FELL_BELOW_CUTOFF, S.IN_ARREARS),
    (S.LOW, E.FELL_BELOW_WARNING2, S.VERY_LOW),
    (S.LOW, E.FELL_BELOW_CUTOFF, S.IN_ARREARS),
    (S.LOW, E.ROSE_ABOVE_WARNING1, S.NORMAL),
    (S.VERY_LOW, E.FELL_BELOW_CUTOFF, S.IN_ARREARS),
    (S.VERY_LOW, E.ROSE_ABOVE_WARNING2, S.LOW),
    (S.VERY_LOW, E.ROSE_ABOVE_WARNING1, S.NORMAL),
    (S.IN_ARREARS, E.CUT_OFF_CONFIRMED, S.CUT_OFF),
    (S.IN_ARREARS, E.BALANCE_RESTORED, S.RESTORE_PENDING),
    (S.CUT_OFF, E.BALANCE_RESTORED, S.RESTORE_PENDING),
    (S.RESTORE_PENDING, E.RESTORE_CONFIRMED, S.NORMAL),
    (S.RESTORE_PENDING, E.FELL_BELOW_CUTOFF, S.IN_ARREARS),
}
ILLEGAL = sorted(
    (state, event)
    for state, event in itertools.product(S, E)
    if not any(state is a and event is b for a, b, _ in LEGAL)
)


def yuan(text: str) -> Money:
    return Money.from_yuan(text)


# --- transitions -------------------------------------------------------------------------------


def test_the_transition_table_holds_exactly_the_legal_moves() -> None:
    assert {(a, b, c) for (a, b), c in TRANSITIONS.items()} == LEGAL


@pytest.mark.parametrize(("state", "event", "after"), sorted(LEGAL))
def test_every_legal_move_leads_to_its_state(
    state: SupplyState, event: SupplyEvent, after: SupplyState
) -> None:
    assert transition(state, event) is after


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_every_other_move_raises_illegal_transition(state: SupplyState, event: SupplyEvent) -> None:
    with pytest.raises(IllegalTransition) as raised:
        transition(state, event)
    assert str(state) in raised.value.message
    assert str(event) in raised.value.message


def test_the_issue_path_normal_to_cut_off_and_back_is_legal() -> None:
    """normal -> low -> very low -> in arrears -> cut off -> restore pending -> normal."""
    state = S.NORMAL
    for event in (
        E.FELL_BELOW_WARNING1,
        E.FELL_BELOW_WARNING2,
        E.FELL_BELOW_CUTOFF,
        E.CUT_OFF_CONFIRMED,
        E.BALANCE_RESTORED,
        E.RESTORE_CONFIRMED,
    ):
        state = transition(state, event)
    assert state is S.NORMAL


def test_a_cut_off_account_cannot_be_restored_without_the_balance_being_restored() -> None:
    """Restore confirmation alone does not move a cut-off account: a top-up must come first."""
    with pytest.raises(IllegalTransition):
        transition(S.CUT_OFF, E.RESTORE_CONFIRMED)


def test_an_illegal_transition_is_a_domain_error_with_a_stable_code() -> None:
    with pytest.raises(DomainError) as raised:
        transition(S.NORMAL, E.CUT_OFF_CONFIRMED)
    assert raised.value.code == "illegal_supply_transition"


# --- warning levels and thresholds -------------------------------------------------------------


def test_a_days_warning_line_is_days_times_average_daily_use() -> None:
    assert WarningLevel.of_days(3).line(yuan("4.50")) == yuan("13.50")


def test_a_days_warning_without_an_average_gives_no_line() -> None:
    assert WarningLevel.of_days(3).line(None) is None


def test_an_amount_warning_line_ignores_the_average() -> None:
    assert WarningLevel.of_amount(yuan("20")).line(yuan("100")) == yuan("20")


@pytest.mark.parametrize("kwargs", [{}, {"amount": Money(1), "days": 1}, {"days": 0}])
def test_a_warning_level_is_exactly_one_of_amount_or_positive_days(
    kwargs: dict[str, object],
) -> None:
    with pytest.raises(ValueError, match=r"warning level|days"):
        WarningLevel(**kwargs)  # type: ignore[arg-type]


def test_default_thresholds_are_valid_and_cut_at_zero_with_three_days_notice() -> None:
    thresholds = Thresholds()
    assert thresholds.arrears_line == Money(0)
    assert thresholds.notice_period == timedelta(days=3)
    assert thresholds.final_notice_lead == timedelta(minutes=30)


def test_the_arrears_line_is_the_cutoff_point_minus_the_credit_limit() -> None:
    thresholds = Thresholds(credit_limit=yuan("100"), restore_point=yuan("-100"))
    assert thresholds.arrears_line == yuan("-100")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"warning1": WarningLevel.of_amount(yuan("10"))}, "warning2"),
        ({"warning1": WarningLevel.of_days(1), "warning2": WarningLevel.of_days(2)}, "warning2"),
        ({"warning2": WarningLevel.of_amount(yuan("-1"))}, "warning2"),
        ({"cutoff_point": yuan("60")}, "warning1"),
        ({"credit_limit": yuan("-1")}, "credit_limit"),
        ({"restore_point": yuan("-0.01")}, "restore_point"),
        ({"final_notice_lead": timedelta(0)}, "final_notice_lead"),
        ({"notice_period": timedelta(minutes=10)}, "notice_period"),
    ],
)
def test_contradictory_thresholds_are_refused_naming_the_field(
    kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidThresholds) as raised:
        Thresholds(**kwargs)  # type: ignore[arg-type]
    assert raised.value.details["field"] == field
    assert raised.value.message.startswith(f"{field}:")


def test_a_restore_point_equal_to_the_arrears_line_is_allowed() -> None:
    Thresholds(credit_limit=yuan("50"), restore_point=yuan("-50"))


def test_without_overrides_the_site_thresholds_apply() -> None:
    site = Thresholds()
    assert effective_thresholds(site, None) is site
    assert effective_thresholds(site, ThresholdOverrides()) == site


def test_account_overrides_replace_only_the_fields_they_set() -> None:
    site = Thresholds(warning1=WarningLevel.of_amount(yuan("80")), restore_point=yuan("10"))
    account = ThresholdOverrides(
        credit_limit=yuan("200"), warning2=WarningLevel.of_days(2), notice_period=timedelta(7)
    )
    merged = effective_thresholds(site, account)
    assert merged.warning1 == site.warning1
    assert merged.warning2 == WarningLevel.of_days(2)
    assert merged.credit_limit == yuan("200")
    assert merged.restore_point == yuan("10")
    assert merged.notice_period == timedelta(days=7)
    assert merged.arrears_line == yuan("-200")


def test_an_override_that_contradicts_the_site_is_refused_naming_the_field() -> None:
    """An account's restore point below the site's arrears line would restore into arrears."""
    site = Thresholds(cutoff_point=yuan("5"), restore_point=yuan("5"))
    with pytest.raises(InvalidThresholds) as raised:
        effective_thresholds(site, ThresholdOverrides(restore_point=yuan("0")))
    assert raised.value.details["field"] == "restore_point"


# --- friendly hours, policy, protection --------------------------------------------------------


@pytest.mark.parametrize(
    ("wall", "friendly"),
    [
        (time(17, 59), False),
        (time(18, 0), True),
        (time(23, 59), True),
        (time(0, 0), True),
        (time(7, 59, 59), True),
        (time(8, 0), False),
        (time(12, 0), False),
    ],
)
def test_default_friendly_hours_wrap_midnight(wall: time, friendly: bool) -> None:
    """18:00-08:00: the evening, the night and the early morning, end excluded."""
    assert FriendlyHours().wraps_midnight
    assert FriendlyHours().contains(wall) is friendly


@pytest.mark.parametrize(
    ("wall", "friendly"), [(time(11, 59), False), (time(12, 0), True), (time(14, 0), False)]
)
def test_friendly_hours_within_one_day_do_not_wrap(wall: time, friendly: bool) -> None:
    """A lunchtime break 12:00-14:00."""
    hours = FriendlyHours(time(12), time(14))
    assert not hours.wraps_midnight
    assert hours.contains(wall) is friendly


def test_friendly_hours_that_start_and_end_together_are_refused() -> None:
    with pytest.raises(ValueError, match="same time"):
        FriendlyHours(time(8), time(8))


def test_friendly_hours_are_wall_clock_times_without_a_zone() -> None:
    with pytest.raises(ValueError, match="wall-clock"):
        FriendlyHours(time(18, tzinfo=UTC), time(8))


def test_the_default_policy_for_water_never_cuts_automatically() -> None:
    water = ArrearsPolicy.default_for(Utility.WATER)
    electricity = ArrearsPolicy.default_for(Utility.ELECTRICITY)
    assert not water.automatic_cutoff
    assert electricity.automatic_cutoff
    assert electricity.timezone == ZoneInfo("Asia/Shanghai")
    assert electricity.friendly_hours == FriendlyHours(time(18), time(8))
    assert electricity.no_cutoff_on_rest_days
    assert electricity.restore_style is RestoreStyle.CLOSE_NOW


def test_a_protection_needs_a_reason_a_person_and_an_aware_time() -> None:
    since = datetime(2025, 10, 1, tzinfo=UTC)
    Protection("life support at home", "operator:li", since)
    with pytest.raises(ValueError, match="reason"):
        Protection(" ", "operator:li", since)
    with pytest.raises(ValueError, match="person"):
        Protection("hospital ward", "", since)
    with pytest.raises(ValueError, match="time zone"):
        Protection("hospital ward", "operator:li", datetime(2025, 10, 1))  # noqa: DTZ001
