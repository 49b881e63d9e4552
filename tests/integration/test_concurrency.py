"""Many threads top up and ingest readings on the same accounts at once.

Whatever the interleaving, nothing is lost and nothing counts twice: the
ledger stays sound, each reading is stored and charged at most once, and
every balance is its distinct top-ups minus its charges, which add up per
account to the price of the meter's total consumption, rounded once.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import func, select

from meterpay.db.schema import charges, readings
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger import service as ledger
from meterpay.ledger.service import TopUpResult
from meterpay.metering import service as metering
from meterpay.metering.ingest import IngestResult, ingest_readings
from meterpay.metering.meters import Protocol, ReadingIn, ReadingSource
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.sites.model import UnitKind
from meterpay.tariffs import service as tariffs

PRICE = Decimal("0.4883")
INTERVAL = timedelta(minutes=15)
ACTOR = "concurrency-test"


@dataclass(frozen=True)
class Home:
    account_id: int
    meter_id: int


@dataclass
class Plan:
    """What every thread will do, decided up front (threads only execute)."""

    readings: dict[int, list[ReadingIn]]
    work: list[list[Callable[[Runtime], object]]] = field(default_factory=list)
    top_ups: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (account, fen)


def _compound(rt: Runtime, homes: int) -> list[Home]:
    """One site, a flat tariff, and ``homes`` units each with one account and one meter.

    Meters are installed a day before the clock so the readings can lie in the past.
    """
    now = rt.clock.now()
    site = sites.create_site(rt, code="CONC", name="并发小区", actor=ACTOR)
    tariff = tariffs.create_flat_tariff(
        rt,
        site_id=site.id,
        code="electricity-flat",
        name="居民电价",
        utility=Utility.ELECTRICITY,
        unit_price=PRICE,
        effective_from=now - timedelta(days=365),
        actor=ACTOR,
    )
    result = []
    for n in range(homes):
        unit = sites.create_unit(
            rt, site_id=site.id, code=f"1-{n:04d}", name=f"1栋{n}", kind=UnitKind.HOME, actor=ACTOR
        )
        account = sites.open_account(
            rt, unit_id=unit.id, utility=Utility.ELECTRICITY, tariff_id=tariff.id, actor=ACTOR
        )
        meter = metering.register_meter(
            rt,
            unit_id=unit.id,
            utility=Utility.ELECTRICITY,
            protocol=Protocol.DLT645_2007,
            address=f"{n:012d}",
            account_id=account.id,
            register_capacity=Decimal("100000"),
            max_rate_per_hour=Decimal("20"),
            initial_total=Decimal(0),
            installed_at=now - timedelta(days=1),
            actor=ACTOR,
        )
        result.append(Home(account.id, meter.id))
    return result


def _meter_readings(rng: random.Random, meter_id: int, rt: Runtime, count: int) -> list[ReadingIn]:
    """``count`` cumulative readings 15 minutes apart, ending an interval before the clock."""
    first = rt.clock.now() - INTERVAL * count
    total = Decimal(0)
    out = []
    for i in range(count):
        total += Decimal(rng.randint(0, 2000)) / 1000  # 0-2 kWh per interval
        out.append(ReadingIn(meter_id, first + INTERVAL * i, total, ReadingSource.MQTT))
    return out


def _plan(
    rt: Runtime, homes: list[Home], *, threads: int, per_meter: int, seed: int = 20261101
) -> Plan:
    """Every thread delivers every reading (in overlapping windows, batches mixing
    meters, roughly in time order) and makes its own and some shared top-ups."""
    rng = random.Random(seed)
    plan = Plan({h.meter_id: _meter_readings(rng, h.meter_id, rt, per_meter) for h in homes})
    shared = {
        f"shared-{j}": (rng.choice(homes).account_id, rng.randint(1, 50_000)) for j in range(6)
    }
    plan.top_ups.update(shared)
    for t in range(threads):
        windows: list[list[ReadingIn]] = []
        for series in plan.readings.values():
            start = 0
            while start < len(series):
                # windows overlap: step back up to 3 readings into the previous one
                end = min(len(series), start + rng.randint(1, 10))
                windows.append(series[max(0, start - rng.randint(0, 3)) : end])
                start = end
        # roughly in time order, as gateways deliver, but jumbled by up to two hours
        windows.sort(key=lambda w: w[0].read_at + rng.random() * timedelta(hours=2))
        jobs: list[Callable[[Runtime], object]] = []
        while windows:
            take = rng.randint(1, 3)
            batch = [r for window in windows[:take] for r in window]
            del windows[:take]
            jobs.append(_ingest(batch, f"gateway-{t}"))
        own = {
            f"t{t}-{i}": (rng.choice(homes).account_id, rng.randint(1, 50_000)) for i in range(6)
        }
        plan.top_ups.update(own)
        for key, (account_id, fen) in [*own.items(), *shared.items()]:
            jobs.insert(rng.randrange(len(jobs) + 1), _top_up(key, account_id, fen))
        plan.work.append(jobs)
    return plan


def _ingest(batch: list[ReadingIn], actor: str) -> Callable[[Runtime], IngestResult]:
    return lambda rt: ingest_readings(rt, batch, actor=actor)


def _top_up(key: str, account_id: int, fen: int) -> Callable[[Runtime], TopUpResult]:
    return lambda rt: ledger.cash_top_up(
        rt, account_id=account_id, amount=Money(fen), idempotency_key=key, cashier="cashier"
    )


def _run_all_at_once(rt: Runtime, work: list[list[Callable[[Runtime], object]]]) -> list[object]:
    """Run each thread's jobs in order, all threads released together; re-raise any error."""
    start = threading.Barrier(len(work))

    def worker(jobs: list[Callable[[Runtime], object]]) -> list[object]:
        start.wait(timeout=30)
        return [job(rt) for job in jobs]

    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        futures = [pool.submit(worker, jobs) for jobs in work]
        return [result for future in futures for result in future.result(timeout=300)]


def _check_everything(rt: Runtime, homes: list[Home], plan: Plan, results: list[object]) -> None:
    assert ledger.verify_ledger(rt) == []

    # top-ups: each key applied exactly once, every repeat answered as a duplicate
    top_up_results = [r for r in results if isinstance(r, TopUpResult)]
    applied = Counter(r.transfer.idempotency_key for r in top_up_results if not r.duplicate)
    assert applied == Counter({f"topup:cash:{key}": 1 for key in plan.top_ups})

    # readings: each (meter, time) reported as stored by exactly one delivery
    outcomes = [o for r in results if isinstance(r, IngestResult) for o in r.outcomes]
    stored = Counter((o.meter_id, o.read_at) for o in outcomes if o.stored)
    expected_readings = {(r.meter_id, r.read_at) for rs in plan.readings.values() for r in rs}
    assert set(stored) == expected_readings
    assert max(stored.values()) == 1
    assert all(o.charge_fen == 0 for o in outcomes if not o.stored)

    with rt.db.read() as conn:
        twice = conn.execute(
            select(readings.c.meter_id, readings.c.read_at)
            .group_by(readings.c.meter_id, readings.c.read_at)
            .having(func.count() > 1)
        ).all()
        per_meter = dict(
            conn.execute(
                select(readings.c.meter_id, func.count()).group_by(readings.c.meter_id)
            ).all()
        )
        charged_twice = conn.execute(
            select(charges.c.reading_id).group_by(charges.c.reading_id).having(func.count() > 1)
        ).all()
        billed_readings = conn.execute(
            select(readings.c.quality, func.count())
            .join(charges, charges.c.reading_id == readings.c.id)
            .group_by(readings.c.quality)
        ).all()
        charged_fen = dict(
            conn.execute(
                select(charges.c.account_id, func.sum(charges.c.amount_fen)).group_by(
                    charges.c.account_id
                )
            ).all()
        )
    assert twice == []
    assert per_meter == {m: len(rs) + 1 for m, rs in plan.readings.items()}  # + install baseline
    assert charged_twice == []
    assert {quality for quality, _ in billed_readings} == {"valid"}
    assert sum(o.charge_fen for o in outcomes) == sum(charged_fen.values())

    topped_up: dict[int, int] = defaultdict(int)
    for account_id, fen in plan.top_ups.values():
        topped_up[account_id] += fen
    for home in homes:
        consumption = plan.readings[home.meter_id][-1].total  # baseline 0, multiplier 1
        price = (PRICE * consumption).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        expected_charge = int(price * 100)
        assert charged_fen.get(home.account_id, 0) == expected_charge, home
        assert metering.get_meter(rt, home.meter_id).last_total == consumption
        balance = ledger.account_balance(rt, home.account_id)
        assert balance == Money(topped_up[home.account_id] - expected_charge), home


@pytest.mark.postgres
def test_eight_threads_topping_up_and_ingesting_on_the_same_accounts_lose_nothing(
    pg_rt: Runtime,
) -> None:
    """8 threads deliver every reading of 5 meters (overlapping, jumbled) and top up."""
    homes = _compound(pg_rt, 5)
    plan = _plan(pg_rt, homes, threads=8, per_meter=48)
    results = _run_all_at_once(pg_rt, plan.work)
    _check_everything(pg_rt, homes, plan, results)


@pytest.mark.parametrize("rt", ["sqlite"], indirect=True)
def test_on_sqlite_concurrent_writers_queue_up_and_lose_nothing(rt: Runtime) -> None:
    """4 threads on SQLite: BEGIN IMMEDIATE serializes them; the result is the same."""
    homes = _compound(rt, 3)
    plan = _plan(rt, homes, threads=4, per_meter=24)
    results = _run_all_at_once(rt, plan.work)
    _check_everything(rt, homes, plan, results)


def test_threads_billing_different_meters_of_shared_accounts_lose_nothing(
    pg_rt: Runtime,
) -> None:
    """Two meters per account, each fed by its own thread: wallets move by exactly the charges.

    Concurrent batches then update the same wallets and revenue row; a deadlock
    between them is retried (ingest is idempotent), never surfaced or doubled.
    """
    rt = pg_rt
    homes = _compound(rt, 6)
    second: dict[int, int] = {}
    for home in homes:  # a second meter (e.g. a shop's back room) on the same account
        account = sites.get(rt, "accounts", home.account_id)
        meter = metering.register_meter(
            rt,
            unit_id=account.unit_id,
            utility=Utility.ELECTRICITY,
            protocol=Protocol.DLT645_2007,
            address=f"9{home.meter_id:011d}",
            account_id=home.account_id,
            installed_at=rt.clock.now() - timedelta(days=1),
            actor=ACTOR,
        )
        second[home.account_id] = meter.id
    start = rt.clock.now() - timedelta(days=1)
    streams = {
        owner: [
            [
                ReadingIn(mid, start + INTERVAL * (i + 1), Decimal(i + 1) / 10, ReadingSource.HTTP)
                for mid in meter_ids
            ]
            for i in range(40)
        ]
        for owner, meter_ids in (
            ("first", [h.meter_id for h in homes]),
            ("second", [second[h.account_id] for h in homes]),
        )
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(lambda bs: [ingest_readings(rt, b, actor=ACTOR) for b in bs], bs)
            for bs in streams.values()
        ]
        results = [f.result() for f in futures]
    assert all(r.counts.get("valid") == len(homes) for rs in results for r in rs)
    assert ledger.verify_ledger(rt) == []
    per_meter = (Decimal("4.0") * PRICE).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    for home in homes:
        assert ledger.account_balance(rt, home.account_id) == -Money.from_yuan(per_meter * 2)


@pytest.mark.postgres
def test_cashiers_topping_up_different_accounts_of_one_site_at_once_never_deadlock(
    pg_rt: Runtime,
) -> None:
    """Every top-up of a site posts to its one cash row: 8 threads of them at once, with no
    retry, all go through (the row locks are taken at the posting's own strength, so a
    transfer's foreign-key check never waits in a circle with another's lock)."""
    homes = _compound(pg_rt, 8)

    def top_up(n: int) -> None:
        for k in range(15):
            ledger.cash_top_up(
                pg_rt,
                account_id=homes[(n + k) % len(homes)].account_id,
                amount=Money.from_yuan("1.00"),
                idempotency_key=f"counter-{n}-{k}",
                cashier=ACTOR,
            )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(top_up, range(8)))
    total = sum(ledger.account_balance(pg_rt, h.account_id).fen for h in homes)
    assert total == 8 * 15 * 100
