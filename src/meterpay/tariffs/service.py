"""Use cases for tariffs: create a flat tariff, add a version, read them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, select

from meterpay.audit import repository as audit
from meterpay.db.rows import fetch_page, insert_row
from meterpay.db.schema import tariff_versions, tariffs
from meterpay.kernel.clock import require_aware
from meterpay.kernel.money import parse_unit_price
from meterpay.kernel.quantity import Utility
from meterpay.runtime import Runtime
from meterpay.sites import repository as sites
from meterpay.tariffs import repository as repo
from meterpay.tariffs.model import Tariff


def create_flat_tariff(
    rt: Runtime,
    *,
    site_id: int,
    code: str,
    name: str,
    utility: Utility,
    unit_price: Decimal | str,
    effective_from: datetime,
    actor: str,
) -> Tariff:
    now = rt.clock.now()
    price = parse_unit_price(unit_price)
    with rt.db.write() as conn:
        sites.site(conn, site_id)
        tariff_id = insert_row(
            conn,
            tariffs,
            {
                "site_id": site_id,
                "code": code,
                "name": name,
                "utility": Utility(utility).value,
                "created_at": now,
            },
        )
        _insert_version(conn, tariff_id, price, effective_from, now)
        audit.record(
            conn,
            at=now,
            actor=actor,
            action="tariff.create",
            object_type="tariff",
            object_id=tariff_id,
            site_id=site_id,
            after={"code": code, "unit_price": price, "effective_from": effective_from},
        )
        return repo.tariff(conn, tariff_id)


def add_version(
    rt: Runtime,
    tariff_id: int,
    *,
    unit_price: Decimal | str,
    effective_from: datetime,
    actor: str,
    reason: str = "",
) -> Tariff:
    """A new price from a date on; earlier consumption keeps its old price."""
    now = rt.clock.now()
    price = parse_unit_price(unit_price)
    with rt.db.write() as conn:
        current = repo.tariff(conn, tariff_id)
        _insert_version(conn, tariff_id, price, effective_from, now)
        audit.record(
            conn,
            at=now,
            actor=actor,
            action="tariff.version",
            object_type="tariff",
            object_id=tariff_id,
            site_id=current.site_id,
            reason=reason,
            after={"unit_price": price, "effective_from": effective_from},
        )
        return repo.tariff(conn, tariff_id)


def _insert_version(
    conn: Connection, tariff_id: int, price: Decimal, effective_from: datetime, now: datetime
) -> None:
    insert_row(
        conn,
        tariff_versions,
        {
            "tariff_id": tariff_id,
            "effective_from": require_aware(effective_from),
            "unit_price": price,
            "created_at": now,
        },
    )


def get_tariff(rt: Runtime, tariff_id: int) -> Tariff:
    with rt.db.read() as conn:
        return repo.tariff(conn, tariff_id)


def list_tariffs(
    rt: Runtime, *, site_id: int | None, after_id: int | None, limit: int
) -> list[Tariff]:
    where = [tariffs.c.site_id == site_id] if site_id is not None else []
    with rt.db.read() as conn:
        found = fetch_page(conn, tariffs, Tariff, where=where, after_id=after_id, limit=limit)
        all_versions = repo.versions(conn, [t.id for t in found])
        return [
            Tariff(
                t.id,
                t.site_id,
                t.code,
                t.name,
                t.utility,
                t.created_at,
                tuple(all_versions.get(t.id, [])),
            )
            for t in found
        ]


def tariff_id_by_code(rt: Runtime, site_id: int, code: str) -> int | None:
    with rt.db.read() as conn:
        found = conn.execute(
            select(tariffs.c.id).where(tariffs.c.site_id == site_id, tariffs.c.code == code)
        ).scalar()
        return int(found) if found is not None else None
