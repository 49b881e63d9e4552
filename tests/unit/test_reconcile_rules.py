"""Matching a day's statement to our orders: every payment and every credited order ends
in exactly one finding."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from meterpay.payments.model import OrderState
from meterpay.payments.provider import Statement, StatementKind, StatementRow
from meterpay.payments.reconcile_rules import Finding, OurOrder, match

DAY = date(2026, 11, 26)
AT = datetime(2026, 11, 26, 3, tzinfo=UTC)


def _row(no: str, fen: int, kind: StatementKind = StatementKind.PAYMENT) -> StatementRow:
    return StatementRow(no, f"T{no}", kind, fen, fen // 100, AT)


def _ours(no: str, fen: int, state: OrderState = OrderState.CREDITED) -> OurOrder:
    return OurOrder(no, fen, state, f"T{no}")


def test_each_kind_of_difference_is_found_once() -> None:
    statement = Statement(
        DAY,
        [
            _row("A", 10_000),  # matched
            _row("B", 5_000),  # paid, not credited
            _row("D", 2_000),  # amounts differ
            _row("E", 700),  # not ours
            _row("A", 3_000, StatementKind.REFUND),
        ],
        total_fen=14_700,
        fee_total_fen=170,
    )
    paid = [_ours("A", 10_000), _ours("C", 4_000), _ours("D", 2_500)]
    known = [_ours("B", 5_000, OrderState.CLOSED)]
    found = match(statement, paid, known)
    by = {i.out_trade_no: i.finding for i in found.items}
    assert by == {
        "A": Finding.MATCHED,
        "B": Finding.PAID_NOT_CREDITED,
        "C": Finding.CREDITED_NOT_PAID,
        "D": Finding.AMOUNT_MISMATCH,
        "E": Finding.NOT_OURS,
    }
    assert found.paid_total_fen == 17_700 and found.refund_total_fen == 3_000
    assert found.credited_total_fen == 16_500
    assert found.fee_total_fen == 170 and not found.clean


@given(
    st.dictionaries(
        st.text("0123456789", min_size=1, max_size=6),
        st.tuples(st.integers(1, 10**7), st.booleans(), st.booleans(), st.booleans()),
        max_size=40,
    )
)
def test_every_payment_and_every_credited_order_ends_in_exactly_one_finding(
    cases: dict[str, tuple[int, bool, bool, bool]],
) -> None:
    rows, paid = [], []
    for no, (fen, on_statement, ours, credited) in cases.items():
        if on_statement:
            rows.append(_row(no, fen))
        if ours:
            paid.append(_ours(no, fen, OrderState.CREDITED if credited else OrderState.CREATED))
    found = match(Statement(DAY, rows), paid, [])
    numbers = [i.out_trade_no for i in found.items]
    assert len(numbers) == len(set(numbers))
    expected = {r.out_trade_no for r in rows} | {
        o.out_trade_no for o in paid if o.state is OrderState.CREDITED
    }
    assert set(numbers) == expected
    assert found.clean == all(
        no in {r.out_trade_no for r in rows}
        and any(o.out_trade_no == no and o.state is OrderState.CREDITED for o in paid)
        for no in expected
    )
