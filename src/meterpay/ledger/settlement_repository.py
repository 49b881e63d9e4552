"""Queries for move-out settlements: the locks a settlement takes, the meters it hands
over, the account it closes, the record it writes. Never commits.

Locks, in the product's order: the account's meters (as ingest takes them), then the
ledger rows the settlement moves (id order), then — in the service — the account rows,
then command rows. On SQLite the write transaction itself serializes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, RowMapping, or_, select, update

from meterpay.db.rows import insert_row, to_model
from meterpay.db.schema import (
    accounts,
    customers,
    ledger_accounts,
    meters,
    move_out_settlements,
    sites,
    units,
)
from meterpay.kernel.errors import NotFound
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger.settlement_model import (
    FinalReading,
    HandedOver,
    Party,
    Payout,
    Settlement,
    SettlementView,
)
from meterpay.metering.meters import Meter
from meterpay.sites.model import AccountStatus


def lock_meters_of(conn: Connection, account_id: int) -> list[int]:
    """The account's installed meters, row-locked in id order (FOR NO KEY UPDATE, as
    ingest locks them): no reading of theirs is billed while the account settles."""
    query = (
        select(meters.c.id)
        .where(meters.c.account_id == account_id, meters.c.removed_at.is_(None))
        .order_by(meters.c.id)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=meters, key_share=True)
    return [int(m) for m in conn.execute(query).scalars()]


def lock_ledger_rows(conn: Connection, ledger_account_ids: Iterable[int]) -> None:
    """Hold the ledger rows a balance decision depends on, in id order (the lock a
    posting takes, taken before the decision instead of with the posting)."""
    ids = sorted(set(ledger_account_ids))
    if ids and conn.dialect.name == "postgresql":
        query = (
            select(ledger_accounts.c.id)
            .where(ledger_accounts.c.id.in_(ids))
            .order_by(ledger_accounts.c.id)
            .with_for_update(key_share=True)
        )
        conn.execute(query).all()


def meters_by_id(conn: Connection, meter_ids: Sequence[int]) -> list[Meter]:
    if not meter_ids:
        return []
    query = select(meters).where(meters.c.id.in_(sorted(meter_ids))).order_by(meters.c.id)
    return [to_model(Meter, row) for row in conn.execute(query).mappings()]


def hand_over(conn: Connection, meter_ids: Sequence[int], to_account_id: int | None) -> None:
    """Meters now bill the next occupant's account (or none) from their cursor; the
    sub-fen carry of the old account's run is not passed on to the next one."""
    if meter_ids:
        conn.execute(
            update(meters)
            .where(meters.c.id.in_(sorted(meter_ids)))
            .values(account_id=to_account_id, charge_carry=Decimal(0))
        )


def close_account(conn: Connection, account_id: int, now: datetime) -> None:
    """Closed, and out of the arrears review: no decision is due for it any more."""
    conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(status=AccountStatus.CLOSED.value, closed_at=now, next_decision_at=None)
    )


def add(conn: Connection, values: dict[str, Any]) -> Settlement:
    row_id = insert_row(conn, move_out_settlements, values)
    return _settlement({**values, "id": row_id})


def by_key(conn: Connection, key: str) -> tuple[Settlement, str] | None:
    """A settlement made under ``key``, with its request's digest."""
    query = select(move_out_settlements).where(move_out_settlements.c.idempotency_key == key)
    row = conn.execute(query).mappings().first()
    return (_settlement(row), str(row["request_digest"])) if row is not None else None


def by_id(conn: Connection, settlement_id: int) -> Settlement:
    query = select(move_out_settlements).where(move_out_settlements.c.id == settlement_id)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"no move-out settlement {settlement_id}", id=settlement_id)
    return _settlement(row)


def of_account(conn: Connection, account_id: int) -> list[Settlement]:
    """Settlements that closed the account or handed over to it, newest first."""
    query = (
        select(move_out_settlements)
        .where(
            or_(
                move_out_settlements.c.account_id == account_id,
                move_out_settlements.c.to_account_id == account_id,
            )
        )
        .order_by(move_out_settlements.c.id.desc())
    )
    return [_settlement(row) for row in conn.execute(query).mappings()]


def view(conn: Connection, settlement_id: int) -> SettlementView:
    """A settlement with its site, unit, account holders, as the printed form shows it."""
    found = by_id(conn, settlement_id)
    query = (
        select(
            sites.c.name.label("site_name"),
            sites.c.timezone,
            units.c.code.label("unit_code"),
            units.c.name.label("unit_name"),
            accounts.c.utility,
        )
        .select_from(accounts)
        .join(units, units.c.id == accounts.c.unit_id)
        .join(sites, sites.c.id == accounts.c.site_id)
        .where(accounts.c.id == found.account_id)
    )
    row = conn.execute(query).mappings().one()
    nxt = _party(conn, found.to_account_id) if found.to_account_id is not None else None
    return SettlementView(
        settlement=found,
        site_name=row["site_name"],
        timezone=row["timezone"],
        unit_code=row["unit_code"],
        unit_name=row["unit_name"],
        utility=Utility(row["utility"]),
        account=_party(conn, found.account_id),
        next_occupant=nxt,
    )


def _party(conn: Connection, account_id: int) -> Party:
    query = (
        select(accounts.c.number, customers.c.name)
        .select_from(accounts)
        .outerjoin(customers, customers.c.id == accounts.c.customer_id)
        .where(accounts.c.id == account_id)
    )
    number, holder = conn.execute(query).one()
    return Party(account_id, str(number), holder)


def final_reading_json(reading: FinalReading) -> dict[str, Any]:
    return {
        "meter_id": reading.meter_id,
        "address": reading.address,
        "read_at": reading.read_at.isoformat(),
        "total": str(reading.total),
        "charge_fen": reading.charge.fen,
        "entered": reading.entered,
    }


def handed_over_json(meter: HandedOver) -> dict[str, Any]:
    return {
        "meter_id": meter.meter_id,
        "address": meter.address,
        "to_account_id": meter.to_account_id,
    }


def _settlement(row: RowMapping | dict[str, Any]) -> Settlement:
    return Settlement(
        id=int(row["id"]),
        idempotency_key=row["idempotency_key"],
        site_id=int(row["site_id"]),
        account_id=int(row["account_id"]),
        final_readings=tuple(
            FinalReading(
                meter_id=int(r["meter_id"]),
                address=str(r["address"]),
                read_at=datetime.fromisoformat(r["read_at"]),
                total=Decimal(r["total"]),
                charge=Money(int(r["charge_fen"])),
                entered=bool(r["entered"]),
            )
            for r in row["final_readings"]
        ),
        charges=Money(int(row["charges_fen"])),
        balance=Money(int(row["balance_fen"])),
        payout=Payout(row["payout"]),
        payout_amount=Money(int(row["payout_fen"])),
        to_account_id=row["to_account_id"],
        transfer_key=row["transfer_key"],
        debt=Money(int(row["debt_fen"])),
        meters=tuple(
            HandedOver(int(m["meter_id"]), str(m["address"]), m["to_account_id"])
            for m in row["meters"]
        ),
        settled_by=row["settled_by"],
        at=row["at"],
        reason=row["reason"],
    )
