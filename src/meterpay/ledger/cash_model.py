"""The cash counter (收费台): receipts for money taken in cash or by bank-card POS,
their reversals, and a cashier's shift totals. Plain Python, exact fen.

Invariants:
- a receipt describes exactly one top-up transfer (``topup:cash:<key>``) and is never
  edited; its number is ``<site code>-<year>-<000123>``, gapless per site and year of
  the site's calendar;
- a receipt is reversed at most once, always with a reason, by a reversing transfer;
- a shift's totals are sums of whole fen: per method, taken minus reversed is the net.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Final

from meterpay.kernel.errors import Conflict, InvalidInput
from meterpay.kernel.money import Money
from meterpay.kernel.money_words import capital_yuan
from meterpay.kernel.quantity import Utility
from meterpay.sites.model import Site

MAX_REASON: Final = 500


class PaymentMethod(StrEnum):
    CASH = "cash"
    """现金"""
    POS = "pos"
    """银行卡 POS: the card terminal beside the counter, settled by the bank."""


class AlreadyReversed(Conflict):
    """The receipt was reversed before: one receipt, at most one reversal."""

    code = "already_reversed"


def receipt_number(site_code: str, year: int, seq: int) -> str:
    """``HOME-2026-000123``: six digits at least, more once a year passes 999 999."""
    return f"{site_code}-{year}-{seq:06d}"


def reversal_key(transfer_key: str) -> str:
    """The idempotency key of the transfer that reverses ``transfer_key``."""
    return f"reversal:{transfer_key}"


@dataclass(frozen=True, slots=True)
class Receipt:
    id: int
    receipt_no: str
    site_id: int
    year: int
    seq: int
    transfer_key: str
    account_id: int
    amount: Money
    method: PaymentMethod
    cashier: str
    at: datetime
    note: str
    balance_after: Money

    @property
    def amount_words(self) -> str:
        """The amount in capital numerals (大写金额)."""
        return capital_yuan(self.amount.fen)


@dataclass(frozen=True, slots=True)
class Reversal:
    id: int
    receipt_id: int
    transfer_key: str
    reason: str
    reversed_by: str
    at: datetime
    balance_after: Money


@dataclass(frozen=True, slots=True)
class Issued:
    """What a payment or a reversal hands back: the receipt as it stands now."""

    receipt: Receipt
    reversal: Reversal | None
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class ReceiptView:
    """A receipt with what its printed form shows about the place and the payer."""

    receipt: Receipt
    reversal: Reversal | None
    site_code: str
    site_name: str
    timezone: str
    account_number: str
    utility: Utility
    unit_code: str
    unit_name: str
    payer: str | None

    @property
    def amount_words(self) -> str:
        return self.receipt.amount_words


@dataclass(frozen=True, slots=True)
class ReversedLine:
    """A reversal in a shift, with the receipt it undid."""

    receipt: Receipt
    reversal: Reversal


@dataclass(frozen=True, slots=True)
class ShiftReport:
    """Receipts a cashier (or everyone, ``cashier=None``) issued in ``[start, end)``,
    and the reversals made in that period of receipts they issued: the money that went
    into and back out of their drawer and terminal."""

    cashier: str | None
    site_id: int | None
    start: datetime
    end: datetime
    receipts: tuple[Receipt, ...]
    reversals: tuple[ReversedLine, ...]
    taken: Mapping[PaymentMethod, Money] = field(default_factory=dict)
    reversed: Mapping[PaymentMethod, Money] = field(default_factory=dict)

    @property
    def net(self) -> dict[PaymentMethod, Money]:
        return {m: self.taken[m] - self.reversed[m] for m in PaymentMethod}

    @property
    def total_taken(self) -> Money:
        return _sum(self.taken.values())

    @property
    def total_reversed(self) -> Money:
        return _sum(self.reversed.values())

    @property
    def total_net(self) -> Money:
        return self.total_taken - self.total_reversed


@dataclass(frozen=True, slots=True)
class CounterDay:
    """A site's counter over one day of its own calendar, as of ``at``."""

    site: Site
    day: date
    at: datetime
    report: ShiftReport


def shift_report(
    *,
    cashier: str | None,
    site_id: int | None,
    start: datetime,
    end: datetime,
    receipts: Iterable[Receipt],
    reversals: Iterable[ReversedLine],
) -> ShiftReport:
    """The shift's lines and their totals per method (every method, zero when unused)."""
    taken_lines = tuple(sorted(receipts, key=lambda r: (r.at, r.id)))
    reversed_lines = tuple(sorted(reversals, key=lambda r: (r.reversal.at, r.reversal.id)))
    return ShiftReport(
        cashier=cashier,
        site_id=site_id,
        start=start,
        end=end,
        receipts=taken_lines,
        reversals=reversed_lines,
        taken=_by_method((r.method, r.amount) for r in taken_lines),
        reversed=_by_method((line.receipt.method, line.receipt.amount) for line in reversed_lines),
    )


def _by_method(amounts: Iterable[tuple[PaymentMethod, Money]]) -> dict[PaymentMethod, Money]:
    totals = dict.fromkeys(PaymentMethod, 0)
    for method, amount in amounts:
        totals[method] += amount.fen
    return {method: Money(fen) for method, fen in totals.items()}


def _sum(amounts: Iterable[Money]) -> Money:
    return Money(sum(amount.fen for amount in amounts))


def check_reason(reason: str) -> str:
    """A reversal's reason, stripped; blank or overlong is refused."""
    text = reason.strip()
    if not text:
        raise InvalidInput("a reversal needs a reason", field="reason")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"a reason is at most {MAX_REASON} characters", field="reason")
    return text
