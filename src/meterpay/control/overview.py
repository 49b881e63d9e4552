"""The supply overview of a site: what the operators' console shows on its supply page —
how many accounts are in each supply state, the accounts that are not normal with their
planned cut-off (``control.attention``), the latest supply events, commands and owners'
messages, open alarms (``control.site_activity``).

Read-only. Each service function reads in one transaction (``rt.db.read()``), so a
page is one consistent snapshot; every list is limited (the accounts table is paged).
The queries are repository-style functions (a connection in, plain dataclasses out);
they never write.

A recipient's phone number, email address or WeChat openid never leaves the read model
whole: it is masked for the screen (``control.masking``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from sqlalchemy import Connection, select

from meterpay.alarms.model import Alarm
from meterpay.control import repository as repo
from meterpay.control.attention import ATTENTION_ORDER, AttentionRow, attention_rows
from meterpay.control.model import SupplyState
from meterpay.control.site_activity import (
    CommandRow,
    MessageRow,
    SupplyEventRow,
    latest_commands,
    latest_messages,
    latest_supply_events,
    open_alarms,
)
from meterpay.db.schema import sites
from meterpay.kernel.errors import NotFound
from meterpay.kernel.paging import RowsPage
from meterpay.runtime import Runtime


@dataclass(frozen=True, slots=True)
class SiteSummary:
    id: int
    code: str
    name: str
    timezone: str


AccountsPage: TypeAlias = RowsPage[AttentionRow]


@dataclass(frozen=True, slots=True)
class SupplyOverview:
    at: datetime
    site: SiteSummary
    sites: list[SiteSummary]
    counts: dict[SupplyState, int]
    accounts: AccountsPage
    events: list[SupplyEventRow]
    commands: list[CommandRow]
    messages: list[MessageRow]
    alarms: list[Alarm]


# --- use cases --------------------------------------------------------------------------------


def supply_overview(
    rt: Runtime,
    site_id: int | None = None,
    *,
    state: SupplyState | None = None,
    offset: int = 0,
    limit: int = 100,
    latest: int = 20,
    visible: frozenset[int] | None = None,
) -> SupplyOverview | None:
    """One site's supply page (the first site when ``site_id`` is None; None when there
    is no site at all). ``state`` narrows the accounts table to one state; ``visible``
    keeps the sites the reader works on (None: every site)."""
    now = rt.clock.now()
    with rt.db.read() as conn:
        found = [s for s in site_list(conn) if visible is None or s.id in visible]
        site = _pick(found, site_id)
        if site is None:
            return None
        counts = state_counts(conn, site.id)
        wanted = (state,) if state is not None else ATTENTION_ORDER
        return SupplyOverview(
            at=now,
            site=site,
            sites=found,
            counts=counts,
            accounts=AccountsPage(
                attention_rows(conn, site.id, wanted, now=now, offset=offset, limit=limit),
                sum(counts[s] for s in wanted),
                offset,
                limit,
            ),
            events=latest_supply_events(conn, site.id, limit=latest),
            commands=latest_commands(conn, site.id, limit=latest),
            messages=latest_messages(conn, site.id, limit=latest),
            alarms=open_alarms(conn, site.id, limit=latest),
        )


def accounts_in(
    rt: Runtime, site_id: int, states: Sequence[SupplyState], *, limit: int = 100
) -> list[AttentionRow]:
    """A site's open accounts in these states, most urgent first, longest waiting first."""
    with rt.db.read() as conn:
        return attention_rows(conn, site_id, states, now=rt.clock.now(), offset=0, limit=limit)


def _pick(found: list[SiteSummary], site_id: int | None) -> SiteSummary | None:
    if site_id is None:
        return found[0] if found else None
    for site in found:
        if site.id == site_id:
            return site
    raise NotFound(f"site {site_id} does not exist", site_id=site_id)


# --- queries ----------------------------------------------------------------------------------


def site_list(conn: Connection, *, limit: int = 200) -> list[SiteSummary]:
    query = select(sites.c.id, sites.c.code, sites.c.name, sites.c.timezone)
    rows = conn.execute(query.order_by(sites.c.id).limit(limit)).all()
    return [SiteSummary(r.id, r.code, r.name, r.timezone) for r in rows]


def state_counts(conn: Connection, site_id: int) -> dict[SupplyState, int]:
    return {SupplyState(k): n for k, n in repo.count_states(conn, site_id).items()}
