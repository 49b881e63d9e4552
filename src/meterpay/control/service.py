"""Use cases on arrears control: site policies, account thresholds, protection (保电),
holiday overrides, and what an account's supply looks like. One transaction each;
every change is audited with who, before, after and why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from meterpay.audit import repository as audit
from meterpay.control import effects, outbox
from meterpay.control import repository as repo
from meterpay.control.model import (
    ArrearsAlarmRule,
    FriendlyHours,
    InvalidThresholds,
    Protection,
    RestoreStyle,
    SupplyState,
    ThresholdOverrides,
    Thresholds,
    WarningLevel,
    effective_thresholds,
)
from meterpay.control.outbox import Command
from meterpay.control.repository import AccountSupply, SitePolicy
from meterpay.control.rules import decide_cutoff
from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger.repository import balance_fen
from meterpay.runtime import Runtime
from meterpay.tariffs.tou import DayType


@dataclass(frozen=True, slots=True)
class SupplyView:
    """An account's supply as the console shows it."""

    account: AccountSupply
    balance: Money
    thresholds: Thresholds
    site: SitePolicy
    planned_cutoff_at: datetime | None
    events: list[dict[str, Any]]
    commands: list[Command]


def policy(rt: Runtime, site_id: int, utility: Utility) -> SitePolicy:
    with rt.db.read() as conn:
        return repo.site_policy(conn, site_id, utility)


def set_policy(
    rt: Runtime, site_id: int, utility: Utility, changes: Mapping[str, Any], *, by: str, reason: str
) -> SitePolicy:
    """Change a site's arrears settings for one utility; ``changes`` holds only the
    fields to change (names as in ``policy_fields``). Contradictions are refused naming
    the field; nothing changes then."""
    now = rt.clock.now()
    with rt.db.write() as conn:
        before = repo.site_policy(conn, site_id, utility)
        after = _apply(before, changes)
        repo.save_policy(conn, after, by=by, now=now)
        repo.decide_again(conn, site_id, utility, now)  # the new rules apply at once
        audit.record(
            conn,
            at=now,
            actor=by,
            action="control.policy",
            object_type="site",
            object_id=site_id,
            site_id=site_id,
            before=policy_fields(before),
            after=policy_fields(after),
            reason=reason,
        )
        return repo.site_policy(conn, site_id, utility)


def policy_fields(p: SitePolicy) -> dict[str, Any]:
    """A policy as plain values (money as yuan strings, durations in minutes)."""
    t, a = p.thresholds, p.policy
    friendly = a.friendly_hours

    def level(w: WarningLevel) -> dict[str, Any]:
        return {"amount": str(w.amount) if w.amount is not None else None, "days": w.days}

    return {
        "utility": p.utility.value,
        "warning1": level(t.warning1),
        "warning2": level(t.warning2),
        "credit_limit": str(t.credit_limit),
        "cutoff_point": str(t.cutoff_point),
        "restore_point": str(t.restore_point),
        "notice_period_minutes": int(t.notice_period.total_seconds() // 60),
        "final_notice_lead_minutes": int(t.final_notice_lead.total_seconds() // 60),
        "friendly_hours": (
            {"start": friendly.start.strftime("%H:%M"), "end": friendly.end.strftime("%H:%M")}
            if friendly
            else None
        ),
        "no_cutoff_on_rest_days": a.no_cutoff_on_rest_days,
        "automatic_cutoff": a.automatic_cutoff,
        "restore_style": a.restore_style.value,
        "alarm_debt_margin": str(a.alarm.debt_margin),
        "alarm_max_deferral_minutes": int(a.alarm.max_deferral.total_seconds() // 60),
        "stored": p.stored,
    }


def _level(value: Mapping[str, Any] | None, name: str) -> WarningLevel:
    if not value or (value.get("amount") is None) == (value.get("days") is None):
        raise InvalidThresholds(f"{name}: give either an amount or a number of days", field=name)
    if value.get("days") is not None:
        return WarningLevel.of_days(int(value["days"]))
    return WarningLevel.of_amount(Money.from_yuan(str(value["amount"])))


def _apply(before: SitePolicy, changes: Mapping[str, Any]) -> SitePolicy:
    t, a = before.thresholds, before.policy
    c = dict(changes)
    try:
        thresholds = Thresholds(
            warning1=_level(c["warning1"], "warning1") if "warning1" in c else t.warning1,
            warning2=_level(c["warning2"], "warning2") if "warning2" in c else t.warning2,
            credit_limit=_money(c, "credit_limit", t.credit_limit),
            cutoff_point=_money(c, "cutoff_point", t.cutoff_point),
            restore_point=_money(c, "restore_point", t.restore_point),
            notice_period=_minutes(c, "notice_period_minutes", t.notice_period),
            final_notice_lead=_minutes(c, "final_notice_lead_minutes", t.final_notice_lead),
        )
        friendly = a.friendly_hours
        if "friendly_hours" in c:
            hours = c["friendly_hours"]
            friendly = (
                FriendlyHours(time.fromisoformat(hours["start"]), time.fromisoformat(hours["end"]))
                if hours
                else None
            )
        alarm = ArrearsAlarmRule(
            _money(c, "alarm_debt_margin", a.alarm.debt_margin),
            _minutes(c, "alarm_max_deferral_minutes", a.alarm.max_deferral),
        )
        policy = replace(
            a,
            friendly_hours=friendly,
            no_cutoff_on_rest_days=bool(c.get("no_cutoff_on_rest_days", a.no_cutoff_on_rest_days)),
            automatic_cutoff=bool(c.get("automatic_cutoff", a.automatic_cutoff)),
            restore_style=RestoreStyle(c.get("restore_style", a.restore_style)),
            alarm=alarm,
        )
    except (ValueError, TypeError, KeyError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"invalid arrears policy: {exc}") from exc
    return replace(before, thresholds=thresholds, policy=policy)


def _money(c: Mapping[str, Any], name: str, default: Money) -> Money:
    if name not in c:
        return default
    try:
        return Money.from_yuan(str(c[name]))
    except (ValueError, ArithmeticError) as exc:
        raise InvalidInput(f"{name}: not an amount of money: {c[name]!r}", field=name) from exc


def _minutes(c: Mapping[str, Any], name: str, default: timedelta) -> timedelta:
    if name not in c:
        return default
    value = c[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{name}: a whole number of minutes >= 0", field=name)
    return timedelta(minutes=value)


def set_account_thresholds(
    rt: Runtime, account_id: int, overrides: ThresholdOverrides, *, by: str, reason: str
) -> Thresholds:
    """An account's own lines (``None`` fields follow the site); checked against the
    site's values as a whole."""
    now = rt.clock.now()
    with rt.db.write() as conn:
        account = repo.account_supply(conn, account_id, lock=True)
        site = repo.site_policy(conn, account.site_id, account.utility)
        effective = effective_thresholds(site.thresholds, overrides)
        repo.save_overrides(conn, account_id, overrides)
        audit.record(
            conn,
            at=now,
            actor=by,
            action="control.account_thresholds",
            object_type="account",
            object_id=account_id,
            site_id=account.site_id,
            before=_overrides_fields(account.overrides),
            after=_overrides_fields(overrides),
            reason=reason,
        )
        return effective


def _overrides_fields(o: ThresholdOverrides | None) -> dict[str, Any] | None:
    if o is None:
        return None
    return {
        "warning1": str(o.warning1) if o.warning1 else None,
        "warning2": str(o.warning2) if o.warning2 else None,
        "credit_limit": str(o.credit_limit) if o.credit_limit is not None else None,
        "cutoff_point": str(o.cutoff_point) if o.cutoff_point is not None else None,
        "restore_point": str(o.restore_point) if o.restore_point is not None else None,
    }


def protect(rt: Runtime, account_id: int, *, reason: str, by: str) -> Protection:
    """Mark an account 保电: never cut automatically; its arrears go to a person."""
    now = rt.clock.now()
    try:
        protection = Protection(reason.strip(), by, now)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="reason") from exc
    with rt.db.write() as conn:
        account = repo.account_supply(conn, account_id, lock=True)
        repo.set_protection(conn, account_id, protection)
        if account.state is SupplyState.IN_ARREARS:  # decide again now: a person must
            repo.set_next_decision(conn, {account_id: now})
        _audit_protection(conn, account, protection, by=by, reason=reason, now=now)
        return protection


def unprotect(rt: Runtime, account_id: int, *, reason: str, by: str) -> None:
    if not reason.strip():
        raise InvalidInput("lifting a protection needs a reason", field="reason")
    now = rt.clock.now()
    with rt.db.write() as conn:
        account = repo.account_supply(conn, account_id, lock=True)
        repo.set_protection(conn, account_id, None)
        if account.state is SupplyState.IN_ARREARS:
            repo.set_next_decision(conn, {account_id: now})
        _audit_protection(conn, account, None, by=by, reason=reason, now=now)


def _audit_protection(
    conn: Any,
    account: AccountSupply,
    after: Protection | None,
    *,
    by: str,
    reason: str,
    now: datetime,
) -> None:
    def fields(p: Protection | None) -> dict[str, Any] | None:
        return {"reason": p.reason, "set_by": p.set_by, "since": p.since} if p else None

    audit.record(
        conn,
        at=now,
        actor=by,
        action="control.protection",
        object_type="account",
        object_id=account.id,
        site_id=account.site_id,
        before=fields(account.protection),
        after=fields(after),
        reason=reason,
    )


def set_holiday(rt: Runtime, day: date, kind: DayType | str, *, note: str, by: str) -> None:
    """An operator's day type for cut-off rules (e.g. next year's announced holidays)."""
    if str(kind) not in ("workday", "weekend", "holiday"):
        raise InvalidInput("day_type must be workday, weekend or holiday", field="day_type")
    now = rt.clock.now()
    with rt.db.write() as conn:
        repo.save_holiday(conn, day, str(kind), note=note, by=by, now=now)
        audit.record(
            conn,
            at=now,
            actor=by,
            action="control.holiday",
            object_type="holiday",
            object_id=day.isoformat(),
            after={"day_type": str(kind), "note": note},
            reason=note,
        )


def supply_view(rt: Runtime, account_id: int, *, events: int = 50) -> SupplyView:
    """An account's supply state, balance, lines, planned cut-off, history and commands."""
    now = rt.clock.now()
    with rt.db.read() as conn:
        account = repo.account_supply(conn, account_id)
        site = repo.site_policy(conn, account.site_id, account.utility)
        thresholds = effects.thresholds_for(account, site)
        planned = None
        if account.state is SupplyState.IN_ARREARS and account.notice_given_at is not None:
            decision = decide_cutoff(
                now,
                notice_given_at=account.notice_given_at,
                final_notice_given_at=account.final_notice_given_at,
                thresholds=thresholds,
                policy=site.policy,
                day_type=repo.day_type_source(conn),
                protection=account.protection,
            )
            planned = decision.at
        return SupplyView(
            account,
            Money(balance_fen(conn, account.wallet_id)),
            thresholds,
            site,
            planned,
            repo.supply_history(conn, account_id, limit=events),
            outbox.of_account(conn, account_id)[-events:][::-1],
        )


def states_of_site(rt: Runtime, site_id: int) -> dict[str, int]:
    """How many open accounts of a site are in each supply state."""
    with rt.db.read() as conn:
        return repo.count_states(conn, site_id)
