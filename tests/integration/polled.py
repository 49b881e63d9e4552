"""Waiting on polled links in tests: conditions with deadlines, readings stored per meter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

from sqlalchemy import func, select

from meterpay.db.schema import charges, readings
from meterpay.metering import service as metering
from meterpay.runtime import Runtime


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:
    """Wait until ``check`` holds; fail (never hang) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        await asyncio.sleep(0.1)


def readings_per_meter(rt: Runtime, source: str) -> dict[int, int]:
    """How many readings from ``source`` each meter has stored."""
    with rt.db.read() as conn:
        rows = conn.execute(
            select(readings.c.meter_id, func.count())
            .where(readings.c.source == source)
            .group_by(readings.c.meter_id)
        ).all()
    return {int(m): int(n) for m, n in rows}


def assert_billed_exactly_once(
    rt: Runtime, meter_id: int, *, opening: Decimal, price: Decimal
) -> Decimal:
    """A meter's charges add up to the price of all it used since ``opening``, each valid
    reading charged once, the rounding carry under a fen; its last total, for more checks."""
    meter = metering.get_meter(rt, meter_id)
    with rt.db.read() as conn:
        used, charged, charged_readings = conn.execute(
            select(
                func.coalesce(func.sum(charges.c.quantity), 0),
                func.coalesce(func.sum(charges.c.amount_fen), 0),
                func.count(func.distinct(charges.c.reading_id)),
            ).where(charges.c.meter_id == meter_id)
        ).one()
        valid = conn.execute(
            select(func.count())
            .select_from(readings)
            .where(readings.c.meter_id == meter_id, readings.c.quality == "valid")
        ).scalar_one()
    assert meter.last_total is not None
    assert Decimal(used) == meter.last_total - opening  # billed from the opening to the last read
    assert charged_readings == valid  # one charge per valid reading, none twice
    exact = (meter.last_total - opening) * price * 100
    assert abs(Decimal(int(charged)) - exact) <= Decimal("0.5")  # the carry, under a fen
    return meter.last_total
