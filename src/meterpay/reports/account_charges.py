"""An account's charges as the console shows them: the latest first, each with the meter
it came from and the priced components (energy by tier or time-of-use period,
surcharges, fixed fees, a share of a supplier's bill) with their exact amounts.

Read-only queries (a connection in, plain dataclasses out) that ``reports.account_view``
runs in its one transaction. A stored line that is not a component (the revenue-stream
summary) or cannot be read is left out, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from meterpay.db.schema import charges, meters
from meterpay.kernel.money import Money


@dataclass(frozen=True, slots=True)
class ChargePart:
    """One priced component of a charge: energy (by tier or time-of-use period), a
    surcharge, a fixed fee or a share of a supplier's bill."""

    component: str
    tier: int | None
    period: str | None
    quantity: Decimal | None
    unit_price: Decimal | None
    amount: Decimal | None
    """Exact, in yuan (the charge itself is rounded to the fen with a carry)."""
    name: str = ""


@dataclass(frozen=True, slots=True)
class ChargeLine:
    id: int
    kind: str
    created_at: datetime
    period_start: datetime
    period_end: datetime
    quantity: Decimal
    amount: Money
    meter_id: int | None
    meter_address: str | None
    parts: list[ChargePart]


def latest_charges(conn: Connection, account_id: int, *, limit: int) -> list[ChargeLine]:
    query = (
        select(charges, meters.c.address)
        .outerjoin(meters, meters.c.id == charges.c.meter_id)
        .where(charges.c.account_id == account_id)
        .order_by(charges.c.period_end.desc(), charges.c.id.desc())
        .limit(limit)
    )
    return [
        ChargeLine(
            id=r["id"],
            kind=r["kind"],
            created_at=r["created_at"],
            period_start=r["period_start"],
            period_end=r["period_end"],
            quantity=r["quantity"],
            amount=Money(int(r["amount_fen"])),
            meter_id=r["meter_id"],
            meter_address=r["address"],
            parts=charge_parts(r["lines"]),
        )
        for r in conn.execute(query).mappings()
    ]


def charge_parts(lines: Any) -> list[ChargePart]:
    """A charge's stored lines as parts (the revenue-stream summary line is not one)."""
    parts: list[ChargePart] = []
    for line in lines if isinstance(lines, list) else []:
        if not isinstance(line, dict) or "component" not in line:
            continue
        parts.append(
            ChargePart(
                component=str(line["component"]),
                tier=line.get("tier") if isinstance(line.get("tier"), int) else None,
                period=line.get("period") or None,
                quantity=_decimal(line.get("quantity")),
                unit_price=_decimal(line.get("unit_price")),
                amount=_decimal(line.get("exact_amount", line.get("amount"))),
                name=str(line.get("name") or ""),
            )
        )
    return parts


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except ArithmeticError:
        return None
