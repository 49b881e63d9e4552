"""End-to-end ingest throughput, against a raw ``COPY`` of the same rows.

``python -m bench.ingest`` (``make bench``) prints, in one run:

1. on PostgreSQL (a scratch database, created and dropped here; the admin URL
   is ``MP_BENCH_PG_URL``, default postgres@127.0.0.1:5432, trust auth):
   readings/s through ``ingest_readings`` — validate, price, charge, post to
   the ledger, commit durably — for 100,000 readings of 10,000 meters, each
   meter with its own prepaid account on a flat tariff, fed as gateway pushes
   of 2,000 readings per call; and readings/s of a raw psycopg ``COPY`` of the
   same 100,000 rows into a table with the readings table's columns and
   indexes, committed. The ratio ours / COPY is the figure to watch (target
   >= 0.05);
2. the same end-to-end run on SQLite (a temporary file), with its ratio
   against the same PostgreSQL COPY baseline;
3. ``verify_ledger`` after each run (not timed), and — unless ``--no-profile``
   — where the time goes: a cProfile of extra pushes (not part of the rates);
4. unless ``--workers 1``: the same PostgreSQL ingest by ``--workers`` processes
   side by side (as production runs several meterpay processes on one
   database) on a second scratch database with the same fleet, meter ``n``
   going to worker ``n % N`` so each meter's readings stay in time order; the
   rate is all readings over the wall time from the common start (a barrier,
   once every worker has connected and built its pushes) to the last worker's
   last commit, and its ratio against the same COPY. The target is judged on the
   better of the single-process and parallel ratios;
5. unless ``--no-tiered``: the single-process PostgreSQL run again on a second
   scratch database with the same fleet and workload, but every account on a
   tiered + time-of-use tariff (浙江居民: yearly tiers 2760/4800 kWh at mark-ups
   0/0.05/0.30 on the combined volume; peak 08-22 at 0.568, valley 22-08 at
   0.288, split by the readings' timestamps, no registers), each account
   starting the year somewhere in its tiers (some about to cross a boundary).
   Its pushes are timed in turns with the flat run's (flat, tiered, tiered,
   flat, ...), so whatever else the shared machine does slows both alike. It
   prints readings/s, the ratio to the same COPY and to the flat
   single-process figure (issue 3: tiered + TOU must stay >= 0.8x flat), and
   checks every meter's charges against the quote of its consumption. A
   ``CHECKPOINT`` (not timed) after the single-process runs keeps their writes
   out of the later runs' timings.

Setup (sites, accounts, meters, baselines) is bulk-inserted through SQLAlchemy
Core into the same rows the services create, so it takes seconds, and ends
with an ``ANALYZE`` (a live database has planner statistics; a run on tables
the planner has never seen measures bad plans, not meterpay); only the ingest
calls and the COPY are timed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing
import os
import pstats
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import bindparam, create_engine, func, insert, select, text, update
from sqlalchemy.engine import make_url

from meterpay.config import Settings
from meterpay.control import service as control
from meterpay.db.engine import Database
from meterpay.db.migrate import upgrade
from meterpay.db.partitions import month_of
from meterpay.db.schema import (
    accounts,
    charges,
    ledger_accounts,
    meter_installations,
    meters,
    readings,
    units,
)
from meterpay.kernel.clock import SystemClock
from meterpay.kernel.quantity import Utility
from meterpay.ledger.model import LedgerAccountKind
from meterpay.ledger.service import verify_ledger
from meterpay.metering.ingest import IngestResult, ingest_readings
from meterpay.metering.meters import MeterStatus, Protocol, ReadingIn, ReadingSource
from meterpay.metering.repository import READING_COLUMNS
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.sites.model import AccountStatus, UnitKind, wallet_code
from meterpay.tariffs import service as tariffs
from meterpay.tariffs.components import TariffComponents
from meterpay.tariffs.rules import TierState, Usage, quote

ADMIN_URL = os.environ.get(
    "MP_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
ACTOR = "bench"
PRICE = "0.4883"
INTERVAL = timedelta(minutes=15)
SCALE = 10_000  # quantities are stored as integers of 0.0001
TARGET_RATIO = 0.05
TIERED_TARGET = 0.8  # issue 3: tiered + TOU ingest >= 0.8x the flat figure of the same run
ZHEJIANG_TOU: dict[str, object] = {  # 浙江居民 一户一表, 峰谷 (reference/tariffs.md)
    "energy": {"unit_price": "0.538"},
    "tiers": {
        "cycle": "yearly",
        "steps": [
            {"up_to": "2760", "markup": "0"},
            {"up_to": "4800", "markup": "0.05"},
            {"up_to": None, "markup": "0.30"},
        ],
    },
    "time_of_use": {
        "prices": {"peak": {"price": "0.568"}, "valley": {"price": "0.288"}},
        "schedules": [
            {
                "windows": [
                    {"period": "peak", "start": "08:00", "end": "22:00"},
                    {"period": "valley", "start": "22:00", "end": "08:00"},
                ]
            }
        ],
    },
}
COPY_COLUMNS = READING_COLUMNS  # the readings table's own columns


@dataclass(frozen=True)
class Workload:
    """Cumulative readings of each meter, 15 minutes apart.

    Meter ``m`` reads ``initial[m]`` at ``start`` (its baseline), then once an
    interval, having used 0-2 kWh; the last interval ends at or before ``now``.
    """

    start: datetime
    initial: list[Decimal]
    steps: list[list[Decimal]]  # steps[m][i]: kWh used in interval i

    @classmethod
    def generate(cls, meters: int, intervals: int, now: datetime, seed: int) -> Workload:
        rng = random.Random(seed)
        last = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
        return cls(
            start=last - INTERVAL * intervals,
            initial=[Decimal(rng.randint(0, 500_000_000)) / SCALE for _ in range(meters)],
            steps=[
                [Decimal(rng.randint(0, 2_000)) / 1_000 for _ in range(intervals)]
                for _ in range(meters)
            ],
        )

    def batches(
        self, meter_ids: Sequence[int], size: int, intervals: range
    ) -> list[list[ReadingIn]]:
        """Gateway pushes: every meter's reading of one interval after another,
        ``size`` readings per push."""
        flat = []
        for i in intervals:
            at = self.start + INTERVAL * (i + 1)
            for n, meter_id in enumerate(meter_ids):
                total = self.initial[n] + sum(self.steps[n][: i + 1], Decimal(0))
                flat.append(ReadingIn(meter_id, at, total, ReadingSource.MQTT))
        return [flat[k : k + size] for k in range(0, len(flat), size)]

    def share(self, worker: int, workers: int) -> Workload:
        """The meters ``n`` with ``n % workers == worker``, in order (pair it with
        ``meter_ids[worker::workers]``)."""
        return Workload(
            start=self.start,
            initial=self.initial[worker::workers],
            steps=self.steps[worker::workers],
        )


# --- setup: the rows the services would create, inserted in bulk -----------------


def _insert_ids(conn: Any, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return [int(i) for i in conn.execute(stmt, rows).scalars()]


@dataclass(frozen=True)
class Fleet:
    """What the setup made: the meters (in workload order), their tariff, the site's zone."""

    meter_ids: list[int]
    tariff_id: int
    timezone: str
    site_id: int


FAR_BELOW = "-1000000"
PAID_UP: dict[str, Any] = {
    "warning1": {"amount": FAR_BELOW},
    "warning2": {"amount": FAR_BELOW},
    "cutoff_point": FAR_BELOW,
    "restore_point": FAR_BELOW,
}


def set_up_fleet(
    rt: Runtime,
    work: Workload,
    components: TariffComponents | None = None,
    tier_used: Sequence[Decimal] | None = None,
    *,
    site_code: str = "BENCH",
) -> Fleet:
    """A site (``site_code``) and tariff (through the services: flat at ``PRICE``, or
    ``components``), then one unit, prepaid account (with its wallet) and meter (with its
    baseline) per meter, in bulk; with ``tier_used``, each account's use so far in its
    tier cycle."""
    now = rt.clock.now()
    site = sites.create_site(rt, code=site_code, name="基准小区", actor=ACTOR)
    if components is None:
        tariff = tariffs.create_flat_tariff(
            rt,
            site_id=site.id,
            code="electricity-flat",
            name="居民电价",
            utility=Utility.ELECTRICITY,
            unit_price=PRICE,
            effective_from=work.start - timedelta(days=365),
            actor=ACTOR,
        )
    else:
        tariff = tariffs.create_tariff(
            rt,
            site_id=site.id,
            code="electricity-tiered-tou",
            name="居民阶梯峰谷电价",
            utility=Utility.ELECTRICITY,
            components=components,
            effective_from=work.start - timedelta(days=365),
            actor=ACTOR,
        )
    # A paid-up fleet, as most of a live one is: every charge still judges its account's
    # balance, but no account crosses a line (its balance starts at 0 and falls), so the
    # figure is steady ingest and not 10,000 arrears notices at once.
    control.set_policy(rt, site.id, Utility.ELECTRICITY, PAID_UP, by=ACTOR, reason="bench")
    count = len(work.initial)
    codes = [f"{n // 1000 + 1}-{n % 1000:04d}" for n in range(count)]
    numbers = [f"E-{code}" for code in codes]
    with rt.db.write() as conn:
        unit_ids = _insert_ids(
            conn,
            units,
            [
                {
                    "site_id": site.id,
                    "floor_id": None,
                    "code": code,
                    "name": f"{code}室",
                    "kind": UnitKind.HOME.value,
                    "area_m2": None,
                }
                for code in codes
            ],
        )
        wallet_ids = _insert_ids(
            conn,
            ledger_accounts,
            [
                {
                    "code": wallet_code(site.code, number),
                    "kind": LedgerAccountKind.LIABILITY.value,
                    "site_id": site.id,
                    "created_at": now,
                    "debits_posted": 0,
                    "credits_posted": 0,
                }
                for number in numbers
            ],
        )
        account_ids = _insert_ids(
            conn,
            accounts,
            [
                {
                    "site_id": site.id,
                    "unit_id": unit_id,
                    "customer_id": None,
                    "number": number,
                    "utility": Utility.ELECTRICITY.value,
                    "tariff_id": tariff.id,
                    "wallet_id": wallet_id,
                    "status": AccountStatus.OPEN.value,
                    "supply_state": "normal",
                    "opened_at": now,
                }
                for unit_id, number, wallet_id in zip(unit_ids, numbers, wallet_ids, strict=True)
            ],
        )
        meter_ids = _insert_ids(
            conn,
            meters,
            [
                {
                    "site_id": site.id,
                    "unit_id": unit_id,
                    "account_id": account_id,
                    "gateway_id": None,
                    "utility": Utility.ELECTRICITY.value,
                    "protocol": Protocol.DLT645_2007.value,
                    "address": f"{n + 1:012d}",
                    "serial": None,
                    "model": None,
                    "multiplier": 1,
                    "register_capacity": Decimal("100000"),
                    "max_rate_per_hour": Decimal("20"),
                    "has_switch": False,
                    "status": MeterStatus.ACTIVE.value,
                    "installed_at": work.start,
                    "removed_at": None,
                    "last_read_at": work.start,
                    "last_total": work.initial[n],
                }
                for n, (unit_id, account_id) in enumerate(zip(unit_ids, account_ids, strict=True))
            ],
        )
        conn.execute(
            insert(meter_installations),
            [
                {
                    "meter_id": meter_id,
                    "unit_id": unit_id,
                    "account_id": account_id,
                    "installed_at": work.start,
                    "initial_total": work.initial[n],
                    "removed_at": None,
                    "final_total": None,
                    "replaced_by_meter_id": None,
                    "reason": "install",
                }
                for n, (meter_id, unit_id, account_id) in enumerate(
                    zip(meter_ids, unit_ids, account_ids, strict=True)
                )
            ],
        )
        rt.partitions.ensure(conn, {month_of(work.start)})
        conn.execute(
            insert(readings),
            [
                {
                    "meter_id": meter_id,
                    "read_at": work.start,
                    "received_at": now,
                    "total": work.initial[n],
                    "source": ReadingSource.INSTALL.value,
                    "quality": "baseline",
                    "flags": "install",
                    "consumption": Decimal(0),
                }
                for n, meter_id in enumerate(meter_ids)
            ],
        )
        if tier_used is not None and components is not None and components.tiers is not None:
            local_day = work.start.astimezone(ZoneInfo(site.timezone)).date()
            cycle_start = components.tiers.cycle_start_on(local_day)
            conn.execute(
                update(accounts)
                .where(accounts.c.id == bindparam("account_id"))
                .values(tier_cycle_start=cycle_start, tier_consumed=bindparam("used")),
                [
                    {"account_id": account_id, "used": used}
                    for account_id, used in zip(account_ids, tier_used, strict=True)
                ],
            )
    if rt.db.is_postgres:  # statistics, as a live database has them: no plans made blind
        with rt.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    return Fleet(meter_ids, tariff.id, site.timezone, site.id)


# --- the measurements ------------------------------------------------------------


@dataclass
class Run:
    label: str
    seconds: float
    readings: int
    counts: Counter[str]
    charged_fen: int

    @property
    def rate(self) -> float:
        return self.readings / self.seconds


def time_ingest(rt: Runtime, label: str, batches: list[list[ReadingIn]]) -> Run:
    results: list[IngestResult] = []
    started = time.perf_counter()
    for batch in batches:
        results.append(ingest_readings(rt, batch, actor=ACTOR))
    return _run(label, time.perf_counter() - started, batches, results)


def time_copy(
    url: str, batches: list[list[ReadingIn]], received_at: datetime, repeats: int = 3
) -> Run:
    """COPY the same rows, as stored (scaled integers), into a fresh table like readings
    (same columns and indexes), committed; the median of ``repeats`` runs."""
    rows = [
        (
            r.meter_id,
            r.read_at,
            received_at,
            int(r.total * SCALE),
            None,
            None,
            None,
            None,
            None,
            r.source.value,
            "valid",
            "",
            0,
        )
        for batch in batches
        for r in batch
    ]
    timings = []
    with psycopg.connect(psycopg_conninfo(url)) as conn:
        for _ in range(repeats):
            conn.execute("DROP TABLE IF EXISTS copy_baseline")
            conn.execute("CREATE TABLE copy_baseline (LIKE readings INCLUDING ALL)")
            conn.commit()
            started = time.perf_counter()
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY copy_baseline ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            conn.commit()
            timings.append(time.perf_counter() - started)
    seconds = statistics.median(timings)
    label = f"PostgreSQL COPY (median of {repeats})"
    return Run(label, seconds, len(rows), Counter(received=len(rows)), 0)


def psycopg_conninfo(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as a plain psycopg connection string."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def profile_pushes(rt: Runtime, batches: list[list[ReadingIn]]) -> str:
    """cProfile some more gateway pushes (a later interval) and summarize."""
    profiler = cProfile.Profile()
    profiler.enable()
    for batch in batches:
        ingest_readings(rt, batch, actor=ACTOR)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(r"src/meterpay/", 30)
    stats.sort_stats("tottime").print_stats(15)
    return out.getvalue()


# --- orchestration ---------------------------------------------------------------


def connect_runtime(url: str) -> Runtime:
    return Runtime(db=Database(url), clock=SystemClock(), settings=Settings(database_url=url))


def migrated_runtime(url: str) -> Runtime:
    """A Runtime on ``url`` with the schema migrated (idempotent)."""
    rt = connect_runtime(url)
    upgrade(rt.db, rt.clock)
    return rt


@dataclass
class Options:
    meters: int
    per_meter: int
    batch: int
    no_sqlite: bool
    no_profile: bool
    seed: int
    workers: int
    no_tiered: bool


@contextmanager
def scratch_database() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database (name, URL), dropped at the end even on error."""
    name = f"mp_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield name, make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _checkpoint() -> None:
    """Flush dirty buffers (not timed) so one run's writes are not paid for by the next;
    skipped if the admin role may not run CHECKPOINT."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with suppress(Exception), admin.connect() as conn:
            conn.execute(text("CHECKPOINT"))
    finally:
        admin.dispose()


def _fleet(
    rt: Runtime,
    work: Workload,
    components: TariffComponents | None = None,
    tier_used: Sequence[Decimal] | None = None,
) -> Fleet:
    started = time.perf_counter()
    fleet = set_up_fleet(rt, work, components, tier_used)
    print(
        f"  setup (not timed): {len(fleet.meter_ids):,} meters and accounts in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return fleet


def time_interleaved(
    first: tuple[Runtime, str, list[list[ReadingIn]]],
    second: tuple[Runtime, str, list[list[ReadingIn]]],
) -> tuple[Run, Run]:
    """Two ingests timed push by push in turns (ABBA order), so that whatever else the
    machine does at any moment slows both alike and their ratio stays steady."""
    (rt_a, label_a, batches_a), (rt_b, label_b, batches_b) = first, second
    runs: dict[str, list[Any]] = {label_a: [0.0, []], label_b: [0.0, []]}
    turns = [(rt_a, label_a, batches_a), (rt_b, label_b, batches_b)]
    for k in range(max(len(batches_a), len(batches_b))):
        for rt, label, batches in turns if k % 2 == 0 else turns[::-1]:
            if k < len(batches):
                started = time.perf_counter()
                result = ingest_readings(rt, batches[k], actor=ACTOR)
                runs[label][0] += time.perf_counter() - started
                runs[label][1].append(result)
    return (
        _run(label_a, runs[label_a][0], batches_a, runs[label_a][1]),
        _run(label_b, runs[label_b][0], batches_b, runs[label_b][1]),
    )


def _run(
    label: str, seconds: float, batches: list[list[ReadingIn]], results: list[IngestResult]
) -> Run:
    counts: Counter[str] = Counter()
    for result in results:
        counts.update(result.counts)
    return Run(
        label,
        seconds,
        sum(len(b) for b in batches),
        counts,
        sum(r.charged_fen for r in results),
    )


# --- the tiered + time-of-use measurement ----------------------------------------


def tier_starts(meters: int, seed: int) -> list[Decimal]:
    """Each account's use so far in its yearly cycle, in kWh: by turns well inside tier 1,
    just below the 2760 boundary, just below 4800 (these cross into the next tier
    within a few intervals) and in tier 3."""
    rng = random.Random(seed + 1)
    bands = ((0, 2_700), (2_750, 2_760), (4_790, 4_800), (4_801, 9_000))
    return [
        Decimal(rng.randint(low * 10, high * 10)) / 10
        for low, high in (bands[m % len(bands)] for m in range(meters))
    ]


def _tier_of(used: Decimal, bounds: Sequence[Decimal]) -> int:
    return sum(used > bound for bound in bounds)


def check_quotes(
    rt: Runtime, fleet: Fleet, work: Workload, tier_used: Sequence[Decimal], intervals: int
) -> tuple[int, int, int]:
    """Not timed: each meter's charges against the quote of its consumption (its
    intervals, from its account's tier state) under the tariff version as stored.
    Returns (meters whose charges differ, quoted total in fen, meters that
    changed tier during the run)."""
    version = tariffs.get_tariff(rt, fleet.tariff_id).versions[-1]
    components = version.components
    if components is None or components.tiers is None:
        raise RuntimeError("the tiered tariff was stored without its tiers")
    bounds = components.tiers.boundaries()
    cycle = components.tiers.cycle_start_on(work.start.astimezone(ZoneInfo(fleet.timezone)).date())
    with rt.db.read() as conn:
        charged = {
            int(meter_id): int(fen)
            for meter_id, fen in conn.execute(
                select(charges.c.meter_id, func.sum(charges.c.amount_fen)).group_by(
                    charges.c.meter_id
                )
            )
        }
    wrong = expected = crossed = 0
    for n, meter_id in enumerate(fleet.meter_ids):
        profile = [
            Usage(
                work.steps[n][i],
                work.start + INTERVAL * i,
                work.start + INTERVAL * (i + 1),
                time_zone=fleet.timezone,
            )
            for i in range(intervals)
        ]
        quoted = quote(components, profile, TierState(cycle, tier_used[n]))
        expected += quoted.total.fen
        wrong += charged.get(meter_id, 0) != quoted.total.fen
        if quoted.state is not None and quoted.state.cycle_start == cycle:
            crossed += _tier_of(quoted.state.consumed, bounds) != _tier_of(tier_used[n], bounds)
    return wrong, expected, crossed


@dataclass
class SingleProcess:
    """What the single-process PostgreSQL runs found."""

    copy: Run
    ours: Run
    tiered: Run | None
    profiles: dict[str, str]
    ok: bool


def _on_postgres(opts: Options, work: Workload) -> SingleProcess:
    """Scratch database(s): setup, COPY baseline, ingest (flat, and tiered + TOU timed
    in turns with it on a second database), verify, quotes, optional profiles; drop."""
    with ExitStack() as stack:
        name, url = stack.enter_context(scratch_database())
        rt = migrated_runtime(url)
        stack.callback(rt.db.dispose)
        with rt.db.read() as conn:
            durable = conn.execute(text("SHOW synchronous_commit")).scalar_one()
        print(f"PostgreSQL (scratch database {name}, synchronous_commit={durable}):")
        meter_ids = _fleet(rt, work).meter_ids
        batches = work.batches(meter_ids, opts.batch, range(opts.per_meter))
        copy = time_copy(url, batches, rt.clock.now())
        print(_line(copy))
        flat_label = "PostgreSQL ingest_readings"
        tiered = None
        if opts.no_tiered:
            ours = time_ingest(rt, flat_label, batches)
        else:
            t_name, t_url = stack.enter_context(scratch_database())
            t_rt = migrated_runtime(t_url)
            stack.callback(t_rt.db.dispose)
            print(
                f"  tiered + time-of-use on scratch database {t_name} (浙江居民 tiers 2760/4800"
                " kWh +0/+0.05/+0.30, peak 08-22 0.568, valley 22-08 0.288), its pushes timed"
                " in turns with the flat ones:"
            )
            components = TariffComponents.from_dict(ZHEJIANG_TOU)
            tier_used = tier_starts(opts.meters, opts.seed)
            t_fleet = _fleet(t_rt, work, components, tier_used)
            t_batches = work.batches(t_fleet.meter_ids, opts.batch, range(opts.per_meter))
            ours, tiered = time_interleaved(
                (rt, flat_label, batches),
                (t_rt, "PostgreSQL ingest_readings tiered+TOU", t_batches),
            )
        print(_line(ours, copy))
        ok = _check(rt, "PostgreSQL", ours, opts)
        profiles = {}
        if tiered is not None:
            print(_line(tiered, copy) + f"  {tiered.rate / ours.rate:.2f}x flat")
            ok = _check(t_rt, "PostgreSQL tiered+TOU", tiered, opts) and ok
            ok = (
                _check_quotes(t_rt, t_fleet, work, tier_used, opts=opts, flat=ours, tiered=tiered)
                and ok
            )
            if not opts.no_profile:
                extra = work.batches(
                    t_fleet.meter_ids, opts.batch, range(opts.per_meter, opts.per_meter + 1)
                )
                profiles["tiered+TOU"] = profile_pushes(t_rt, extra)
        if not opts.no_profile:
            extra = work.batches(meter_ids, opts.batch, range(opts.per_meter, opts.per_meter + 1))
            profiles["flat"] = profile_pushes(rt, extra)
        return SingleProcess(copy, ours, tiered, profiles, ok)


def _check_quotes(
    rt: Runtime,
    fleet: Fleet,
    work: Workload,
    tier_used: list[Decimal],
    *,
    opts: Options,
    flat: Run,
    tiered: Run,
) -> bool:
    """Not timed: every tiered meter's charges against the quote of its consumption."""
    started = time.perf_counter()
    wrong, expected, crossed = check_quotes(rt, fleet, work, tier_used, opts.per_meter)
    print(
        f"  quotes ({time.perf_counter() - started:.1f} s, not timed):"
        f" {Decimal(expected) / 100:,} 元 quoted,"
        f" {'every meter charged as quoted' if not wrong else f'{wrong:,} meters DIFFER'}"
        f" ({crossed:,} accounts changed tier during the run); flat tariff charged"
        f" {Decimal(flat.charged_fen) / 100:,} 元 for the same consumption"
    )
    return not wrong and expected == tiered.charged_fen


# --- the parallel measurement: N processes on one database -----------------------

READY_TIMEOUT = 300.0  # seconds for every worker to start, connect and build its pushes
RUN_TIMEOUT = 900.0  # seconds for the timed pushes of all workers


@dataclass(frozen=True)
class Share:
    """What one worker process pushes: its meters (``n % workers == worker``)."""

    worker: int
    url: str
    work: Workload
    meter_ids: list[int]
    batch: int
    intervals: range


@dataclass(frozen=True)
class Report:
    """What a worker sends back: its totals, or the traceback of its failure."""

    worker: int
    readings: int = 0
    counts: dict[str, int] | None = None
    charged_fen: int = 0
    error: str | None = None


def _push_share(share: Share, start: Any, reports: Any) -> None:
    """Worker process: connect, build the pushes, wait for the common start, push them
    in time order, report. Never leaves the parent waiting: failures are reported."""
    try:
        rt = connect_runtime(share.url)
        try:
            batches = share.work.batches(share.meter_ids, share.batch, share.intervals)
            with rt.db.read() as conn:  # connected before the start, like a running service
                conn.execute(text("SELECT 1"))
            rt.partitions.ensure_with(
                rt.db.engine, {month_of(r.read_at) for b in batches for r in b}
            )
            start.wait(timeout=READY_TIMEOUT)
            counts: Counter[str] = Counter()
            charged = 0
            for batch in batches:
                result = ingest_readings(rt, batch, actor=ACTOR)
                counts.update(result.counts)
                charged += result.charged_fen
            reports.put(Report(share.worker, sum(len(b) for b in batches), dict(counts), charged))
        finally:
            rt.db.dispose()
    except BaseException:
        start.abort()  # the parent and the other workers stop waiting
        reports.put(Report(share.worker, error=traceback.format_exc()))


def _collect(procs: list[Any], reports: Any, deadline: float) -> dict[int, Report]:
    """Every worker's report (by worker number); raises on a failure, a worker that
    died silently, or the deadline."""
    got: dict[int, Report] = {}
    while len(got) < len(procs):
        if time.perf_counter() > deadline:
            raise RuntimeError("parallel ingest: workers did not report in time")
        try:
            report: Report = reports.get(timeout=1.0)
        except queue.Empty:
            silent = [
                p.name for k, p in enumerate(procs) if k not in got and p.exitcode is not None
            ]
            if not silent:
                continue
            try:  # a report may still be in the pipe of a worker that just exited
                report = reports.get(timeout=5.0)
            except queue.Empty:
                raise RuntimeError(
                    f"parallel ingest: {', '.join(silent)} exited without a report"
                ) from None
        if report.error is not None:
            raise RuntimeError(f"parallel ingest: worker {report.worker} failed:\n{report.error}")
        got[report.worker] = report
    return got


def time_ingest_parallel(url: str, work: Workload, meter_ids: list[int], opts: Options) -> Run:
    """``opts.workers`` spawned processes, released together; wall time from the
    release to the last worker's report (its last ``ingest_readings`` returned)."""
    n = opts.workers
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(n + 1)
    reports = ctx.Queue()
    intervals = range(opts.per_meter)
    procs = [
        ctx.Process(
            target=_push_share,
            args=(
                Share(k, url, work.share(k, n), meter_ids[k::n], opts.batch, intervals),
                start,
                reports,
            ),
            name=f"bench-ingest-{k}",
        )
        for k in range(n)
    ]
    for proc in procs:
        proc.start()
    try:
        # broken: a worker failed (its report says why) or the workers were too slow
        with suppress(threading.BrokenBarrierError):
            start.wait(timeout=READY_TIMEOUT)
        started = time.perf_counter()
        got = _collect(procs, reports, started + RUN_TIMEOUT)
        seconds = time.perf_counter() - started
    finally:
        for proc in procs:
            proc.join(timeout=60)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join()
        reports.close()
    counts: Counter[str] = Counter()
    for report in got.values():
        counts.update(report.counts or {})
    return Run(
        f"PostgreSQL ingest_readings x{n} processes",
        seconds,
        sum(r.readings for r in got.values()),
        counts,
        sum(r.charged_fen for r in got.values()),
    )


def _on_postgres_parallel(opts: Options, work: Workload, copy: Run, ours: Run) -> tuple[Run, bool]:
    """A second scratch database, same fleet and workload, pushed by N processes."""
    with scratch_database() as (name, url):
        rt = migrated_runtime(url)
        try:
            print(
                f"PostgreSQL, {opts.workers} processes side by side (scratch database {name},"
                f" meter n to worker n % {opts.workers}):"
            )
            meter_ids = _fleet(rt, work).meter_ids
            par = time_ingest_parallel(url, work, meter_ids, opts)
            print(_line(par, copy))
            ok = _check(rt, f"PostgreSQL x{opts.workers}", par, opts)
            same = par.charged_fen == ours.charged_fen
            print(
                f"  charged total {'equals' if same else 'DIFFERS from'} the single-process"
                f" run's ({Decimal(ours.charged_fen) / 100:,} 元)"
            )
            return par, ok and same
        finally:
            rt.db.dispose()


def _on_sqlite(opts: Options, work: Workload, copy: Run) -> tuple[Run, bool]:
    with tempfile.TemporaryDirectory(prefix="mp_bench_") as tmp:
        rt = migrated_runtime(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            print("SQLite (temporary file, WAL, synchronous=FULL):")
            meter_ids = set_up_fleet(rt, work).meter_ids
            batches = work.batches(meter_ids, opts.batch, range(opts.per_meter))
            lite = time_ingest(rt, "SQLite ingest_readings", batches)
            print(_line(lite, copy) + "  (against the PostgreSQL COPY above)")
            return lite, _check(rt, "SQLite", lite, opts)
        finally:
            rt.db.dispose()


def _check(rt: Runtime, label: str, run: Run, opts: Options) -> bool:
    """Not timed: outcomes and the ledger's invariants after the run."""
    print(f"  outcomes: {dict(run.counts)}; charged {Decimal(run.charged_fen) / 100:,} 元")
    violations = verify_ledger(rt)
    print(f"  verify_ledger ({label}): {violations or 'clean ([])'}"[:2000])
    return not violations and run.counts["valid"] == opts.meters * opts.per_meter


def _line(run: Run, baseline: Run | None = None) -> str:
    line = (
        f"  {run.label:<40} {run.readings:>8,} readings in {run.seconds:7.2f} s"
        f" = {run.rate:>9,.0f} readings/s"
    )
    if baseline is not None:
        line += f"  ratio ours/COPY {run.rate / baseline.rate:.4f}"
    return line


def _summary(
    opts: Options,
    copy: Run,
    ours: Run,
    *,
    par: Run | None,
    tiered: Run | None,
    lite: Run | None,
) -> None:
    """The rates, their ratios to COPY, and the verdicts on both targets."""
    ratio = ours.rate / copy.rate
    print("summary:")
    print(f"  {'PostgreSQL COPY baseline':<42}{copy.rate:>9,.0f} readings/s")
    print(
        f"  {'PostgreSQL ingest_readings, 1 process':<42}{ours.rate:>9,.0f} readings/s"
        f"  ratio {ratio:.4f}"
    )
    par_ratio = 0.0
    if par is not None:
        par_ratio = par.rate / copy.rate
        label = f"PostgreSQL ingest_readings, {opts.workers} processes"
        print(f"  {label:<42}{par.rate:>9,.0f} readings/s  ratio {par_ratio:.4f}")
    if tiered is not None:
        label = "PostgreSQL ingest_readings, tiered+TOU"
        print(
            f"  {label:<42}{tiered.rate:>9,.0f} readings/s  ratio {tiered.rate / copy.rate:.4f}"
            f"  ({tiered.rate / ours.rate:.2f}x flat, 1 process)"
        )
    if lite is not None:
        print(
            f"  {'SQLite ingest_readings, 1 process':<42}{lite.rate:>9,.0f} readings/s"
            f"  ratio {lite.rate / copy.rate:.4f} (against the PostgreSQL COPY)"
        )
    best, where = (
        (par_ratio, f"with {opts.workers} processes")
        if par_ratio > ratio
        else (ratio, "in one process")
    )
    verdict = f"met {where}" if best >= TARGET_RATIO else f"NOT met (best {where})"
    print(f"  target: PostgreSQL ratio >= {TARGET_RATIO} (best {best:.4f}): {verdict}")
    if tiered is not None:
        versus = tiered.rate / ours.rate
        met = "met" if versus >= TIERED_TARGET else "NOT met"
        print(f"  tiered+TOU >= {TIERED_TARGET}x flat ({versus:.2f}x, 1 process each): {met}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--per-meter", type=int, default=10)
    parser.add_argument("--batch", type=int, default=2_000, help="readings per ingest call")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite run")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile pass")
    parser.add_argument("--seed", type=int, default=645)
    parser.add_argument(
        "--no-tiered", action="store_true", help="skip the tiered + time-of-use PostgreSQL run"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(os.cpu_count() or 1, 4),
        help="processes of the parallel PostgreSQL run (default: CPUs, at most 4;"
        " 1 skips that run)",
    )
    opts = Options(**vars(parser.parse_args(argv)))
    if opts.workers < 1:
        parser.error("--workers must be at least 1")

    # one interval more than timed: the profile pass bills it
    work = Workload.generate(opts.meters, opts.per_meter + 1, datetime.now(UTC), opts.seed)
    print(
        f"bench.ingest: {opts.meters * opts.per_meter:,} readings = {opts.meters:,} meters"
        f" x {opts.per_meter} (15-minute intervals, 0-2 kWh each, in the past),"
        f" {opts.batch:,} readings per ingest_readings call, one prepaid account per meter,"
        f" flat tariff {PRICE} 元/kWh"
    )
    single = _on_postgres(opts, work)
    copy, ours, tiered, ok = single.copy, single.ours, single.tiered, single.ok
    _checkpoint()  # the single-process runs' writes are not the next run's to pay for
    par = None
    if opts.workers > 1:
        par, par_ok = _on_postgres_parallel(opts, work, copy, ours)
        ok = ok and par_ok
    lite = None
    if not opts.no_sqlite:
        lite, lite_ok = _on_sqlite(opts, work, copy)
        ok = ok and lite_ok and lite.charged_fen == ours.charged_fen

    _summary(opts, copy, ours, par=par, tiered=tiered, lite=lite)
    for kind, profile in single.profiles.items():
        print(f"where the time goes, {kind} (cProfile of one more interval, not in the rates):")
        print(profile)
    if not ok:
        print("bench.ingest: outcomes or ledger are WRONG (see above)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
