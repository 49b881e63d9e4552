"""An account's ledger as the console shows it: newest first, paged, with the balance
after each entry.

The balance after an entry is worked back from the wallet's posted balance: the balance
after the newest entry is the balance now, each older one is the newer one less that
entry's movement — exact, whatever the page. Read-only queries (a connection in, plain
dataclasses out) that ``reports.account_view`` runs in its one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import Connection, case, func, select

from meterpay.db.schema import transfers
from meterpay.kernel.money import Money
from meterpay.kernel.paging import RowsPage
from meterpay.ledger.model import TransferKind


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


LedgerPage: TypeAlias = RowsPage[LedgerLine]


def _signed(wallet_id: int) -> Any:
    """A transfer's movement of this wallet: credits in, debits out."""
    return case(
        (transfers.c.credit_account_id == wallet_id, transfers.c.amount_fen),
        (transfers.c.debit_account_id == wallet_id, -transfers.c.amount_fen),
        else_=0,
    )


def ledger_page(
    conn: Connection, account_id: int, wallet_id: int, balance: Money, *, offset: int, limit: int
) -> LedgerPage:
    """``limit`` entries of the account's ledger from ``offset``, newest first; ``balance``
    is the wallet's posted balance now."""
    mine = transfers.c.account_id == account_id
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
    after = balance.fen - newer
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
