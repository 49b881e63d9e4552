"""A site's table of places as the console lists it: one row per unit and open account
(a vacant unit is one row without one) with the owner, balance, supply state and the
unit's meters — filtered, searched, sorted and paged in the database.

Read-only queries (a connection in, plain dataclasses out) that ``reports.places`` runs
in its one transaction. The meters of a page's rows come in one more query, never one
per row. Balances are the wallets' posted totals (``ledger_accounts``), read in the same
join. An owner's phone number is masked (``138****0000``, ``control.masking``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import Connection, and_, case, func, or_, select

from meterpay.control.masking import masked_phone
from meterpay.control.model import SupplyState
from meterpay.db.schema import (
    accounts,
    buildings,
    customers,
    floors,
    ledger_accounts,
    meters,
    units,
)
from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.metering.gateways import LinkStatus
from meterpay.sites.model import UnitKind

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


# --- queries ----------------------------------------------------------------------------------


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


def place_rows(
    conn: Connection, site_id: int, where: PlaceFilter, sort: Sorting, *, offset: int, limit: int
) -> list[PlaceRow]:
    """One page of a site's rows as filtered and sorted, each with its meters."""
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


def count_place_rows(conn: Connection, site_id: int, where: PlaceFilter) -> int:
    """How many rows the filter leaves (the pager's total)."""
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
