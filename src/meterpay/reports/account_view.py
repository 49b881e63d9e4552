"""One prepaid account as the console shows it: balance, supply state and thresholds, the
ledger (newest first, paged, with the balance after each entry), charges with their
tariff components, top-ups with their receipts, online top-up orders, the messages sent
to the owner, the account's meters and its supply events.

Read-only, one transaction (``rt.db.read()``). The balance after an entry is worked back
from the wallet's posted balance: the balance after the newest entry is the balance now,
each older one is the newer one less that entry's movement — exact, whatever the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Connection, case, func, select

from meterpay.control import effects
from meterpay.control import repository as control_repo
from meterpay.control.model import SupplyState, Thresholds
from meterpay.control.overview import (
    OWNER_CHANNELS,
    MessageRow,
    SupplyEventRow,
    message_row,
    supply_event_rows,
)
from meterpay.db.schema import (
    accounts,
    charges,
    counter_receipts,
    counter_reversals,
    customers,
    ledger_accounts,
    meters,
    notifications,
    sites,
    supply_events,
    tariffs,
    topup_orders,
    transfers,
    units,
)
from meterpay.kernel.errors import NotFound
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger.model import TransferKind
from meterpay.metering.gateways import LinkStatus
from meterpay.payments.model import OrderState
from meterpay.reports.places import SiteSummary, masked_phone
from meterpay.runtime import Runtime

MAX_PAGE: Final = 200
MAX_EXPORT: Final = 100_000
LATEST: Final = 20


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
class LedgerLine:
    id: int
    at: datetime
    kind: TransferKind
    amount: Money
    """Into the wallet positive, out of it negative."""
    balance_after: Money
    memo: str
    actor: str
    key: str


@dataclass(frozen=True, slots=True)
class LedgerPage:
    rows: list[LedgerLine]
    total: int
    offset: int
    limit: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.rows) < self.total


@dataclass(frozen=True, slots=True)
class ChargePart:
    """One priced component of a charge: energy (by tier or time-of-use period), a
    surcharge, a fixed fee or a share of a supplier's bill."""

    component: str
    tier: int | None
    period: str | None
    quantity: Decimal | None
    unit_price: Decimal | None
    amount: Decimal | None
    """Exact, in yuan (the charge itself is rounded to the fen with a carry)."""
    name: str = ""


@dataclass(frozen=True, slots=True)
class ChargeLine:
    id: int
    kind: str
    created_at: datetime
    period_start: datetime
    period_end: datetime
    quantity: Decimal
    amount: Money
    meter_id: int | None
    meter_address: str | None
    parts: list[ChargePart]


@dataclass(frozen=True, slots=True)
class TopUpLine:
    at: datetime
    amount: Money
    actor: str
    memo: str
    receipt_no: str | None
    method: str | None
    reversed_at: datetime | None


@dataclass(frozen=True, slots=True)
class OrderLine:
    out_trade_no: str
    provider: str
    amount: Money
    state: OrderState
    created_at: datetime
    credited_at: datetime | None
    refunded: Money


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
            charges=_charges(conn, account_id, limit=LATEST),
            top_ups=_top_ups(conn, account_id, wallet_id, limit=LATEST),
            orders=_orders(conn, account_id, limit=LATEST),
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


def _thresholds(conn: Connection, account_id: int) -> Thresholds:
    account = control_repo.account_supplies(conn, [account_id])[account_id]
    policy = control_repo.site_policies(conn, {account.site_id})[(account.site_id, account.utility)]
    return effects.thresholds_for(account, policy)


def _signed(wallet_id: int) -> Any:
    """A transfer's movement of this wallet: credits in, debits out."""
    return case(
        (transfers.c.credit_account_id == wallet_id, transfers.c.amount_fen),
        (transfers.c.debit_account_id == wallet_id, -transfers.c.amount_fen),
        else_=0,
    )


def _ledger(
    conn: Connection, head: AccountHead, wallet_id: int, *, offset: int, limit: int
) -> LedgerPage:
    mine = transfers.c.account_id == head.id
    total = int(conn.execute(select(func.count()).where(mine)).scalar_one())
    newer = 0
    if offset:
        skipped = (
            select(_signed(wallet_id).label("fen"))
            .where(mine)
            .order_by(transfers.c.id.desc())
            .limit(offset)
            .subquery()
        )
        newer = int(conn.execute(select(func.sum(skipped.c.fen))).scalar_one() or 0)
    query = (
        select(transfers, _signed(wallet_id).label("fen"))
        .where(mine)
        .order_by(transfers.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    after = head.balance.fen - newer
    rows: list[LedgerLine] = []
    for r in conn.execute(query).mappings():
        rows.append(
            LedgerLine(
                id=r["id"],
                at=r["created_at"],
                kind=TransferKind(r["kind"]),
                amount=Money(int(r["fen"])),
                balance_after=Money(after),
                memo=r["memo"],
                actor=r["actor"],
                key=r["idempotency_key"],
            )
        )
        after -= int(r["fen"])
    return LedgerPage(rows, total, offset, limit)


def _charges(conn: Connection, account_id: int, *, limit: int) -> list[ChargeLine]:
    query = (
        select(charges, meters.c.address)
        .outerjoin(meters, meters.c.id == charges.c.meter_id)
        .where(charges.c.account_id == account_id)
        .order_by(charges.c.period_end.desc(), charges.c.id.desc())
        .limit(limit)
    )
    return [
        ChargeLine(
            id=r["id"],
            kind=r["kind"],
            created_at=r["created_at"],
            period_start=r["period_start"],
            period_end=r["period_end"],
            quantity=r["quantity"],
            amount=Money(int(r["amount_fen"])),
            meter_id=r["meter_id"],
            meter_address=r["address"],
            parts=charge_parts(r["lines"]),
        )
        for r in conn.execute(query).mappings()
    ]


def charge_parts(lines: Any) -> list[ChargePart]:
    """A charge's stored lines as parts (the revenue-stream summary line is not one)."""
    parts: list[ChargePart] = []
    for line in lines if isinstance(lines, list) else []:
        if not isinstance(line, dict) or "component" not in line:
            continue
        parts.append(
            ChargePart(
                component=str(line["component"]),
                tier=line.get("tier") if isinstance(line.get("tier"), int) else None,
                period=line.get("period") or None,
                quantity=_decimal(line.get("quantity")),
                unit_price=_decimal(line.get("unit_price")),
                amount=_decimal(line.get("exact_amount", line.get("amount"))),
                name=str(line.get("name") or ""),
            )
        )
    return parts


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except ArithmeticError:
        return None


def _top_ups(conn: Connection, account_id: int, wallet_id: int, *, limit: int) -> list[TopUpLine]:
    """Money paid in: at the counter (with its receipt) or online."""
    query = (
        select(
            transfers.c.created_at,
            transfers.c.amount_fen,
            transfers.c.actor,
            transfers.c.memo,
            counter_receipts.c.receipt_no,
            counter_receipts.c.method,
            counter_reversals.c.at.label("reversed_at"),
        )
        .outerjoin(counter_receipts, counter_receipts.c.transfer_key == transfers.c.idempotency_key)
        .outerjoin(counter_reversals, counter_reversals.c.receipt_id == counter_receipts.c.id)
        .where(
            transfers.c.account_id == account_id,
            transfers.c.kind == TransferKind.TOP_UP.value,
            transfers.c.credit_account_id == wallet_id,
        )
        .order_by(transfers.c.id.desc())
        .limit(limit)
    )
    return [
        TopUpLine(
            at=r["created_at"],
            amount=Money(int(r["amount_fen"])),
            actor=r["actor"],
            memo=r["memo"],
            receipt_no=r["receipt_no"],
            method=r["method"],
            reversed_at=r["reversed_at"],
        )
        for r in conn.execute(query).mappings()
    ]


def _orders(conn: Connection, account_id: int, *, limit: int) -> list[OrderLine]:
    query = (
        select(topup_orders)
        .where(topup_orders.c.account_id == account_id)
        .order_by(topup_orders.c.id.desc())
        .limit(limit)
    )
    return [
        OrderLine(
            out_trade_no=r["out_trade_no"],
            provider=r["provider"],
            amount=Money(int(r["amount_fen"])),
            state=OrderState(r["state"]),
            created_at=r["created_at"],
            credited_at=r["credited_at"],
            refunded=Money(int(r["refunded_fen"])),
        )
        for r in conn.execute(query).mappings()
    ]


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
    query = (
        select(notifications, accounts.c.number)
        .join(accounts, accounts.c.id == notifications.c.account_id)
        .where(notifications.c.account_id == account_id)
        .where(notifications.c.channel.in_(OWNER_CHANNELS))
        .order_by(notifications.c.id.desc())
        .limit(limit)
    )
    return [message_row(r, r["number"]) for r in conn.execute(query).mappings()]


def _events(conn: Connection, account_id: int, *, limit: int) -> list[SupplyEventRow]:
    return supply_event_rows(conn, supply_events.c.account_id == account_id, limit=limit)
