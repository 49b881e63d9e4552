"""Validation of cumulative register readings (VEE): is it billable, and for how much.

A reading is a cumulative register value. Consumption is the advance of the
register since the last accepted reading, times the multiplier. Invariants:
- a reading from the future, with a register value the register cannot show,
  that goes backwards without a plausible rollover, or that implies more than
  the meter can physically pass, is ``suspect``: kept, not billed, and it does
  not move the starting point of the next interval;
- a reading not newer than the last accepted one is ``late`` and bills
  nothing, so the same interval is never billed twice;
- a rollover is billed as the advance through the wrap point:
  ``capacity - last + total``;
- the first reading of a meter (or a new meter's initial reading) is a
  ``baseline``: it starts the count and bills nothing.

These checks are pure; the clock reading (``received_at``) is passed in.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from meterpay.kernel.clock import require_aware
from meterpay.kernel.quantity import QUANTITY_QUANTUM, parse_quantity
from meterpay.metering.model import (
    Assessment,
    LastAccepted,
    MeterProfile,
    QualityFlag,
    ReadingQuality,
)

DEFAULT_FUTURE_TOLERANCE: Final = timedelta(minutes=5)
_MICROSECONDS_PER_HOUR: Final = 3_600_000_000
# Without a known maximum rate, a wrap is believed only from the top tenth of
# the register to the bottom tenth; anything else looks like a backwards step.
_ROLLOVER_BAND: Final = Decimal("0.1")

_ZERO: Final = Decimal("0.0000")
_BASELINE: Final = Assessment(
    ReadingQuality.BASELINE, (QualityFlag.FIRST_READING,), _ZERO, advances=True
)
_LATE: Final = Assessment(ReadingQuality.LATE, (QualityFlag.LATE,), _ZERO, advances=False)


def assess_reading(
    profile: MeterProfile,
    last: LastAccepted | None,
    read_at: datetime,
    total: Decimal,
    received_at: datetime,
    *,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
) -> Assessment:
    """Judge one reading of the register ``total`` taken at ``read_at``.

    Raises ``InvalidQuantity`` for a float or a total with more than 4 decimals,
    and ``ValueError`` for naive datetimes.
    """
    require_aware(read_at)
    require_aware(received_at)
    total = parse_quantity(total)
    if read_at > received_at + future_tolerance:
        return _suspect(QualityFlag.FUTURE)
    if not _register_can_show(profile, total):
        return _suspect(QualityFlag.OUT_OF_RANGE)
    if last is None:
        return _BASELINE
    if read_at <= last.read_at:
        return _LATE
    return _assess_advance(profile, last, read_at - last.read_at, total)


def _assess_advance(
    profile: MeterProfile, last: LastAccepted, elapsed: timedelta, total: Decimal
) -> Assessment:
    if total >= last.total:
        return _bill(profile, total - last.total, elapsed, ())
    wrapped = _plausible_rollover(profile, last.total, total, elapsed)
    if wrapped is None:
        return _suspect(QualityFlag.BACKWARDS)
    return _bill(profile, wrapped, elapsed, (QualityFlag.ROLLOVER,))


def _bill(
    profile: MeterProfile, delta: Decimal, elapsed: timedelta, flags: tuple[QualityFlag, ...]
) -> Assessment:
    consumption = (delta * profile.multiplier).quantize(QUANTITY_QUANTUM)
    if not _physically_possible(profile, consumption, elapsed):
        return _suspect(QualityFlag.SPIKE)
    return Assessment(ReadingQuality.VALID, flags, consumption, advances=True)


def _plausible_rollover(
    profile: MeterProfile, last_total: Decimal, total: Decimal, elapsed: timedelta
) -> Decimal | None:
    """The register advance through the wrap point, or None if a wrap is not believable."""
    capacity = profile.register_capacity
    if capacity is None or last_total >= capacity:
        return None
    wrapped = capacity - last_total + total
    if profile.max_rate_per_hour is not None:
        consumption = wrapped * profile.multiplier
        return wrapped if _physically_possible(profile, consumption, elapsed) else None
    near_top = last_total >= capacity * (1 - _ROLLOVER_BAND)
    near_bottom = total < capacity * _ROLLOVER_BAND
    return wrapped if near_top and near_bottom else None


def _physically_possible(profile: MeterProfile, consumption: Decimal, elapsed: timedelta) -> bool:
    """Whether the meter could pass ``consumption`` in ``elapsed`` (exact, no division)."""
    if profile.max_rate_per_hour is None:
        return True
    elapsed_us = elapsed // timedelta(microseconds=1)
    return consumption * _MICROSECONDS_PER_HOUR <= profile.max_rate_per_hour * elapsed_us


def _register_can_show(profile: MeterProfile, total: Decimal) -> bool:
    if total < 0:
        return False
    return profile.register_capacity is None or total < profile.register_capacity


def with_link_flags(
    verdict: Assessment,
    *,
    elapsed: timedelta | None,
    gap_after: timedelta,
    meter_time: datetime | None,
    received_at: datetime,
    skew_tolerance: timedelta,
) -> Assessment:
    """``verdict`` with what the link tells besides the register: a billed interval
    longer than ``gap_after`` (GAP), a meter clock off by more than ``skew_tolerance``
    from ours (CLOCK_SKEW). Neither changes what is billed."""
    extra: list[QualityFlag] = []
    if verdict.billed and elapsed is not None and elapsed > gap_after:
        extra.append(QualityFlag.GAP)
    if meter_time is not None and abs(require_aware(meter_time) - received_at) > skew_tolerance:
        extra.append(QualityFlag.CLOCK_SKEW)
    if not extra:
        return verdict
    return Assessment(
        verdict.quality, (*verdict.flags, *extra), verdict.consumption, verdict.advances
    )


def _suspect(flag: QualityFlag) -> Assessment:
    return Assessment(ReadingQuality.SUSPECT, (flag,), _ZERO, advances=False)


def assess_after_removal() -> Assessment:
    """A reading of a meter taken after it was removed: kept, never billed."""
    return _suspect(QualityFlag.METER_REMOVED)


def assess_without_tariff() -> Assessment:
    """Consumption that no tariff version prices yet.

    The reading is kept but does not advance the meter, so the next reading
    after a tariff is in force bills the whole interval: nothing is lost.
    """
    return _suspect(QualityFlag.NO_TARIFF)


TOU_REGISTERS: Final = ("tip", "peak", "flat", "valley")
Registers = tuple[Decimal | None, Decimal | None, Decimal | None, Decimal | None]


def register_deltas(
    profile: MeterProfile, before: Registers | None, after: Registers | None
) -> dict[str, Decimal] | None:
    """Per-period consumption (尖峰平谷) between two readings' TOU registers.

    Only registers present in both readings count. None (price by timestamps
    instead) when the meter has no TOU registers, or when any register went
    backwards — a wrapped or reset register says nothing reliable.
    """
    if before is None or after is None:
        return None
    deltas: dict[str, Decimal] = {}
    for name, old, new in zip(TOU_REGISTERS, before, after, strict=True):
        if old is None or new is None:
            continue
        if new < old:
            return None
        if new > old:
            deltas[name] = (new - old) * profile.multiplier
    return deltas or None
