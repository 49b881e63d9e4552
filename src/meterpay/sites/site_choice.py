"""Which sites a person may pick on a console page: the sites where they hold a
permission (every site for an all-sites holder), by code. Read only."""

from __future__ import annotations

from typing import Final

from sqlalchemy import select

from meterpay.db.rows import to_model
from meterpay.db.schema import sites
from meterpay.runtime import Runtime
from meterpay.sites.model import Site

MAX_SITES: Final = 500


def sites_in_reach(rt: Runtime, reach: frozenset[int] | None) -> list[Site]:
    """``reach`` None: every site; else only those ids (unknown ids are left out)."""
    query = select(sites).order_by(sites.c.code).limit(MAX_SITES)
    if reach is not None:
        query = query.where(sites.c.id.in_(sorted(reach)))
    with rt.db.read() as conn:
        return [to_model(Site, row) for row in conn.execute(query).mappings()]


def pick(found: list[Site], site_id: int | None) -> Site | None:
    """The site asked for when it is in reach, else the first one (None: no site)."""
    chosen = next((s for s in found if s.id == site_id), None)
    return chosen or (found[0] if found and site_id is None else None)
