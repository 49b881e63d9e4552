"""Waiting on polled links in tests: conditions with deadlines, readings stored per meter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import func, select

from meterpay.db.schema import readings
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
