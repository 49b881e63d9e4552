"""Ingest a batch of readings: validate, store, price, charge — exactly once.

One chunk of the batch is one transaction:
1. lock the chunk's meters (id order) so readings of one meter serialize;
2. drop readings already stored (same meter and timestamp): a duplicate
   changes nothing, whichever process sees it;
3. judge each new reading against the meter's last accepted reading, in time
   order (``metering.rules.assess_reading``), and store it with its quality;
4. lock what the charges move, in the product's lock order: the ledger rows
   they post to, then the billed accounts' rows (each in id order), and read
   the accounts' tier positions and supply states under those locks — so two
   chunks billing meters of one account (two gateways, two processes) take
   turns, and the second prices from where the first left the tiers;
5. charge valid consumption to the meter's account (``billing.service``), move
   the meters' cursors and settle the accounts' supply states.
Unknown meters reject the whole batch before anything is written.

Locks are taken in that order (meters, ledger rows, account rows, then command
rows), the ledger and account rows at the strength their writes need, so chunks
never wait on each other in a circle; a deadlock with some other use case is still
retried, as is a lost compare-and-set on the tier or supply state (a guard that the
locks keep from failing: each loss is logged as a warning and counted).
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final, NamedTuple

from sqlalchemy import Connection, select
from sqlalchemy.exc import DBAPIError

from meterpay.alarms import repository as alarms
from meterpay.alarms.model import AlarmKind
from meterpay.billing.model import BillingTarget
from meterpay.billing.repository import TierStateMoved
from meterpay.billing.rules import PriceVersion
from meterpay.billing.service import Billable, charge, lock_posting_rows
from meterpay.control.model import SupplyState
from meterpay.control.repository import SupplyStateMoved
from meterpay.control.supply import Held, settle
from meterpay.db.engine import TRANSIENT_RETRIES, is_transient
from meterpay.db.partitions import month_of
from meterpay.db.schema import meters
from meterpay.kernel.clock import require_aware
from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.money import Money
from meterpay.ledger import repository as ledger
from meterpay.metering import repository as repo
from meterpay.metering.meters import ReadingIn
from meterpay.metering.model import Assessment, LastAccepted, QualityFlag, ReadingQuality
from meterpay.metering.repository import BilledAccount, MeterState
from meterpay.metering.rules import (
    Registers,
    assess_after_removal,
    assess_reading,
    assess_without_tariff,
    register_deltas,
    with_link_flags,
)
from meterpay.runtime import Runtime
from meterpay.tariffs.repository import price_schedules

log = logging.getLogger(__name__)


class Tolerances(NamedTuple):
    future: timedelta
    gap_after: timedelta
    clock_skew: timedelta


@dataclass(frozen=True, slots=True)
class ReadingOutcome:
    meter_id: int
    read_at: datetime
    reading_id: int | None
    stored: bool
    quality: str
    flags: tuple[str, ...]
    consumption: str
    charge_fen: int


@dataclass
class IngestResult:
    outcomes: list[ReadingOutcome] = field(default_factory=list)
    retries: Counter[str] = field(default_factory=Counter)
    """Chunks run again, by cause: ``deadlock`` or ``compare_and_set`` (a tier or
    supply state moved by a writer that skipped the account's lock: should stay 0)."""

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(o.quality if o.stored else "duplicate" for o in self.outcomes)
        return {"received": len(self.outcomes), **counted}

    @property
    def charged_fen(self) -> int:
        return sum(o.charge_fen for o in self.outcomes)


def ingest_readings(rt: Runtime, batch: Sequence[ReadingIn], *, actor: str) -> IngestResult:
    """Store and bill a batch; safe to repeat (a repeat changes nothing)."""
    for reading in batch:
        require_aware(reading.read_at)
    ordered = sorted(batch, key=lambda r: (r.meter_id, r.read_at))
    chunks = list(_chunks(ordered, rt.settings.ingest_batch_size))
    if len(chunks) > 1:  # one chunk checks its meters inside its own transaction
        _require_known_meters(rt, sorted({r.meter_id for r in batch}))
    result = IngestResult()
    for chunk in chunks:
        # Partitions first, outside the write transaction: never two connections at once.
        rt.partitions.ensure_with(rt.db.engine, {month_of(r.read_at) for r in chunk})
        result.outcomes.extend(_ingest_chunk(rt, chunk, actor, result.retries))
    return result


RACE_RETRIES: Final = 3
"""Tries for a chunk whose tier or supply compare-and-set lost. Ingest reads both under
the account's row lock, so another chunk can no longer move them in between (that race
took up to 25 tries before the lock); what is left is a writer that skips the lock — a
bug to find, not traffic to wait out. A try or two more keeps readings flowing while
the warning each loss logs points at it."""


def _ingest_chunk(
    rt: Runtime, chunk: Sequence[ReadingIn], actor: str, retries: Counter[str]
) -> list[ReadingOutcome]:
    """One transaction; run again after a deadlock or a lost compare-and-set (ingest
    is idempotent), counting each in ``retries``."""
    lost = deadlocks = 0
    while True:
        try:
            with rt.db.write() as conn:
                return ingest_in(rt, conn, chunk, actor=actor)
        except (TierStateMoved, SupplyStateMoved) as exc:
            lost += 1
            retries["compare_and_set"] += 1
            log.warning("ingest lost a compare-and-set despite the account lock: %s", exc)
            if lost >= RACE_RETRIES:
                raise
            wait = random.uniform(0.005, 0.03)  # noqa: S311  jitter only
        except DBAPIError as exc:
            if not is_transient(exc):
                raise
            deadlocks += 1
            retries["deadlock"] += 1
            if deadlocks >= TRANSIENT_RETRIES:
                raise
            wait = random.uniform(0.01, 0.05) * deadlocks  # noqa: S311  jitter only
        time.sleep(wait)


def ingest_in(
    rt: Runtime, conn: Connection, chunk: Sequence[ReadingIn], *, actor: str
) -> list[ReadingOutcome]:
    """Store and bill readings inside the caller's transaction (before it touches readings)."""
    rt.partitions.ensure(conn, {month_of(r.read_at) for r in chunk})
    chunk = sorted(chunk, key=lambda r: (r.meter_id, r.read_at))
    now = rt.clock.now()
    meters_by_id = repo.lock_meters(conn, {r.meter_id for r in chunk})
    _refuse_unknown(meters_by_id, chunk)
    targets = {mid: m.account for mid, m in meters_by_id.items() if m.account is not None}
    schedules = price_schedules(conn, {t.tariff_id for t in targets.values()})
    seen = repo.stored_totals(conn, [(r.meter_id, r.read_at) for r in chunk])
    conflicts: set[tuple[int, datetime, Decimal]] = set()  # (meter, time, the other total)
    judged: list[tuple[ReadingIn, Assessment | None, datetime | None]] = []
    cursors: dict[int, LastAccepted] = {}
    moved_registers: dict[int, Registers | None] = {}
    deltas: dict[tuple[int, datetime], dict[str, Decimal] | None] = {}
    tolerance = Tolerances(
        rt.settings.future_tolerance,
        timedelta(minutes=rt.settings.gap_after_minutes),
        timedelta(seconds=rt.settings.clock_skew_tolerance_seconds),
    )
    for r in chunk:  # sorted by meter, then time
        if (r.meter_id, r.read_at) in seen:
            if seen[(r.meter_id, r.read_at)] != r.total:
                conflicts.add((r.meter_id, r.read_at, r.total))
            judged.append((r, None, None))
            continue
        seen[(r.meter_id, r.read_at)] = r.total
        meter = meters_by_id[r.meter_id]
        last = cursors.get(r.meter_id, meter.last)
        verdict = _judge(meter, last, r, now=now, tolerance=tolerance, schedules=schedules)
        judged.append((r, verdict, last.read_at if last else None))
        if verdict.advances:
            cursors[r.meter_id] = LastAccepted(r.read_at, r.total)
            before = moved_registers.get(r.meter_id, meter.registers)
            after = _registers(r)
            moved_registers[r.meter_id] = after
            if verdict.billed and QualityFlag.ROLLOVER not in verdict.flags:
                deltas[(r.meter_id, r.read_at)] = register_deltas(meter.profile, before, after)
    ids = repo.insert_readings(conn, [_row(r, v, now) for r, v, _ in judged if v is not None])
    billables = [
        Billable(
            ids[(r.meter_id, r.read_at)],
            r.meter_id,
            target.account_id,
            start,
            r.read_at,
            v.consumption,
            deltas.get((r.meter_id, r.read_at)),
        )
        for r, v, start in judged
        if v is not None
        and v.quality is ReadingQuality.VALID
        and start is not None
        and (target := targets.get(r.meter_id)) is not None
    ]
    carries = {mid: meters_by_id[mid].carry for mid in cursors}
    billed = _lock_billed(conn, billables, schedules, targets)
    tiers = {account_id: account.tier for account_id, account in billed.items()}
    amounts = charge(
        conn, billables, schedules, targets, carries, tiers=tiers, actor=actor, now=now
    )
    repo.advance_cursors(conn, cursors, carries, moved_registers)
    _settle_supply(conn, billables, amounts, billed, targets, now=now)
    _watch_cut_off(conn, billables, billed, now)
    if conflicts:
        log.warning("readings at an already stored time with another total: %s", sorted(conflicts))
    return [_outcome(r, v, ids, amounts, conflicts) for r, v, _ in judged]


def _lock_billed(
    conn: Connection,
    billables: Sequence[Billable],
    schedules: dict[int, list[PriceVersion]],
    targets: dict[int, BillingTarget],
) -> dict[int, BilledAccount]:
    """The ledger rows the charges post to, then the billed accounts' rows (the
    product's lock order); the accounts' tier positions and supply states as read
    under those locks."""
    if not billables:
        return {}
    lock_posting_rows(conn, billables, schedules, targets)
    return repo.lock_billed_accounts(conn, {b.account_id for b in billables})


def _settle_supply(
    conn: Connection,
    billables: Sequence[Billable],
    amounts: dict[int, int],
    billed: dict[int, BilledAccount],
    targets: dict[int, BillingTarget],
    *,
    now: datetime,
) -> None:
    """Judge the new balance of each account this batch charged (its row locked, its
    wallet moved); only accounts that cross a line cost more."""
    last: dict[int, Held] = {}
    for b in billables:  # in time order per meter: the last reading is the cause
        if amounts.get(b.reading_id):
            held = billed[b.account_id].supply
            last[b.account_id] = replace(held, cause=f"reading:{b.reading_id}")
    if not last:
        return
    wallets = {
        b.account_id: targets[b.meter_id].wallet_id for b in billables if b.account_id in last
    }
    balances = ledger.wallet_balances(conn, wallets.values())
    settle(
        conn,
        list(last.values()),
        {a: Money(balances[w]) for a, w in wallets.items()},
        now=now,
    )


def _watch_cut_off(
    conn: Connection,
    billables: Sequence[Billable],
    billed: dict[int, BilledAccount],
    now: datetime,
) -> None:
    """Consumption on a meter whose account is cut off, over an interval that began after
    the cut was confirmed: a bypass (旁路) or a relay that did not open — an alarm for a
    person, one per meter and day, counting readings. (The reading that confirmed the
    cut still carries the use from before it.)"""
    for b in billables:
        held = billed[b.account_id].supply
        if held.state is not SupplyState.CUT_OFF or b.quantity <= 0:
            continue
        if held.changed_at is None or b.start < held.changed_at:
            continue
        alarms.raise_in(
            conn,
            kind=AlarmKind.BYPASS,
            object_type="meter",
            object_id=b.meter_id,
            dedupe_key=f"bypass:{b.meter_id}:{now.date().isoformat()}",
            message=f"表 {b.meter_id} 已停供仍有用量 {b.quantity}（疑似旁路或继电器未断开）",
            now=now,
            site_id=held.site_id,
            details={"reading_id": b.reading_id, "quantity": str(b.quantity)},
        )


def _registers(r: ReadingIn) -> Registers | None:
    values = (r.tip, r.peak, r.flat, r.valley)
    return values if any(v is not None for v in values) else None


def _judge(
    meter: MeterState,
    last: LastAccepted | None,
    r: ReadingIn,
    *,
    now: datetime,
    tolerance: Tolerances,
    schedules: dict[int, list[PriceVersion]],
) -> Assessment:
    if meter.removed_at is not None and r.read_at > meter.removed_at:
        return assess_after_removal()
    verdict = assess_reading(
        meter.profile, last, r.read_at, r.total, now, future_tolerance=tolerance.future
    )
    if verdict.billed and _unpriced(meter, last, schedules):
        return assess_without_tariff()
    return with_link_flags(
        verdict,
        elapsed=r.read_at - last.read_at if last is not None else None,
        gap_after=tolerance.gap_after,
        meter_time=r.meter_time,
        received_at=now,
        skew_tolerance=tolerance.clock_skew,
    )


def _unpriced(
    meter: MeterState, last: LastAccepted | None, schedules: dict[int, list[PriceVersion]]
) -> bool:
    """True when no tariff version is in force at the start of the interval."""
    if meter.account is None or last is None:
        return False
    versions = schedules.get(meter.account.tariff_id)
    return not versions or last.read_at < versions[0].effective_from


def _refuse_unknown(found: dict[int, MeterState], chunk: Sequence[ReadingIn]) -> None:
    unknown = sorted({r.meter_id for r in chunk} - found.keys())
    if unknown:
        raise InvalidInput(f"unknown meters: {unknown[:20]}", field="meter_id", unknown=unknown)


def _row(r: ReadingIn, v: Assessment, now: datetime) -> dict[str, Any]:
    return {
        "meter_id": r.meter_id,
        "read_at": r.read_at,
        "received_at": now,
        "total": r.total,
        "tip": r.tip,
        "peak": r.peak,
        "flat": r.flat,
        "valley": r.valley,
        "status_word": r.status_word,
        "source": r.source.value,
        "quality": v.quality.value,
        "flags": ",".join(f.value for f in v.flags),
        "consumption": v.consumption,
    }


def _outcome(
    r: ReadingIn,
    v: Assessment | None,
    ids: dict[tuple[int, datetime], int],
    amounts: dict[int, int],
    conflicts: set[tuple[int, datetime, Decimal]],
) -> ReadingOutcome:
    if v is None:  # a duplicate: the stored reading stands; a different total is flagged
        flags = ("conflict",) if (r.meter_id, r.read_at, r.total) in conflicts else ()
        return ReadingOutcome(r.meter_id, r.read_at, None, False, "duplicate", flags, "0", 0)
    reading_id = ids[(r.meter_id, r.read_at)]
    return ReadingOutcome(
        r.meter_id,
        r.read_at,
        reading_id,
        True,
        v.quality.value,
        tuple(f.value for f in v.flags),
        str(v.consumption),
        amounts.get(reading_id, 0),
    )


def _require_known_meters(rt: Runtime, meter_ids: list[int]) -> None:
    known: set[int] = set()
    with rt.db.read() as conn:  # in slices: SQLite caps the parameters of one statement
        for start in range(0, len(meter_ids), 10_000):
            ids = meter_ids[start : start + 10_000]
            known.update(conn.execute(select(meters.c.id).where(meters.c.id.in_(ids))).scalars())
    unknown = sorted(set(meter_ids) - known)
    if unknown:
        raise InvalidInput(f"unknown meters: {unknown[:20]}", field="meter_id", unknown=unknown)


def _chunks(items: Sequence[ReadingIn], size: int) -> Iterator[Sequence[ReadingIn]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
