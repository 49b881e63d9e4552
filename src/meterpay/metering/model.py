"""What a meter is, and what we conclude about one reading of it.

Invariants:
- a meter's multiplier (倍率) is a whole number >= 1; its register capacity
  and its physical maximum rate, when known, are positive;
- an assessment bills (``consumption > 0`` is possible) only when its quality
  is ``valid``; consumption is never negative and has 4 decimals;
- exactly the ``valid`` and ``baseline`` readings advance the meter's last
  accepted reading; ``suspect`` and ``late`` readings are kept, never billed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from meterpay.kernel.clock import require_aware
from meterpay.kernel.quantity import QUANTITY_QUANTUM


class ReadingQuality(StrEnum):
    VALID = "valid"
    """Billed: consumption is the difference to the last accepted reading."""
    BASELINE = "baseline"
    """A starting point (first reading, or a new meter's initial reading)."""
    SUSPECT = "suspect"
    """Kept but not billed; a person has to look at it."""
    LATE = "late"
    """Not newer than the last accepted reading: that interval is billed already."""


class QualityFlag(StrEnum):
    BACKWARDS = "backwards"
    SPIKE = "spike"
    FUTURE = "future"
    ROLLOVER = "rollover"
    LATE = "late"
    FIRST_READING = "first_reading"
    OUT_OF_RANGE = "out_of_range"
    """The register value is negative or beyond what the register can show."""
    METER_REMOVED = "meter_removed"
    """Taken after the meter was removed (replaced): someone is still reading it."""
    NO_TARIFF = "no_tariff"
    """No tariff version was in force for the interval: priced once one is."""
    GAP = "gap"
    """Billed over an interval much longer than usual (the meter was away): the
    consumption is spread over the whole interval by time for TOU and tiers."""
    CLOCK_SKEW = "clock_skew"
    """The meter's own clock is off from ours by more than the tolerance: sync it."""


@dataclass(frozen=True, slots=True)
class MeterProfile:
    """What a meter can physically show and pass.

    ``max_rate_per_hour`` is in billed units, after the multiplier (kWh/h,
    i.e. rated kW, for electricity; m³/h for water).
    """

    multiplier: int = 1
    register_capacity: Decimal | None = None
    max_rate_per_hour: Decimal | None = None

    def __post_init__(self) -> None:
        if isinstance(self.multiplier, bool) or not isinstance(self.multiplier, int):
            raise ValueError(f"multiplier must be an int, got {self.multiplier!r}")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be at least 1, got {self.multiplier}")
        _require_positive("register_capacity", self.register_capacity)
        _require_positive("max_rate_per_hour", self.max_rate_per_hour)


def _require_positive(name: str, value: Decimal | None) -> None:
    if value is not None and not (isinstance(value, Decimal) and value > 0):
        raise ValueError(f"{name} must be a positive Decimal or None, got {value!r}")


@dataclass(frozen=True, slots=True)
class LastAccepted:
    """The reading that consumption is measured from: raw register value and time."""

    read_at: datetime
    total: Decimal

    def __post_init__(self) -> None:
        require_aware(self.read_at)


@dataclass(frozen=True, slots=True)
class Assessment:
    """The verdict on one reading."""

    quality: ReadingQuality
    flags: tuple[QualityFlag, ...]
    consumption: Decimal
    advances: bool

    def __post_init__(self) -> None:
        if self.consumption < 0 or self.consumption != self.consumption.quantize(QUANTITY_QUANTUM):
            raise ValueError(f"consumption {self.consumption} is negative or too precise")
        if self.consumption and self.quality is not ReadingQuality.VALID:
            raise ValueError(f"a {self.quality} reading bills nothing")
        expected = self.quality in (ReadingQuality.VALID, ReadingQuality.BASELINE)
        if self.advances is not expected:
            raise ValueError(f"a {self.quality} reading must have advances={expected}")

    @property
    def billed(self) -> bool:
        return self.quality is ReadingQuality.VALID
