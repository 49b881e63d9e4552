"""One unit as the console shows it: where it is, its accounts (closed ones too) with
balance, owner (phone masked) and tariff, and its meters with their link. Read-only, one
transaction; every list is limited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, select

from meterpay.control.masking import masked_phone
from meterpay.control.model import SupplyState
from meterpay.db.schema import (
    accounts,
    buildings,
    customers,
    floors,
    gateways,
    ledger_accounts,
    meters,
    tariffs,
    units,
)
from meterpay.kernel.errors import NotFound
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.metering.gateways import LinkStatus
from meterpay.reports.place_rows import balance_column
from meterpay.reports.places import MAX_PAGE, SiteSummary, site_summary
from meterpay.runtime import Runtime
from meterpay.sites.model import UnitKind


@dataclass(frozen=True, slots=True)
class UnitAccount:
    id: int
    number: str
    utility: Utility
    status: str
    state: SupplyState
    balance: Money
    owner: str | None
    phone: str | None
    tariff: str
    opened_at: datetime
    closed_at: datetime | None
    protected_reason: str | None


@dataclass(frozen=True, slots=True)
class UnitMeter:
    id: int
    utility: Utility
    protocol: str
    address: str
    status: str
    link_status: LinkStatus
    last_read_at: datetime | None
    last_total: Decimal | None
    last_heard_at: datetime | None
    account_number: str | None
    gateway: str | None


@dataclass(frozen=True, slots=True)
class UnitPage:
    at: datetime
    site: SiteSummary
    id: int
    code: str
    name: str
    kind: UnitKind
    area_m2: Decimal | None
    building: str | None
    building_id: int | None
    floor: str | None
    accounts: list[UnitAccount]
    meters: list[UnitMeter]


def unit_page(rt: Runtime, unit_id: int) -> UnitPage:
    """One unit: where it is, its accounts (closed ones too) and its meters."""
    with rt.db.read() as conn:
        query = (
            select(units, buildings.c.id.label("b_id"), buildings.c.name.label("b_name"))
            .add_columns(floors.c.name.label("f_name"))
            .outerjoin(floors, floors.c.id == units.c.floor_id)
            .outerjoin(buildings, buildings.c.id == floors.c.building_id)
            .where(units.c.id == unit_id)
        )
        row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"unit {unit_id} does not exist", unit_id=unit_id)
        return UnitPage(
            at=rt.clock.now(),
            site=site_summary(conn, row["site_id"]),
            id=row["id"],
            code=row["code"],
            name=row["name"],
            kind=UnitKind(row["kind"]),
            area_m2=row["area_m2"],
            building=row["b_name"],
            building_id=row["b_id"],
            floor=row["f_name"],
            accounts=_unit_accounts(conn, unit_id),
            meters=_unit_meters(conn, unit_id),
        )


def _unit_accounts(conn: Connection, unit_id: int) -> list[UnitAccount]:
    query = (
        select(
            accounts,
            customers.c.name.label("owner"),
            customers.c.phone,
            tariffs.c.name.label("tariff"),
            balance_column().label("balance"),
        )
        .join(ledger_accounts, ledger_accounts.c.id == accounts.c.wallet_id)
        .join(tariffs, tariffs.c.id == accounts.c.tariff_id)
        .outerjoin(customers, customers.c.id == accounts.c.customer_id)
        .where(accounts.c.unit_id == unit_id)
        .order_by(accounts.c.status.desc(), accounts.c.utility, accounts.c.id.desc())
        .limit(MAX_PAGE)
    )
    return [
        UnitAccount(
            id=r["id"],
            number=r["number"],
            utility=Utility(r["utility"]),
            status=r["status"],
            state=SupplyState(r["supply_state"]),
            balance=Money(int(r["balance"])),
            owner=r["owner"],
            phone=masked_phone(r["phone"]),
            tariff=r["tariff"],
            opened_at=r["opened_at"],
            closed_at=r["closed_at"],
            protected_reason=r["protected_reason"],
        )
        for r in conn.execute(query).mappings()
    ]


def _unit_meters(conn: Connection, unit_id: int) -> list[UnitMeter]:
    query = (
        select(
            meters,
            accounts.c.number.label("account_number"),
            gateways.c.code.label("gateway"),
        )
        .outerjoin(accounts, accounts.c.id == meters.c.account_id)
        .outerjoin(gateways, gateways.c.id == meters.c.gateway_id)
        .where(meters.c.unit_id == unit_id)
        .order_by(meters.c.status, meters.c.utility, meters.c.id.desc())
        .limit(MAX_PAGE)
    )
    return [
        UnitMeter(
            id=r["id"],
            utility=Utility(r["utility"]),
            protocol=r["protocol"],
            address=r["address"],
            status=r["status"],
            link_status=LinkStatus(r["link_status"]),
            last_read_at=r["last_read_at"],
            last_total=r["last_total"],
            last_heard_at=r["last_heard_at"],
            account_number=r["account_number"],
            gateway=r["gateway"],
        )
        for r in conn.execute(query).mappings()
    ]
