"""Use cases for places, customers and accounts: one transaction each."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, select

from meterpay.audit import repository as audit
from meterpay.db.rows import fetch, fetch_page, insert_row, update_row
from meterpay.db.schema import accounts, buildings, customers, floors, sites, tariffs, units
from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.quantity import Utility
from meterpay.ledger import repository as ledger
from meterpay.ledger.model import LedgerAccountKind
from meterpay.runtime import Runtime
from meterpay.sites import repository as repo
from meterpay.sites.model import (
    Account,
    AccountStatus,
    Building,
    Customer,
    CustomerKind,
    Floor,
    Site,
    Unit,
    UnitKind,
    cash_code,
    revenue_code,
    wallet_code,
)

_T = TypeVar("_T")


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {name!r}", field="timezone") from exc
    return name


def create_site(
    rt: Runtime, *, code: str, name: str, timezone: str = "Asia/Shanghai", actor: str
) -> Site:
    """A site with its cash and per-utility revenue ledger accounts."""
    now = rt.clock.now()
    with rt.db.write() as conn:
        site_id = insert_row(
            conn,
            sites,
            {"code": code, "name": name, "timezone": _check_timezone(timezone), "created_at": now},
        )
        ledger.create_ledger_account(conn, cash_code(code), LedgerAccountKind.ASSET, site_id, now)
        for utility in Utility:
            ledger.create_ledger_account(
                conn, revenue_code(code, utility), LedgerAccountKind.REVENUE, site_id, now
            )
        audit.record(
            conn,
            at=now,
            actor=actor,
            action="site.create",
            object_type="site",
            object_id=site_id,
            site_id=site_id,
            after={"code": code, "name": name},
        )
        return repo.site(conn, site_id)


def update_site(rt: Runtime, site_id: int, *, actor: str, **changes: Any) -> Site:
    if "timezone" in changes:
        _check_timezone(changes["timezone"])
    return _update(rt, sites, Site, site_id, changes, actor=actor, kind="site")


def create_building(rt: Runtime, *, site_id: int, code: str, name: str, actor: str) -> Building:
    with rt.db.write() as conn:
        repo.site(conn, site_id)
        new_id = insert_row(conn, buildings, {"site_id": site_id, "code": code, "name": name})
        return repo.building(conn, new_id)


def create_floor(
    rt: Runtime, *, building_id: int, level: int, name: str | None = None, actor: str
) -> Floor:
    with rt.db.write() as conn:
        repo.building(conn, building_id)
        new_id = insert_row(
            conn, floors, {"building_id": building_id, "level": level, "name": name or f"{level}层"}
        )
        return repo.floor(conn, new_id)


def create_unit(
    rt: Runtime,
    *,
    site_id: int,
    code: str,
    name: str,
    kind: UnitKind,
    floor_id: int | None = None,
    area_m2: Decimal | None = None,
    actor: str,
) -> Unit:
    with rt.db.write() as conn:
        return create_unit_in(
            conn,
            site_id=site_id,
            code=code,
            name=name,
            kind=kind,
            floor_id=floor_id,
            area_m2=area_m2,
        )


def create_unit_in(
    conn: Connection,
    *,
    site_id: int,
    code: str,
    name: str,
    kind: UnitKind,
    floor_id: int | None,
    area_m2: Decimal | None,
) -> Unit:
    repo.site(conn, site_id)
    if floor_id is not None and repo.site_of_floor(conn, floor_id) != site_id:
        raise InvalidInput(f"floor {floor_id} is not in site {site_id}", field="floor_id")
    new_id = insert_row(
        conn,
        units,
        {
            "site_id": site_id,
            "floor_id": floor_id,
            "code": code,
            "name": name,
            "kind": UnitKind(kind).value,
            "area_m2": area_m2,
        },
    )
    return repo.unit(conn, new_id)


def create_customer(
    rt: Runtime,
    *,
    site_id: int,
    name: str,
    kind: CustomerKind = CustomerKind.PERSON,
    phone: str | None = None,
    email: str | None = None,
    wechat_openid: str | None = None,
    actor: str,
) -> Customer:
    with rt.db.write() as conn:
        return create_customer_in(
            rt,
            conn,
            site_id=site_id,
            name=name,
            kind=kind,
            phone=phone,
            email=email,
            wechat_openid=wechat_openid,
        )


def update_customer(rt: Runtime, customer_id: int, *, actor: str, **changes: Any) -> Customer:
    return _update(rt, customers, Customer, customer_id, changes, actor=actor, kind="customer")


def open_account(
    rt: Runtime,
    *,
    unit_id: int,
    utility: Utility,
    tariff_id: int,
    customer_id: int | None = None,
    number: str | None = None,
    actor: str,
    **thresholds: int | None,
) -> Account:
    """An account for one utility of a unit, with its wallet in the ledger."""
    with rt.db.write() as conn:
        return open_account_in(
            rt,
            conn,
            unit_id=unit_id,
            utility=utility,
            tariff_id=tariff_id,
            customer_id=customer_id,
            number=number,
            actor=actor,
            **thresholds,
        )


def open_account_in(
    rt: Runtime,
    conn: Connection,
    *,
    unit_id: int,
    utility: Utility,
    tariff_id: int,
    customer_id: int | None,
    number: str | None,
    actor: str,
    **thresholds: int | None,
) -> Account:
    now = rt.clock.now()
    unit = repo.unit(conn, unit_id)
    site = repo.site(conn, unit.site_id)
    _check_tariff(conn, tariff_id, site.id, utility)
    if customer_id is not None:
        _check_customer(conn, customer_id, site.id)
    number = number or f"{'E' if utility is Utility.ELECTRICITY else 'W'}-{unit.code}"
    wallet_id = ledger.create_ledger_account(
        conn, wallet_code(site.code, number), LedgerAccountKind.LIABILITY, site.id, now
    )
    new_id = insert_row(
        conn,
        accounts,
        {
            "site_id": site.id,
            "unit_id": unit_id,
            "customer_id": customer_id,
            "number": number,
            "utility": utility.value,
            "tariff_id": tariff_id,
            "wallet_id": wallet_id,
            "status": AccountStatus.OPEN.value,
            "supply_state": "normal",
            "opened_at": now,
            **thresholds,
        },
    )
    audit.record(
        conn,
        at=now,
        actor=actor,
        action="account.open",
        object_type="account",
        object_id=new_id,
        site_id=site.id,
        after={"number": number, "utility": utility.value, "tariff_id": tariff_id},
    )
    return repo.account(conn, new_id)


def update_account(
    rt: Runtime, account_id: int, *, actor: str, reason: str = "", **changes: Any
) -> Account:
    with rt.db.write() as conn:
        before = repo.account(conn, account_id, lock=True)
        if "tariff_id" in changes:
            _check_tariff(conn, changes["tariff_id"], before.site_id, before.utility)
        if changes.get("customer_id") is not None:
            _check_customer(conn, changes["customer_id"], before.site_id)
        update_row(conn, accounts, account_id, changes)
        after = repo.account(conn, account_id)
        audit.record(
            conn,
            at=rt.clock.now(),
            actor=actor,
            action="account.update",
            object_type="account",
            object_id=account_id,
            site_id=before.site_id,
            before={k: getattr(before, k) for k in changes},
            after={k: getattr(after, k) for k in changes},
            reason=reason,
        )
        return after


def _check_tariff(conn: Connection, tariff_id: int, site_id: int, utility: Utility) -> None:
    row = conn.execute(
        select(tariffs.c.site_id, tariffs.c.utility).where(tariffs.c.id == tariff_id)
    ).first()
    if row is None or row.site_id != site_id:
        raise InvalidInput(
            f"tariff {tariff_id} does not exist in site {site_id}", field="tariff_id"
        )
    if row.utility != utility.value:
        raise InvalidInput(
            f"tariff {tariff_id} prices {row.utility}, not {utility.value}", field="tariff_id"
        )


def _check_customer(conn: Connection, customer_id: int, site_id: int) -> None:
    if fetch(conn, customers, Customer, customer_id).site_id != site_id:
        raise InvalidInput(f"customer {customer_id} is not in site {site_id}", field="customer_id")


def _update(
    rt: Runtime,
    table: Any,
    model: type[_T],
    row_id: int,
    changes: dict[str, Any],
    *,
    actor: str,
    kind: str,
) -> _T:
    with rt.db.write() as conn:
        before = fetch(conn, table, model, row_id, lock=True)
        update_row(conn, table, row_id, changes)
        after = fetch(conn, table, model, row_id)
        audit.record(
            conn,
            at=rt.clock.now(),
            actor=actor,
            action=f"{kind}.update",
            object_type=kind,
            object_id=row_id,
            before={k: v for k, v in asdict(before).items() if k in changes},  # type: ignore[call-overload]
            after=changes,
        )
        return after


def get(rt: Runtime, table_name: str, row_id: int) -> Any:
    table, model = _TABLES[table_name]
    with rt.db.read() as conn:
        return fetch(conn, table, model, row_id)


def page(
    rt: Runtime,
    table_name: str,
    *,
    after_id: int | None,
    limit: int,
    only_ids: frozenset[int] | None = None,
    **filters: Any,
) -> list[Any]:
    """A page of rows by id; ``only_ids`` keeps the rows a caller may see (None: all)."""
    table, model = _TABLES[table_name]
    where = [table.c[k] == v for k, v in filters.items() if v is not None]
    if only_ids is not None:
        where.append(table.c.id.in_(sorted(only_ids)))
    with rt.db.read() as conn:
        return fetch_page(conn, table, model, where=where, after_id=after_id, limit=limit)


_TABLES: dict[str, tuple[Any, type[Any]]] = {
    "sites": (sites, Site),
    "buildings": (buildings, Building),
    "floors": (floors, Floor),
    "units": (units, Unit),
    "customers": (customers, Customer),
    "accounts": (accounts, Account),
}


def update_place(rt: Runtime, table_name: str, row_id: int, *, actor: str, **changes: Any) -> Any:
    table, model = _TABLES[table_name]
    return _update(rt, table, model, row_id, changes, actor=actor, kind=table_name[:-1])


def delete_place(rt: Runtime, table_name: str, row_id: int, *, actor: str) -> None:
    """Delete a building, floor, unit or customer nothing refers to any more.

    Anything still referenced (a unit with accounts, a customer with an
    account) is refused with a conflict; money history is never deleted.
    """
    table, model = _TABLES[table_name]
    with rt.db.write() as conn:
        before = fetch(conn, table, model, row_id, lock=True)
        conn.execute(table.delete().where(table.c.id == row_id))
        audit.record(
            conn,
            at=rt.clock.now(),
            actor=actor,
            action=f"{table_name[:-1]}.delete",
            object_type=table_name[:-1],
            object_id=row_id,
            before=asdict(before),
        )


def create_building_in(conn: Connection, *, site_id: int, code: str, name: str) -> Building:
    repo.site(conn, site_id)
    return repo.building(
        conn, insert_row(conn, buildings, {"site_id": site_id, "code": code, "name": name})
    )


def create_floor_in(
    conn: Connection, *, building_id: int, level: int, name: str | None = None
) -> Floor:
    repo.building(conn, building_id)
    return repo.floor(
        conn,
        insert_row(
            conn, floors, {"building_id": building_id, "level": level, "name": name or f"{level}层"}
        ),
    )


def create_customer_in(
    rt: Runtime,
    conn: Connection,
    *,
    site_id: int,
    name: str,
    kind: CustomerKind = CustomerKind.PERSON,
    phone: str | None = None,
    email: str | None = None,
    wechat_openid: str | None = None,
) -> Customer:
    repo.site(conn, site_id)
    new_id = insert_row(
        conn,
        customers,
        {
            "site_id": site_id,
            "name": name,
            "kind": CustomerKind(kind).value,
            "phone": phone,
            "email": email,
            "wechat_openid": wechat_openid,
            "created_at": rt.clock.now(),
        },
    )
    return fetch(conn, customers, Customer, new_id)
