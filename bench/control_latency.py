"""Arrears-control latency under ingest load: from the reading that takes an account into
arrears to its notice, from the moment a cut-off falls due to the queued cut command,
and from a top-up to the queued restore.

``python -m bench.control_latency`` (part of ``make bench``) sets up, on a scratch
PostgreSQL database (admin URL ``MP_BENCH_PG_URL``, as for ``bench.ingest``):

- the load: ``bench.ingest``'s fleet (10,000 meters, a prepaid account each, flat
  tariff) and its pushes of 2,000 readings per ``ingest_readings`` call, interval after
  interval, at full speed from a second process (``bench.ingest_load``) for the whole
  measurement. Its site's balance lines are set far below zero, so its accounts stay
  paid up as most of a live fleet is: the load is steady ingest, not 10,000 arrears
  notices at once;
- the measured accounts: ``2 x --accounts`` more on a site of their own, each with an
  owner (a phone: notices are queued for SMS and in-app), balance 0 and supply state
  ``very_low``, on a policy that lets a cut-off happen at once: notice period 1 minute,
  final notice 1 minute before, no friendly hours, cut-offs on rest days too;
- the scheduler: ``meterpay.workers.scheduler.Scheduler`` with its arrears review every
  ``--every`` seconds (0.2) on a thread of this process, as ``meterpay serve`` runs it
  (production's period is 5 s: the period is most of figure 2).

With the load running, three figures, each as p50/p99 over ``--accounts`` accounts:

1. reading -> in arrears, notice queued: one ``ingest_readings`` call of one reading
   (3 kWh) that takes a group A account below the arrears line; the call's time (its
   commit holds the state change, the arrears notice and the next decision: checked
   afterwards, not timed);
2. cut-off due -> cut command queued: group B accounts were taken into arrears the same
   way before the scheduler started (not timed); their episode is then written back in
   time (arrears notice a notice period ago, final notice a lead ago) and their next
   decision set to fall due one after another over ``--spread`` seconds. Latency: from
   the moment an account's decision fell due to the commit of the review round that
   queued its cut (the round's ``review_due`` returned; the command's ``created_at``
   says which round). The rounds' own time is printed beside it: the rest is the wait
   for the next round;
3. top-up -> restore queued: ``cash_top_up`` of 10 元 on each group B account (in
   arrears, its cut queued); the call's time (its commit holds the restore command and
   the withdrawal of the cut: checked afterwards).

The baseline, as the other benches print ratios against one in the same run: a bare
single-row ``INSERT`` + ``COMMIT`` round trip (psycopg, a plain table in the same
database), sampled in turns with figures 1 and 3 and every 50 ms during 2; each figure's
ratios are against the baseline sampled beside it. Times are never asserted; the exit
status says whether every outcome was right.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from types import TracebackType
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, update

from bench.ingest import (
    ACTOR,
    INTERVAL,
    Fleet,
    Workload,
    migrated_runtime,
    scratch_database,
    set_up_fleet,
)
from bench.ingest_load import IngestLoad, LoadReport, LoadSpec
from bench.latency import Figure, InsertProbe, row, timed
from meterpay.control import service as control
from meterpay.control.commands import FINAL, CommandKind
from meterpay.control.model import SupplyState
from meterpay.control.repository import SitePolicy
from meterpay.control.review import review_due
from meterpay.db.schema import accounts, commands, customers, meters, notifications
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger.service import cash_top_up, verify_ledger
from meterpay.metering.ingest import ingest_readings
from meterpay.metering.meters import ReadingIn, ReadingSource
from meterpay.runtime import Runtime
from meterpay.workers.scheduler import Job, Scheduler

MEASURED_SITE = "ARREARS"
AT_ONCE: dict[str, Any] = {  # a cut-off allowed as soon as the notice rules are met
    "warning1": {"amount": "50.00"},
    "warning2": {"amount": "20.00"},
    "cutoff_point": "0.00",
    "restore_point": "0.00",
    "notice_period_minutes": 1,
    "final_notice_lead_minutes": 1,
    "friendly_hours": None,
    "no_cutoff_on_rest_days": False,
}
CROSSING_KWH = Decimal(3)  # 1.46 元 at 0.4883: below the arrears line (0) from a balance of 0
TOP_UP = Money.from_yuan("10")  # above the restore point (0) from -1.46 元
BASELINE_EVERY = 0.05  # seconds between baseline samples while waiting for cuts
CUT_WAIT = 30.0  # seconds past the last due moment before missing cuts count as missing


# --- the scheduler, as ``meterpay serve`` runs it, with its rounds recorded -------------


@dataclass(frozen=True)
class Round:
    started: datetime
    ended: datetime  # review_due returned: its transaction committed
    looked_at: int


class RecordedScheduler:
    """``Scheduler.run`` with the arrears review on a thread of its own; every round of
    ``review_due`` recorded (wall clock, as ``created_at`` is written)."""

    def __init__(self, rt: Runtime, every_s: float) -> None:
        self.rounds: list[Round] = []
        self._scheduler = Scheduler(
            rt, jobs=(Job("arrears review", self._review),), every_s=every_s
        )
        self._thread = threading.Thread(target=self._main, name="scheduler", daemon=True)
        self._running = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def _review(self, rt: Runtime) -> int:
        started = rt.clock.now()
        looked_at = review_due(rt)
        self.rounds.append(Round(started, rt.clock.now(), looked_at))
        return looked_at

    def _main(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._running.set()
            await self._scheduler.run(self._stop)

        asyncio.run(main())

    def __enter__(self) -> RecordedScheduler:
        self._thread.start()
        self._running.wait(timeout=10)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def committed_at(self, created_at: datetime) -> Round | None:
        """The round whose transaction wrote a row stamped ``created_at`` (waiting a
        moment for it to be recorded: its commit is seen before it returns)."""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            for r in self.rounds:
                if r.started <= created_at <= r.ended:
                    return r
            time.sleep(0.01)
        return None


# --- setup (not timed) ---------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """The measured accounts: group A crosses the line under load, group B falls due."""

    group_a: list[tuple[int, ReadingIn]]  # (account id, its crossing reading)
    group_b: list[int]
    policy: SitePolicy


def set_up_measured(rt: Runtime, count: int, seed: int) -> Measured:
    """``2 x count`` accounts with owners on a site whose policy allows a cut at once."""
    work = Workload.generate(2 * count, 1, rt.clock.now(), seed)
    fleet = set_up_fleet(rt, work, site_code=MEASURED_SITE)
    policy = control.set_policy(
        rt, fleet.site_id, Utility.ELECTRICITY, AT_ONCE, by=ACTOR, reason="bench: cut at once"
    )
    account_ids = _owned_and_very_low(rt, fleet)
    at = work.start + INTERVAL
    crossing = [
        (a, ReadingIn(m, at, work.initial[n] + CROSSING_KWH, ReadingSource.MQTT))
        for n, (m, a) in enumerate(zip(fleet.meter_ids, account_ids, strict=True))
    ]
    group_a, group_b = crossing[:count], crossing[count:]
    ingest_readings(rt, [r for _, r in group_b], actor=ACTOR)
    b_ids = [a for a, _ in group_b]
    with rt.db.write() as conn:  # decided again only when phase 2 says so
        conn.execute(update(accounts).where(accounts.c.id.in_(b_ids)).values(next_decision_at=None))
    return Measured(group_a, b_ids, policy)


def _owned_and_very_low(rt: Runtime, fleet: Fleet) -> list[int]:
    """Give each account an owner (with a phone) and the state its zero balance is in
    (below warning 2); its account ids, in the fleet's meter order."""
    now = rt.clock.now()
    with rt.db.write() as conn:
        by_meter = dict(
            conn.execute(
                select(meters.c.id, meters.c.account_id).where(meters.c.id.in_(fleet.meter_ids))
            ).all()
        )
        account_ids = [int(by_meter[m]) for m in fleet.meter_ids]
        owners = conn.execute(
            insert(customers).returning(customers.c.id, sort_by_parameter_order=True),
            [
                {
                    "site_id": fleet.site_id,
                    "name": f"业主{n:04d}",
                    "kind": "person",
                    "phone": f"139{n:08d}",
                    "created_at": now,
                }
                for n in range(len(account_ids))
            ],
        ).scalars()
        conn.execute(
            update(accounts)
            .where(accounts.c.id == bindparam("account"))
            .values(customer_id=bindparam("owner"), supply_state=SupplyState.VERY_LOW.value),
            [{"account": a, "owner": o} for a, o in zip(account_ids, owners, strict=True)],
        )
    return account_ids


def set_up_load(rt: Runtime, url: str, opts: Options, now: datetime) -> LoadSpec:
    """bench.ingest's fleet (paid up: its site's lines lie far below zero)."""
    work = Workload.generate(opts.meters, opts.intervals, now, opts.seed)
    fleet = set_up_fleet(rt, work)  # paid up: its lines lie far below zero
    return LoadSpec(url, opts.meters, opts.intervals, now, opts.seed, fleet.meter_ids, opts.batch)


# --- the three measurements ----------------------------------------------------------


def measure_crossings(rt: Runtime, probe: InsertProbe, m: Measured) -> tuple[Figure, Figure]:
    """Figure 1: one reading, in turns with a baseline sample."""
    figure, base = Figure("1 reading -> in arrears, notice queued"), Figure("  baseline, in turns")
    for _, reading in m.group_a:
        probe.sample(base)
        timed(figure, partial(ingest_readings, rt, [reading], actor=ACTOR))
    return figure, base


def measure_cuts(
    rt: Runtime, probe: InsertProbe, m: Measured, scheduler: RecordedScheduler, spread: float
) -> tuple[Figure, Figure, Figure]:
    """Figure 2: group B falls due one by one; the rounds queue their cuts."""
    due = _fall_due(rt, m, spread)
    base = Figure(f"  baseline, every {BASELINE_EVERY * 1000:.0f} ms")
    deadline = time.monotonic() + spread + CUT_WAIT
    cut: dict[int, datetime] = {}
    while len(cut) < len(due) and time.monotonic() < deadline:
        for _ in range(5):
            probe.sample(base)
            time.sleep(BASELINE_EVERY)
        cut = _cut_commands(rt, list(due))
    figure = Figure("2 cut-off due -> cut command queued")
    rounds = Figure("  of which the review round itself")
    for account_id, created_at in cut.items():
        r = scheduler.committed_at(created_at)
        if r is not None:
            figure.seconds.append((r.ended - due[account_id]).total_seconds())
            rounds.seconds.append((r.ended - r.started).total_seconds())
    return figure, rounds, base


def _fall_due(rt: Runtime, m: Measured, spread: float) -> dict[int, datetime]:
    """Write group B's episode back in time and let their decisions fall due one after
    another from a second from now; when each falls due."""
    first = rt.clock.now() + timedelta(seconds=1)
    step = timedelta(seconds=spread / len(m.group_b))
    due = {a: first + step * k for k, a in enumerate(m.group_b)}
    notice, lead = m.policy.thresholds.notice_period, m.policy.thresholds.final_notice_lead
    with rt.db.write() as conn:
        conn.execute(
            update(accounts)
            .where(accounts.c.id == bindparam("account"))
            .values(
                notice_given_at=bindparam("notice"),
                final_notice_given_at=bindparam("final"),
                next_decision_at=bindparam("due"),
            ),
            [
                {"account": a, "notice": at - notice, "final": at - lead, "due": at}
                for a, at in due.items()
            ],
        )
    return due


def _cut_commands(rt: Runtime, account_ids: list[int]) -> dict[int, datetime]:
    with rt.db.read() as conn:
        rows = conn.execute(
            select(commands.c.account_id, func.min(commands.c.created_at))
            .where(commands.c.kind == CommandKind.CUT.value, commands.c.account_id.in_(account_ids))
            .group_by(commands.c.account_id)
        ).all()
    return {int(a): at for a, at in rows}


def measure_top_ups(rt: Runtime, probe: InsertProbe, m: Measured) -> tuple[Figure, Figure]:
    """Figure 3: a cash top-up on each group B account, in turns with a baseline sample."""
    figure, base = Figure("3 top-up -> restore queued"), Figure("  baseline, in turns")
    for account_id in m.group_b:
        probe.sample(base)
        top_up = partial(
            cash_top_up,
            rt,
            account_id=account_id,
            amount=TOP_UP,
            idempotency_key=f"bench-{account_id}",
            cashier=ACTOR,
        )
        timed(figure, top_up)
    return figure, base


# --- outcomes (not timed) ------------------------------------------------------------


def check_outcomes(rt: Runtime, m: Measured) -> list[str]:
    """What must be true afterwards; the list of what is not."""
    a_ids = [a for a, _ in m.group_a]
    wrong = []
    with rt.db.read() as conn:
        states = dict(conn.execute(select(accounts.c.id, accounts.c.supply_state)).all())
        noticed = set(
            conn.execute(
                select(notifications.c.account_id).where(
                    notifications.c.topic == "arrears_notice",
                    notifications.c.account_id.in_(a_ids),
                )
            ).scalars()
        )
        rows = conn.execute(
            select(commands.c.account_id, commands.c.kind, commands.c.state).where(
                commands.c.account_id.in_(m.group_b)
            )
        ).all()
    cut = {a for a, kind, _ in rows if kind == CommandKind.CUT.value}
    if uncut := [a for a in m.group_b if a not in cut]:
        wrong.append(f"{len(uncut)} group B accounts whose cut was never queued")
    if not_in := [a for a in a_ids if states[a] != SupplyState.IN_ARREARS.value]:
        wrong.append(f"{len(not_in)} group A accounts not in arrears")
    if silent := [a for a in a_ids if a not in noticed]:
        wrong.append(f"{len(silent)} group A accounts without an arrears notice")
    restored = {a for a, kind, _ in rows if kind == CommandKind.RESTORE.value}
    if missing := [a for a in m.group_b if a not in restored]:
        wrong.append(f"{len(missing)} group B accounts without a restore command")
    open_cuts = [
        a for a, kind, state in rows if kind == CommandKind.CUT.value and state not in FINAL
    ]
    if open_cuts:
        wrong.append(f"{len(open_cuts)} cut commands still open after their top-up")
    if pending := [a for a in m.group_b if states[a] != SupplyState.RESTORE_PENDING.value]:
        wrong.append(f"{len(pending)} group B accounts not waiting for their restore")
    return wrong


# --- orchestration -------------------------------------------------------------------


@dataclass
class Options:
    meters: int
    intervals: int
    batch: int
    accounts: int
    every: float
    spread: float
    seed: int


@dataclass
class Results:
    figures: list[tuple[Figure, Figure | None]] = field(default_factory=list)
    load: LoadReport | None = None
    measured_s: float = 0.0
    rounds: list[Round] = field(default_factory=list)


def run(opts: Options) -> bool:
    """Scratch database, setup, the three measurements under load, the checks; drop."""
    with scratch_database() as (name, url):
        rt = migrated_runtime(url)
        try:
            with rt.db.read() as conn:
                durable = conn.execute(text("SHOW synchronous_commit")).scalar_one()
            print(f"PostgreSQL (scratch database {name}, synchronous_commit={durable}):")
            started = time.perf_counter()
            spec = set_up_load(rt, url, opts, rt.clock.now())
            measured = set_up_measured(rt, opts.accounts, opts.seed + 1)
            with rt.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))
            print(
                f"  setup (not timed): {opts.meters:,} load meters, {2 * opts.accounts:,}"
                f" measured accounts in {time.perf_counter() - started:.1f} s"
            )
            results = _measure(rt, url, spec, opts, measured)
            _print(results, opts)
            wrong = check_outcomes(rt, measured)
            violations = verify_ledger(rt)
            print(f"  outcomes: {'; '.join(wrong) or 'as expected'}")
            print(f"  verify_ledger: {violations or 'clean ([])'}"[:2000])
            return not wrong and not violations
        finally:
            rt.db.dispose()


def _measure(rt: Runtime, url: str, spec: LoadSpec, opts: Options, m: Measured) -> Results:
    results = Results()
    probe = InsertProbe(url)
    load = IngestLoad(spec)
    try:
        with load, RecordedScheduler(rt, opts.every) as scheduler:
            started = time.perf_counter()
            crossing, base_1 = measure_crossings(rt, probe, m)
            cuts, rounds, base_2 = measure_cuts(rt, probe, m, scheduler, opts.spread)
            top_ups, base_3 = measure_top_ups(rt, probe, m)
            results.measured_s = time.perf_counter() - started
        results.rounds = scheduler.rounds
    finally:
        probe.close()
    results.load = load.report
    results.figures = [
        (crossing, base_1),
        (base_1, None),
        (cuts, base_2),
        (rounds, None),
        (base_2, None),
        (top_ups, base_3),
        (base_3, None),
    ]
    return results


def _print(results: Results, opts: Options) -> None:
    print(
        f"  under load: {opts.meters:,} other meters pushed {opts.batch:,} readings per"
        f" ingest_readings call by a second process; the arrears review every {opts.every} s"
    )
    print(f"  {'':<46}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'p50/base':>11}{'p99/base':>10}")
    for figure, baseline in results.figures:
        print(row(figure, baseline))
    load = results.load
    if load is not None and load.error is None:
        ran_out = "; it RAN OUT before the end (raise --intervals)" if load.exhausted else ""
        print(
            f"  the load: {load.readings:,} readings in {load.seconds:.1f} s ="
            f" {load.rate:,.0f} readings/s beside {results.measured_s:.1f} s of"
            f" measurement{ran_out}"
        )
    busy = [r for r in results.rounds if r.looked_at]
    print(
        f"  the scheduler: {len(results.rounds):,} review rounds, {len(busy):,} with decisions"
        f" due ({sum(r.looked_at for r in busy):,} account decisions)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.control_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--meters", type=int, default=10_000, help="meters of the load")
    parser.add_argument(
        "--intervals", type=int, default=48, help="15-minute intervals the load can push"
    )
    parser.add_argument("--batch", type=int, default=2_000, help="readings per load push")
    parser.add_argument("--accounts", type=int, default=400, help="accounts per figure")
    parser.add_argument("--every", type=float, default=0.2, help="scheduler period, seconds")
    parser.add_argument(
        "--spread", type=float, default=20.0, help="seconds over which group B falls due"
    )
    parser.add_argument("--seed", type=int, default=645)
    opts = Options(**vars(parser.parse_args(argv)))
    logging.basicConfig(level=logging.WARNING)  # the scheduler logs a failed round
    print(
        f"bench.control_latency: arrears control under ingest load, {opts.accounts:,}"
        " accounts per figure"
    )
    ok = run(opts)
    if not ok:
        print("bench.control_latency: outcomes or ledger are WRONG (see above)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
