"""The cash counter's plain rules: receipt numbers, reasons, and a shift's totals in
whole fen per method."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.money import Money
from meterpay.ledger.cash_model import (
    PaymentMethod,
    Receipt,
    Reversal,
    ReversedLine,
    check_reason,
    receipt_number,
    reversal_key,
    shift_report,
)
from meterpay.web.console.labels import WORDS

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)


def _receipt(n: int, fen: int, method: PaymentMethod) -> Receipt:
    return Receipt(
        id=n,
        receipt_no=receipt_number("HOME", 2026, n),
        site_id=1,
        year=2026,
        seq=n,
        transfer_key=f"topup:cash:k{n}",
        account_id=1,
        amount=Money(fen),
        method=method,
        cashier="王收款",
        at=START + timedelta(minutes=n),
        note="",
        balance_after=Money(fen),
    )


def _reversed(receipt: Receipt) -> ReversedLine:
    reversal = Reversal(
        id=receipt.id,
        receipt_id=receipt.id,
        transfer_key=reversal_key(receipt.transfer_key),
        reason="收错账户",
        reversed_by="主管",
        at=receipt.at + timedelta(hours=1),
        balance_after=Money(0),
    )
    return ReversedLine(receipt, reversal)


def test_receipt_numbers_carry_the_site_the_year_and_six_digits() -> None:
    assert receipt_number("SG", 2026, 123) == "SG-2026-000123"
    assert receipt_number("SG", 2027, 1_234_567) == "SG-2027-1234567"


def test_a_shift_totals_each_method_and_nets_the_reversals_to_the_fen() -> None:
    cash_a = _receipt(1, 10_001, PaymentMethod.CASH)
    cash_b = _receipt(2, 99, PaymentMethod.CASH)
    pos = _receipt(3, 50_000, PaymentMethod.POS)
    report = shift_report(
        cashier="王收款",
        site_id=1,
        start=START,
        end=START + timedelta(days=1),
        receipts=[pos, cash_b, cash_a],
        reversals=[_reversed(cash_b)],
    )
    assert [r.id for r in report.receipts] == [1, 2, 3]  # in the order they were taken
    assert report.taken == {PaymentMethod.CASH: Money(10_100), PaymentMethod.POS: Money(50_000)}
    assert report.reversed == {PaymentMethod.CASH: Money(99), PaymentMethod.POS: Money(0)}
    assert report.net == {PaymentMethod.CASH: Money(10_001), PaymentMethod.POS: Money(50_000)}
    assert (report.total_taken, report.total_reversed) == (Money(60_100), Money(99))
    assert report.total_net == Money(60_001)


def test_an_empty_shift_has_every_method_at_zero() -> None:
    report = shift_report(
        cashier=None, site_id=None, start=START, end=START, receipts=[], reversals=[]
    )
    assert report.taken == dict.fromkeys(PaymentMethod, Money(0))
    assert report.total_net == Money(0)


@pytest.mark.parametrize("reason", ["", "   ", "\n\t", "x" * 501])
def test_a_blank_or_overlong_reason_is_refused(reason: str) -> None:
    with pytest.raises(InvalidInput):
        check_reason(reason)


def test_a_reason_is_kept_without_its_surrounding_blanks() -> None:
    assert check_reason("  收错账户 \n") == "收错账户"


def test_every_payment_method_has_words_on_the_printed_pages() -> None:
    assert all(f"method.{m}" in WORDS for m in PaymentMethod)
