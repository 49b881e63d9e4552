"""The dashboard (仪表盘): one look at the sites a person works on — meters online and
offline, accounts by supply state and the prepaid money they hold, today's top-ups and
charges, open alarms, and the last weeks' money as daily trends.

Read-only, one transaction (``rt.db.read()``) per page. Every figure is aggregated in
the database, grouped by site (a compound of thousands of meters is a handful of grouped
queries, never a query per meter or account); the totals are the sum of the sites'
lines. Days are the site's calendar days (the first site's when several are shown),
their bounds computed here, so SQLite and PostgreSQL bucket alike.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Select, case, func, select

from meterpay.alarms.model import AlarmKind, AlarmState, Severity
from meterpay.control.model import SupplyState
from meterpay.db.schema import accounts, alarms, gateways, ledger_accounts, meters, sites, transfers
from meterpay.kernel.money import Money
from meterpay.ledger.model import TransferKind
from meterpay.metering.gateways import LinkStatus
from meterpay.runtime import Runtime

TREND_DAYS: Final = 14
MAX_SITES: Final = 500
LATEST_ALARMS: Final = 10
OPEN_ALARMS: Final = (AlarmState.OPEN.value, AlarmState.ACKNOWLEDGED.value)
MONEY_KINDS: Final = (TransferKind.TOP_UP.value, TransferKind.CHARGE.value)


@dataclass(frozen=True, slots=True)
class DayMoney:
    """One calendar day's money moved into and out of the prepaid wallets."""

    day: date
    top_ups: Money
    top_up_count: int
    charges: Money
    charge_count: int


@dataclass(frozen=True, slots=True)
class SiteLine:
    """One site's figures (a row of the dashboard's table, and a share of its totals)."""

    id: int
    code: str
    name: str
    timezone: str
    meters: dict[LinkStatus, int]
    gateways_online: int
    gateways: int
    accounts: dict[SupplyState, int]
    balance: Money
    """The prepaid money the site's open accounts hold (negative: owed)."""
    open_alarms: int
    today: DayMoney

    @property
    def attention(self) -> int:
        return sum(n for s, n in self.accounts.items() if s is not SupplyState.NORMAL)


@dataclass(frozen=True, slots=True)
class AlarmLine:
    id: int
    site_id: int | None
    site_code: str | None
    kind: AlarmKind
    severity: Severity
    state: AlarmState
    message: str
    object_type: str
    object_id: str
    last_seen_at: datetime
    occurrences: int


@dataclass(frozen=True, slots=True)
class Dashboard:
    at: datetime
    zone: str
    """The time zone the days (today, the trend) are counted in."""
    sites: list[SiteLine]
    """Every site shown, in code order."""
    chosen: SiteLine | None
    """The one site asked for; None: the totals are over every site shown."""
    meters: dict[LinkStatus, int]
    gateways_online: int
    gateways: int
    accounts: dict[SupplyState, int]
    balance: Money
    alarms: dict[Severity, int]
    latest_alarms: list[AlarmLine]
    trend: list[DayMoney] = field(default_factory=list)
    """Oldest first; the last day is today."""

    @property
    def today(self) -> DayMoney:
        return self.trend[-1]

    @property
    def meter_count(self) -> int:
        return sum(self.meters.values())

    @property
    def account_count(self) -> int:
        return sum(self.accounts.values())

    @property
    def open_alarms(self) -> int:
        return sum(self.alarms.values())


def dashboard(
    rt: Runtime,
    *,
    visible: Collection[int] | None,
    site_id: int | None = None,
    days: int = TREND_DAYS,
) -> Dashboard:
    """The dashboard over the sites in ``visible`` (None: every site), or over the one
    site ``site_id`` (which the caller has checked is visible)."""
    now = rt.clock.now()
    with rt.db.read() as conn:
        found = _sites(conn, visible)
        chosen_ids = [site_id] if site_id is not None else [s["id"] for s in found]
        zone = next((s["timezone"] for s in found if s["id"] in chosen_ids), "Asia/Shanghai")
        bounds = day_bounds(now, zone, days)
        ids = [s["id"] for s in found]
        money = _money_by_site_and_day(conn, ids, bounds)
        lines = _lines(conn, found, ids, money, bounds)
        shown = [line for line in lines if line.id in chosen_ids]
        everything = visible is None and site_id is None
        return Dashboard(
            at=now,
            zone=zone,
            sites=lines,
            chosen=shown[0] if site_id is not None and shown else None,
            meters=_add([line.meters for line in shown], LinkStatus),
            gateways_online=sum(line.gateways_online for line in shown),
            gateways=sum(line.gateways for line in shown),
            accounts=_add([line.accounts for line in shown], SupplyState),
            balance=Money(sum(line.balance.fen for line in shown)),
            alarms=_alarm_counts(conn, chosen_ids, everything),
            latest_alarms=_latest_alarms(conn, chosen_ids, everything),
            trend=_trend(money, bounds, set(chosen_ids)),
        )


def day_bounds(now: datetime, zone: str, days: int) -> list[datetime]:
    """Midnights on the site's clock: ``days`` days ending with today, plus tomorrow's."""
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    return [datetime.combine(first + timedelta(days=n), time(), tz) for n in range(days + 1)]


# --- queries ----------------------------------------------------------------------------------


def _sites(conn: Connection, visible: Collection[int] | None) -> list[dict[str, Any]]:
    query = select(sites.c.id, sites.c.code, sites.c.name, sites.c.timezone)
    if visible is not None:
        query = query.where(sites.c.id.in_(sorted(visible)))
    rows = conn.execute(query.order_by(sites.c.code).limit(MAX_SITES)).mappings()
    return [dict(r) for r in rows]


def _lines(
    conn: Connection,
    found: list[dict[str, Any]],
    ids: list[int],
    money: _Sums,
    bounds: list[datetime],
) -> list[SiteLine]:
    links = _grouped(conn, select(meters.c.site_id, meters.c.link_status, func.count()), ids)
    states, balances = _accounts(conn, ids)
    gateway_counts = _gateways(conn, ids)
    alarm_counts = _open_alarms_by_site(conn, ids)
    return [
        SiteLine(
            id=s["id"],
            code=s["code"],
            name=s["name"],
            timezone=s["timezone"],
            meters={k: links.get((s["id"], k.value), 0) for k in LinkStatus},
            gateways_online=gateway_counts.get(s["id"], (0, 0))[0],
            gateways=gateway_counts.get(s["id"], (0, 0))[1],
            accounts={k: states.get((s["id"], k.value), 0) for k in SupplyState},
            balance=Money(balances.get(s["id"], 0)),
            open_alarms=alarm_counts.get(s["id"], 0),
            today=_day(money, len(bounds) - 2, bounds[-2].date(), {s["id"]}),
        )
        for s in found
    ]


def _grouped(conn: Connection, query: Select[Any], ids: list[int]) -> dict[tuple[int, str], int]:
    """Active meters counted per (site, link status)."""
    rows = conn.execute(
        query.where(meters.c.site_id.in_(ids), meters.c.status != "removed").group_by(
            meters.c.site_id, meters.c.link_status
        )
    )
    return {(site, status): int(n) for site, status, n in rows}


def _accounts(
    conn: Connection, ids: list[int]
) -> tuple[dict[tuple[int, str], int], dict[int, int]]:
    """Open accounts per (site, supply state), and the money they hold per site."""
    held = func.sum(ledger_accounts.c.credits_posted - ledger_accounts.c.debits_posted)
    query = (
        select(accounts.c.site_id, accounts.c.supply_state, func.count(), held)
        .join(ledger_accounts, ledger_accounts.c.id == accounts.c.wallet_id)
        .where(accounts.c.site_id.in_(ids), accounts.c.status == "open")
        .group_by(accounts.c.site_id, accounts.c.supply_state)
    )
    states: dict[tuple[int, str], int] = {}
    balances: dict[int, int] = {}
    for site, state, n, fen in conn.execute(query):
        states[(site, state)] = int(n)
        balances[site] = balances.get(site, 0) + int(fen or 0)
    return states, balances


def _gateways(conn: Connection, ids: list[int]) -> dict[int, tuple[int, int]]:
    online = func.sum(case((gateways.c.status == "online", 1), else_=0))
    query = (
        select(gateways.c.site_id, online, func.count())
        .where(gateways.c.site_id.in_(ids))
        .group_by(gateways.c.site_id)
    )
    return {site: (int(up or 0), int(n)) for site, up, n in conn.execute(query)}


def _open_alarms_by_site(conn: Connection, ids: list[int]) -> dict[int, int]:
    query = (
        select(alarms.c.site_id, func.count())
        .where(alarms.c.state.in_(OPEN_ALARMS), alarms.c.site_id.in_(ids))
        .group_by(alarms.c.site_id)
    )
    return {site: int(n) for site, n in conn.execute(query)}


def _alarm_scope(ids: list[int], everything: bool) -> Any:
    """These sites' alarms; deployment-wide ones (no site) too for an all-sites view."""
    in_sites = alarms.c.site_id.in_(ids)
    return (in_sites | alarms.c.site_id.is_(None)) if everything else in_sites


def _alarm_counts(conn: Connection, ids: list[int], everything: bool) -> dict[Severity, int]:
    query = (
        select(alarms.c.severity, func.count())
        .where(alarms.c.state.in_(OPEN_ALARMS), _alarm_scope(ids, everything))
        .group_by(alarms.c.severity)
    )
    found = {severity: int(n) for severity, n in conn.execute(query)}
    return {s: found.get(s.value, 0) for s in Severity}


def _latest_alarms(conn: Connection, ids: list[int], everything: bool) -> list[AlarmLine]:
    query = (
        select(alarms, sites.c.code.label("site_code"))
        .outerjoin(sites, sites.c.id == alarms.c.site_id)
        .where(alarms.c.state.in_(OPEN_ALARMS), _alarm_scope(ids, everything))
        .order_by(alarms.c.last_seen_at.desc(), alarms.c.id.desc())
        .limit(LATEST_ALARMS)
    )
    return [
        AlarmLine(
            id=r["id"],
            site_id=r["site_id"],
            site_code=r["site_code"],
            kind=AlarmKind(r["kind"]),
            severity=Severity(r["severity"]),
            state=AlarmState(r["state"]),
            message=r["message"],
            object_type=r["object_type"],
            object_id=r["object_id"],
            last_seen_at=r["last_seen_at"],
            occurrences=r["occurrences"],
        )
        for r in conn.execute(query).mappings()
    ]


_Sums = dict[tuple[int, int, str], tuple[int, int]]
"""(site, day index, transfer kind) -> (fen, count)."""


def _money_by_site_and_day(conn: Connection, ids: list[int], bounds: list[datetime]) -> _Sums:
    """Top-ups and charges of these sites' accounts per site and day, in one grouped scan
    (each day's bucket is a range of ``created_at``)."""
    stamp = transfers.c.created_at
    day = case(*((stamp < end, n) for n, end in enumerate(bounds[1:])), else_=len(bounds) - 1)
    query = (
        select(accounts.c.site_id, day, transfers.c.kind, func.sum(transfers.c.amount_fen))
        .add_columns(func.count())
        .join(accounts, accounts.c.id == transfers.c.account_id)
        .where(
            accounts.c.site_id.in_(ids),
            transfers.c.kind.in_(MONEY_KINDS),
            stamp >= bounds[0],
            stamp < bounds[-1],
        )
        .group_by(accounts.c.site_id, day, transfers.c.kind)
    )
    return {
        (site, int(n), kind): (int(fen or 0), int(count))
        for site, n, kind, fen, count in conn.execute(query)
    }


def _trend(sums: _Sums, bounds: list[datetime], site_ids: set[int]) -> list[DayMoney]:
    """Each day of ``bounds`` (oldest first), these sites' money summed."""
    return [_day(sums, n, start.date(), site_ids) for n, start in enumerate(bounds[:-1])]


def _day(sums: _Sums, index: int, day: date, site_ids: set[int]) -> DayMoney:
    up, up_n, ch, ch_n = 0, 0, 0, 0
    for (site, n, kind), (fen, count) in sums.items():
        if n != index or site not in site_ids:
            continue
        if kind == TransferKind.TOP_UP.value:
            up, up_n = up + fen, up_n + count
        else:
            ch, ch_n = ch + fen, ch_n + count
    return DayMoney(day, Money(up), up_n, Money(ch), ch_n)


def _add(counts: list[dict[Any, int]], keys: Any) -> dict[Any, int]:
    return {k: sum(c.get(k, 0) for c in counts) for k in keys}
