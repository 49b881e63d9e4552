"""Queries for tariffs and their versions. Never commits."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, select

from meterpay.billing.rules import PriceVersion
from meterpay.db.rows import fetch
from meterpay.db.schema import accounts, charges, tariff_versions, tariffs
from meterpay.tariffs.components import EnergyPrice, TariffComponents
from meterpay.tariffs.model import Tariff, TariffVersion


def tariff(conn: Connection, tariff_id: int) -> Tariff:
    return _with_versions(conn, fetch(conn, tariffs, Tariff, tariff_id))


def _with_versions(conn: Connection, found: Tariff) -> Tariff:
    return Tariff(
        found.id,
        found.site_id,
        found.code,
        found.name,
        found.utility,
        found.created_at,
        tuple(versions(conn, [found.id])[found.id]),
    )


def versions(conn: Connection, tariff_ids: Iterable[int]) -> dict[int, list[TariffVersion]]:
    ids = sorted(set(tariff_ids))
    result: dict[int, list[TariffVersion]] = defaultdict(list)
    query = (
        select(tariff_versions)
        .where(tariff_versions.c.tariff_id.in_(ids))
        .order_by(tariff_versions.c.tariff_id, tariff_versions.c.effective_from)
    )
    for row in conn.execute(query).mappings():
        stored = row["components"]
        components = (
            TariffComponents.from_dict(stored)
            if stored
            else TariffComponents(EnergyPrice(row["unit_price"]))
        )
        result[int(row["tariff_id"])].append(
            TariffVersion(
                row["id"],
                row["tariff_id"],
                row["effective_from"],
                row["unit_price"],
                row["created_at"],
                components,
            )
        )
    return result


def price_schedules(conn: Connection, tariff_ids: Iterable[int]) -> dict[int, list[PriceVersion]]:
    """The price versions of each tariff, oldest first, for pricing."""
    return {
        tid: [PriceVersion(v.id, v.effective_from, v.unit_price, v.components) for v in vs]
        for tid, vs in versions(conn, tariff_ids).items()
    }


def has_priced_since(conn: Connection, tariff_id: int, since: datetime) -> bool:
    """Whether consumption after ``since`` was already charged on this tariff."""
    query = (
        select(charges.c.id)
        .join(accounts, accounts.c.id == charges.c.account_id)
        .where(accounts.c.tariff_id == tariff_id, charges.c.period_end > since)
        .limit(1)
    )
    return conn.execute(query).first() is not None
