"""When the scheduler looks at an arrears episode again, and which lines an account has."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from meterpay.control import effects
from meterpay.control.model import (
    ArrearsPolicy,
    SupplyState,
    ThresholdOverrides,
    Thresholds,
    WarningLevel,
)
from meterpay.control.repository import AccountSupply, SitePolicy
from meterpay.control.rules import CutoffDecision, CutoffReason
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility

NOW = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai


def _account(overrides: ThresholdOverrides | None) -> AccountSupply:
    return AccountSupply(1, 1, Utility.ELECTRICITY, "A-1", None, 1, SupplyState.NORMAL, overrides)


def _site(thresholds: Thresholds) -> SitePolicy:
    policy = ArrearsPolicy.default_for(Utility.ELECTRICITY, ZoneInfo("Asia/Shanghai"))
    return SitePolicy(1, Utility.ELECTRICITY, thresholds, policy)


def test_a_deferred_cut_is_looked_at_when_its_final_notice_is_due_then_at_its_moment() -> None:
    moment = NOW + timedelta(days=3)
    notice_due = moment - timedelta(minutes=30)
    decision = CutoffDecision.defer_until(moment, notice_due, CutoffReason.NOTICE_PERIOD)
    assert effects.next_look(decision, NOW) == notice_due
    given = CutoffDecision.defer_until(
        moment, NOW - timedelta(minutes=5), CutoffReason.FINAL_NOTICE
    )
    assert effects.next_look(given, NOW) == moment


def test_arrears_only_a_person_can_end_are_looked_at_again_for_growing_debt() -> None:
    decision = CutoffDecision.never_automatic(CutoffReason.PROTECTED)
    assert effects.next_look(decision, NOW) == NOW + effects.REVIEW_EVERY


def test_an_override_the_site_now_contradicts_gives_way_to_the_site_lines() -> None:
    site = _site(Thresholds(warning1=WarningLevel.of_amount(Money(5000))))
    fine = ThresholdOverrides(warning1=WarningLevel.of_amount(Money(8000)))
    assert effects.thresholds_for(_account(fine), site).warning1.amount == Money(8000)
    contradicting = ThresholdOverrides(warning2=WarningLevel.of_amount(Money(9000)))
    assert effects.thresholds_for(_account(contradicting), site) == site.thresholds
    assert effects.thresholds_for(_account(None), site) is site.thresholds
