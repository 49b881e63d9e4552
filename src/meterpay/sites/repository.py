"""Queries for places, customers and accounts. Never commits."""

from __future__ import annotations

from sqlalchemy import Connection, select

from meterpay.db.rows import fetch, to_model
from meterpay.db.schema import accounts, buildings, floors, sites, units
from meterpay.kernel.errors import InvalidInput, NotFound
from meterpay.sites.model import Account, Building, Floor, Site, Unit


def site(conn: Connection, site_id: int) -> Site:
    return fetch(conn, sites, Site, site_id)


def site_by_code(conn: Connection, code: str) -> Site:
    row = conn.execute(select(sites).where(sites.c.code == code)).mappings().first()
    if row is None:
        raise NotFound(f"no site with code {code!r}", field="site_code")
    return to_model(Site, row)


def unit(conn: Connection, unit_id: int) -> Unit:
    return fetch(conn, units, Unit, unit_id)


def building(conn: Connection, building_id: int) -> Building:
    return fetch(conn, buildings, Building, building_id)


def floor(conn: Connection, floor_id: int) -> Floor:
    return fetch(conn, floors, Floor, floor_id)


def account(conn: Connection, account_id: int, *, lock: bool = False) -> Account:
    """An account; ``lock`` takes the row lock every balance decision needs."""
    return fetch(conn, accounts, Account, account_id, lock=lock)


def site_of_floor(conn: Connection, floor_id: int) -> int:
    query = (
        select(buildings.c.site_id)
        .join(floors, floors.c.building_id == buildings.c.id)
        .where(floors.c.id == floor_id)
    )
    found = conn.execute(query).scalar_one_or_none()
    if found is None:
        raise InvalidInput(f"floor {floor_id} does not exist", field="floor_id")
    return int(found)
