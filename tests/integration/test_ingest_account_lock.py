"""Batches billing meters of the same tiered accounts at once take turns on the accounts'
row locks (PostgreSQL): none loses a tier or supply compare-and-set, none deadlocks.

Every account has three meters, each on its own gateway; a gateway's batch carries one
reading of each of its meters, so every batch bills every account and locks them all
(in id order), while a cashier tops the accounts up across their warning and arrears
lines. Before the lock, the same run lost dozens of compare-and-sets and ran them again.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy import select

from meterpay.db.schema import accounts, supply_events
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger import service as ledger
from meterpay.metering import service as metering
from meterpay.metering.ingest import IngestResult, ingest_readings
from meterpay.metering.meters import Protocol, ReadingIn, ReadingSource
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.sites.model import UnitKind
from meterpay.tariffs import service as tariffs
from meterpay.tariffs.components import TariffComponents
from meterpay.tariffs.reference import BEIJING_POWER, BEIJING_WATER
from meterpay.tariffs.rules import Usage

pytestmark = pytest.mark.postgres

ACTOR = "lock-test"
INSTALLED = datetime(2025, 12, 31, 16, tzinfo=UTC)  # 2026-01-01 00:00 in Shanghai
GATEWAYS = 3
DAYS = 30
TOP_UP = Money.from_yuan("150")
TOP_UPS_EACH = 8


@dataclass(frozen=True)
class Home:
    """An account, its tariff and its meters (one per gateway); ``step`` is each
    meter's daily use: whole 100 kWh or 5 m³, so every charge is whole fen and an
    account's charges add up exactly to the quote of its total."""

    account_id: int
    tariff_id: int
    meter_ids: tuple[int, ...]
    step: Decimal


def _compound(rt: Runtime) -> list[Home]:
    """One site; two homes on the Beijing power tiers, one on Beijing water (its
    surcharges post to their own revenue rows)."""
    site = sites.create_site(rt, code="LOCK", name="锁小区", actor=ACTOR)
    plans = [
        (Utility.ELECTRICITY, BEIJING_POWER, Decimal(100)),
        (Utility.ELECTRICITY, BEIJING_POWER, Decimal(100)),
        (Utility.WATER, BEIJING_WATER, Decimal(5)),
    ]
    tariff_ids: dict[Utility, int] = {}
    for utility, components, _ in plans:
        if utility not in tariff_ids:
            tariff_ids[utility] = tariffs.create_tariff(
                rt,
                site_id=site.id,
                code=f"res-{utility.value}",
                name="居民",
                utility=utility,
                components=TariffComponents.from_dict(components),
                effective_from=INSTALLED,
                actor=ACTOR,
            ).id
    homes = []
    for n, (utility, _, step) in enumerate(plans):
        unit = sites.create_unit(
            rt, site_id=site.id, code=f"1-{n:04d}", name=f"{n}", kind=UnitKind.HOME, actor=ACTOR
        )
        account = sites.open_account(
            rt, unit_id=unit.id, utility=utility, tariff_id=tariff_ids[utility], actor=ACTOR
        )
        meter_ids = tuple(
            metering.register_meter(
                rt,
                unit_id=unit.id,
                utility=utility,
                protocol=Protocol.DLT645_2007,
                address=f"{n:06d}{g:06d}",
                account_id=account.id,
                installed_at=INSTALLED,
                actor=ACTOR,
            ).id
            for g in range(GATEWAYS)
        )
        homes.append(Home(account.id, tariff_ids[utility], meter_ids, step))
    return homes


def _gateway_batches(homes: list[Home], gateway: int) -> list[list[ReadingIn]]:
    """Day by day, one reading of this gateway's meter of every home."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        [
            ReadingIn(
                home.meter_ids[gateway],
                start + timedelta(days=day),
                home.step * day,
                ReadingSource.MQTT,
            )
            for home in homes
        ]
        for day in range(1, DAYS + 1)
    ]


def _run_at_once(rt: Runtime, homes: list[Home]) -> list[IngestResult]:
    """Every gateway and the cashier released together."""
    go = threading.Barrier(GATEWAYS + 1)

    def gateway(g: int) -> list[IngestResult]:
        go.wait(timeout=30)
        return [ingest_readings(rt, batch, actor=f"gw-{g}") for batch in _gateway_batches(homes, g)]

    def cashier() -> None:  # one cashier: top-ups of one site queue at its cash row anyway
        go.wait(timeout=30)
        for i in range(TOP_UPS_EACH):
            for home in homes:
                ledger.cash_top_up(
                    rt,
                    account_id=home.account_id,
                    amount=TOP_UP,
                    idempotency_key=f"{home.account_id}-{i}",
                    cashier="cashier",
                )
            time.sleep(0.02)

    with ThreadPoolExecutor(max_workers=GATEWAYS + 1) as pool:
        paying = pool.submit(cashier)
        running = [pool.submit(gateway, g) for g in range(GATEWAYS)]
        results = [r for f in running for r in f.result(timeout=600)]
        paying.result(timeout=600)
    return results


def _supply_chains(rt: Runtime) -> dict[int, tuple[str, list[Any]]]:
    """Each account's supply state and its events' (from, to) in order."""
    with rt.db.read() as conn:
        states = dict(conn.execute(select(accounts.c.id, accounts.c.supply_state)).all())
        events = conn.execute(
            select(
                supply_events.c.account_id, supply_events.c.from_state, supply_events.c.to_state
            ).order_by(supply_events.c.id)
        ).all()
    chains: dict[int, tuple[str, list[Any]]] = {a: (s, []) for a, s in states.items()}
    for account_id, before, after in events:
        chains[account_id][1].append((before, after))
    return chains


def test_gateways_billing_meters_of_the_same_tiered_accounts_never_lose_a_compare_and_set(
    pg_rt: Runtime,
) -> None:
    """3 gateways x 30 batches over the same 3 accounts, and top-ups meanwhile: no retry,
    tiers counted over all meters, money exact to the fen, supply moves in one chain."""
    rt = pg_rt
    homes = _compound(rt)
    results = _run_at_once(rt, homes)

    assert sum((r.retries for r in results), Counter()) == Counter()
    assert all(r.counts == {"received": len(homes), "valid": len(homes)} for r in results)
    assert ledger.verify_ledger(rt) == []
    with rt.db.read() as conn:
        tiers = {
            a: (start, used)
            for a, start, used in conn.execute(
                select(accounts.c.id, accounts.c.tier_cycle_start, accounts.c.tier_consumed)
            )
        }
    for home in homes:
        used = home.step * DAYS * GATEWAYS
        assert tiers[home.account_id] == (date(2026, 1, 1), used)
        quoted = tariffs.quote_tariff(
            rt, home.tariff_id, [Usage(used, INSTALLED, datetime(2026, 1, 31, tzinfo=UTC))]
        ).total
        paid = Money(TOP_UP.fen * TOP_UPS_EACH)
        assert ledger.account_balance(rt, home.account_id) == paid - quoted, home
    for state, moves in _supply_chains(rt).values():
        assert all(a[1] == b[0] for a, b in pairwise(moves)), moves
        assert not moves or moves[-1][1] == state
