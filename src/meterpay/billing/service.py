"""Readings -> consumption -> charges -> ledger transfers, inside the caller's
transaction (the ingest use case), exactly once per reading.

Invariants:
- a reading is charged at most once: ``charges.reading_id`` is unique and the
  transfer's idempotency key is ``charge:reading:<id>``;
- per meter, charges carry the sub-fen remainder (``meters.charge_carry``,
  read under the meter's row lock) so a run of readings' charges sums to the
  fen to the price of its total consumption;
- the wallet moves by an atomic increment of its posted totals, so concurrent
  charges and top-ups on one account lose nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection

from meterpay.billing.model import BillingTarget
from meterpay.billing.rules import ChargeLine, PriceVersion, charge_with_carry, split_by_versions
from meterpay.db.bulk import copy_rows
from meterpay.db.schema import charges
from meterpay.ledger import repository as ledger
from meterpay.ledger.model import Transfer, TransferKind
from meterpay.ledger.repository import Posting

CHARGE_COLUMNS = (
    "account_id",
    "meter_id",
    "reading_id",
    "transfer_key",
    "period_start",
    "period_end",
    "quantity",
    "amount_fen",
    "lines",
    "created_at",
)


@dataclass(frozen=True, slots=True)
class Billable:
    """A valid reading's consumption over [start, end), for the meter's account."""

    reading_id: int
    meter_id: int
    account_id: int
    start: datetime
    end: datetime
    quantity: Decimal


def charge(
    conn: Connection,
    billables: Sequence[Billable],
    schedules: dict[int, list[PriceVersion]],
    targets: Mapping[int, BillingTarget],
    carries: dict[int, Decimal],
    *,
    actor: str,
    now: datetime,
) -> dict[int, int]:
    """Charge each billable to its meter's target account at its tariff
    (``schedules`` by tariff id), carrying sub-fen remainders per meter in
    ``carries`` (updated in place); return the amount in fen by reading id."""
    amounts: dict[int, int] = {}
    charge_rows: list[dict[str, object]] = []
    postings: list[Posting] = []
    for b in sorted(billables, key=lambda b: (b.meter_id, b.end)):
        target = targets[b.meter_id]
        lines = split_by_versions(b.quantity, b.start, b.end, schedules[target.tariff_id])
        money, carries[b.meter_id] = charge_with_carry(lines, carries[b.meter_id])
        amounts[b.reading_id] = money.fen
        key = f"charge:reading:{b.reading_id}" if money.fen > 0 else None
        charge_rows.append(_charge_row(b, lines, money.fen, key, now))
        if key is not None:
            transfer = Transfer(
                key, target.wallet_id, target.revenue_id, money.fen, TransferKind.CHARGE
            )
            postings.append(Posting(transfer, b.account_id, f"{b.quantity} @ meter {b.meter_id}"))
    copy_rows(conn, charges, CHARGE_COLUMNS, charge_rows)
    ledger.post_fresh(conn, postings, actor=actor, now=now)
    return amounts


def _charge_row(
    b: Billable, lines: list[ChargeLine], fen: int, key: str | None, now: datetime
) -> dict[str, object]:
    return {
        "account_id": b.account_id,
        "meter_id": b.meter_id,
        "reading_id": b.reading_id,
        "transfer_key": key,
        "period_start": b.start,
        "period_end": b.end,
        "quantity": b.quantity,
        "amount_fen": fen,
        "created_at": now,
        "lines": [
            {
                "version_id": line.version_id,
                "quantity": str(line.quantity),
                "unit_price": str(line.unit_price),
                "exact_amount": str(line.exact_amount),
            }
            for line in lines
        ],
    }
