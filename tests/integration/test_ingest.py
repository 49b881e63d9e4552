"""Readings arrive, are priced at a flat tariff and deducted exactly once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from meterpay.kernel.money import Money
from meterpay.ledger import service as ledger
from meterpay.metering.ingest import ingest_readings
from meterpay.metering.meters import ReadingIn, ReadingSource
from meterpay.runtime import Runtime
from tests.integration.builders import a_home


def _reading(meter_id: int, rt: Runtime, hours: int, total: str) -> ReadingIn:
    return ReadingIn(meter_id, rt.clock.now() + timedelta(hours=hours), Decimal(total),
                     ReadingSource.HTTP)


def test_a_reading_is_priced_and_deducted_from_the_wallet(rt: Runtime) -> None:
    """10 kWh at 0.4883 costs 4.88 and leaves the topped-up wallet at 95.12."""
    home = a_home(rt)
    ledger.cash_top_up(rt, account_id=home.account.id, amount=Money.from_yuan("100"),
                       idempotency_key="r-1", cashier="cashier")
    rt.clock.advance(timedelta(hours=2))  # type: ignore[attr-defined]
    result = ingest_readings(rt, [_reading(home.meter.id, rt, -1, "10")], actor="test")
    assert result.counts == {"received": 1, "valid": 1}
    assert result.charged_fen == 488
    assert ledger.account_balance(rt, home.account.id) == Money.from_yuan("95.12")
    assert ledger.verify_ledger(rt) == []


def test_posting_the_same_batch_twice_changes_nothing(rt: Runtime) -> None:
    """The second delivery of a batch is all duplicates and moves no money."""
    home = a_home(rt)
    rt.clock.advance(timedelta(hours=5))  # type: ignore[attr-defined]
    batch = [_reading(home.meter.id, rt, -h, str(50 - 10 * h)) for h in range(4, 0, -1)]
    first = ingest_readings(rt, batch, actor="test")
    balance = ledger.account_balance(rt, home.account.id)
    second = ingest_readings(rt, batch, actor="test")
    assert first.counts["valid"] == 4
    assert second.counts == {"received": 4, "duplicate": 4}
    assert ledger.account_balance(rt, home.account.id) == balance
    assert balance == -Money(round(40 * 4883 / 100))
