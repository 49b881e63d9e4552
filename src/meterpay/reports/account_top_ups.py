"""The money paid into an account, as the console shows it: the latest top-ups (at the
counter with their receipt and any reversal, or online) and the online top-up orders
with their state and refunds.

Read-only queries (a connection in, plain dataclasses out) that ``reports.account_view``
runs in its one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from meterpay.db.schema import counter_receipts, counter_reversals, topup_orders, transfers
from meterpay.kernel.money import Money
from meterpay.ledger.model import TransferKind
from meterpay.payments.model import OrderState


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


def latest_top_ups(
    conn: Connection, account_id: int, wallet_id: int, *, limit: int
) -> list[TopUpLine]:
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


def latest_orders(conn: Connection, account_id: int, *, limit: int) -> list[OrderLine]:
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
