"""A polled meter's reading as ingest takes it: exact registers to 4 decimals, our time.

Billing counts quantities in 0.0001 units. A meter may report more decimals (a
float32 register decodes to up to 9 significant digits); each register is cut
down (towards zero) to 4 decimals here, so the same meter value always gives the
same quantity and a cumulative register can never appear to go backwards by
rounding. Polled readings are stamped with our clock at the reply; the meter's
own clock, when the round read it, goes along for the clock-skew check.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from zoneinfo import ZoneInfo

from meterpay.drivers.polling import Reading
from meterpay.kernel.quantity import QUANTITY_QUANTUM
from meterpay.metering.meters import ReadingIn, ReadingSource


def reading_in(
    meter_id: int, reading: Reading, *, at: datetime, source: ReadingSource, zone: ZoneInfo
) -> ReadingIn | None:
    """``reading`` as a ``ReadingIn`` taken ``at``; None when the round read no total."""
    if reading.total is None:
        return None
    return ReadingIn(
        meter_id,
        at,
        reading.total.quantize(QUANTITY_QUANTUM, rounding=ROUND_DOWN),
        source,
        tip=_register(reading.tip),
        peak=_register(reading.peak),
        flat=_register(reading.flat),
        valley=_register(reading.valley),
        status_word=_status_word(reading),
        meter_time=_meter_clock(reading, zone),
    )


def _register(value: Decimal | None) -> Decimal | None:
    if value is None:
        return None
    return value.quantize(QUANTITY_QUANTUM, rounding=ROUND_DOWN)


def _status_word(reading: Reading) -> int | None:
    word = reading.other.get("status_word_3")
    if isinstance(word, int) and not isinstance(word, bool):
        return word
    status = reading.other.get("status")
    return int(status, 16) if isinstance(status, str) else None


def _meter_clock(reading: Reading, zone: ZoneInfo) -> datetime | None:
    """The meter's wall clock if this round read it (zone-less on the wire: site time)."""
    clock = reading.other.get("meter_time")
    if not isinstance(clock, datetime):
        return None
    return clock if clock.tzinfo is not None else clock.replace(tzinfo=zone)
