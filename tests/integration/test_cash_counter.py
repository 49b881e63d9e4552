"""The cash counter in the database, on SQLite and PostgreSQL: cash and POS payments with
numbered receipts, reversals with a reason and an audit trail, shift totals.

The fixed clock starts on Sunday 2026-11-01 08:00 in Shanghai (00:00 UTC).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from meterpay.control import service as control
from meterpay.control.model import SupplyState
from meterpay.db.schema import audit_log, supply_events
from meterpay.kernel.clock import FixedClock
from meterpay.kernel.errors import IdempotencyConflict, InvalidInput, NotFound
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger import cash
from meterpay.ledger import repository as ledger_repo
from meterpay.ledger import service as ledger
from meterpay.ledger.cash_model import AlreadyReversed, Issued, PaymentMethod
from meterpay.ledger.model import TransferKind
from meterpay.metering.ingest import ingest_readings
from meterpay.metering.meters import ReadingIn, ReadingSource
from meterpay.notify import service as notify
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.sites.model import UnitKind
from meterpay.tariffs import service as tariffs
from meterpay.tariffs.components import TariffComponents
from tests.integration.builders import ACTOR, Home, a_home

CASHIER = "王收款"
SUPERVISOR = "李主管"


def _pay(
    rt: Runtime,
    account_id: int,
    yuan: str,
    key: str,
    method: PaymentMethod = PaymentMethod.CASH,
    *,
    cashier: str = CASHIER,
) -> Issued:
    return cash.take_payment(
        rt,
        account_id=account_id,
        amount=Money.from_yuan(yuan),
        method=method,
        idempotency_key=key,
        cashier=cashier,
        note="柜台",
    )


def _advance(rt: Runtime, delta: timedelta) -> None:
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    clock.advance(delta)


def _audit(rt: Runtime, action: str) -> list[Any]:
    with rt.db.read() as conn:
        query = select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.id)
        return list(conn.execute(query).mappings())


def _second_account(rt: Runtime, home: Home, code: str = "1-0102") -> int:
    unit = sites.create_unit(
        rt, site_id=home.site.id, code=code, name=code, kind=UnitKind.HOME, actor=ACTOR
    )
    account = sites.open_account(
        rt, unit_id=unit.id, utility=home.account.utility, tariff_id=home.tariff_id, actor=ACTOR
    )
    return account.id


def test_cash_and_pos_payments_get_receipts_numbered_in_order_per_site(rt: Runtime) -> None:
    """Each payment gets the site's next number of the year; another site counts from 1;
    the method, cashier and balance after are on the receipt; the ledger stays sound."""
    home = a_home(rt)
    other = a_home(rt, code="EAST")
    first = _pay(rt, home.account.id, "100.00", "R-1")
    second = _pay(rt, home.account.id, "250.50", "R-2", PaymentMethod.POS)
    elsewhere = _pay(rt, other.account.id, "10.00", "E-1")
    assert [first.receipt.receipt_no, second.receipt.receipt_no] == [
        "HOME-2026-000001",
        "HOME-2026-000002",
    ]
    assert elsewhere.receipt.receipt_no == "EAST-2026-000001"
    assert second.receipt.method is PaymentMethod.POS
    assert second.receipt.cashier == CASHIER
    assert second.receipt.balance_after == Money.from_yuan("350.50")
    assert second.receipt.amount_words == "贰佰伍拾元伍角"
    assert second.receipt.transfer_key == "topup:cash:R-2"
    assert not first.duplicate and first.reversal is None
    assert ledger.account_balance(rt, home.account.id) == Money.from_yuan("350.50")
    assert ledger.verify_ledger(rt) == []
    [audited] = [a for a in _audit(rt, "counter.payment") if a["object_id"] == "HOME-2026-000002"]
    assert audited["actor"] == CASHIER and audited["after"]["method"] == "pos"


def test_a_receipt_number_takes_the_year_of_the_sites_calendar(rt: Runtime) -> None:
    """At 00:30 on New Year's Day in Shanghai it is still 2026 in UTC: the number says 2027."""
    home = a_home(rt)
    assert _pay(rt, home.account.id, "1.00", "R-1").receipt.receipt_no == "HOME-2026-000001"
    _advance(rt, datetime(2026, 12, 31, 16, 30, tzinfo=UTC) - rt.clock.now())
    assert _pay(rt, home.account.id, "1.00", "R-2").receipt.receipt_no == "HOME-2027-000001"


def test_a_repeated_idempotency_key_hands_back_the_same_receipt(rt: Runtime) -> None:
    """The same request twice moves the money once and prints the same receipt; the key
    with another method, amount or account is refused."""
    home = a_home(rt)
    first = _pay(rt, home.account.id, "100.00", "R-1")
    again = _pay(rt, home.account.id, "100.00", "R-1")
    assert again.duplicate and again.receipt == first.receipt
    assert ledger.account_balance(rt, home.account.id) == Money.from_yuan("100.00")
    with pytest.raises(IdempotencyConflict):
        _pay(rt, home.account.id, "100.00", "R-1", PaymentMethod.POS)
    with pytest.raises(IdempotencyConflict):
        _pay(rt, home.account.id, "99.00", "R-1")
    with pytest.raises(IdempotencyConflict):
        _pay(rt, _second_account(rt, home), "100.00", "R-1")
    assert _pay(rt, home.account.id, "1.00", "R-2").receipt.seq == 2  # no number was lost


def test_a_payment_refused_takes_no_number(rt: Runtime) -> None:
    """A bad method or amount changes nothing: the next receipt is still number 1."""
    home = a_home(rt)
    with pytest.raises(InvalidInput):
        _pay(rt, home.account.id, "10.00", "R-1", "cheque")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        _pay(rt, home.account.id, "0.00", "R-1")
    assert _pay(rt, home.account.id, "10.00", "R-1").receipt.seq == 1


def test_a_reversal_mirrors_the_payment_and_is_audited_with_its_reason(rt: Runtime) -> None:
    """The reversing transfer swaps the sides of the top-up; the receipt shows it; the
    audit log has who, why, and the balance before and after; the ledger stays sound."""
    home = a_home(rt)
    _pay(rt, home.account.id, "30.00", "R-1")
    paid = _pay(rt, home.account.id, "100.00", "R-2", PaymentMethod.POS)
    _advance(rt, timedelta(minutes=10))
    undone = cash.reverse(
        rt, receipt_no=paid.receipt.receipt_no, reason="  收错账户  ", by=SUPERVISOR
    )
    assert undone.reversal is not None
    assert undone.reversal.reason == "收错账户"
    assert undone.reversal.reversed_by == SUPERVISOR
    assert undone.reversal.balance_after == Money.from_yuan("30.00")
    assert undone.reversal.at == rt.clock.now()
    with rt.db.read() as conn:
        original = ledger_repo.transfer_by_key(conn, "topup:cash:R-2")
        mirror = ledger_repo.transfer_by_key(conn, "reversal:topup:cash:R-2")
    assert mirror.kind is TransferKind.REVERSAL and mirror.reverses_key == "topup:cash:R-2"
    assert (mirror.debit_account_id, mirror.credit_account_id) == (
        original.credit_account_id,
        original.debit_account_id,
    )
    assert mirror.amount_fen == 10_000 and mirror.actor == SUPERVISOR
    assert "收错账户" in mirror.memo
    assert cash.receipt(rt, paid.receipt.receipt_no).reversal == undone.reversal
    [entry] = _audit(rt, "counter.reverse")
    assert entry["actor"] == SUPERVISOR and entry["reason"] == "收错账户"
    assert entry["object_id"] == paid.receipt.receipt_no
    assert entry["before"] == {
        "reversed": False,
        "balance": "130.00",
        "amount": "100.00",
        "method": "pos",
        "key": "topup:cash:R-2",
    }
    assert entry["after"]["reversed"] is True and entry["after"]["balance"] == "30.00"
    assert ledger.account_balance(rt, home.account.id) == Money.from_yuan("30.00")
    assert ledger.verify_ledger(rt) == []


def test_a_receipt_is_reversed_once_and_only_with_a_reason(rt: Runtime) -> None:
    """A blank reason changes nothing; the second reversal is refused; a receipt can
    also be named by its transfer's key; an unknown one is not found."""
    home = a_home(rt)
    paid = _pay(rt, home.account.id, "50.00", "R-1")
    no = paid.receipt.receipt_no
    for blank in ("", "   "):
        with pytest.raises(InvalidInput):
            cash.reverse(rt, receipt_no=no, reason=blank, by=SUPERVISOR)
    assert cash.receipt(rt, no).reversal is None
    with pytest.raises(InvalidInput):
        cash.reverse(rt, reason="两个都给", by=SUPERVISOR, receipt_no=no, transfer_key="x")
    cash.reverse(rt, transfer_key="topup:cash:R-1", reason="重复收款", by=SUPERVISOR)
    with pytest.raises(AlreadyReversed):
        cash.reverse(rt, receipt_no=no, reason="again", by=SUPERVISOR)
    with pytest.raises(NotFound):
        cash.reverse(rt, receipt_no="HOME-2026-999999", reason="x", by=SUPERVISOR)
    with pytest.raises(NotFound):
        cash.reverse(rt, transfer_key="topup:cash:nope", reason="x", by=SUPERVISOR)
    assert ledger.account_balance(rt, home.account.id) == Money(0)
    assert len(_audit(rt, "counter.reverse")) == 1
    assert ledger.verify_ledger(rt) == []


def test_a_reversal_can_put_the_account_into_arrears_like_a_charge(rt: Runtime) -> None:
    """100.00 paid, 80 kWh at 1.00 used, then the payment reversed: -80.00 is in arrears,
    settled in the reversal's own transaction, with the arrears notice to the owner."""
    home = a_home(rt, price="1.0000")
    owner = sites.create_customer(
        rt, site_id=home.site.id, name="张三", phone="13800000000", actor=ACTOR
    )
    sites.update_account(rt, home.account.id, customer_id=owner.id, actor=ACTOR)
    paid = _pay(rt, home.account.id, "100.00", "R-1")
    _advance(rt, timedelta(hours=5))
    reading = ReadingIn(home.meter.id, rt.clock.now(), Decimal(80), ReadingSource.MANUAL)
    ingest_readings(rt, [reading], actor=ACTOR)
    assert ledger.account_balance(rt, home.account.id) == Money.from_yuan("20.00")
    assert control.supply_view(rt, home.account.id).account.state is SupplyState.LOW
    cash.reverse(rt, receipt_no=paid.receipt.receipt_no, reason="假币", by=SUPERVISOR)
    assert ledger.account_balance(rt, home.account.id) == Money.from_yuan("-80.00")
    assert control.supply_view(rt, home.account.id).account.state is SupplyState.IN_ARREARS
    with rt.db.read() as conn:
        causes = conn.execute(
            select(supply_events.c.cause).where(supply_events.c.account_id == home.account.id)
        ).scalars()
        assert "reversal:topup:cash:R-1" in set(causes)
    topics = {m.topic.value for m in notify.notifications(rt, account_id=home.account.id)}
    assert "arrears_notice" in topics
    assert ledger.verify_ledger(rt) == []


def test_reversing_a_payment_also_gives_back_its_top_up_fee(rt: Runtime) -> None:
    """Under a tariff with a 1 % top-up fee, 100.00 left 99.00; the reversal undoes both
    transfers, so the wallet is back at zero and the fee revenue with it."""
    site = sites.create_site(rt, code="FEE", name="收费小区", actor=ACTOR)
    tariff = tariffs.create_tariff(
        rt,
        site_id=site.id,
        code="res",
        name="居民",
        utility=Utility.ELECTRICITY,
        components=TariffComponents.from_dict(
            {"energy": {"unit_price": "0.5"}, "topup_fee": {"percent": "1"}}
        ),
        effective_from=rt.clock.now() - timedelta(days=1),
        actor=ACTOR,
    )
    unit = sites.create_unit(
        rt, site_id=site.id, code="1-0101", name="101", kind=UnitKind.HOME, actor=ACTOR
    )
    account = sites.open_account(
        rt, unit_id=unit.id, utility=Utility.ELECTRICITY, tariff_id=tariff.id, actor=ACTOR
    )
    paid = _pay(rt, account.id, "100.00", "R-1")
    assert paid.receipt.balance_after == Money.from_yuan("99.00")
    undone = cash.reverse(rt, receipt_no=paid.receipt.receipt_no, reason="退款", by=SUPERVISOR)
    assert undone.reversal is not None and undone.reversal.balance_after == Money(0)
    with rt.db.read() as conn:
        fee_back = ledger_repo.transfer_by_key(conn, "reversal:topup:cash:R-1:fee")
    assert fee_back.reverses_key == "topup:cash:R-1:fee" and fee_back.amount_fen == 100
    assert _audit(rt, "counter.reverse")[0]["after"]["transfers"] == 2
    assert ledger.verify_ledger(rt) == []


def test_a_shift_report_totals_each_method_to_the_fen(rt: Runtime) -> None:
    """A cashier's receipts in the period, and the reversals of their receipts made in
    it, per method; another cashier's payments and those outside the period are not."""
    home = a_home(rt)
    account = home.account.id
    _pay(rt, account, "5.00", "before")  # 08:00, before the shift
    _advance(rt, timedelta(hours=1))
    start = rt.clock.now()
    _pay(rt, account, "100.01", "A-1")
    _pay(rt, account, "250.50", "A-2", PaymentMethod.POS)
    slip = _pay(rt, account, "0.99", "A-3")
    _pay(rt, account, "10.00", "B-1", cashier="赵收款")
    _advance(rt, timedelta(minutes=30))
    cash.reverse(rt, receipt_no=slip.receipt.receipt_no, reason="找零错误", by=SUPERVISOR)
    end = rt.clock.now() + timedelta(seconds=1)
    _advance(rt, timedelta(hours=1))
    _pay(rt, account, "7.00", "after")
    report = cash.shift_report(rt, cashier=CASHIER, start=start, end=end)
    assert [r.transfer_key for r in report.receipts] == [
        "topup:cash:A-1",
        "topup:cash:A-2",
        "topup:cash:A-3",
    ]
    assert report.taken == {PaymentMethod.CASH: Money(10_100), PaymentMethod.POS: Money(25_050)}
    assert report.reversed == {PaymentMethod.CASH: Money(99), PaymentMethod.POS: Money(0)}
    assert report.net == {PaymentMethod.CASH: Money(10_001), PaymentMethod.POS: Money(25_050)}
    assert report.total_net == Money(35_051)
    [line] = report.reversals
    assert line.reversal.reason == "找零错误" and line.reversal.reversed_by == SUPERVISOR
    everyone = cash.shift_report(rt, cashier=None, start=start, end=end, site_id=home.site.id)
    assert everyone.total_taken == Money(36_150)
    day = cash.day_report(rt, site_id=home.site.id, day=date(2026, 11, 1))
    assert day is not None and day.report.total_taken == Money(37_350)
    assert day.report.total_net == Money(37_251)
    nothing = cash.day_report(rt, site_id=home.site.id, day=date(2026, 11, 2))
    assert nothing is not None and nothing.report.receipts == ()
    with pytest.raises(InvalidInput):
        cash.shift_report(rt, cashier=CASHIER, start=end, end=start)


# --- on PostgreSQL, from several threads ----------------------------------------------------


def _in_threads(calls: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        try:
            return call()
        except Exception as exc:  # the outcome is what the test looks at
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_two_cashiers_at_once_never_share_or_skip_a_receipt_number(pg_rt: Runtime) -> None:
    """Two threads, twenty payments each, into two accounts of one site: the numbers are
    exactly 1 to 40, each once, and the ledger holds every fen."""
    rt = pg_rt
    home = a_home(rt)
    accounts = (home.account.id, _second_account(rt, home))

    def cashier(n: int) -> Callable[[], list[Issued]]:
        return lambda: [
            _pay(rt, accounts[n], "1.01", f"T{n}-{i}", cashier=f"收款员{n}") for i in range(20)
        ]

    results = _in_threads([cashier(0), cashier(1)])
    issued = [i for batch in results for i in batch]
    assert sorted(i.receipt.seq for i in issued) == list(range(1, 41))
    assert len({i.receipt.receipt_no for i in issued}) == 40
    assert ledger.account_balance(rt, accounts[0]) == Money(20 * 101)
    assert ledger.verify_ledger(rt) == []


def test_the_same_payment_sent_twice_at_once_is_taken_once(pg_rt: Runtime) -> None:
    """Two threads with one idempotency key: one receipt, one transfer, one number."""
    rt = pg_rt
    home = a_home(rt)
    first, second = _in_threads([lambda: _pay(rt, home.account.id, "9.99", "R-1")] * 2)
    assert first.receipt == second.receipt and {first.duplicate, second.duplicate} == {
        True,
        False,
    }
    assert _pay(rt, home.account.id, "1.00", "R-2").receipt.seq == 2
    assert ledger.account_balance(rt, home.account.id) == Money(1099)


def test_two_reversals_of_one_receipt_at_once_reverse_it_once(pg_rt: Runtime) -> None:
    rt = pg_rt
    home = a_home(rt)
    no = _pay(rt, home.account.id, "20.00", "R-1").receipt.receipt_no
    outcomes = _in_threads(
        [lambda: cash.reverse(rt, receipt_no=no, reason="重复", by=SUPERVISOR)] * 2
    )
    assert sum(isinstance(o, Issued) for o in outcomes) == 1
    assert sum(isinstance(o, AlreadyReversed) for o in outcomes) == 1
    assert ledger.account_balance(rt, home.account.id) == Money(0)
    assert ledger.verify_ledger(rt) == []
