"""The place tree as the console reads it: the sites a person sees, one site's buildings,
floors and units with each unit's accounts, meters, balance and supply state (filtered,
searched, sorted and paged in the database). One unit's page is ``reports.unit_view``.

Read-only, one transaction (``rt.db.read()``) per page; every list is limited. A table
row is a unit with one of its open accounts (a vacant unit is one row without one); the
meters of a page's rows come in one more query, never one per row. Balances are the
wallets' posted totals (``ledger_accounts``), read in the same join. An owner's phone
number never leaves this module whole (``138****0000``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import Connection, and_, case, func, or_, select

from meterpay.control import repository as control_repo
from meterpay.control.model import SupplyState
from meterpay.control.overview import mask_recipient
from meterpay.db.schema import (
    accounts,
    buildings,
    customers,
    floors,
    ledger_accounts,
    meters,
    sites,
    units,
)
from meterpay.kernel.errors import InvalidInput, NotFound
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.metering.gateways import LinkStatus
from meterpay.notify.model import ChannelName
from meterpay.runtime import Runtime
from meterpay.sites.model import UnitKind

MAX_PAGE: Final = 200
MAX_EXPORT: Final = 100_000
MAX_SITES: Final = 500
STATE_RANK: Final = {s.value: n for n, s in enumerate(SupplyState)}


class SortKey(StrEnum):
    UNIT = "unit"
    OWNER = "owner"
    ACCOUNT = "account"
    BALANCE = "balance"
    STATE = "state"


@dataclass(frozen=True, slots=True)
class Sorting:
    """A table's order: a column, ascending or descending (``-balance``)."""

    key: SortKey = SortKey.UNIT
    descending: bool = False

    @classmethod
    def parse(cls, text: str | None) -> Sorting:
        raw = (text or "").strip()
        name = raw.removeprefix("-")
        try:
            return cls(SortKey(name or SortKey.UNIT), raw.startswith("-"))
        except ValueError:
            raise InvalidInput(f"cannot sort by {name!r}", field="sort") from None

    def __str__(self) -> str:
        return ("-" if self.descending else "") + self.key.value


@dataclass(frozen=True, slots=True)
class PlaceFilter:
    """What narrows a site's table: a supply state, a building or floor, words."""

    state: SupplyState | None = None
    building_id: int | None = None
    floor_id: int | None = None
    words: str = ""
    """Part of a unit's code or name, the owner's name or phone, the account number."""


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
class MeterChip:
    """A meter as a table cell shows it."""

    id: int
    account_id: int | None
    unit_id: int
    utility: Utility
    address: str
    link_status: LinkStatus
    last_read_at: datetime | None
    last_total: Decimal | None


@dataclass(frozen=True, slots=True)
class PlaceRow:
    unit_id: int
    unit_code: str
    unit_name: str
    unit_kind: UnitKind
    building: str | None
    floor: str | None
    account_id: int | None
    number: str | None
    utility: Utility | None
    owner: str | None
    phone: str | None
    """Masked."""
    balance: Money | None
    state: SupplyState | None
    meters: tuple[MeterChip, ...] = ()


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
class RowsPage:
    rows: list[PlaceRow]
    total: int
    offset: int
    limit: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.rows) < self.total


@dataclass(frozen=True, slots=True)
class SitePage:
    at: datetime
    site: SiteSummary
    tree: list[TreeBuilding]
    loose_units: int
    """Units on no floor (a compound without buildings, a common area)."""
    counts: dict[SupplyState, int]
    page: RowsPage


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
        rows = _rows(conn, site_id, where, sort, offset=max(0, offset), limit=limit)
        return SitePage(
            at=rt.clock.now(),
            site=site,
            tree=_tree(conn, site_id),
            loose_units=_loose_units(conn, site_id),
            counts={SupplyState(k): n for k, n in control_repo.count_states(conn, site_id).items()},
            page=RowsPage(rows, _count_rows(conn, site_id, where), max(0, offset), limit),
        )


def site_rows_for_export(
    rt: Runtime, site_id: int, *, where: PlaceFilter, sort: Sorting
) -> tuple[SiteSummary, list[PlaceRow]]:
    """Every row of a site's table as filtered and sorted (at most ``MAX_EXPORT``)."""
    with rt.db.read() as conn:
        site = site_summary(conn, site_id)
        return site, _rows(conn, site_id, where, sort, offset=0, limit=MAX_EXPORT)


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


def _joined() -> Any:
    """Units with their open accounts (or none), owners, wallets, floors and buildings."""
    return (
        units.outerjoin(
            accounts, and_(accounts.c.unit_id == units.c.id, accounts.c.status == "open")
        )
        .outerjoin(customers, customers.c.id == accounts.c.customer_id)
        .outerjoin(ledger_accounts, ledger_accounts.c.id == accounts.c.wallet_id)
        .outerjoin(floors, floors.c.id == units.c.floor_id)
        .outerjoin(buildings, buildings.c.id == floors.c.building_id)
    )


def _conditions(site_id: int, where: PlaceFilter) -> list[Any]:
    found: list[Any] = [units.c.site_id == site_id]
    if where.state is not None:
        found.append(accounts.c.supply_state == where.state.value)
    if where.building_id is not None:
        found.append(buildings.c.id == where.building_id)
    if where.floor_id is not None:
        found.append(floors.c.id == where.floor_id)
    words = where.words.strip()
    if words:
        like = "%" + words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found.append(
            or_(
                *(
                    column.ilike(like, escape="\\")
                    for column in (
                        units.c.code,
                        units.c.name,
                        customers.c.name,
                        customers.c.phone,
                        accounts.c.number,
                    )
                )
            )
        )
    return found


def balance_column() -> Any:
    return ledger_accounts.c.credits_posted - ledger_accounts.c.debits_posted


def _order(sort: Sorting) -> list[Any]:
    """The chosen column (vacant units always last), then the unit and the utility."""
    state_rank = case(STATE_RANK, value=accounts.c.supply_state, else_=len(STATE_RANK))
    chosen = {
        SortKey.UNIT: units.c.code,
        SortKey.OWNER: customers.c.name,
        SortKey.ACCOUNT: accounts.c.number,
        SortKey.BALANCE: balance_column(),
        SortKey.STATE: state_rank,
    }[sort.key]
    first = chosen.desc() if sort.descending else chosen.asc()
    vacant_last = accounts.c.id.is_(None)
    missing_last = customers.c.name.is_(None) if sort.key is SortKey.OWNER else vacant_last
    return [missing_last, vacant_last, first, units.c.code, accounts.c.utility, accounts.c.id]


def _rows(
    conn: Connection, site_id: int, where: PlaceFilter, sort: Sorting, *, offset: int, limit: int
) -> list[PlaceRow]:
    query = (
        select(
            units.c.id.label("unit_id"),
            units.c.code.label("unit_code"),
            units.c.name.label("unit_name"),
            units.c.kind.label("unit_kind"),
            buildings.c.name.label("building"),
            floors.c.name.label("floor"),
            accounts.c.id.label("account_id"),
            accounts.c.number,
            accounts.c.utility,
            accounts.c.supply_state,
            customers.c.name.label("owner"),
            customers.c.phone,
            balance_column().label("balance"),
        )
        .select_from(_joined())
        .where(*_conditions(site_id, where))
        .order_by(*_order(sort))
        .offset(offset)
        .limit(limit)
    )
    found = conn.execute(query).mappings().all()
    chips = _meter_chips(conn, {r["unit_id"] for r in found})
    return [_row(r, chips) for r in found]


def _row(r: Any, chips: dict[int, list[MeterChip]]) -> PlaceRow:
    account_id = r["account_id"]
    mine = tuple(c for c in chips.get(r["unit_id"], []) if c.account_id == account_id)
    return PlaceRow(
        unit_id=r["unit_id"],
        unit_code=r["unit_code"],
        unit_name=r["unit_name"],
        unit_kind=UnitKind(r["unit_kind"]),
        building=r["building"],
        floor=r["floor"],
        account_id=account_id,
        number=r["number"],
        utility=Utility(r["utility"]) if r["utility"] else None,
        owner=r["owner"],
        phone=masked_phone(r["phone"]),
        balance=Money(int(r["balance"])) if account_id is not None else None,
        state=SupplyState(r["supply_state"]) if r["supply_state"] else None,
        meters=mine,
    )


def masked_phone(phone: str | None) -> str | None:
    return mask_recipient(ChannelName.SMS, phone) if phone else None


def _count_rows(conn: Connection, site_id: int, where: PlaceFilter) -> int:
    query = select(func.count()).select_from(_joined()).where(*_conditions(site_id, where))
    return int(conn.execute(query).scalar_one())


def _meter_chips(conn: Connection, unit_ids: set[int]) -> dict[int, list[MeterChip]]:
    """The active meters of these units, by unit (one query for a page)."""
    found: dict[int, list[MeterChip]] = {}
    for chunk in _chunks(sorted(unit_ids)):
        query = (
            select(
                meters.c.id,
                meters.c.account_id,
                meters.c.unit_id,
                meters.c.utility,
                meters.c.address,
                meters.c.link_status,
                meters.c.last_read_at,
                meters.c.last_total,
            )
            .where(meters.c.unit_id.in_(chunk), meters.c.status != "removed")
            .order_by(meters.c.utility, meters.c.id)
        )
        for r in conn.execute(query):
            found.setdefault(r.unit_id, []).append(
                MeterChip(
                    r.id,
                    r.account_id,
                    r.unit_id,
                    Utility(r.utility),
                    r.address,
                    LinkStatus(r.link_status),
                    r.last_read_at,
                    r.last_total,
                )
            )
    return found


def _chunks(ids: list[int], size: int = 1000) -> Iterator[list[int]]:
    """Keep ``IN`` lists short (an export reads up to ``MAX_EXPORT`` rows)."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
