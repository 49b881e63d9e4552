"""Matching a provider's daily statement to our top-up orders (pure).

Invariants:
- every statement payment row and every order of ours paid that day ends in exactly
  one finding: matched, paid but not credited, credited but not paid, amounts that
  differ, or a trade that is not ours;
- amounts are compared in integer fen, never rounded;
- the totals add up: the statement's payments minus refunds equal its own summary
  total (the parsers check that), and ours are summed from the orders themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from meterpay.payments.model import OrderState
from meterpay.payments.provider import Statement, StatementKind, StatementRow


class Finding(StrEnum):
    MATCHED = "matched"
    PAID_NOT_CREDITED = "paid_not_credited"
    """The provider has the money; the owner's wallet does not: credit it (query path)."""
    CREDITED_NOT_PAID = "credited_not_paid"
    """We credited money the provider's statement does not show: a person must look."""
    AMOUNT_MISMATCH = "amount_mismatch"
    NOT_OURS = "not_ours"
    """A payment on the statement without an order of ours (another system's?)."""


@dataclass(frozen=True, slots=True)
class OurOrder:
    out_trade_no: str
    amount_fen: int
    state: OrderState
    transaction_id: str | None


@dataclass(frozen=True, slots=True)
class Item:
    finding: Finding
    out_trade_no: str
    ours_fen: int | None
    theirs_fen: int | None
    transaction_id: str | None = None


@dataclass
class Findings:
    items: list[Item] = field(default_factory=list)
    statement_total_fen: int = 0
    fee_total_fen: int = 0
    refund_total_fen: int = 0
    paid_total_fen: int = 0
    credited_total_fen: int = 0

    def of(self, finding: Finding) -> list[Item]:
        return [i for i in self.items if i.finding is finding]

    @property
    def clean(self) -> bool:
        return all(i.finding is Finding.MATCHED for i in self.items)


CREDITED_STATES = frozenset({OrderState.CREDITED, OrderState.REFUNDED})


def match(
    statement: Statement, paid_that_day: Sequence[OurOrder], known: Iterable[OurOrder]
) -> Findings:
    """``paid_that_day``: our orders the provider reported paid (or we credited) on the
    statement's day; ``known``: any of our orders the statement names (found by number,
    whatever their day or state)."""
    found = Findings(statement_total_fen=statement.total_fen, fee_total_fen=statement.fee_total_fen)
    ours = {o.out_trade_no: o for o in known} | {o.out_trade_no: o for o in paid_that_day}
    payments: dict[str, StatementRow] = {}
    for row in statement.rows:
        if row.kind is StatementKind.REFUND:
            found.refund_total_fen += row.amount_fen
            continue
        payments[row.out_trade_no] = row
        found.paid_total_fen += row.amount_fen
    for number, row in sorted(payments.items()):
        order = ours.get(number)
        if order is None:
            found.items.append(
                Item(Finding.NOT_OURS, number, None, row.amount_fen, row.transaction_id)
            )
        elif order.amount_fen != row.amount_fen:
            found.items.append(
                Item(
                    Finding.AMOUNT_MISMATCH,
                    number,
                    order.amount_fen,
                    row.amount_fen,
                    row.transaction_id,
                )
            )
        elif order.state not in CREDITED_STATES:
            found.items.append(
                Item(
                    Finding.PAID_NOT_CREDITED,
                    number,
                    order.amount_fen,
                    row.amount_fen,
                    row.transaction_id,
                )
            )
        else:
            found.items.append(
                Item(Finding.MATCHED, number, order.amount_fen, row.amount_fen, row.transaction_id)
            )
    for order in sorted(paid_that_day, key=lambda o: o.out_trade_no):
        if order.state in CREDITED_STATES:
            found.credited_total_fen += order.amount_fen
            if order.out_trade_no not in payments:
                found.items.append(
                    Item(
                        Finding.CREDITED_NOT_PAID,
                        order.out_trade_no,
                        order.amount_fen,
                        None,
                        order.transaction_id,
                    )
                )
    return found
