"""The place tree as the console reads it: the sites a person sees, one site's buildings,
floors and units with each unit's accounts, meters, balance and supply state (filtered,
searched, sorted and paged in the database: ``reports.place_rows``). One unit's page is
``reports.unit_view``.

Read-only, one transaction (``rt.db.read()``) per page; every list is limited. A table
row is a unit with one of its open accounts (a vacant unit is one row without one). An
owner's phone number never leaves the read model whole (``138****0000``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, case, func, select

from meterpay.control import repository as control_repo
from meterpay.control.model import SupplyState
from meterpay.db.schema import accounts, buildings, floors, ledger_accounts, meters, sites, units
from meterpay.kernel.errors import NotFound
from meterpay.kernel.money import Money
from meterpay.kernel.paging import RowsPage
from meterpay.metering.gateways import LinkStatus
from meterpay.reports.place_rows import (
    MeterChip,
    PlaceFilter,
    PlaceRow,
    Sorting,
    SortKey,
    count_place_rows,
    place_rows,
)
from meterpay.runtime import Runtime

MAX_PAGE: Final = 200
MAX_EXPORT: Final = 100_000
MAX_SITES: Final = 500

# The table's filter, order and rows are named here too: the pages build them from ``places``.
__all__ = [
    "MAX_EXPORT",
    "MAX_PAGE",
    "MeterChip",
    "PlaceFilter",
    "PlaceRow",
    "RowsPage",
    "SiteIndexLine",
    "SitePage",
    "SiteSummary",
    "SortKey",
    "Sorting",
    "TreeBuilding",
    "TreeFloor",
    "site_index",
    "site_page",
    "site_rows_for_export",
    "site_summary",
]


@dataclass(frozen=True, slots=True)
class SiteSummary:
    id: int
    code: str
    name: str
    timezone: str


@dataclass(frozen=True, slots=True)
class SiteIndexLine:
    site: SiteSummary
    buildings: int
    units: int
    accounts: int
    attention: int
    """Open accounts not in normal supply."""
    meters: int
    meters_offline: int
    balance: Money


@dataclass(frozen=True, slots=True)
class TreeFloor:
    id: int
    level: int
    name: str
    units: int


@dataclass(frozen=True, slots=True)
class TreeBuilding:
    id: int
    code: str
    name: str
    units: int
    floors: list[TreeFloor]


@dataclass(frozen=True, slots=True)
class SitePage:
    at: datetime
    site: SiteSummary
    tree: list[TreeBuilding]
    loose_units: int
    """Units on no floor (a compound without buildings, a common area)."""
    counts: dict[SupplyState, int]
    page: RowsPage[PlaceRow]


# --- use cases --------------------------------------------------------------------------------


def site_index(rt: Runtime, visible: Collection[int] | None) -> list[SiteIndexLine]:
    """The sites in ``visible`` (None: every site) with their sizes, in code order."""
    with rt.db.read() as conn:
        query = select(sites.c.id, sites.c.code, sites.c.name, sites.c.timezone)
        if visible is not None:
            query = query.where(sites.c.id.in_(sorted(visible)))
        found = [
            SiteSummary(r.id, r.code, r.name, r.timezone)
            for r in conn.execute(query.order_by(sites.c.code).limit(MAX_SITES))
        ]
        ids = [s.id for s in found]
        built = _count_by_site(conn, buildings.c.site_id, ids)
        homes = _count_by_site(conn, units.c.site_id, ids)
        money = _accounts_by_site(conn, ids)
        metered = _meters_by_site(conn, ids)
        return [
            SiteIndexLine(
                site=s,
                buildings=built.get(s.id, 0),
                units=homes.get(s.id, 0),
                accounts=money.get(s.id, (0, 0, 0))[0],
                attention=money.get(s.id, (0, 0, 0))[1],
                meters=metered.get(s.id, (0, 0))[0],
                meters_offline=metered.get(s.id, (0, 0))[1],
                balance=Money(money.get(s.id, (0, 0, 0))[2]),
            )
            for s in found
        ]


def site_page(
    rt: Runtime,
    site_id: int,
    *,
    where: PlaceFilter,
    sort: Sorting,
    offset: int = 0,
    limit: int = 50,
) -> SitePage:
    """One site: its tree, its accounts by state, and one page of its units' rows."""
    limit = min(max(1, limit), MAX_PAGE)
    with rt.db.read() as conn:
        site = site_summary(conn, site_id)
        rows = place_rows(conn, site_id, where, sort, offset=max(0, offset), limit=limit)
        return SitePage(
            at=rt.clock.now(),
            site=site,
            tree=_tree(conn, site_id),
            loose_units=_loose_units(conn, site_id),
            counts={SupplyState(k): n for k, n in control_repo.count_states(conn, site_id).items()},
            page=RowsPage(rows, count_place_rows(conn, site_id, where), max(0, offset), limit),
        )


def site_rows_for_export(
    rt: Runtime, site_id: int, *, where: PlaceFilter, sort: Sorting
) -> tuple[SiteSummary, list[PlaceRow]]:
    """Every row of a site's table as filtered and sorted (at most ``MAX_EXPORT``)."""
    with rt.db.read() as conn:
        site = site_summary(conn, site_id)
        return site, place_rows(conn, site_id, where, sort, offset=0, limit=MAX_EXPORT)


# --- queries ----------------------------------------------------------------------------------


def site_summary(conn: Connection, site_id: int) -> SiteSummary:
    query = select(sites.c.id, sites.c.code, sites.c.name, sites.c.timezone)
    row = conn.execute(query.where(sites.c.id == site_id)).first()
    if row is None:
        raise NotFound(f"site {site_id} does not exist", site_id=site_id)
    return SiteSummary(row.id, row.code, row.name, row.timezone)


def _count_by_site(conn: Connection, column: Any, ids: list[int]) -> dict[int, int]:
    query = select(column, func.count()).where(column.in_(ids)).group_by(column)
    return {site: int(n) for site, n in conn.execute(query)}


def _accounts_by_site(conn: Connection, ids: list[int]) -> dict[int, tuple[int, int, int]]:
    """Per site: open accounts, those not in normal supply, the money they hold."""
    attention = func.sum(case((accounts.c.supply_state != SupplyState.NORMAL.value, 1), else_=0))
    held = func.sum(ledger_accounts.c.credits_posted - ledger_accounts.c.debits_posted)
    query = (
        select(accounts.c.site_id, func.count(), attention, held)
        .join(ledger_accounts, ledger_accounts.c.id == accounts.c.wallet_id)
        .where(accounts.c.site_id.in_(ids), accounts.c.status == "open")
        .group_by(accounts.c.site_id)
    )
    return {s: (int(n), int(a or 0), int(fen or 0)) for s, n, a, fen in conn.execute(query)}


def _meters_by_site(conn: Connection, ids: list[int]) -> dict[int, tuple[int, int]]:
    offline = func.sum(case((meters.c.link_status == LinkStatus.OFFLINE.value, 1), else_=0))
    query = (
        select(meters.c.site_id, func.count(), offline)
        .where(meters.c.site_id.in_(ids), meters.c.status != "removed")
        .group_by(meters.c.site_id)
    )
    return {s: (int(n), int(off or 0)) for s, n, off in conn.execute(query)}


def _tree(conn: Connection, site_id: int) -> list[TreeBuilding]:
    """Buildings and floors with their units counted (one grouped query)."""
    query = (
        select(buildings.c.id, buildings.c.code, buildings.c.name)
        .add_columns(floors.c.id.label("f_id"), floors.c.level, floors.c.name.label("f_name"))
        .add_columns(func.count(units.c.id).label("n"))
        .outerjoin(floors, floors.c.building_id == buildings.c.id)
        .outerjoin(units, units.c.floor_id == floors.c.id)
        .where(buildings.c.site_id == site_id)
        .group_by(buildings.c.id, buildings.c.code, buildings.c.name, floors.c.id)
        .group_by(floors.c.level, floors.c.name)
        .order_by(buildings.c.code, floors.c.level)
    )
    tree: dict[int, TreeBuilding] = {}
    for r in conn.execute(query).mappings():
        building = tree.setdefault(r["id"], TreeBuilding(r["id"], r["code"], r["name"], 0, []))
        if r["f_id"] is not None:
            building.floors.append(TreeFloor(r["f_id"], r["level"], r["f_name"], int(r["n"])))
    return [
        TreeBuilding(b.id, b.code, b.name, sum(f.units for f in b.floors), b.floors)
        for b in tree.values()
    ]


def _loose_units(conn: Connection, site_id: int) -> int:
    query = select(func.count()).where(units.c.site_id == site_id, units.c.floor_id.is_(None))
    return int(conn.execute(query).scalar_one())
