"""Readings arrive, are priced at a flat tariff and deducted exactly once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text

from meterpay.kernel.errors import Conflict, InvalidInput
from meterpay.kernel.money import Money
from meterpay.ledger import service as ledger
from meterpay.metering import service as metering
from meterpay.metering.ingest import ingest_readings
from meterpay.metering.meters import ReadingIn, ReadingSource
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.tariffs import service as tariffs
from tests.integration.builders import a_home


def _reading(meter_id: int, rt: Runtime, hours: int, total: str) -> ReadingIn:
    return ReadingIn(
        meter_id, rt.clock.now() + timedelta(hours=hours), Decimal(total), ReadingSource.HTTP
    )


def test_a_reading_is_priced_and_deducted_from_the_wallet(rt: Runtime) -> None:
    """10 kWh at 0.4883 costs 4.88 and leaves the topped-up wallet at 95.12."""
    home = a_home(rt)
    ledger.cash_top_up(
        rt,
        account_id=home.account.id,
        amount=Money.from_yuan("100"),
        idempotency_key="r-1",
        cashier="cashier",
    )
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


def test_backwards_spike_and_future_readings_are_kept_but_never_billed(rt: Runtime) -> None:
    """Suspect readings are stored with their flag, charge nothing and leave the cursor alone."""
    home = a_home(rt)
    rt.clock.advance(timedelta(hours=10))  # type: ignore[attr-defined]
    first = ingest_readings(rt, [_reading(home.meter.id, rt, -9, "10")], actor="test")
    assert first.counts == {"received": 1, "valid": 1}
    suspects = [
        _reading(home.meter.id, rt, -8, "9"),  # backwards
        _reading(home.meter.id, rt, -7, "5000"),  # 4990 kWh in 2 h: beyond 20 kWh/h
        _reading(home.meter.id, rt, 2, "11"),  # two hours in the future
    ]
    result = ingest_readings(rt, suspects, actor="test")
    assert [(o.quality, o.flags) for o in result.outcomes] == [
        ("suspect", ("backwards",)),
        ("suspect", ("spike",)),
        ("suspect", ("future",)),
    ]
    assert result.charged_fen == 0
    after = ingest_readings(rt, [_reading(home.meter.id, rt, -1, "20")], actor="test")
    assert after.outcomes[0].consumption == "10.0000"


def test_a_register_rollover_bills_the_wrapped_consumption(rt: Runtime) -> None:
    """99995 -> 3 on a 100000 register is 8 kWh, not a backwards reading."""
    home = a_home(rt, price="1.0000", max_rate_per_hour=None)
    rt.clock.advance(timedelta(hours=3))  # type: ignore[attr-defined]
    ingest_readings(rt, [_reading(home.meter.id, rt, -2, "99995")], actor="test")
    balance = ledger.account_balance(rt, home.account.id)
    result = ingest_readings(rt, [_reading(home.meter.id, rt, -1, "3")], actor="test")
    assert result.outcomes[0].flags == ("rollover",)
    assert ledger.account_balance(rt, home.account.id) == balance - Money.from_yuan("8.00")


def test_a_multiplier_scales_consumption(rt: Runtime) -> None:
    """A CT meter with 倍率 30 bills 30 times its register difference."""
    home = a_home(rt, price="1.0000", multiplier=30, max_rate_per_hour=None)
    rt.clock.advance(timedelta(hours=2))  # type: ignore[attr-defined]
    result = ingest_readings(rt, [_reading(home.meter.id, rt, -1, "1.5")], actor="test")
    assert result.outcomes[0].consumption == "45.0000"
    assert result.charged_fen == 4500


def test_a_price_change_splits_the_interval_at_its_effective_time(rt: Runtime) -> None:
    """Half the interval at the old price, half at the new one."""
    home = a_home(rt, price="1.0000", max_rate_per_hour=None)
    tariffs.add_version(
        rt,
        home.tariff_id,
        unit_price="2.0000",
        effective_from=rt.clock.now() + timedelta(hours=1),
        actor="test",
    )
    rt.clock.advance(timedelta(hours=2))  # type: ignore[attr-defined]
    result = ingest_readings(rt, [_reading(home.meter.id, rt, 0, "10")], actor="test")
    assert result.charged_fen == 1500  # 5 kWh at 1.00 + 5 kWh at 2.00


def test_charges_for_a_run_of_readings_sum_to_the_price_of_the_total(rt: Runtime) -> None:
    """Thirty 0.0333 kWh readings at 0.4883 cost round(0.999 x 0.4883) = 0.49 in all."""
    home = a_home(rt)
    rt.clock.advance(timedelta(hours=40))  # type: ignore[attr-defined]
    batch = [
        _reading(home.meter.id, rt, -39 + i, str(Decimal("0.0333") * (i + 1))) for i in range(30)
    ]
    result = ingest_readings(rt, batch, actor="test")
    assert result.charged_fen == 49
    assert ledger.account_balance(rt, home.account.id) == -Money(49)


def test_transfers_refuse_updates_and_deletes(rt: Runtime) -> None:
    """The ledger is append-only in the database itself, on every backend."""
    home = a_home(rt)
    ledger.cash_top_up(
        rt,
        account_id=home.account.id,
        amount=Money.from_yuan("1"),
        idempotency_key="k",
        cashier="c",
    )
    for statement in ("UPDATE transfers SET amount_fen = 2", "DELETE FROM transfers"):
        with pytest.raises(Exception, match="append-only"), rt.db.write() as conn:
            conn.execute(text(statement))


def test_a_reading_in_a_month_without_partition_gets_one_on_demand(rt: Runtime) -> None:
    """Readings are partitioned by month on PostgreSQL; a new month's partition appears."""
    home = a_home(rt)
    far = ReadingIn(
        home.meter.id, rt.clock.now() + timedelta(days=400), Decimal("1"), ReadingSource.HTTP
    )
    result = ingest_readings(rt, [far], actor="test")
    assert result.outcomes[0].stored
    assert result.outcomes[0].flags == ("future",)
    if rt.db.is_postgres:
        with rt.db.read() as conn:
            parts = set(
                conn.execute(
                    text(
                        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'readings'"
                    )
                ).scalars()
            )
        assert "readings_202712" in parts
        assert {"readings_202611", "readings_202612", "readings_202701"} <= parts


def test_meter_replacement_bills_both_meters_and_ignores_the_old_one_afterwards(
    rt: Runtime,
) -> None:
    """换表: old final − old last, then new reading − new initial; old readings stop billing."""
    home = a_home(rt, price="1.0000", max_rate_per_hour=None)
    rt.clock.advance(timedelta(hours=10))  # type: ignore[attr-defined]
    ingest_readings(rt, [_reading(home.meter.id, rt, -9, "100")], actor="test")
    new = metering.replace_meter(
        rt,
        home.meter.id,
        final_total=Decimal("130"),
        replaced_at=rt.clock.now() - timedelta(hours=5),
        new_address="000000000202",
        new_initial_total=Decimal("2"),
        reason="表计损坏",
        actor="test",
    )
    ingest_readings(rt, [_reading(new.id, rt, -1, "12")], actor="test")
    stale = ingest_readings(rt, [_reading(home.meter.id, rt, -1, "140")], actor="test")
    assert stale.outcomes[0].flags == ("meter_removed",)
    assert ledger.account_balance(rt, home.account.id) == -Money.from_yuan("140")


def test_a_replacement_with_a_bad_final_reading_changes_nothing_and_can_be_retried(
    rt: Runtime,
) -> None:
    """A backwards final reading refuses the whole 换表; the corrected one then succeeds."""
    home = a_home(rt, price="1.0000", max_rate_per_hour=None)
    rt.clock.advance(timedelta(hours=10))  # type: ignore[attr-defined]
    ingest_readings(rt, [_reading(home.meter.id, rt, -9, "100")], actor="test")
    balance = ledger.account_balance(rt, home.account.id)
    at = rt.clock.now() - timedelta(hours=5)
    with pytest.raises(InvalidInput, match="nothing was changed"):
        metering.replace_meter(
            rt,
            home.meter.id,
            final_total=Decimal("90"),
            replaced_at=at,
            new_address="000000000202",
            new_initial_total=Decimal(0),
            reason="表计损坏",
            actor="test",
        )
    assert ledger.account_balance(rt, home.account.id) == balance
    assert metering.get_meter(rt, home.meter.id).status.value == "active"
    metering.replace_meter(
        rt,
        home.meter.id,
        final_total=Decimal("110"),
        replaced_at=at,
        new_address="000000000202",
        new_initial_total=Decimal(0),
        reason="表计损坏",
        actor="test",
    )
    assert ledger.account_balance(rt, home.account.id) == balance - Money.from_yuan("10")


def test_a_replacement_whose_new_meter_clashes_bills_nothing(rt: Runtime) -> None:
    """If the new meter cannot be registered, the old meter's final reading is not billed."""
    home = a_home(rt, price="1.0000", max_rate_per_hour=None)
    rt.clock.advance(timedelta(hours=10))  # type: ignore[attr-defined]
    other = metering.register_meter(
        rt,
        unit_id=home.meter.unit_id,
        utility=home.meter.utility,
        protocol=home.meter.protocol,
        address="000000000999",
        actor="test",
    )
    balance = ledger.account_balance(rt, home.account.id)
    with pytest.raises(Conflict):
        metering.replace_meter(
            rt,
            home.meter.id,
            final_total=Decimal("50"),
            replaced_at=rt.clock.now(),
            new_address=other.address,
            new_initial_total=Decimal(0),
            reason="x",
            actor="test",
        )
    assert ledger.account_balance(rt, home.account.id) == balance
    assert len(metering.recent_readings(rt, home.meter.id)) == 1  # the install baseline only


def test_consumption_before_any_tariff_is_kept_and_billed_once_a_price_exists(
    rt: Runtime,
) -> None:
    """No price in force: the reading is flagged no_tariff, and nothing is lost later."""
    home = a_home(rt, price="1.0000", max_rate_per_hour=None)
    late_tariff = tariffs.create_flat_tariff(
        rt,
        site_id=home.site.id,
        code="late",
        name="晚生效",
        utility=home.meter.utility,
        unit_price="2.0000",
        effective_from=rt.clock.now() + timedelta(hours=1),
        actor="test",
    )
    sites.update_account(rt, home.account.id, tariff_id=late_tariff.id, actor="test")
    rt.clock.advance(timedelta(hours=4))  # type: ignore[attr-defined]
    first = ingest_readings(rt, [_reading(home.meter.id, rt, -2, "10")], actor="test")
    assert first.outcomes[0].flags == ("no_tariff",)
    tariffs.add_version(
        rt,
        late_tariff.id,
        unit_price="3.0000",
        effective_from=rt.clock.now() - timedelta(days=1),
        actor="test",
    )
    second = ingest_readings(rt, [_reading(home.meter.id, rt, -1, "12")], actor="test")
    assert second.outcomes[0].consumption == "12.0000"
    assert second.charged_fen > 0


def test_a_gap_and_a_skewed_meter_clock_are_flagged_and_billed_as_usual(rt: Runtime) -> None:
    """A reading after six hours away bills its whole advance; a clock 10 minutes off is noted."""
    home = a_home(rt)
    rt.clock.advance(timedelta(hours=7))  # type: ignore[attr-defined]
    now = rt.clock.now()
    skewed = ReadingIn(
        home.meter.id,
        now,
        Decimal("12"),
        ReadingSource.DTU,
        meter_time=now - timedelta(minutes=10),
    )
    result = ingest_readings(rt, [_reading(home.meter.id, rt, -1, "10"), skewed], actor="test")
    first, second = result.outcomes
    assert (first.quality, first.flags) == ("valid", ("gap",))
    assert (second.quality, second.flags) == ("valid", ("clock_skew",))
    assert result.charged_fen == round(12 * 4883 / 100)


def test_a_second_reading_at_a_stored_time_with_another_total_is_flagged_not_billed(
    rt: Runtime,
) -> None:
    """The stored reading stands; a different total for the same instant is reported."""
    home = a_home(rt)
    rt.clock.advance(timedelta(hours=2))  # type: ignore[attr-defined]
    first = ingest_readings(rt, [_reading(home.meter.id, rt, -1, "10")], actor="test")
    again = ingest_readings(
        rt,
        [_reading(home.meter.id, rt, -1, "10"), _reading(home.meter.id, rt, -1, "12")],
        actor="test",
    )
    assert first.counts == {"received": 1, "valid": 1}
    assert [(o.quality, o.flags) for o in again.outcomes] == [
        ("duplicate", ()),
        ("duplicate", ("conflict",)),
    ]
    assert again.charged_fen == 0
    assert metering.get_meter(rt, home.meter.id).last_total == Decimal("10.0000")
