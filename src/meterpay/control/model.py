"""Supply states of a prepaid account, its thresholds, and the arrears policy of a utility.

Invariants:
- the supply state moves only along ``TRANSITIONS``; any other move raises
  ``IllegalTransition``: normal -> low -> very low -> in arrears -> cut off ->
  restore pending -> normal, with downward skips (one large charge may cross
  several thresholds), recoveries before arrears, and a restore straight from
  in arrears (a cut command may already be on its way to the meter);
- thresholds are ordered: warning 1 >= warning 2 >= cut-off point, the credit
  limit is not negative, and the restore point is not below the arrears line
  (``cutoff_point - credit_limit``), so a restored account is never in arrears;
- the balance behind every decision is that utility account's own prepaid
  balance: only that utility's charges and top-ups move it, so a property fee,
  rent or any other debt can never lead to a cut-off (民法典 第九百四十四条);
- a protected account (保电) is never cut automatically.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from meterpay.kernel.clock import require_aware
from meterpay.kernel.errors import Conflict, InvalidInput
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility

DEFAULT_NOTICE_PERIOD: Final = timedelta(days=3)  # 供电营业规则 第六十七条: 3-7 days
DEFAULT_FINAL_NOTICE_LEAD: Final = timedelta(minutes=30)  # announced again 30 minutes before
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
NO_MONEY: Final = Money(0)
DEFAULT_WARNING1: Final = Money(5000)  # 50 元
DEFAULT_WARNING2: Final = Money(2000)  # 20 元
DEFAULT_ALARM_MARGIN: Final = Money(5000)  # 50 元 past the arrears line


class SupplyState(StrEnum):
    NORMAL = "normal"
    LOW = "low"
    """Below warning 1: the owner was warned once."""
    VERY_LOW = "very_low"
    """Below warning 2: the owner was warned again."""
    IN_ARREARS = "in_arrears"
    """Below the arrears line: the arrears notice was given, a cut-off is pending."""
    CUT_OFF = "cut_off"
    """The meter confirmed that its relay or valve is open."""
    RESTORE_PENDING = "restore_pending"
    """Paid up: a restore command is queued and not yet confirmed by the meter."""


class SupplyEvent(StrEnum):
    FELL_BELOW_WARNING1 = "balance_fell_below_warning1"
    FELL_BELOW_WARNING2 = "balance_fell_below_warning2"
    FELL_BELOW_CUTOFF = "balance_fell_below_cutoff"
    """The balance fell below the arrears line: the arrears notice is given now."""
    ROSE_ABOVE_WARNING2 = "balance_rose_above_warning2"
    ROSE_ABOVE_WARNING1 = "balance_rose_above_warning1"
    CUT_OFF_CONFIRMED = "cut_off_confirmed"
    """The meter's read-back shows the relay or valve open."""
    BALANCE_RESTORED = "balance_restored"
    """A top-up or credit lifted the balance to the restore point: restore at once."""
    RESTORE_CONFIRMED = "restore_confirmed"
    """The meter's read-back shows the relay or valve closed again."""


_S, _E = SupplyState, SupplyEvent
TRANSITIONS: Final[dict[tuple[SupplyState, SupplyEvent], SupplyState]] = {
    (_S.NORMAL, _E.FELL_BELOW_WARNING1): _S.LOW,
    (_S.NORMAL, _E.FELL_BELOW_WARNING2): _S.VERY_LOW,
    (_S.NORMAL, _E.FELL_BELOW_CUTOFF): _S.IN_ARREARS,
    (_S.LOW, _E.FELL_BELOW_WARNING2): _S.VERY_LOW,
    (_S.LOW, _E.FELL_BELOW_CUTOFF): _S.IN_ARREARS,
    (_S.LOW, _E.ROSE_ABOVE_WARNING1): _S.NORMAL,
    (_S.VERY_LOW, _E.FELL_BELOW_CUTOFF): _S.IN_ARREARS,
    (_S.VERY_LOW, _E.ROSE_ABOVE_WARNING2): _S.LOW,
    (_S.VERY_LOW, _E.ROSE_ABOVE_WARNING1): _S.NORMAL,
    # An operator may also cut an account in arrears by hand (e.g. water, which is
    # never cut automatically); the read-back confirms it the same way.
    (_S.IN_ARREARS, _E.CUT_OFF_CONFIRMED): _S.CUT_OFF,
    # Restore even before the cut is confirmed: the cut command may be in flight.
    (_S.IN_ARREARS, _E.BALANCE_RESTORED): _S.RESTORE_PENDING,
    (_S.CUT_OFF, _E.BALANCE_RESTORED): _S.RESTORE_PENDING,
    (_S.RESTORE_PENDING, _E.RESTORE_CONFIRMED): _S.NORMAL,
    # A reversed top-up (refund, chargeback) before the restore was confirmed:
    # a new arrears episode begins, with a new notice and a new notice period.
    (_S.RESTORE_PENDING, _E.FELL_BELOW_CUTOFF): _S.IN_ARREARS,
}


class IllegalTransition(Conflict):
    """A supply state change that is not in the transition table."""

    code = "illegal_supply_transition"


def transition(state: SupplyState, event: SupplyEvent) -> SupplyState:
    """The state after ``event``; raises ``IllegalTransition`` for a move not in the table."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(
            f"supply state {state} does not allow {event}", state=state, event=event
        ) from None


class InvalidThresholds(InvalidInput):
    """Thresholds that contradict each other or are out of range; names the field."""

    code = "invalid_thresholds"


def _refuse(field_name: str, message: str) -> InvalidThresholds:
    return InvalidThresholds(f"{field_name}: {message}", field=field_name)


@dataclass(frozen=True, slots=True)
class WarningLevel:
    """A low-balance warning line: a fixed amount, or "N days of average use left"."""

    amount: Money | None = None
    days: int | None = None

    def __post_init__(self) -> None:
        if (self.amount is None) == (self.days is None):
            raise ValueError("a warning level is either an amount or a number of days")
        if self.days is not None and (isinstance(self.days, bool) or self.days < 1):
            raise ValueError(f"days must be a whole number >= 1, got {self.days!r}")

    @classmethod
    def of_amount(cls, amount: Money) -> WarningLevel:
        return cls(amount=amount)

    @classmethod
    def of_days(cls, days: int) -> WarningLevel:
        return cls(days=days)

    def line(self, average_daily_use: Money | None) -> Money | None:
        """The balance below which this warning applies; ``None`` when a days level has
        no average use to go by yet (a new account): no warning rather than a wrong one."""
        if self.amount is not None:
            return self.amount
        if average_daily_use is None or self.days is None:
            return None
        return Money(average_daily_use.fen * self.days)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The balance lines of one account (site defaults merged with account overrides).

    ``credit_limit`` (透支额度) is how far below the cut-off point the balance may go
    before the account is in arrears; the arrears line is ``cutoff_point -
    credit_limit``. A top-up that brings the balance to ``restore_point`` or above
    restores supply: paying the debt removes the cause of the cut-off.
    """

    warning1: WarningLevel = WarningLevel(amount=DEFAULT_WARNING1)
    warning2: WarningLevel = WarningLevel(amount=DEFAULT_WARNING2)
    credit_limit: Money = NO_MONEY
    cutoff_point: Money = NO_MONEY
    restore_point: Money = NO_MONEY
    notice_period: timedelta = DEFAULT_NOTICE_PERIOD
    final_notice_lead: timedelta = DEFAULT_FINAL_NOTICE_LEAD

    def __post_init__(self) -> None:
        self._check_warnings()
        if self.credit_limit < NO_MONEY:
            raise _refuse("credit_limit", f"must not be negative, got {self.credit_limit} 元")
        if self.restore_point < self.arrears_line:
            raise _refuse(
                "restore_point",
                f"{self.restore_point} 元 is below the arrears line {self.arrears_line} 元",
            )
        if self.final_notice_lead <= timedelta(0):
            raise _refuse("final_notice_lead", "must be positive")
        if self.notice_period < self.final_notice_lead:
            raise _refuse("notice_period", "must not be shorter than the final notice lead")

    def _check_warnings(self) -> None:
        first, second = self.warning1, self.warning2
        if first.amount is not None and second.amount is not None and first.amount < second.amount:
            raise _refuse("warning2", f"{second.amount} 元 is above warning1 {first.amount} 元")
        if first.days is not None and second.days is not None and first.days < second.days:
            raise _refuse("warning2", f"{second.days} days is more than warning1 {first.days}")
        for name, level in (("warning1", first), ("warning2", second)):
            if level.amount is not None and level.amount < self.cutoff_point:
                raise _refuse(name, f"{level.amount} 元 is below the cut-off point")

    @property
    def arrears_line(self) -> Money:
        return self.cutoff_point - self.credit_limit


@dataclass(frozen=True, slots=True)
class ThresholdOverrides:
    """An account's own settings; ``None`` keeps the site's value."""

    warning1: WarningLevel | None = None
    warning2: WarningLevel | None = None
    credit_limit: Money | None = None
    cutoff_point: Money | None = None
    restore_point: Money | None = None
    notice_period: timedelta | None = None
    final_notice_lead: timedelta | None = None


def effective_thresholds(site: Thresholds, account: ThresholdOverrides | None) -> Thresholds:
    """The site's thresholds with the account's overrides; the result is validated as a
    whole, so an override that contradicts a site value is refused naming the field."""
    if account is None:
        return site
    changes = {
        f.name: value for f in fields(account) if (value := getattr(account, f.name)) is not None
    }
    return replace(site, **changes)


class RestoreStyle(StrEnum):
    """How a DL/T 645 relay is closed again (a CJ/T 188 valve simply opens)."""

    CLOSE_NOW = "close_now"  # 1C 直接合闸
    CLOSE_ALLOWED = "close_allowed"  # 1B 合闸允许: the customer presses the meter's button


@dataclass(frozen=True, slots=True)
class FriendlyHours:
    """Local times ``[start, end)`` without automatic cut-offs; wraps midnight when
    ``end <= start`` (18:00-08:00 is the evening, the night and the early morning)."""

    start: time = time(18, 0)
    end: time = time(8, 0)

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("friendly hours are local wall-clock times, without a zone")
        if self.start == self.end:
            raise ValueError("friendly hours must not start and end at the same time")

    @property
    def wraps_midnight(self) -> bool:
        return self.end < self.start

    def contains(self, local: time) -> bool:
        if self.wraps_midnight:
            return local >= self.start or local < self.end
        return self.start <= local < self.end


@dataclass(frozen=True, slots=True)
class ArrearsAlarmRule:
    """When a deferred or forbidden cut-off needs a person: the debt has grown more than
    ``debt_margin`` past the arrears line, or the cut-off has been due for longer than
    ``max_deferral``."""

    debt_margin: Money = DEFAULT_ALARM_MARGIN
    max_deferral: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        if self.debt_margin < NO_MONEY or self.max_deferral < timedelta(0):
            raise ValueError("the alarm margin and deferral must not be negative")


@dataclass(frozen=True, slots=True)
class ArrearsPolicy:
    """How one utility at one site handles arrears.

    ``friendly_hours=None`` allows every hour; ``no_cutoff_on_rest_days`` forbids
    weekends and public holidays and also any day whose type is unknown.
    """

    utility: Utility
    timezone: tzinfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    friendly_hours: FriendlyHours | None = FriendlyHours()
    no_cutoff_on_rest_days: bool = True
    automatic_cutoff: bool = True
    restore_style: RestoreStyle = RestoreStyle.CLOSE_NOW
    alarm: ArrearsAlarmRule = ArrearsAlarmRule()

    @classmethod
    def default_for(cls, utility: Utility, timezone: tzinfo | None = None) -> ArrearsPolicy:
        """Electricity is cut automatically in allowed hours; water never automatically:
        a person decides, since water is needed for health and hygiene."""
        zone = timezone if timezone is not None else ZoneInfo(DEFAULT_TIMEZONE)
        return cls(utility, zone, automatic_cutoff=utility is Utility.ELECTRICITY)


@dataclass(frozen=True, slots=True)
class Protection:
    """保电: the account is never cut automatically (hospital ward, life support, an
    elderly resident); its arrears go to a person instead."""

    reason: str
    set_by: str
    since: datetime

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError("a protection needs a reason")
        if not self.set_by.strip():
            raise ValueError("a protection needs the person who set it")
        require_aware(self.since)
