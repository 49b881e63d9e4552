"""Queries for meters and readings. Never commits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    any_,
    insert,
    literal,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql

from meterpay.billing.model import BillingTarget
from meterpay.control.model import SupplyState
from meterpay.control.repository import overrides_of
from meterpay.control.supply import Held
from meterpay.db.bulk import allocate_ids, copy_rows, is_postgres, update_many
from meterpay.db.rows import fetch
from meterpay.db.schema import accounts, meters, readings, sites
from meterpay.kernel.quantity import Utility
from meterpay.ledger.repository import ledger_account_ids
from meterpay.metering.meters import Meter
from meterpay.metering.model import LastAccepted, MeterProfile
from meterpay.metering.rules import Registers
from meterpay.sites.model import revenue_code
from meterpay.tariffs.usage import TierState


def meter(conn: Connection, meter_id: int, *, lock: bool = False) -> Meter:
    return fetch(conn, meters, Meter, meter_id, lock=lock)


class MeterState(NamedTuple):
    """What ingest needs of a meter: its profile, its cursor and where it bills."""

    id: int
    profile: MeterProfile
    removed_at: datetime | None
    last: LastAccepted | None
    carry: Decimal
    account: BillingTarget | None
    registers: Registers | None = None


class BilledAccount(NamedTuple):
    """What billing a batch decides on, read under the account's row lock."""

    tier: TierState | None
    """The tier position (None before the account's first cycle)."""
    supply: Held
    """The supply state and the account's own thresholds."""


OVERRIDE_COLUMNS = (
    "warning1_fen",
    "warning1_days",
    "warning2_fen",
    "warning2_days",
    "credit_limit_fen",
    "disconnect_fen",
    "reconnect_fen",
)


def lock_meters(conn: Connection, meter_ids: Iterable[int]) -> dict[int, MeterState]:
    """Load and row-lock meters in id order; readings of one meter serialize.

    Each meter comes with where its charges go (its account's wallet, its
    site's revenue account for the utility, its tariff). Account rows are read,
    not locked: what is decided on them (tier position, supply state) is read
    later under their own locks (``lock_billed_accounts``).
    """
    query = (
        select(
            meters.c.id,
            meters.c.multiplier,
            meters.c.register_capacity,
            meters.c.max_rate_per_hour,
            meters.c.removed_at,
            meters.c.last_read_at,
            meters.c.last_total,
            meters.c.charge_carry,
            meters.c.last_tip,
            meters.c.last_peak,
            meters.c.last_flat,
            meters.c.last_valley,
            meters.c.account_id,
            accounts.c.tariff_id,
            accounts.c.wallet_id,
            accounts.c.utility,
            sites.c.code,
            sites.c.timezone,
        )
        .select_from(meters)
        .outerjoin(accounts, accounts.c.id == meters.c.account_id)
        .outerjoin(sites, sites.c.id == accounts.c.site_id)
        .where(_id_in(conn, sorted(set(meter_ids))))
        .order_by(meters.c.id)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=meters, key_share=True)  # FOR NO KEY UPDATE
    rows = conn.execute(query).all()
    revenue = _revenue_ids(conn, {(r.code, r.utility) for r in rows if r.account_id})
    profiles: dict[tuple[Any, ...], MeterProfile] = {}
    found = {}
    for row in rows:  # unpacked once: attribute access on rows is slow in bulk
        (
            meter_id,
            multiplier,
            capacity,
            max_rate,
            removed_at,
            last_at,
            last_total,
            carry,
            tip,
            peak,
            flat,
            valley,
            account_id,
            tariff_id,
            wallet_id,
            utility,
            site_code,
            time_zone,
        ) = row
        shape = (multiplier, capacity, max_rate)
        profile = profiles.get(shape) or profiles.setdefault(shape, MeterProfile(*shape))
        last = LastAccepted(last_at, last_total) if last_at is not None else None
        target = None
        if account_id is not None:
            revenue_id, code = revenue[(site_code, utility)]
            target = BillingTarget(account_id, wallet_id, revenue_id, tariff_id, code, time_zone)
        registers = (
            (tip, peak, flat, valley)
            if any(v is not None for v in (tip, peak, flat, valley))
            else None
        )
        found[meter_id] = MeterState(meter_id, profile, removed_at, last, carry, target, registers)
    return found


def lock_billed_accounts(conn: Connection, account_ids: Iterable[int]) -> dict[int, BilledAccount]:
    """Row-lock accounts in id order and read their tier positions and supply states.

    The caller holds the ledger rows its charges post to (the product's lock order:
    meters, ledger rows, account rows), so batches billing meters of one account
    take turns here and each reads what the one before it wrote. ``FOR NO KEY
    UPDATE``: the tier and supply writes that follow take no stronger lock, and
    other transactions' foreign-key checks on the account (a top-up's transfer)
    never wait for it.
    """
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    query = (
        select(
            accounts.c.id,
            accounts.c.site_id,
            accounts.c.utility,
            accounts.c.tier_cycle_start,
            accounts.c.tier_consumed,
            accounts.c.supply_state,
            accounts.c.supply_changed_at,
            *(accounts.c[name] for name in OVERRIDE_COLUMNS),
        )
        .where(_account_in(conn, ids))
        .order_by(accounts.c.id)
    )
    if is_postgres(conn):
        query = query.with_for_update(key_share=True)  # FOR NO KEY UPDATE
    found = {}
    for row in conn.execute(query).all():
        account_id, site_id, utility, cycle_start, consumed, state, changed_at, *own = row
        overrides = (
            overrides_of(dict(zip(OVERRIDE_COLUMNS, own, strict=True)))
            if any(v is not None for v in own)
            else None
        )
        found[account_id] = BilledAccount(
            TierState.stored(cycle_start, consumed) if cycle_start else None,
            Held(
                account_id,
                site_id,
                Utility(utility),
                SupplyState(state),
                overrides,
                "",
                changed_at,
            ),
        )
    return found


def _id_in(conn: Connection, ids: list[int]) -> ColumnElement[bool]:
    """``meters.id IN ids``; one array parameter on PostgreSQL instead of thousands."""
    if is_postgres(conn):
        return meters.c.id == any_(literal(ids, type_=postgresql.ARRAY(Integer)))
    return meters.c.id.in_(ids)


def _account_in(conn: Connection, ids: list[int]) -> ColumnElement[bool]:
    if is_postgres(conn):
        return accounts.c.id == any_(literal(ids, type_=postgresql.ARRAY(Integer)))
    return accounts.c.id.in_(ids)


def _revenue_ids(
    conn: Connection, pairs: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, str]]:
    """The energy revenue ledger account (id, code) of each (site code, utility)."""
    codes = {pair: revenue_code(pair[0], Utility(pair[1])) for pair in pairs}
    ids = ledger_account_ids(conn, set(codes.values()))
    return {pair: (ids[code], code) for pair, code in codes.items()}


def stored_totals(
    conn: Connection, pairs: Sequence[tuple[int, datetime]]
) -> dict[tuple[int, datetime], Decimal]:
    """The register total stored for each (meter, time) pair already stored."""
    if not pairs:
        return {}
    times = [t for _, t in pairs]
    if is_postgres(conn):  # a join on arrays beats a 2000-way OR by far
        joined = text(
            "SELECT r.meter_id, r.read_at, r.total FROM readings r"
            " JOIN unnest(CAST(:m AS integer[]), CAST(:t AS timestamptz[])) AS v(meter_id, read_at)"
            " ON r.meter_id = v.meter_id AND r.read_at = v.read_at"
            " WHERE r.read_at BETWEEN :lo AND :hi"
        ).bindparams(m=[m for m, _ in pairs], t=times, lo=min(times), hi=max(times))
        typed = joined.columns(readings.c.meter_id, readings.c.read_at, readings.c.total)
        return {(int(m), t.astimezone(UTC)): total for m, t, total in conn.execute(typed)}
    query = select(readings.c.meter_id, readings.c.read_at, readings.c.total).where(
        readings.c.read_at >= min(times),
        readings.c.read_at <= max(times),
        tuple_(readings.c.meter_id, readings.c.read_at).in_(list(pairs)),
    )
    return {(int(m), t): total for m, t, total in conn.execute(query)}


READING_COLUMNS = (
    "meter_id",
    "read_at",
    "received_at",
    "total",
    "tip",
    "peak",
    "flat",
    "valley",
    "status_word",
    "source",
    "quality",
    "flags",
    "consumption",
)


def insert_readings(
    conn: Connection, rows: Sequence[dict[str, Any]]
) -> dict[tuple[int, datetime], int]:
    """Insert new readings (the caller holds their meters' locks); ids by (meter, time)."""
    if not rows:
        return {}
    complete: list[dict[str, Any]] = [
        row if len(row) == len(READING_COLUMNS) else {c: row.get(c) for c in READING_COLUMNS}
        for row in rows
    ]
    if is_postgres(conn):
        ids = allocate_ids(conn, "readings_id_seq", len(rows))
        for row, new_id in zip(complete, ids, strict=True):
            row["id"] = new_id
        copy_rows(conn, readings, ("id", *READING_COLUMNS), complete)
        return {(int(r["meter_id"]), r["read_at"]): int(r["id"]) for r in complete}
    stmt = insert(readings).returning(readings.c.id, readings.c.meter_id, readings.c.read_at)
    return {(int(m), t): int(i) for i, m, t in conn.execute(stmt, complete)}


CURSOR_COLUMNS = (
    "last_read_at",
    "last_total",
    "charge_carry",
    "last_tip",
    "last_peak",
    "last_flat",
    "last_valley",
)


def advance_cursors(
    conn: Connection,
    cursors: dict[int, LastAccepted],
    carries: dict[int, Decimal],
    registers: dict[int, Registers | None],
) -> None:
    """Move each meter's last accepted reading, TOU registers and billing carry."""
    rows = []
    for mid, c in cursors.items():
        tip, peak, flat, valley = registers.get(mid) or (None, None, None, None)
        rows.append(
            {
                "id": mid,
                "last_read_at": c.read_at,
                "last_total": c.total,
                "charge_carry": carries[mid],
                "last_tip": tip,
                "last_peak": peak,
                "last_flat": flat,
                "last_valley": valley,
            }
        )
    update_many(conn, meters, "id", CURSOR_COLUMNS, rows)
