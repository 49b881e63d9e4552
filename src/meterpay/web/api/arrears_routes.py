"""Arrears control under /api/v1: site policies, account thresholds and protection,
an account's supply, commands, alarms, holiday overrides.

Parse, call one service, render.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from meterpay.alarms import service as alarms
from meterpay.alarms.model import Alarm, AlarmKind, AlarmState
from meterpay.auth.model import Permission as P
from meterpay.control import outbox
from meterpay.control import service as control
from meterpay.control.commands import CommandState
from meterpay.control.model import ThresholdOverrides, Thresholds, WarningLevel
from meterpay.control.outbox import Command
from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.web.api import schemas as s
from meterpay.web.api.deps import Actor, Rt
from meterpay.web.guard import allow

router = APIRouter(tags=["arrears control"])
Limit = Annotated[int, Query(ge=1, le=500)]
Reason = Annotated[str, Field(min_length=1, max_length=500, description="why (audited)")]


class Level(s.In):
    """A warning line: an amount in 元, or a number of days of average use left."""

    amount: s.Yuan | None = None
    days: Annotated[int, Field(ge=1, le=365)] | None = None


class Hours(s.In):
    start: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["18:00"])]
    end: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["08:00"])]


class PolicyIn(s.In):
    """Only the fields sent change; the result is checked as a whole."""

    warning1: Level | None = None
    warning2: Level | None = None
    credit_limit: s.Yuan | None = Field(default=None, description="透支额度, 元")
    cutoff_point: s.Yuan | None = None
    restore_point: s.Yuan | None = None
    notice_period_minutes: Annotated[int, Field(ge=0, le=60 * 24 * 60)] | None = None
    final_notice_lead_minutes: Annotated[int, Field(ge=1, le=60 * 24)] | None = None
    friendly_hours: Hours | None = Field(
        default=None, description="no automatic cut-off inside; send null to allow every hour"
    )
    no_cutoff_on_rest_days: bool | None = None
    automatic_cutoff: bool | None = None
    restore_style: str | None = Field(default=None, pattern="^(close_now|close_allowed)$")
    alarm_debt_margin: s.Yuan | None = None
    alarm_max_deferral_minutes: Annotated[int, Field(ge=0)] | None = None
    reason: Reason


class AccountThresholdsIn(s.In):
    """The account's own lines; omitted or null fields follow the site."""

    warning1: Level | None = None
    warning2: Level | None = None
    credit_limit: s.Yuan | None = None
    cutoff_point: s.Yuan | None = None
    restore_point: s.Yuan | None = None
    reason: Reason


class ProtectionIn(s.In):
    reason: Reason


class CommandOut(s.Out):
    id: int
    meter_id: int
    account_id: int | None
    kind: str
    state: str
    option: str | None
    cause_key: str
    reason: str
    requested_by: str
    created_at: datetime
    expires_at: datetime
    next_attempt_at: datetime
    attempts: int
    updated_at: datetime
    last_error: str


class SupplyEventOut(s.Out):
    at: datetime
    from_state: str
    to_state: str
    event: str
    balance: str
    cause: str


class SupplyOut(s.Out):
    account_id: int
    number: str
    utility: Utility
    state: str
    balance: str
    thresholds: dict[str, Any]
    notice_given_at: datetime | None
    final_notice_given_at: datetime | None
    planned_cutoff_at: datetime | None
    protection: dict[str, Any] | None
    events: list[SupplyEventOut]
    commands: list[CommandOut]


class AlarmOut(s.Out):
    id: int
    site_id: int | None
    kind: AlarmKind
    severity: str
    object_type: str
    object_id: str
    message: str
    details: dict[str, Any] | None
    state: AlarmState
    opened_at: datetime
    last_seen_at: datetime
    occurrences: int
    closed_at: datetime | None
    closed_by: str | None


class HolidayIn(s.In):
    day_type: str = Field(pattern="^(workday|weekend|holiday)$")
    note: Annotated[str, Field(max_length=200)] = ""


def _command(c: Command) -> CommandOut:
    return CommandOut.model_validate(c, from_attributes=True)


def _level(level: Level | None) -> WarningLevel | None:
    if level is None:
        return None
    if (level.amount is None) == (level.days is None):
        raise InvalidInput(
            "a warning line is either an amount or a number of days", field="warning"
        )
    if level.days is not None:
        return WarningLevel.of_days(level.days)
    assert level.amount is not None  # noqa: S101  checked above
    return WarningLevel.of_amount(Money.from_yuan(level.amount))


def _money(value: Any) -> Money | None:
    return Money.from_yuan(value) if value is not None else None


def _lines(t: Thresholds) -> dict[str, Any]:
    def level(w: WarningLevel) -> dict[str, Any]:
        return {"amount": str(w.amount) if w.amount is not None else None, "days": w.days}

    return {
        "warning1": level(t.warning1),
        "warning2": level(t.warning2),
        "credit_limit": str(t.credit_limit),
        "cutoff_point": str(t.cutoff_point),
        "restore_point": str(t.restore_point),
        "arrears_line": str(t.arrears_line),
    }


@router.get(
    "/sites/{site_id}/arrears-policy/{utility}",
    dependencies=[allow(P.SITE_READ)],
)
def get_policy(rt: Rt, site_id: int, utility: Utility) -> dict[str, Any]:
    """The site's arrears settings for one utility (the defaults until changed)."""
    return control.policy_fields(control.policy(rt, site_id, utility))


@router.put(
    "/sites/{site_id}/arrears-policy/{utility}",
    dependencies=[allow(P.CONTROL_WRITE)],
)
def put_policy(
    rt: Rt, actor: Actor, site_id: int, utility: Utility, body: PolicyIn
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True, exclude={"reason"}, mode="json")
    saved = control.set_policy(rt, site_id, utility, changes, by=actor, reason=body.reason)
    return control.policy_fields(saved)


@router.put(
    "/accounts/{account_id}/thresholds",
    dependencies=[allow(P.CONTROL_WRITE)],
)
def put_thresholds(
    rt: Rt, actor: Actor, account_id: int, body: AccountThresholdsIn
) -> dict[str, Any]:
    overrides = ThresholdOverrides(
        warning1=_level(body.warning1),
        warning2=_level(body.warning2),
        credit_limit=_money(body.credit_limit),
        cutoff_point=_money(body.cutoff_point),
        restore_point=_money(body.restore_point),
    )
    effective = control.set_account_thresholds(
        rt, account_id, overrides, by=actor, reason=body.reason
    )
    return _lines(effective)


@router.put(
    "/accounts/{account_id}/protection",
    dependencies=[allow(P.CONTROL_WRITE)],
)
def protect(rt: Rt, actor: Actor, account_id: int, body: ProtectionIn) -> dict[str, Any]:
    """保电: the account is never cut automatically; its arrears go to a person."""
    p = control.protect(rt, account_id, reason=body.reason, by=actor)
    return {"reason": p.reason, "set_by": p.set_by, "since": p.since}


@router.delete(
    "/accounts/{account_id}/protection", dependencies=[allow(P.CONTROL_WRITE)], status_code=204
)
def unprotect(
    rt: Rt, actor: Actor, account_id: int, reason: Annotated[str, Query(min_length=1)]
) -> None:
    control.unprotect(rt, account_id, reason=reason, by=actor)


@router.get(
    "/accounts/{account_id}/supply",
    dependencies=[allow(P.SITE_READ, owners=True)],
)
def supply(rt: Rt, account_id: int) -> SupplyOut:
    """The account's supply state, balance, lines, planned cut-off, history and commands."""
    v = control.supply_view(rt, account_id)
    a = v.account
    return SupplyOut(
        account_id=a.id,
        number=a.number,
        utility=a.utility,
        state=a.state.value,
        balance=str(v.balance),
        thresholds=_lines(v.thresholds),
        notice_given_at=a.notice_given_at,
        final_notice_given_at=a.final_notice_given_at,
        planned_cutoff_at=v.planned_cutoff_at,
        protection=(
            {
                "reason": a.protection.reason,
                "set_by": a.protection.set_by,
                "since": a.protection.since,
            }
            if a.protection
            else None
        ),
        events=[
            SupplyEventOut(
                at=e["at"],
                from_state=e["from_state"],
                to_state=e["to_state"],
                event=e["event"],
                balance=str(Money(e["balance_fen"])),
                cause=e["cause"],
            )
            for e in v.events
        ],
        commands=[_command(c) for c in v.commands],
    )


@router.get(
    "/sites/{site_id}/supply-states",
    dependencies=[allow(P.SITE_READ)],
)
def supply_states(rt: Rt, site_id: int) -> dict[str, int]:
    """How many open accounts are in each supply state."""
    return control.states_of_site(rt, site_id)


@router.get(
    "/commands",
    dependencies=[allow(P.SITE_READ)],
)
def list_commands(
    rt: Rt,
    *,
    meter_id: int | None = None,
    account_id: int | None = None,
    state: CommandState | None = None,
    limit: Limit = 100,
) -> list[CommandOut]:
    """Commands to meters with their lifecycle, newest first."""
    found = outbox.find(rt, meter_id=meter_id, account_id=account_id, state=state, limit=limit)
    return [_command(c) for c in found]


@router.get(
    "/commands/{command_id}",
    dependencies=[allow(P.SITE_READ)],
)
def get_command(rt: Rt, command_id: int) -> CommandOut:
    return _command(outbox.get(rt, command_id))


def _alarm(a: Alarm) -> AlarmOut:
    return AlarmOut.model_validate(a, from_attributes=True)


@router.get(
    "/alarms",
    dependencies=[allow(P.SITE_READ)],
)
def list_alarms(
    rt: Rt,
    *,
    state: AlarmState | None = None,
    site_id: int | None = None,
    kind: AlarmKind | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    limit: Limit = 100,
) -> list[AlarmOut]:
    found = alarms.list_alarms(
        rt,
        state=state,
        site_id=site_id,
        kind=kind,
        object_type=object_type,
        object_id=object_id,
        limit=limit,
    )
    return [_alarm(a) for a in found]


@router.post(
    "/alarms/{alarm_id}/acknowledge",
    dependencies=[allow(P.ALARM_WRITE)],
)
def acknowledge_alarm(rt: Rt, actor: Actor, alarm_id: int) -> AlarmOut:
    return _alarm(alarms.acknowledge(rt, alarm_id, by=actor))


@router.post(
    "/alarms/{alarm_id}/close",
    dependencies=[allow(P.ALARM_WRITE)],
)
def close_alarm(rt: Rt, actor: Actor, alarm_id: int, body: ProtectionIn) -> AlarmOut:
    return _alarm(alarms.close(rt, alarm_id, by=actor, reason=body.reason))


@router.put(
    "/holidays/{day}", dependencies=[allow(P.CONTROL_WRITE, everywhere=True)], status_code=204
)
def put_holiday(rt: Rt, actor: Actor, day: date, body: HolidayIn) -> None:
    """A day type for cut-off rules, for years the holiday calendar does not know yet."""
    control.set_holiday(rt, day, body.day_type, note=body.note, by=actor)
