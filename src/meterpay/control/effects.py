"""What a supply state change sets and says: the arrears episode's times, the owner's
messages, the alarms for a person. Runs inside the caller's transaction.

Invariants:
- the arrears notice is given in the transaction that moves the account into
  arrears, with the planned cut-off time; the notice period counts from it;
- every change is written as a ``supply_events`` row with its cause, and the
  owner's message is queued under a key derived from the account and the
  cause, so a repeated decision never sends it twice;
- a cut-off no automatic rule will ever make raises an alarm at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection

from meterpay.alarms import repository as alarms
from meterpay.alarms.model import AlarmKind
from meterpay.control import repository as repo
from meterpay.control.calendar import CutoffDayType
from meterpay.control.model import (
    InvalidThresholds,
    SupplyEvent,
    SupplyState,
    Thresholds,
    effective_thresholds,
)
from meterpay.control.repository import AccountSupply, SitePolicy, SupplyChange
from meterpay.control.rules import (
    ArrearsAlarm,
    CutoffDecision,
    CutoffReason,
    CutoffVerdict,
    decide_cutoff,
)
from meterpay.kernel.money import Money
from meterpay.notify import outbox as notify
from meterpay.notify.model import Topic

REVIEW_EVERY: Final = timedelta(hours=6)
"""How often arrears nobody may cut automatically are looked at again (growing debt)."""
RESTORE_CHECK: Final = timedelta(minutes=10)
"""When a restore's progress is first checked (its failure raises an alarm)."""

TOPICS: Final = {
    SupplyEvent.FELL_BELOW_WARNING1: Topic.WARNING1,
    SupplyEvent.FELL_BELOW_WARNING2: Topic.WARNING2,
    SupplyEvent.FELL_BELOW_CUTOFF: Topic.ARREARS_NOTICE,
    SupplyEvent.CUT_OFF_CONFIRMED: Topic.CUT_OFF,
    SupplyEvent.RESTORE_CONFIRMED: Topic.RESTORED,
}


def thresholds_for(account: AccountSupply, site: SitePolicy) -> Thresholds:
    """The account's thresholds; an override the site's values now contradict gives way
    to the site's (a charge must never fail for a settings mistake)."""
    if account.overrides is None:
        return site.thresholds
    try:
        return effective_thresholds(site.thresholds, account.overrides)
    except InvalidThresholds:
        return site.thresholds


def first_decision(
    account: AccountSupply,
    site: SitePolicy,
    thresholds: Thresholds,
    day_type: CutoffDayType,
    now: datetime,
) -> CutoffDecision:
    """What the arrears notice given now says about the cut-off."""
    return decide_cutoff(
        now,
        notice_given_at=now,
        final_notice_given_at=None,
        thresholds=thresholds,
        policy=site.policy,
        day_type=day_type,
        protection=account.protection,
    )


def next_look(decision: CutoffDecision, now: datetime) -> datetime:
    """When the scheduler decides again after ``decision``."""
    if decision.verdict is CutoffVerdict.DEFER and decision.at is not None:
        notice_due = decision.final_notice_at
        return notice_due if notice_due is not None and notice_due >= now else decision.at
    return now + REVIEW_EVERY


def change(
    account: AccountSupply,
    event: SupplyEvent,
    *,
    to_state: SupplyState,
    balance: Money,
    cause: str,
    now: datetime,
    decision: CutoffDecision | None = None,
) -> SupplyChange:
    """The change and the episode columns it sets."""
    values: dict[str, Any] = {}
    if event is SupplyEvent.FELL_BELOW_CUTOFF:
        assert decision is not None  # noqa: S101  the caller decided
        values = {
            "notice_given_at": now,
            "final_notice_given_at": None,
            "next_decision_at": next_look(decision, now),
        }
    elif event is SupplyEvent.BALANCE_RESTORED:
        values = {"next_decision_at": now + RESTORE_CHECK}
    elif event in (SupplyEvent.CUT_OFF_CONFIRMED, SupplyEvent.RESTORE_CONFIRMED):
        values = {"next_decision_at": None}
    return SupplyChange(account, event, to_state, balance, cause, values)


def announce(
    conn: Connection,
    changes: Sequence[SupplyChange],
    now: datetime,
    *,
    decisions: Mapping[int, CutoffDecision] | None = None,
    calls: Mapping[int, ArrearsAlarm] | None = None,
) -> None:
    """Queue the owners' messages (with the planned cut-off from ``decisions``) and raise
    the alarms in ``calls`` (by account id)."""
    names: dict[int, str] = {}
    for c in changes:
        topic = TOPICS.get(c.event)
        account = c.account
        decision = (decisions or {}).get(account.id)
        if topic is not None:
            if account.site_id not in names:
                names[account.site_id] = repo.site_name(conn, account.site_id)
            params = {
                "account_number": account.number,
                "utility": account.utility.value,
                "balance": str(c.balance),
                "site_name": names[account.site_id],
            }
            if decision is not None and decision.at is not None:
                params["planned_cutoff_at"] = decision.at.isoformat()
            notify.queue_in(
                conn,
                site_id=account.site_id,
                topic=topic,
                dedupe_key=f"{topic.value}:{account.id}:{c.cause}",
                now=now,
                account_id=account.id,
                customer_id=account.customer_id,
                params=params,
            )
        call = (calls or {}).get(account.id)
        if call is not None:
            raise_arrears_alarm(conn, account, call, episode=now, now=now)


def raise_arrears_alarm(
    conn: Connection,
    account: AccountSupply,
    alarm: ArrearsAlarm,
    *,
    episode: datetime,
    now: datetime,
) -> None:
    kind = AlarmKind(alarm.reason.value)
    alarms.raise_in(
        conn,
        kind=kind,
        object_type="account",
        object_id=account.id,
        dedupe_key=f"{kind.value}:{account.id}:{episode.isoformat()}",
        message=_ALARM_TEXT[kind].format(
            number=account.number, reason=_REASON_TEXT.get(alarm.cutoff_reason, "")
        ),
        now=now,
        site_id=account.site_id,
        details={
            "cutoff_reason": alarm.cutoff_reason.value,
            "debt_past_line": str(alarm.debt_past_line),
            "utility": account.utility.value,
        },
    )


_REASON_TEXT: Final = {
    CutoffReason.PROTECTED: "保电账户",
    CutoffReason.MANUAL_ONLY: "该类用能仅人工停供",
    CutoffReason.NO_ALLOWED_MOMENT: "45 天内没有允许停供的时段",
    CutoffReason.NOTICE_PERIOD: "通知期未满",
    CutoffReason.FINAL_NOTICE: "等待停供前提醒",
    CutoffReason.FRIENDLY_HOURS: "友好时段",
    CutoffReason.REST_DAY: "周末或节假日",
    CutoffReason.UNKNOWN_DAY: "日历未知的日期",
    CutoffReason.ALLOWED: "",
}
_ALARM_TEXT: Final = {
    AlarmKind.CUTOFF_NEEDS_PERSON: "账户 {number} 欠费，不会自动停供（{reason}），请人工处理",
    AlarmKind.ARREARS_GROWING: "账户 {number} 欠费持续增加，停供被推迟（{reason}）",
    AlarmKind.CUTOFF_DEFERRED_TOO_LONG: "账户 {number} 的停供已推迟过久（{reason}）",
}
