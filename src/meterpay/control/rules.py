"""Arrears rules: the supply state a balance calls for, when a cut-off may happen, and when
a person has to decide.

Invariants:
- ``evaluate`` sees one utility account's own balance and nothing else: there is
  no parameter through which a property fee, rent or any other debt could enter,
  so no such debt can cause a cut-off, a restriction or a refused top-up
  (民法典 第九百四十四条); top-ups are never judged here at all;
- a balance at or above the restore point in arrears or cut off yields exactly
  one ``balance_restored`` event (a restore command, any time of day); while the
  restore is pending, evaluating again yields nothing;
- ``decide_cutoff`` says ``cut_now`` only when the notice period since the
  arrears notice has passed, a final notice was given between ``final_notice_lead``
  and ``final_notice_lead + FINAL_NOTICE_VALIDITY`` ago, the moment is outside
  friendly hours on a known workday (site time), the account is not protected
  and the policy cuts automatically; otherwise it defers to the next allowed
  moment (with the final notice due ``final_notice_lead`` before it) or says a
  person must decide;
- nothing here reads a clock: ``now`` and the calendar are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Final

from meterpay.control.calendar import CutoffDayType
from meterpay.control.model import (
    ArrearsPolicy,
    Protection,
    SupplyEvent,
    SupplyState,
    Thresholds,
    transition,
)
from meterpay.kernel.clock import require_aware
from meterpay.kernel.money import Money
from meterpay.tariffs.tou import DayType

# A final notice announces one moment; a cut-off much later than announced would
# surprise the owner again, so past this a new final notice is given.
FINAL_NOTICE_VALIDITY: Final = timedelta(minutes=30)
# Longer than any run of Chinese public holidays and weekends (Spring Festival,
# National Day); finding no allowed moment in it means a person has to look.
SEARCH_HORIZON_DAYS: Final = 45

_DEPTH: Final = {
    SupplyState.NORMAL: 0,
    SupplyState.LOW: 1,
    SupplyState.VERY_LOW: 2,
    SupplyState.IN_ARREARS: 3,
}
_FALL_INTO: Final = {
    SupplyState.LOW: SupplyEvent.FELL_BELOW_WARNING1,
    SupplyState.VERY_LOW: SupplyEvent.FELL_BELOW_WARNING2,
    SupplyState.IN_ARREARS: SupplyEvent.FELL_BELOW_CUTOFF,
}
_RISE_INTO: Final = {
    SupplyState.NORMAL: SupplyEvent.ROSE_ABOVE_WARNING1,
    SupplyState.LOW: SupplyEvent.ROSE_ABOVE_WARNING2,
}


# --- balance -> supply state --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The outcome of a balance change: at most one event, and the state it leads to."""

    previous: SupplyState
    state: SupplyState
    event: SupplyEvent | None

    @property
    def gives_arrears_notice(self) -> bool:
        return self.event is SupplyEvent.FELL_BELOW_CUTOFF

    @property
    def requests_restore(self) -> bool:
        return self.event is SupplyEvent.BALANCE_RESTORED


def balance_band(
    balance: Money, thresholds: Thresholds, *, average_daily_use: Money | None = None
) -> SupplyState:
    """Where a balance lies among the lines: normal, low, very low or in arrears.

    A days-based warning line is ordered below warning 1 and above the arrears
    line, so the bands never overlap whatever the average use is.
    """
    first = thresholds.warning1.line(average_daily_use)
    second = thresholds.warning2.line(average_daily_use)
    if first is not None and second is not None:
        second = min(first, second)
    if balance < thresholds.arrears_line:
        return SupplyState.IN_ARREARS
    if second is not None and balance < second:
        return SupplyState.VERY_LOW
    if first is not None and balance < first:
        return SupplyState.LOW
    return SupplyState.NORMAL


def evaluate(
    balance: Money,
    state: SupplyState,
    thresholds: Thresholds,
    *,
    average_daily_use: Money | None = None,
) -> Evaluation:
    """The supply event a new balance of this utility account causes, if any.

    ``balance`` is the account's own prepaid balance, moved only by this
    utility's charges and top-ups. Once in arrears the account stays there
    until the balance reaches the restore point (hysteresis), and only the
    meter's read-back moves it to ``cut_off`` or back to ``normal``.
    """
    band = balance_band(balance, thresholds, average_daily_use=average_daily_use)
    event: SupplyEvent | None
    if state in (SupplyState.IN_ARREARS, SupplyState.CUT_OFF):
        restored = balance >= thresholds.restore_point
        event = SupplyEvent.BALANCE_RESTORED if restored else None
    elif state is SupplyState.RESTORE_PENDING:
        event = SupplyEvent.FELL_BELOW_CUTOFF if band is SupplyState.IN_ARREARS else None
    elif _DEPTH[band] > _DEPTH[state]:
        event = _FALL_INTO[band]
    elif _DEPTH[band] < _DEPTH[state]:
        event = _RISE_INTO[band]
    else:
        event = None
    return Evaluation(state, transition(state, event) if event else state, event)


# --- when a cut-off is allowed --------------------------------------------------------------------


class CutoffVerdict(StrEnum):
    CUT_NOW = "cut_now"
    DEFER = "defer"
    NEVER_AUTOMATIC = "never_automatic"
    """Only a person may cut this account now: an alarm asks one."""


class CutoffReason(StrEnum):
    ALLOWED = "allowed"
    NOTICE_PERIOD = "notice_period"
    FINAL_NOTICE = "final_notice"
    """Waiting for the final notice's lead time to pass."""
    FRIENDLY_HOURS = "friendly_hours"
    REST_DAY = "rest_day"
    UNKNOWN_DAY = "unknown_day"
    """The calendar cannot say whether the day is a workday: no cut-off."""
    PROTECTED = "protected"
    MANUAL_ONLY = "manual_only"
    NO_ALLOWED_MOMENT = "no_allowed_moment"


@dataclass(frozen=True, slots=True)
class CutoffDecision:
    """What to do about an account in arrears now.

    ``cut_now``: queue the cut command now, expiring at ``window_ends_at`` so it
    never acts inside a forbidden window. ``defer``: give the final notice at
    ``final_notice_at`` (already given when it is in the past) and decide again at
    ``at``. ``never_automatic``: a person decides.
    """

    verdict: CutoffVerdict
    reason: CutoffReason
    at: datetime | None = None
    final_notice_at: datetime | None = None
    window_ends_at: datetime | None = None

    @classmethod
    def cut_now(cls, now: datetime, window_ends_at: datetime) -> CutoffDecision:
        return cls(CutoffVerdict.CUT_NOW, CutoffReason.ALLOWED, now, None, window_ends_at)

    @classmethod
    def defer_until(
        cls, moment: datetime, final_notice_at: datetime, reason: CutoffReason
    ) -> CutoffDecision:
        return cls(CutoffVerdict.DEFER, reason, moment, final_notice_at)

    @classmethod
    def never_automatic(cls, reason: CutoffReason) -> CutoffDecision:
        return cls(CutoffVerdict.NEVER_AUTOMATIC, reason)


def forbidden_reason(
    moment: datetime, policy: ArrearsPolicy, day_type: CutoffDayType
) -> CutoffReason | None:
    """Why the calendar and the clock forbid a cut-off at ``moment``; ``None`` if they allow it."""
    local = require_aware(moment).astimezone(policy.timezone)
    if policy.no_cutoff_on_rest_days:
        kind = day_type(local.date())
        if kind is None:
            return CutoffReason.UNKNOWN_DAY
        if kind is not DayType.WORKDAY:
            return CutoffReason.REST_DAY
    if policy.friendly_hours is not None and policy.friendly_hours.contains(local.time()):
        return CutoffReason.FRIENDLY_HOURS
    return None


def _at(day: date, wall: time, policy: ArrearsPolicy) -> datetime:
    return datetime.combine(day, wall, tzinfo=policy.timezone)


def _allowed_windows(
    day: date, policy: ArrearsPolicy, day_type: CutoffDayType
) -> list[tuple[datetime, datetime]]:
    """The half-open spans of one local day in which a cut-off is allowed."""
    if policy.no_cutoff_on_rest_days and day_type(day) is not DayType.WORKDAY:
        return []
    midnight, next_midnight = _at(day, time(0), policy), _at(day + timedelta(1), time(0), policy)
    friendly = policy.friendly_hours
    if friendly is None:
        return [(midnight, next_midnight)]
    if friendly.wraps_midnight:
        return [(_at(day, friendly.end, policy), _at(day, friendly.start, policy))]
    spans = [
        (midnight, _at(day, friendly.start, policy)),
        (_at(day, friendly.end, policy), next_midnight),
    ]
    return [(start, end) for start, end in spans if start < end]


def next_allowed_moment(
    start: datetime, policy: ArrearsPolicy, day_type: CutoffDayType
) -> datetime | None:
    """The earliest moment at or after ``start`` that the calendar and the clock allow."""
    first_day = require_aware(start).astimezone(policy.timezone).date()
    for offset in range(SEARCH_HORIZON_DAYS):
        for window_start, window_end in _allowed_windows(
            first_day + timedelta(offset), policy, day_type
        ):
            if window_end > start:
                return max(window_start, start)
    return None


def window_end(moment: datetime, policy: ArrearsPolicy, day_type: CutoffDayType) -> datetime:
    """The end of the allowed span that contains ``moment``, across midnight if the next day
    allows cut-offs from 00:00: a cut command must expire by then."""
    day = require_aware(moment).astimezone(policy.timezone).date()
    # A moment outside every window gets a command that expires at once: the safe side.
    end = next((e for s, e in _allowed_windows(day, policy, day_type) if s <= moment < e), moment)
    for offset in range(1, SEARCH_HORIZON_DAYS):
        windows = _allowed_windows(day + timedelta(offset), policy, day_type)
        if not windows or windows[0][0] != end:
            break
        end = windows[0][1]
    return end


def next_allowed_cutoff(
    now: datetime,
    notice_given_at: datetime,
    *,
    thresholds: Thresholds,
    policy: ArrearsPolicy,
    day_type: CutoffDayType,
    protection: Protection | None,
) -> datetime | None:
    """The earliest moment at or after ``now`` and after the notice period at which the
    rules allow an automatic cut-off; ``None`` when none will come without a person.

    The final notice is due ``thresholds.final_notice_lead`` before the cut-off;
    ``decide_cutoff`` accounts for it.
    """
    if protection is not None or not policy.automatic_cutoff:
        return None
    start = max(require_aware(now), require_aware(notice_given_at) + thresholds.notice_period)
    return next_allowed_moment(start, policy, day_type)


def _final_notice_age(
    now: datetime, notice_given_at: datetime, final_notice_given_at: datetime | None
) -> timedelta | None:
    """How long ago this episode's final notice was given; ``None`` if there is none."""
    if final_notice_given_at is None:
        return None
    given = require_aware(final_notice_given_at)
    if given < notice_given_at or given > now:  # an earlier episode's, or not real yet
        return None
    return now - given


def decide_cutoff(
    now: datetime,
    *,
    notice_given_at: datetime,
    final_notice_given_at: datetime | None,
    thresholds: Thresholds,
    policy: ArrearsPolicy,
    day_type: CutoffDayType,
    protection: Protection | None,
) -> CutoffDecision:
    """Whether an account in arrears is cut now, later (and when), or only by a person."""
    require_aware(now)
    if protection is not None:
        return CutoffDecision.never_automatic(CutoffReason.PROTECTED)
    if not policy.automatic_cutoff:
        return CutoffDecision.never_automatic(CutoffReason.MANUAL_ONLY)
    lead, notice_end = thresholds.final_notice_lead, notice_given_at + thresholds.notice_period
    blocked = forbidden_reason(now, policy, day_type)
    age = _final_notice_age(now, notice_given_at, final_notice_given_at)
    announced = age is not None and lead <= age <= lead + FINAL_NOTICE_VALIDITY
    if now >= notice_end and blocked is None and announced:
        return CutoffDecision.cut_now(now, window_end(now, policy, day_type))
    reason = (
        CutoffReason.NOTICE_PERIOD if now < notice_end else blocked or CutoffReason.FINAL_NOTICE
    )
    if age is not None and age < lead:  # keep the moment already announced, if allowed
        announced_for = now - age + lead
        if announced_for >= notice_end and not forbidden_reason(announced_for, policy, day_type):
            return CutoffDecision.defer_until(announced_for, now - age, reason)
    moment = next_allowed_moment(max(notice_end, now + lead), policy, day_type)
    if moment is None:
        return CutoffDecision.never_automatic(CutoffReason.NO_ALLOWED_MOMENT)
    return CutoffDecision.defer_until(moment, moment - lead, reason)


# --- when a person has to decide ------------------------------------------------------------------


class ArrearsAlarmReason(StrEnum):
    PERSON_MUST_DECIDE = "cutoff_needs_person"
    """Protected, water, or no allowed moment in sight: only a person can act."""
    DEBT_GROWING = "arrears_growing"
    DEFERRED_TOO_LONG = "cutoff_deferred_too_long"


@dataclass(frozen=True, slots=True)
class ArrearsAlarm:
    """A call for a person; ``debt_past_line`` is how far the balance is below the arrears line."""

    reason: ArrearsAlarmReason
    cutoff_reason: CutoffReason
    debt_past_line: Money


def should_alarm(
    balance: Money,
    state: SupplyState,
    decision: CutoffDecision,
    *,
    now: datetime,
    notice_given_at: datetime,
    thresholds: Thresholds,
    policy: ArrearsPolicy,
) -> ArrearsAlarm | None:
    """An alarm when arrears are left standing without an automatic cut-off.

    A cut-off that will never happen automatically alarms at once. A deferred
    one alarms only after the notice period (during it, deferral is the normal
    legal course): when the debt is more than ``policy.alarm.debt_margin`` past
    the arrears line, or the cut-off has been due longer than ``max_deferral``.
    """
    if state is not SupplyState.IN_ARREARS or decision.verdict is CutoffVerdict.CUT_NOW:
        return None
    past_line = thresholds.arrears_line - balance
    if decision.verdict is CutoffVerdict.NEVER_AUTOMATIC:
        return ArrearsAlarm(ArrearsAlarmReason.PERSON_MUST_DECIDE, decision.reason, past_line)
    overdue = require_aware(now) - (notice_given_at + thresholds.notice_period)
    if overdue < timedelta(0):
        return None
    if past_line > policy.alarm.debt_margin:
        return ArrearsAlarm(ArrearsAlarmReason.DEBT_GROWING, decision.reason, past_line)
    if overdue > policy.alarm.max_deferral:
        return ArrearsAlarm(ArrearsAlarmReason.DEFERRED_TOO_LONG, decision.reason, past_line)
    return None
