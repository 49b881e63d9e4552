"""One prepaid account as the console shows it: balance, supply state and thresholds, the
ledger (newest first, paged, with the balance after each entry: ``reports.account_ledger``),
charges with their tariff components (``reports.account_charges``), top-ups with their
receipts and online top-up orders (``reports.account_top_ups``), the messages sent to the
owner, the account's meters and its supply events.

Read-only, one transaction (``rt.db.read()``) per page; every list is limited. The
owner's phone number is masked (``control.masking``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from sqlalchemy import Connection, select

from meterpay.control import effects
from meterpay.control import repository as control_repo
from meterpay.control.masking import masked_phone
from meterpay.control.model import SupplyState, Thresholds
from meterpay.control.site_activity import (
    MessageRow,
    SupplyEventRow,
    message_rows,
    supply_event_rows,
)
from meterpay.db.schema import (
    accounts,
    customers,
    ledger_accounts,
    meters,
    notifications,
    sites,
    supply_events,
    tariffs,
    units,
)
from meterpay.kernel.errors import NotFound
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.metering.gateways import LinkStatus
from meterpay.reports.account_charges import ChargeLine, ChargePart, latest_charges
from meterpay.reports.account_ledger import LedgerLine, LedgerPage, ledger_page
from meterpay.reports.account_top_ups import (
    OrderLine,
    TopUpLine,
    latest_orders,
    latest_top_ups,
)
from meterpay.reports.places import SiteSummary
from meterpay.runtime import Runtime

MAX_PAGE: Final = 200
MAX_EXPORT: Final = 100_000
LATEST: Final = 20

# The page's parts are named here too: the console and the exports read them from here.
__all__ = [
    "LATEST",
    "MAX_EXPORT",
    "MAX_PAGE",
    "AccountHead",
    "AccountMeter",
    "AccountPage",
    "ChargeLine",
    "ChargePart",
    "LedgerLine",
    "LedgerPage",
    "OrderLine",
    "TopUpLine",
    "account_page",
    "ledger_for_export",
]


@dataclass(frozen=True, slots=True)
class AccountHead:
    id: int
    number: str
    utility: Utility
    status: str
    state: SupplyState
    since: datetime | None
    balance: Money
    unit_id: int
    unit_code: str
    unit_name: str
    owner: str | None
    phone: str | None
    """Masked."""
    tariff: str
    opened_at: datetime
    closed_at: datetime | None
    protected_reason: str | None
    notice_given_at: datetime | None


@dataclass(frozen=True, slots=True)
class AccountMeter:
    id: int
    utility: Utility
    address: str
    status: str
    link_status: LinkStatus
    last_read_at: datetime | None
    last_total: Decimal | None


@dataclass(frozen=True, slots=True)
class AccountPage:
    at: datetime
    site: SiteSummary
    account: AccountHead
    thresholds: Thresholds
    ledger: LedgerPage
    charges: list[ChargeLine]
    top_ups: list[TopUpLine]
    orders: list[OrderLine]
    messages: list[MessageRow]
    meters: list[AccountMeter]
    events: list[SupplyEventRow]


def account_page(rt: Runtime, account_id: int, *, offset: int = 0, limit: int = 50) -> AccountPage:
    limit = min(max(1, limit), MAX_PAGE)
    with rt.db.read() as conn:
        head, site, wallet_id = _head(conn, account_id)
        return AccountPage(
            at=rt.clock.now(),
            site=site,
            account=head,
            thresholds=_thresholds(conn, account_id),
            ledger=_ledger(conn, head, wallet_id, offset=max(0, offset), limit=limit),
            charges=latest_charges(conn, account_id, limit=LATEST),
            top_ups=latest_top_ups(conn, account_id, wallet_id, limit=LATEST),
            orders=latest_orders(conn, account_id, limit=LATEST),
            messages=_messages(conn, account_id, limit=LATEST),
            meters=_meters(conn, account_id),
            events=_events(conn, account_id, limit=LATEST),
        )


def ledger_for_export(rt: Runtime, account_id: int) -> tuple[SiteSummary, AccountHead, LedgerPage]:
    """The whole ledger, newest first (at most ``MAX_EXPORT`` entries)."""
    with rt.db.read() as conn:
        head, site, wallet_id = _head(conn, account_id)
        return site, head, _ledger(conn, head, wallet_id, offset=0, limit=MAX_EXPORT)


# --- queries ----------------------------------------------------------------------------------


def _head(conn: Connection, account_id: int) -> tuple[AccountHead, SiteSummary, int]:
    query = (
        select(
            accounts,
            (ledger_accounts.c.credits_posted - ledger_accounts.c.debits_posted).label("fen"),
            units.c.code.label("unit_code"),
            units.c.name.label("unit_name"),
            customers.c.name.label("owner"),
            customers.c.phone,
            tariffs.c.name.label("tariff"),
            sites.c.code.label("site_code"),
            sites.c.name.label("site_name"),
            sites.c.timezone,
        )
        .join(ledger_accounts, ledger_accounts.c.id == accounts.c.wallet_id)
        .join(units, units.c.id == accounts.c.unit_id)
        .join(tariffs, tariffs.c.id == accounts.c.tariff_id)
        .join(sites, sites.c.id == accounts.c.site_id)
        .outerjoin(customers, customers.c.id == accounts.c.customer_id)
        .where(accounts.c.id == account_id)
    )
    r = conn.execute(query).mappings().first()
    if r is None:
        raise NotFound(f"account {account_id} does not exist", account_id=account_id)
    head = AccountHead(
        id=r["id"],
        number=r["number"],
        utility=Utility(r["utility"]),
        status=r["status"],
        state=SupplyState(r["supply_state"]),
        since=r["supply_changed_at"],
        balance=Money(int(r["fen"])),
        unit_id=r["unit_id"],
        unit_code=r["unit_code"],
        unit_name=r["unit_name"],
        owner=r["owner"],
        phone=masked_phone(r["phone"]),
        tariff=r["tariff"],
        opened_at=r["opened_at"],
        closed_at=r["closed_at"],
        protected_reason=r["protected_reason"],
        notice_given_at=r["notice_given_at"],
    )
    site = SiteSummary(r["site_id"], r["site_code"], r["site_name"], r["timezone"])
    return head, site, r["wallet_id"]


def _ledger(
    conn: Connection, head: AccountHead, wallet_id: int, *, offset: int, limit: int
) -> LedgerPage:
    return ledger_page(conn, head.id, wallet_id, head.balance, offset=offset, limit=limit)


def _thresholds(conn: Connection, account_id: int) -> Thresholds:
    account = control_repo.account_supplies(conn, [account_id])[account_id]
    policy = control_repo.site_policies(conn, {account.site_id})[(account.site_id, account.utility)]
    return effects.thresholds_for(account, policy)


def _meters(conn: Connection, account_id: int) -> list[AccountMeter]:
    query = (
        select(meters)
        .where(meters.c.account_id == account_id)
        .order_by(meters.c.status, meters.c.id.desc())
        .limit(MAX_PAGE)
    )
    return [
        AccountMeter(
            id=r["id"],
            utility=Utility(r["utility"]),
            address=r["address"],
            status=r["status"],
            link_status=LinkStatus(r["link_status"]),
            last_read_at=r["last_read_at"],
            last_total=r["last_total"],
        )
        for r in conn.execute(query).mappings()
    ]


def _messages(conn: Connection, account_id: int, *, limit: int) -> list[MessageRow]:
    """What was sent to the owner about this account (integrators' webhooks aside)."""
    return message_rows(conn, notifications.c.account_id == account_id, limit=limit)


def _events(conn: Connection, account_id: int, *, limit: int) -> list[SupplyEventRow]:
    return supply_event_rows(conn, supply_events.c.account_id == account_id, limit=limit)
