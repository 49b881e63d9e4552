"""Queries for the cash counter: receipt numbers, receipts, reversals. Never commits.

Receipt numbers come from one row per site and year, moved by an upsert that holds
the row until the payment's transaction ends: two cashiers of one site never get the
same number, and a payment that rolls back gives its number back (no gaps). The row
is taken last in a payment (after the ledger rows and the account row: the product's
lock order), so it is held only for the end of the transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, func, select
from sqlalchemy.dialects import postgresql, sqlite

from meterpay.db.rows import insert_row
from meterpay.db.schema import (
    accounts,
    counter_receipts,
    counter_reversals,
    customers,
    receipt_sequences,
    sites,
    units,
)
from meterpay.kernel.errors import NotFound
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger.cash_model import (
    PaymentMethod,
    Receipt,
    ReceiptView,
    Reversal,
    ReversedLine,
)


def next_seq(conn: Connection, site_id: int, year: int) -> int:
    """The next receipt number of a site and year (1 for the first), held until commit."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(receipt_sequences)
        .values(site_id=site_id, year=year, last_seq=1)
        .on_conflict_do_update(
            index_elements=["site_id", "year"],
            set_={"last_seq": receipt_sequences.c.last_seq + 1},
        )
        .returning(receipt_sequences.c.last_seq)
    )
    return int(conn.execute(stmt).scalar_one())


def add_receipt(conn: Connection, values: dict[str, Any]) -> Receipt:
    row_id = insert_row(conn, counter_receipts, values)
    return _receipt({**values, "id": row_id})


def add_reversal(conn: Connection, values: dict[str, Any]) -> Reversal:
    row_id = insert_row(conn, counter_reversals, values)
    return _reversal({**values, "id": row_id})


def receipt_by_no(conn: Connection, receipt_no: str) -> Receipt:
    found = _one_receipt(conn, counter_receipts.c.receipt_no == receipt_no)
    if found is None:
        raise NotFound(f"no receipt {receipt_no}", receipt_no=receipt_no)
    return found


def receipt_by_key(conn: Connection, transfer_key: str) -> Receipt | None:
    return _one_receipt(conn, counter_receipts.c.transfer_key == transfer_key)


def reversal_of(conn: Connection, receipt_id: int) -> Reversal | None:
    query = select(counter_reversals).where(counter_reversals.c.receipt_id == receipt_id)
    row = conn.execute(query).mappings().first()
    return _reversal(row) if row is not None else None


def receipts_between(
    conn: Connection, *, cashier: str | None, site_id: int | None, start: datetime, end: datetime
) -> list[Receipt]:
    query = select(counter_receipts).where(
        counter_receipts.c.at >= start, counter_receipts.c.at < end, *_who(cashier, site_id)
    )
    return [_receipt(row) for row in conn.execute(query.order_by(counter_receipts.c.id)).mappings()]


def reversals_between(
    conn: Connection, *, cashier: str | None, site_id: int | None, start: datetime, end: datetime
) -> list[ReversedLine]:
    """Reversals made in ``[start, end)`` of receipts the cashier (and site) issued."""
    reversal_columns = [c.label(f"r_{c.name}") for c in counter_reversals.c]
    query = (
        select(counter_receipts, *reversal_columns)
        .join(counter_reversals, counter_reversals.c.receipt_id == counter_receipts.c.id)
        .where(counter_reversals.c.at >= start, counter_reversals.c.at < end)
        .where(*_who(cashier, site_id))
        .order_by(counter_reversals.c.id)
    )
    return [
        ReversedLine(
            _receipt(row),
            _reversal({c.name: row[f"r_{c.name}"] for c in counter_reversals.c}),
        )
        for row in conn.execute(query).mappings()
    ]


def receipt_view(conn: Connection, receipt_no: str) -> ReceiptView:
    """A receipt with its site, account, unit and payer, as the printed form shows it."""
    receipt = receipt_by_no(conn, receipt_no)
    query = (
        select(
            sites.c.code.label("site_code"),
            sites.c.name.label("site_name"),
            sites.c.timezone,
            accounts.c.number,
            accounts.c.utility,
            units.c.code.label("unit_code"),
            units.c.name.label("unit_name"),
            customers.c.name.label("payer"),
        )
        .select_from(accounts)
        .join(units, units.c.id == accounts.c.unit_id)
        .join(sites, sites.c.id == accounts.c.site_id)
        .outerjoin(customers, customers.c.id == accounts.c.customer_id)
        .where(accounts.c.id == receipt.account_id)
    )
    row = conn.execute(query).mappings().one()
    return ReceiptView(
        receipt=receipt,
        reversal=reversal_of(conn, receipt.id),
        site_code=row["site_code"],
        site_name=row["site_name"],
        timezone=row["timezone"],
        account_number=row["number"],
        utility=Utility(row["utility"]),
        unit_code=row["unit_code"],
        unit_name=row["unit_name"],
        payer=row["payer"],
    )


def first_site_id(conn: Connection) -> int | None:
    found = conn.execute(select(func.min(sites.c.id))).scalar_one_or_none()
    return int(found) if found is not None else None


def _who(cashier: str | None, site_id: int | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if cashier is not None:
        where.append(counter_receipts.c.cashier == cashier)
    if site_id is not None:
        where.append(counter_receipts.c.site_id == site_id)
    return where


def _one_receipt(conn: Connection, where: ColumnElement[bool]) -> Receipt | None:
    row = conn.execute(select(counter_receipts).where(where)).mappings().first()
    return _receipt(row) if row is not None else None


def _receipt(row: RowMapping | dict[str, Any]) -> Receipt:
    return Receipt(
        id=int(row["id"]),
        receipt_no=row["receipt_no"],
        site_id=int(row["site_id"]),
        year=int(row["year"]),
        seq=int(row["seq"]),
        transfer_key=row["transfer_key"],
        account_id=int(row["account_id"]),
        amount=Money(int(row["amount_fen"])),
        method=PaymentMethod(row["method"]),
        cashier=row["cashier"],
        at=row["at"],
        note=row["note"],
        balance_after=Money(int(row["balance_after_fen"])),
    )


def _reversal(row: RowMapping | dict[str, Any]) -> Reversal:
    return Reversal(
        id=int(row["id"]),
        receipt_id=int(row["receipt_id"]),
        transfer_key=row["transfer_key"],
        reason=row["reason"],
        reversed_by=row["reversed_by"],
        at=row["at"],
        balance_after=Money(int(row["balance_after_fen"])),
    )
