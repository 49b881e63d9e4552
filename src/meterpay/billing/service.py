"""Readings -> consumption -> charges -> ledger transfers, inside the caller's
transaction (the ingest use case), exactly once per reading.

Invariants:
- a reading is charged at most once: ``charges.reading_id`` is unique and the
  transfer's idempotency key is ``charge:reading:<id>``;
- per account, charges carry the sub-fen remainder (``accounts.charge_carry``)
  so a run of charges sums to the fen to the price of its total consumption;
- the account rows are locked (id order) before the carry is read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, select

from meterpay.billing.rules import ChargeLine, PriceVersion, charge_with_carry, split_by_versions
from meterpay.db.bulk import copy_rows, update_many
from meterpay.db.schema import accounts, charges, ledger_accounts, sites
from meterpay.kernel.quantity import Utility
from meterpay.ledger import repository as ledger
from meterpay.ledger.model import Transfer, TransferKind
from meterpay.ledger.repository import Posting
from meterpay.sites.model import revenue_code

CHARGE_COLUMNS = (
    "account_id",
    "meter_id",
    "reading_id",
    "transfer_key",
    "period_start",
    "period_end",
    "quantity",
    "amount_fen",
    "lines",
    "created_at",
)


@dataclass(frozen=True, slots=True)
class Billable:
    """A valid reading's consumption over [start, end), for the meter's account."""

    reading_id: int
    meter_id: int
    account_id: int
    start: datetime
    end: datetime
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class _AccountBilling:
    id: int
    wallet_id: int
    revenue_id: int
    tariff_id: int
    carry: Decimal


def charge(
    conn: Connection,
    billables: Sequence[Billable],
    schedules: dict[int, list[PriceVersion]],
    *,
    actor: str,
    now: datetime,
) -> dict[int, int]:
    """Charge each billable at its account's tariff (``schedules`` by tariff id);
    return the amount in fen by reading id."""
    if not billables:
        return {}
    billing = _lock_accounts(conn, {b.account_id for b in billables})
    by_account: dict[int, list[Billable]] = defaultdict(list)
    for b in sorted(billables, key=lambda b: (b.end, b.reading_id)):
        by_account[b.account_id].append(b)
    amounts: dict[int, int] = {}
    charge_rows: list[dict[str, object]] = []
    postings: list[Posting] = []
    carries: list[dict[str, object]] = []
    for account_id, items in by_account.items():
        acct = billing[account_id]
        carry = acct.carry
        for b in items:
            lines = split_by_versions(b.quantity, b.start, b.end, schedules[acct.tariff_id])
            money, carry = charge_with_carry(lines, carry)
            amounts[b.reading_id] = money.fen
            key = f"charge:reading:{b.reading_id}" if money.fen > 0 else None
            charge_rows.append(_charge_row(b, lines, money.fen, key, now))
            if key is not None:
                postings.append(
                    Posting(
                        Transfer(
                            key, acct.wallet_id, acct.revenue_id, money.fen, TransferKind.CHARGE
                        ),
                        account_id=account_id,
                        memo=f"{b.quantity} @ meter {b.meter_id}",
                    )
                )
        carries.append({"id": account_id, "charge_carry": carry})
    copy_rows(conn, charges, CHARGE_COLUMNS, charge_rows)
    update_many(conn, accounts, "id", ("charge_carry",), carries)
    ledger.post_fresh(conn, postings, actor=actor, now=now)
    return amounts


def _lock_accounts(conn: Connection, account_ids: set[int]) -> dict[int, _AccountBilling]:
    revenue = ledger_accounts.alias("revenue")
    query = (
        select(
            accounts.c.id,
            accounts.c.wallet_id,
            accounts.c.tariff_id,
            accounts.c.charge_carry,
            accounts.c.utility,
            sites.c.code,
        )
        .join(sites, sites.c.id == accounts.c.site_id)
        .where(accounts.c.id.in_(sorted(account_ids)))
        .order_by(accounts.c.id)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=accounts)
    rows = conn.execute(query).all()
    codes = {(r.code, r.utility): revenue_code(r.code, Utility(r.utility)) for r in rows}
    found = conn.execute(
        select(revenue.c.code, revenue.c.id).where(revenue.c.code.in_(codes.values()))
    )
    by_code = {str(code): int(lid) for code, lid in found}
    revenue_ids = {pair: by_code[code] for pair, code in codes.items()}
    return {
        r.id: _AccountBilling(
            r.id, r.wallet_id, revenue_ids[(r.code, r.utility)], r.tariff_id, r.charge_carry
        )
        for r in rows
    }


def _charge_row(
    b: Billable, lines: list[ChargeLine], fen: int, key: str | None, now: datetime
) -> dict[str, object]:
    return {
        "account_id": b.account_id,
        "meter_id": b.meter_id,
        "reading_id": b.reading_id,
        "transfer_key": key,
        "period_start": b.start,
        "period_end": b.end,
        "quantity": b.quantity,
        "amount_fen": fen,
        "created_at": now,
        "lines": [
            {
                "version_id": line.version_id,
                "quantity": str(line.quantity),
                "unit_price": str(line.unit_price),
                "exact_amount": str(line.exact_amount),
            }
            for line in lines
        ],
    }
