"""Readings priced by real tariffs: tiers, surcharges and versions, as the quote predicts."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from meterpay.billing import fees
from meterpay.billing.repository import TierStateMoved, save_tier_states
from meterpay.db.schema import accounts, ledger_accounts
from meterpay.kernel.errors import Conflict
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger import service as ledger
from meterpay.metering import service as metering
from meterpay.metering.ingest import ingest_readings
from meterpay.metering.meters import Protocol, ReadingIn, ReadingSource
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.sites.model import UnitKind
from meterpay.tariffs import service as tariffs
from meterpay.tariffs.components import TariffComponents, topup_fee_warnings
from meterpay.tariffs.reference import BEIJING_POWER as BEIJING
from meterpay.tariffs.reference import BEIJING_WATER, SHANGHAI_TOU
from meterpay.tariffs.rules import TierState, Usage

ACTOR = "test"


def _home(rt: Runtime, utility: Utility, components: dict[str, object]) -> tuple[int, int, int]:
    """A site with the tariff in force since 2026-01-01 and one metered account."""
    site = sites.create_site(rt, code="TIER", name="阶梯小区", actor=ACTOR)
    tariff = tariffs.create_tariff(
        rt,
        site_id=site.id,
        code="res",
        name="居民",
        utility=utility,
        components=TariffComponents.from_dict(components),
        effective_from=datetime(2025, 12, 31, 16, tzinfo=UTC),
        actor=ACTOR,
    )
    unit = sites.create_unit(
        rt, site_id=site.id, code="1-0101", name="101", kind=UnitKind.HOME, actor=ACTOR
    )
    account = sites.open_account(
        rt, unit_id=unit.id, utility=utility, tariff_id=tariff.id, actor=ACTOR
    )
    meter = metering.register_meter(
        rt,
        unit_id=unit.id,
        utility=utility,
        protocol=Protocol.DLT645_2007,
        address="000000000101",
        account_id=account.id,
        installed_at=datetime(2025, 12, 31, 16, tzinfo=UTC),
        actor=ACTOR,
    )
    return tariff.id, account.id, meter.id


def _readings(meter_id: int, totals: list[str]) -> list[ReadingIn]:
    start = datetime(2026, 1, 31, 16, tzinfo=UTC)
    return [
        ReadingIn(meter_id, start + timedelta(days=30 * i), Decimal(t), ReadingSource.HTTP)
        for i, t in enumerate(totals)
    ]


def test_readings_across_a_tier_boundary_are_charged_as_the_quote_predicts(rt: Runtime) -> None:
    """2000 + 1000 kWh in a year cross 2880: 1470.90 元, the same as the quote."""
    tariff_id, account_id, meter_id = _home(rt, Utility.ELECTRICITY, BEIJING)
    ingest_readings(rt, _readings(meter_id, ["2000", "3000"]), actor=ACTOR)
    profile = [
        Usage(
            Decimal(3000),
            datetime(2025, 12, 31, 16, tzinfo=UTC),
            datetime(2026, 3, 2, 16, tzinfo=UTC),
        )
    ]
    assert tariffs.quote_tariff(rt, tariff_id, profile).total == Money.from_yuan("1470.90")
    assert ledger.account_balance(rt, account_id) == -Money.from_yuan("1470.90")
    assert ledger.verify_ledger(rt) == []


def test_water_surcharges_are_credited_to_their_own_revenue_accounts(rt: Runtime) -> None:
    """200 m³ cost 1040.00 元; 水资源费 314.00 and 污水处理费 272.00 have their own accounts."""
    _, account_id, meter_id = _home(rt, Utility.WATER, BEIJING_WATER)
    ingest_readings(rt, _readings(meter_id, ["150", "200"]), actor=ACTOR)
    assert ledger.account_balance(rt, account_id) == -Money.from_yuan("1040.00")
    with rt.db.read() as conn:
        found = conn.execute(
            select(
                ledger_accounts.c.code,
                ledger_accounts.c.credits_posted - ledger_accounts.c.debits_posted,
            ).where(ledger_accounts.c.code.like("revenue:TIER:water%"))
        )
        balances = {str(code): int(fen) for code, fen in found}
    assert balances == {
        "revenue:TIER:water": 45400,
        "revenue:TIER:water:water_resource": 31400,
        "revenue:TIER:water:sewage": 27200,
    }
    assert ledger.verify_ledger(rt) == []


def test_a_version_that_priced_consumption_cannot_be_edited(rt: Runtime) -> None:
    """Re-rating by edit is refused once a version has charged; before that it is allowed."""
    tariff_id, _, meter_id = _home(rt, Utility.ELECTRICITY, BEIJING)
    version_id = tariffs.get_tariff(rt, tariff_id).versions[0].id
    cheaper = TariffComponents.from_dict({**BEIJING, "energy": {"unit_price": "0.4000"}})
    tariffs.revise_version(
        rt, tariff_id, version_id, components=cheaper, actor=ACTOR, reason="录入错误"
    )
    ingest_readings(rt, _readings(meter_id, ["100"]), actor=ACTOR)
    with pytest.raises(Conflict, match="already priced"):
        tariffs.revise_version(
            rt, tariff_id, version_id, components=cheaper, actor=ACTOR, reason="再改"
        )


def test_a_tou_meter_is_priced_by_its_registers(rt: Runtime) -> None:
    """Registers say peak 200, valley 100 kWh: 154.10 元, whatever the timestamps would say."""
    _, account_id, meter_id = _home(rt, Utility.ELECTRICITY, SHANGHAI_TOU)
    at = datetime(2026, 6, 1, 4, tzinfo=UTC)
    first = ReadingIn(
        meter_id,
        at,
        Decimal("1000"),
        ReadingSource.HTTP,
        peak=Decimal("600"),
        valley=Decimal("400"),
    )
    second = ReadingIn(
        meter_id,
        at + timedelta(hours=2),
        Decimal("1300"),
        ReadingSource.HTTP,
        peak=Decimal("800"),
        valley=Decimal("500"),
    )
    ingest_readings(rt, [first], actor=ACTOR)
    balance = ledger.account_balance(rt, account_id)
    ingest_readings(rt, [second], actor=ACTOR)
    assert balance - ledger.account_balance(rt, account_id) == Money.from_yuan("154.10")
    assert ledger.verify_ledger(rt) == []


def test_monthly_fixed_fees_are_charged_once_per_account_and_month(rt: Runtime) -> None:
    """Running the November fee run twice charges the 10.00 元 service fee once."""
    components = {
        "energy": {"unit_price": "0.5"},
        "fixed_fees": [
            {"code": "service", "name": "月服务费", "amount": "10.00", "period": "monthly"}
        ],
    }
    _, account_id, _ = _home(rt, Utility.ELECTRICITY, components)
    first = fees.charge_monthly_fees(rt, month=date(2026, 11, 1), actor=ACTOR)
    again = fees.charge_monthly_fees(rt, month=date(2026, 11, 1), actor=ACTOR)
    assert first.total_fen == 1000
    assert (again.total_fen, again.already) == (0, 1)
    assert ledger.account_balance(rt, account_id) == -Money.from_yuan("10.00")
    with rt.db.read() as conn:
        revenue = conn.execute(
            select(ledger_accounts.c.credits_posted).where(
                ledger_accounts.c.code == "revenue:TIER:electricity:fee:service"
            )
        ).scalar_one()
    assert revenue == 1000
    assert ledger.verify_ledger(rt) == []


def test_an_account_can_be_quoted_under_a_draft_tariff_without_being_charged(
    rt: Runtime,
) -> None:
    """Its 3000 kWh under the Beijing tiers would have cost 1470.90; nothing moves."""
    flat_price = {"energy": {"unit_price": "0.5000"}}
    _, account_id, meter_id = _home(rt, Utility.ELECTRICITY, flat_price)
    ingest_readings(rt, _readings(meter_id, ["2000", "3000"]), actor=ACTOR)
    balance = ledger.account_balance(rt, account_id)
    draft = TariffComponents.from_dict(BEIJING)
    result = tariffs.quote_account(
        rt,
        account_id,
        draft,
        start=datetime(2025, 12, 31, 16, tzinfo=UTC),
        end=datetime(2026, 12, 31, 16, tzinfo=UTC),
    )
    assert result.total == Money.from_yuan("1470.90")
    assert ledger.account_balance(rt, account_id) == balance == -Money.from_yuan("1500.00")


def test_a_top_up_fee_applies_only_when_a_tariff_sets_one_and_only_once(rt: Runtime) -> None:
    """A 1 % fee (off by default, warned as unlawful for homes) takes 1.00 of 100.00, once."""
    components = {"energy": {"unit_price": "0.5"}, "topup_fee": {"percent": "1"}}
    _, account_id, _ = _home(rt, Utility.ELECTRICITY, components)
    for _ in range(2):
        result = ledger.cash_top_up(
            rt,
            account_id=account_id,
            amount=Money.from_yuan("100"),
            idempotency_key="R-1",
            cashier="cashier",
        )
    assert result.balance == Money.from_yuan("99.00")
    assert ledger.verify_ledger(rt) == []
    assert TariffComponents.from_dict(components).topup_fee is not None
    assert "第四十四条" in " ".join(
        topup_fee_warnings(TariffComponents.from_dict(components).topup_fee)
    )


def test_without_a_top_up_fee_the_whole_top_up_reaches_the_wallet(rt: Runtime) -> None:
    """The default: no fee, 100.00 in, 100.00 on the balance."""
    _, account_id, _ = _home(rt, Utility.ELECTRICITY, {"energy": {"unit_price": "0.5"}})
    result = ledger.cash_top_up(
        rt,
        account_id=account_id,
        amount=Money.from_yuan("100"),
        idempotency_key="R-1",
        cashier="cashier",
    )
    assert result.balance == Money.from_yuan("100.00")


def test_two_meters_of_one_tiered_account_fed_at_once_count_tiers_together(
    pg_rt: Runtime,
) -> None:
    """Each meter uses 1500 kWh from its own thread: the account pays for 3000, tiers and
    all, and neither thread ever has to run a batch again (they take turns on the account)."""
    rt = pg_rt
    _, account_id, first = _home(rt, Utility.ELECTRICITY, BEIJING)
    unit_id = metering.get_meter(rt, first).unit_id
    second = metering.register_meter(
        rt,
        unit_id=unit_id,
        utility=Utility.ELECTRICITY,
        protocol=Protocol.DLT645_2007,
        address="000000000202",
        account_id=account_id,
        installed_at=datetime(2025, 12, 31, 16, tzinfo=UTC),
        actor=ACTOR,
    ).id
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def feed(meter_id: int) -> Counter[str]:
        retries: Counter[str] = Counter()
        for step in range(1, 31):
            reading = ReadingIn(
                meter_id, start + timedelta(days=step), Decimal(50 * step), ReadingSource.HTTP
            )
            retries += ingest_readings(rt, [reading], actor=ACTOR).retries
        return retries

    with ThreadPoolExecutor(max_workers=2) as pool:
        retries = sum(pool.map(feed, [first, second]), Counter[str]())
    assert retries == Counter()
    assert ledger.account_balance(rt, account_id) == -Money.from_yuan("1470.90")
    assert ledger.verify_ledger(rt) == []


def test_readings_across_a_tariff_change_are_charged_as_the_quote_predicts(rt: Runtime) -> None:
    """A new tier version from 1 March splits the interval that spans it, exactly as quoted."""
    tariff_id, account_id, meter_id = _home(rt, Utility.ELECTRICITY, BEIJING)
    dearer = {**BEIJING, "energy": {"unit_price": "0.5883"}}
    tariffs.add_version(
        rt,
        tariff_id,
        components=TariffComponents.from_dict(dearer),
        effective_from=datetime(2026, 2, 28, 16, tzinfo=UTC),
        actor=ACTOR,
    )
    ingest_readings(rt, _readings(meter_id, ["2000", "3000"]), actor=ACTOR)
    profile = [
        Usage(
            Decimal(2000),
            datetime(2025, 12, 31, 16, tzinfo=UTC),
            datetime(2026, 1, 31, 16, tzinfo=UTC),
        ),
        Usage(
            Decimal(1000),
            datetime(2026, 1, 31, 16, tzinfo=UTC),
            datetime(2026, 3, 2, 16, tzinfo=UTC),
        ),
    ]
    quoted = tariffs.quote_tariff(rt, tariff_id, profile).total
    assert ledger.account_balance(rt, account_id) == -quoted
    assert quoted > Money.from_yuan("1470.90")  # part of the second interval at the new price
    assert ledger.verify_ledger(rt) == []


def test_a_tier_position_moved_by_another_transaction_is_never_overwritten(
    rt: Runtime,
) -> None:
    """The compare-and-set refuses a stale position: the later batch fails and runs again."""
    _, account_id, _ = _home(rt, Utility.ELECTRICITY, BEIJING)
    cycle = date(2026, 1, 1)
    with rt.db.write() as conn:
        save_tier_states(conn, {account_id: None}, {account_id: TierState(cycle, Decimal(100))})
    with pytest.raises(TierStateMoved), rt.db.write() as conn:  # read before the move above
        save_tier_states(conn, {account_id: None}, {account_id: TierState(cycle, Decimal(50))})
    with rt.db.read() as conn:
        kept = conn.execute(
            select(accounts.c.tier_consumed).where(accounts.c.id == account_id)
        ).scalar_one()
    assert kept == Decimal(100)
