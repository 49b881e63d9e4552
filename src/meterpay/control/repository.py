"""Queries for arrears control: site policies, accounts' supply rows, supply events,
holiday overrides. Never commits.

The lock order of the whole product applies: ledger rows before account rows
(a charge or a top-up moves the wallet first, then settles the supply state),
so a charge and a top-up of one account never wait on each other in a circle.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, RowMapping, func, insert, select, update

from meterpay.control.calendar import CutoffDayType, HolidayTable, cutoff_day_type
from meterpay.control.model import (
    ArrearsAlarmRule,
    ArrearsPolicy,
    FriendlyHours,
    Protection,
    RestoreStyle,
    SupplyEvent,
    SupplyState,
    ThresholdOverrides,
    Thresholds,
    WarningLevel,
)
from meterpay.db.bulk import copy_rows, update_many
from meterpay.db.schema import (
    accounts,
    arrears_policies,
    charges,
    holiday_overrides,
    meters,
    sites,
    supply_events,
)
from meterpay.kernel.errors import Conflict, NotFound
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.tariffs.tou import DayType

AVERAGE_OVER_DAYS = 30


class SupplyStateMoved(Conflict):
    """Another transaction changed an account's supply state after this one read it:
    run the batch again (it is idempotent)."""

    code = "supply_state_moved"


@dataclass(frozen=True, slots=True)
class SitePolicy:
    """A site's arrears settings for one utility (the defaults when it has none stored)."""

    site_id: int
    utility: Utility
    thresholds: Thresholds
    policy: ArrearsPolicy
    stored: bool = False


@dataclass(frozen=True, slots=True)
class AccountSupply:
    """What supply decisions need of one account."""

    id: int
    site_id: int
    utility: Utility
    number: str
    customer_id: int | None
    wallet_id: int
    state: SupplyState
    overrides: ThresholdOverrides | None
    protection: Protection | None = None
    notice_given_at: datetime | None = None
    final_notice_given_at: datetime | None = None
    next_decision_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SupplyChange:
    """One account's move, to be written with the decision's other effects."""

    account: AccountSupply
    event: SupplyEvent
    to_state: SupplyState
    balance: Money
    cause: str
    values: Mapping[str, Any]
    """Further account columns to set with the state (the episode's times)."""


# --- policies ---------------------------------------------------------------------------------


def _clock(text: str | None) -> time | None:
    return time.fromisoformat(text) if text else None


def _level(fen: int | None, days: int | None) -> WarningLevel | None:
    if days is not None:
        return WarningLevel.of_days(days)
    if fen is not None:
        return WarningLevel.of_amount(Money(fen))
    return None


def policy_from_row(row: RowMapping, time_zone: str) -> SitePolicy:
    utility = Utility(row["utility"])
    start, end = _clock(row["friendly_start"]), _clock(row["friendly_end"])
    thresholds = Thresholds(
        warning1=_level(row["warning1_fen"], row["warning1_days"]) or Thresholds().warning1,
        warning2=_level(row["warning2_fen"], row["warning2_days"]) or Thresholds().warning2,
        credit_limit=Money(row["credit_limit_fen"]),
        cutoff_point=Money(row["cutoff_fen"]),
        restore_point=Money(row["restore_fen"]),
        notice_period=timedelta(seconds=row["notice_period_s"]),
        final_notice_lead=timedelta(seconds=row["final_notice_lead_s"]),
    )
    policy = ArrearsPolicy(
        utility,
        ZoneInfo(time_zone),
        FriendlyHours(start, end) if start is not None and end is not None else None,
        no_cutoff_on_rest_days=row["no_cutoff_on_rest_days"],
        automatic_cutoff=row["automatic_cutoff"],
        restore_style=RestoreStyle(row["restore_style"]),
        alarm=ArrearsAlarmRule(
            Money(row["alarm_margin_fen"]), timedelta(seconds=row["alarm_max_deferral_s"])
        ),
    )
    return SitePolicy(row["site_id"], utility, thresholds, policy, stored=True)


def default_policy(site_id: int, utility: Utility, time_zone: str) -> SitePolicy:
    return SitePolicy(
        site_id, utility, Thresholds(), ArrearsPolicy.default_for(utility, ZoneInfo(time_zone))
    )


def site_policies(
    conn: Connection, site_ids: Collection[int]
) -> dict[tuple[int, Utility], SitePolicy]:
    """The stored policies of these sites, and the defaults for what is not stored."""
    if not site_ids:
        return {}
    query = select(sites.c.id, sites.c.timezone).where(sites.c.id.in_(sorted(site_ids)))
    zones: dict[int, str] = {site_id: zone for site_id, zone in conn.execute(query)}
    found = {
        (p.site_id, p.utility): p
        for row in conn.execute(
            select(arrears_policies).where(arrears_policies.c.site_id.in_(sorted(site_ids)))
        ).mappings()
        if (p := policy_from_row(row, zones[row["site_id"]]))
    }
    for site_id, zone in zones.items():
        for utility in Utility:
            found.setdefault((site_id, utility), default_policy(site_id, utility, zone))
    return found


def site_policy(conn: Connection, site_id: int, utility: Utility) -> SitePolicy:
    policies = site_policies(conn, [site_id])
    if not policies:
        raise NotFound(f"site {site_id} does not exist", site_id=site_id)
    return policies[(site_id, utility)]


def policy_row(policy: SitePolicy, *, by: str, now: datetime) -> dict[str, Any]:
    t, p = policy.thresholds, policy.policy
    friendly = p.friendly_hours
    return {
        "site_id": policy.site_id,
        "utility": policy.utility.value,
        "warning1_fen": t.warning1.amount.fen if t.warning1.amount is not None else None,
        "warning1_days": t.warning1.days,
        "warning2_fen": t.warning2.amount.fen if t.warning2.amount is not None else None,
        "warning2_days": t.warning2.days,
        "credit_limit_fen": t.credit_limit.fen,
        "cutoff_fen": t.cutoff_point.fen,
        "restore_fen": t.restore_point.fen,
        "notice_period_s": int(t.notice_period.total_seconds()),
        "final_notice_lead_s": int(t.final_notice_lead.total_seconds()),
        "friendly_start": friendly.start.strftime("%H:%M") if friendly else None,
        "friendly_end": friendly.end.strftime("%H:%M") if friendly else None,
        "no_cutoff_on_rest_days": p.no_cutoff_on_rest_days,
        "automatic_cutoff": p.automatic_cutoff,
        "restore_style": p.restore_style.value,
        "alarm_margin_fen": p.alarm.debt_margin.fen,
        "alarm_max_deferral_s": int(p.alarm.max_deferral.total_seconds()),
        "updated_at": now,
        "updated_by": by,
    }


def save_policy(conn: Connection, policy: SitePolicy, *, by: str, now: datetime) -> None:
    row = policy_row(policy, by=by, now=now)
    key = (arrears_policies.c.site_id == policy.site_id) & (
        arrears_policies.c.utility == policy.utility.value
    )
    if conn.execute(update(arrears_policies).where(key).values(**row)).rowcount == 0:
        conn.execute(insert(arrears_policies).values(**row))


# --- accounts ---------------------------------------------------------------------------------

SUPPLY_COLUMNS = (
    accounts.c.id,
    accounts.c.site_id,
    accounts.c.utility,
    accounts.c.number,
    accounts.c.customer_id,
    accounts.c.wallet_id,
    accounts.c.supply_state,
    accounts.c.warning1_fen,
    accounts.c.warning1_days,
    accounts.c.warning2_fen,
    accounts.c.warning2_days,
    accounts.c.credit_limit_fen,
    accounts.c.disconnect_fen,
    accounts.c.reconnect_fen,
    accounts.c.protected_reason,
    accounts.c.protected_by,
    accounts.c.protected_since,
    accounts.c.notice_given_at,
    accounts.c.final_notice_given_at,
    accounts.c.next_decision_at,
)


def overrides_of(row: Mapping[Any, Any]) -> ThresholdOverrides | None:
    """An account's own threshold settings; None when it has none."""

    def money(name: str) -> Money | None:
        value = row[name]
        return Money(value) if value is not None else None

    found = ThresholdOverrides(
        warning1=_level(row["warning1_fen"], row["warning1_days"]),
        warning2=_level(row["warning2_fen"], row["warning2_days"]),
        credit_limit=money("credit_limit_fen"),
        cutoff_point=money("disconnect_fen"),
        restore_point=money("reconnect_fen"),
    )
    return None if found == ThresholdOverrides() else found


def _supply(row: RowMapping) -> AccountSupply:
    protection = (
        Protection(row["protected_reason"], row["protected_by"], row["protected_since"])
        if row["protected_reason"]
        else None
    )
    return AccountSupply(
        row["id"],
        row["site_id"],
        Utility(row["utility"]),
        row["number"],
        row["customer_id"],
        row["wallet_id"],
        SupplyState(row["supply_state"]),
        overrides_of(row),
        protection,
        row["notice_given_at"],
        row["final_notice_given_at"],
        row["next_decision_at"],
    )


def account_supplies(
    conn: Connection, account_ids: Iterable[int], *, lock: bool = False
) -> dict[int, AccountSupply]:
    """Accounts' supply rows, in id order; ``lock`` takes their row locks (after the
    ledger rows: see the module's lock order)."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    query = select(*SUPPLY_COLUMNS).where(accounts.c.id.in_(ids)).order_by(accounts.c.id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update(of=accounts)
    return {row["id"]: _supply(row) for row in conn.execute(query).mappings()}


def account_supply(conn: Connection, account_id: int, *, lock: bool = False) -> AccountSupply:
    found = account_supplies(conn, [account_id], lock=lock)
    if account_id not in found:
        raise NotFound(f"account {account_id} does not exist", account_id=account_id)
    return found[account_id]


def due_for_decision(conn: Connection, now: datetime, *, limit: int) -> list[AccountSupply]:
    """Accounts whose arrears episode needs a decision now, locked; on PostgreSQL rows
    another process holds are skipped."""
    query = (
        select(*SUPPLY_COLUMNS)
        .where(accounts.c.next_decision_at <= now)
        .order_by(accounts.c.next_decision_at, accounts.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=accounts, skip_locked=True)
    return [_supply(row) for row in conn.execute(query).mappings()]


def any_due_for_decision(conn: Connection, now: datetime) -> bool:
    query = select(accounts.c.id).where(accounts.c.next_decision_at <= now).limit(1)
    return conn.execute(query).first() is not None


def save_changes(conn: Connection, changes: Sequence[SupplyChange], now: datetime) -> None:
    """Write the accounts' new states, compare-and-set on the state each was read in
    (``SupplyStateMoved`` if another transaction moved one), and log the events."""
    if not changes:
        return
    for change in changes:  # few: only accounts that crossed a line
        values = {"supply_state": change.to_state.value, "supply_changed_at": now}
        values.update(change.values)
        moved = conn.execute(
            update(accounts)
            .where(
                accounts.c.id == change.account.id,
                accounts.c.supply_state == change.account.state.value,
            )
            .values(**values)
        ).rowcount
        if moved != 1:
            raise SupplyStateMoved(
                f"account {change.account.id} left supply state {change.account.state}",
                account_id=change.account.id,
            )
    copy_rows(
        conn,
        supply_events,
        ("account_id", "at", "from_state", "to_state", "event", "balance_fen", "cause"),
        [
            {
                "account_id": c.account.id,
                "at": now,
                "from_state": c.account.state.value,
                "to_state": c.to_state.value,
                "event": c.event.value,
                "balance_fen": c.balance.fen,
                "cause": c.cause[:200],
            }
            for c in changes
        ],
    )


def set_next_decision(conn: Connection, schedule: Mapping[int, datetime | None]) -> None:
    """When each account's episode is decided again (None: nothing left to decide)."""
    update_many(
        conn,
        accounts,
        "id",
        ("next_decision_at",),
        [{"id": account_id, "next_decision_at": at} for account_id, at in schedule.items()],
    )


def decide_again(conn: Connection, site_id: int, utility: Utility, now: datetime) -> None:
    """Have the scheduler decide every open arrears episode of a site's utility now."""
    conn.execute(
        update(accounts)
        .where(
            accounts.c.site_id == site_id,
            accounts.c.utility == utility.value,
            accounts.c.supply_state == SupplyState.IN_ARREARS.value,
        )
        .values(next_decision_at=now)
    )


def set_final_notice(conn: Connection, account_id: int, at: datetime) -> None:
    conn.execute(
        update(accounts).where(accounts.c.id == account_id).values(final_notice_given_at=at)
    )


def save_overrides(conn: Connection, account_id: int, o: ThresholdOverrides) -> None:
    def fen(m: Money | None) -> int | None:
        return m.fen if m is not None else None

    w1, w2 = o.warning1, o.warning2
    conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(
            warning1_fen=fen(w1.amount) if w1 else None,
            warning1_days=w1.days if w1 else None,
            warning2_fen=fen(w2.amount) if w2 else None,
            warning2_days=w2.days if w2 else None,
            credit_limit_fen=fen(o.credit_limit),
            disconnect_fen=fen(o.cutoff_point),
            reconnect_fen=fen(o.restore_point),
        )
    )


def count_states(conn: Connection, site_id: int) -> dict[str, int]:
    query = (
        select(accounts.c.supply_state, func.count())
        .where(accounts.c.site_id == site_id, accounts.c.status == "open")
        .group_by(accounts.c.supply_state)
    )
    found = {state.value: 0 for state in SupplyState}
    found.update({state: int(n) for state, n in conn.execute(query)})
    return found


def set_protection(conn: Connection, account_id: int, protection: Protection | None) -> None:
    conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(
            protected_reason=protection.reason if protection else None,
            protected_by=protection.set_by if protection else None,
            protected_since=protection.since if protection else None,
        )
    )


def supply_history(conn: Connection, account_id: int, *, limit: int = 50) -> list[dict[str, Any]]:
    query = (
        select(supply_events)
        .where(supply_events.c.account_id == account_id)
        .order_by(supply_events.c.id.desc())
        .limit(limit)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def meters_of(conn: Connection, account_ids: Iterable[int]) -> dict[int, list[int]]:
    """The meters installed for each account (removed meters excluded), in id order."""
    ids = sorted(set(account_ids))
    found: dict[int, list[int]] = {i: [] for i in ids}
    if not ids:
        return found
    query = (
        select(meters.c.account_id, meters.c.id)
        .where(meters.c.account_id.in_(ids), meters.c.removed_at.is_(None))
        .order_by(meters.c.id)
    )
    for account_id, meter_id in conn.execute(query):
        found[account_id].append(meter_id)
    return found


def average_daily_use(
    conn: Connection, account_ids: Iterable[int], now: datetime
) -> dict[int, Money]:
    """Each account's average charge per day over the last ``AVERAGE_OVER_DAYS`` days
    (accounts without charges in that time are left out: no guess)."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    since = now - timedelta(days=AVERAGE_OVER_DAYS)
    query = (
        select(
            charges.c.account_id, func.sum(charges.c.amount_fen), func.min(charges.c.period_start)
        )
        .where(charges.c.account_id.in_(ids), charges.c.period_end > since)
        .group_by(charges.c.account_id)
    )
    found: dict[int, Money] = {}
    for account_id, total, first in conn.execute(query):
        days = max(1.0, (now - max(first, since)).total_seconds() / 86400)
        found[account_id] = Money(round(int(total) / days))
    return found


def site_name(conn: Connection, site_id: int) -> str:
    return str(conn.execute(select(sites.c.name).where(sites.c.id == site_id)).scalar_one())


# --- holiday overrides ------------------------------------------------------------------------


def holiday_table(conn: Connection) -> HolidayTable | None:
    """The operator's day types; entering any day of a year vouches for that whole year."""
    rows = conn.execute(select(holiday_overrides.c.day, holiday_overrides.c.day_type)).all()
    if not rows:
        return None
    rest = frozenset(d for d, kind in rows if kind != "workday")
    work = frozenset(d for d, kind in rows if kind == "workday")
    return HolidayTable(frozenset(d.year for d, _ in rows), rest, work)


def day_type_source(conn: Connection) -> CutoffDayType:
    return cutoff_day_type(holiday_table(conn))


def save_holiday(
    conn: Connection, day: date, kind: DayType | str, *, note: str, by: str, now: datetime
) -> None:
    values = {
        "day_type": kind if isinstance(kind, str) else kind.value,
        "note": note,
        "updated_by": by,
        "updated_at": now,
    }
    where = holiday_overrides.c.day == day
    if conn.execute(update(holiday_overrides).where(where).values(**values)).rowcount == 0:
        conn.execute(insert(holiday_overrides).values(day=day, **values))
