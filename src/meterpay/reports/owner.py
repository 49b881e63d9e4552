"""What an owner's portal shows (read models): their accounts with balance, supply
state and days of use left; usage and cost by day and by month; monthly bills with the
charge breakdown by tariff component. One read transaction per use case; plain
dataclasses out.

Invariants:
- days and months are the site's calendar (its time zone), never the server's;
- a month's breakdown adds up, to the fen, to that month's charges: a charge split
  over several components uses the split billing posted (its revenue streams);
- days of use left come from the same 30-day average charge per day that the
  "N days left" warnings use; no charges in that time: no estimate (``None``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from meterpay.control.repository import average_daily_use
from meterpay.db.schema import accounts, charges, customers, ledger_accounts, sites, units
from meterpay.kernel.errors import NotFound
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.runtime import Runtime

DAILY_DAYS = 30
MONTHS = 12


@dataclass(frozen=True, slots=True)
class OwnedAccount:
    account_id: int
    number: str
    utility: Utility
    status: str
    supply_state: str
    site_name: str
    timezone: str
    unit_code: str
    unit_name: str
    balance: Money
    average_daily: Money | None
    """The average charge per day over the last 30 days; None without charges."""
    days_left: int | None
    """Whole days the balance lasts at that average; None when there is no average."""
    payer_openid: str | None = None
    """The customer's WeChat openid (a WeChat JSAPI top-up needs it)."""
    site_code: str = ""
    """Whose merchants take this account's payments (``payments.registry``)."""


@dataclass(frozen=True, slots=True)
class UsagePoint:
    label: str
    """``2026-11-01`` for a day, ``2026-11`` for a month (the site's calendar)."""
    quantity: Decimal
    cost: Money


@dataclass(frozen=True, slots=True)
class Usage:
    account: OwnedAccount
    daily: list[UsagePoint]
    """The last 30 days, oldest first, days without use included (as zero)."""
    monthly: list[UsagePoint]
    """The last 12 months, oldest first."""


@dataclass(frozen=True, slots=True)
class BillLine:
    component: str
    """``energy``, ``surcharge:<code>``, a fixed fee's component, ``share``…"""
    name: str | None
    """The fee's own name when the charge carries one."""
    amount: Money


@dataclass(frozen=True, slots=True)
class MonthBill:
    account: OwnedAccount
    month: date
    """The first day of the month."""
    quantity: Decimal
    total: Money
    lines: list[BillLine]
    charges: int


def days_left(balance: Money, average_daily: Money | None) -> int | None:
    """Whole days the balance lasts: none already spent (0), unknown without use."""
    if average_daily is None or average_daily.fen <= 0:
        return None
    return max(0, balance.fen // average_daily.fen)


# --- use cases ------------------------------------------------------------------------


def accounts_of(rt: Runtime, customer_ids: Iterable[int]) -> list[OwnedAccount]:
    """The accounts of the owner's customers (open first, then by unit and utility)."""
    wanted = sorted(set(customer_ids))
    if not wanted:
        return []
    with rt.db.read() as conn:
        found = _accounts(conn, accounts.c.customer_id.in_(wanted), rt.clock.now())
    return sorted(found, key=lambda a: (a.status != "open", a.unit_code, a.utility.value))


def owned_account(rt: Runtime, account_id: int) -> OwnedAccount:
    with rt.db.read() as conn:
        return _account(conn, account_id, rt.clock.now())


def usage(rt: Runtime, account_id: int) -> Usage:
    """Use and cost per day (30 days) and per month (12 months) on the site's calendar."""
    now = rt.clock.now()
    with rt.db.read() as conn:
        account = _account(conn, account_id, now)
        zone = ZoneInfo(account.timezone)
        first_month = _month_start(now.astimezone(zone).date(), back=MONTHS - 1)
        rows = conn.execute(
            select(charges.c.period_end, charges.c.quantity, charges.c.amount_fen).where(
                charges.c.account_id == account_id,
                charges.c.period_end >= _midnight(first_month, zone),
            )
        ).all()
    today = now.astimezone(zone).date()
    days = [today - timedelta(days=n) for n in range(DAILY_DAYS - 1, -1, -1)]
    months = [_month_start(today, back=n) for n in range(MONTHS - 1, -1, -1)]
    by_day: dict[date, list[Any]] = {}
    by_month: dict[date, list[Any]] = {}
    for end, quantity, fen in rows:
        local = end.astimezone(zone).date()
        for bucket, key in ((by_day, local), (by_month, local.replace(day=1))):
            totals = bucket.setdefault(key, [Decimal(0), 0])
            totals[0] += quantity
            totals[1] += int(fen)
    return Usage(
        account,
        [_point(d.isoformat(), by_day.get(d)) for d in days],
        [_point(m.strftime("%Y-%m"), by_month.get(m)) for m in months],
    )


def month_bill(rt: Runtime, account_id: int, month: date) -> MonthBill:
    """The month's charges (by the end of the use they price), split by component."""
    with rt.db.read() as conn:
        account = _account(conn, account_id, rt.clock.now())
        zone = ZoneInfo(account.timezone)
        start = month.replace(day=1)
        query = select(
            charges.c.kind, charges.c.quantity, charges.c.amount_fen, charges.c.lines
        ).where(
            charges.c.account_id == account_id,
            charges.c.period_end >= _midnight(start, zone),
            charges.c.period_end < _midnight(_next_month(start), zone),
        )
        rows = conn.execute(query).all()
    amounts: dict[str, int] = {}
    names: dict[str, str] = {}
    quantity = Decimal(0)
    for kind, used, fen, lines in rows:
        quantity += used
        for component, part in charge_breakdown(str(kind), int(fen), lines or []).items():
            amounts[component] = amounts.get(component, 0) + part
        names |= _fee_names(lines or [])
    lines_out = [
        BillLine(c, names.get(c), Money(f)) for c, f in sorted(amounts.items(), key=_energy_first)
    ]
    total = Money(sum(int(r[2]) for r in rows))
    return MonthBill(account, start, quantity, total, lines_out, len(rows))


def charge_breakdown(
    kind: str, amount_fen: int, lines: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    """One charge's fen per component, adding up exactly to ``amount_fen``: the revenue
    streams billing posted when it split the charge, else all of it to its component."""
    for line in lines:
        streams = line.get("streams")
        if isinstance(streams, Mapping):
            return {str(c): Money.from_yuan(str(v)).fen for c, v in streams.items()}
    components = [str(line["component"]) for line in lines if line.get("component")]
    return {components[0] if components else kind: amount_fen}


# --- pieces -----------------------------------------------------------------------------


def _fee_names(lines: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {
        str(line["component"]): str(line["name"])
        for line in lines
        if line.get("component") and line.get("name")
    }


def _energy_first(item: tuple[str, int]) -> tuple[int, str]:
    return (0 if item[0] == "energy" else 1, item[0])


def _point(label: str, totals: list[Any] | None) -> UsagePoint:
    if totals is None:
        return UsagePoint(label, Decimal(0), Money(0))
    return UsagePoint(label, totals[0], Money(totals[1]))


def _month_start(day: date, *, back: int = 0) -> date:
    months = day.year * 12 + day.month - 1 - back
    return date(months // 12, months % 12 + 1, 1)


def _next_month(month: date) -> date:
    return date(month.year + 1, 1, 1) if month.month == 12 else date(month.year, month.month + 1, 1)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def _account(conn: Connection, account_id: int, now: datetime) -> OwnedAccount:
    found = _accounts(conn, accounts.c.id == account_id, now)
    if not found:
        raise NotFound(f"account {account_id} does not exist", account_id=account_id)
    return found[0]


def _accounts(conn: Connection, where: Any, now: datetime) -> list[OwnedAccount]:
    query = (
        select(
            accounts.c.id,
            accounts.c.number,
            accounts.c.utility,
            accounts.c.status,
            accounts.c.supply_state,
            sites.c.name.label("site_name"),
            sites.c.code.label("site_code"),
            sites.c.timezone,
            units.c.code.label("unit_code"),
            units.c.name.label("unit_name"),
            ledger_accounts.c.debits_posted,
            ledger_accounts.c.credits_posted,
            customers.c.wechat_openid,
        )
        .join(sites, sites.c.id == accounts.c.site_id)
        .outerjoin(customers, customers.c.id == accounts.c.customer_id)
        .join(units, units.c.id == accounts.c.unit_id)
        .join(ledger_accounts, ledger_accounts.c.id == accounts.c.wallet_id)
        .where(where)
    )
    rows = conn.execute(query).mappings().all()
    averages = average_daily_use(conn, [int(r["id"]) for r in rows], now)
    found = []
    for r in rows:
        balance = Money(int(r["credits_posted"]) - int(r["debits_posted"]))
        average = averages.get(int(r["id"]))
        found.append(
            OwnedAccount(
                int(r["id"]),
                str(r["number"]),
                Utility(r["utility"]),
                str(r["status"]),
                str(r["supply_state"]),
                str(r["site_name"]),
                str(r["timezone"]),
                str(r["unit_code"]),
                str(r["unit_name"]),
                balance,
                average,
                days_left(balance, average),
                r["wechat_openid"] or None,
                str(r["site_code"]),
            )
        )
    return found
