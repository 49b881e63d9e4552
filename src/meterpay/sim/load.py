"""Realistic daily load profiles per unit kind, for simulated meters.

Shapes follow ordinary Chinese usage: homes peak in the evening (cooking,
air conditioning) with a smaller morning peak; shops run from mid-morning to
late evening; offices during working hours; common areas (lighting,
elevators, pumps) at night and at a steady base. Values are average kW (or
m³/h for water) at each hour of the day before per-unit scaling.
"""

from __future__ import annotations

import random
from decimal import Decimal

from meterpay.kernel.quantity import Utility
from meterpay.sites.model import UnitKind

_ELECTRICITY_KW: dict[UnitKind, tuple[float, ...]] = {
    UnitKind.HOME: (
        0.3,
        0.25,
        0.2,
        0.2,
        0.2,
        0.25,
        0.6,
        0.9,
        0.6,
        0.4,
        0.4,
        0.6,
        0.8,
        0.5,
        0.4,
        0.4,
        0.5,
        0.9,
        1.4,
        1.6,
        1.5,
        1.2,
        0.8,
        0.5,
    ),
    UnitKind.SHOP: (
        0.2,
        0.2,
        0.2,
        0.2,
        0.2,
        0.2,
        0.3,
        0.5,
        1.5,
        2.5,
        3.0,
        3.2,
        3.2,
        3.0,
        3.0,
        3.0,
        3.2,
        3.5,
        3.8,
        3.6,
        3.0,
        2.0,
        0.8,
        0.3,
    ),
    UnitKind.OFFICE: (
        0.3,
        0.3,
        0.3,
        0.3,
        0.3,
        0.3,
        0.4,
        1.0,
        3.5,
        4.5,
        4.8,
        4.6,
        3.5,
        4.2,
        4.6,
        4.6,
        4.4,
        3.5,
        1.5,
        0.8,
        0.5,
        0.4,
        0.3,
        0.3,
    ),
    UnitKind.COMMON: (
        2.0,
        2.0,
        2.0,
        2.0,
        2.0,
        1.8,
        1.2,
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
        1.4,
        2.2,
        2.4,
        2.4,
        2.4,
        2.2,
        2.0,
    ),
}
_WATER_M3_PER_H: dict[UnitKind, tuple[float, ...]] = {
    UnitKind.HOME: (
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.01,
        0.04,
        0.05,
        0.03,
        0.01,
        0.01,
        0.02,
        0.03,
        0.01,
        0.01,
        0.01,
        0.01,
        0.02,
        0.04,
        0.05,
        0.05,
        0.04,
        0.03,
        0.01,
    ),
}


def consumption(
    utility: Utility, kind: UnitKind, *, hour: int, hours: float, scale: float, rng: random.Random
) -> Decimal:
    """Consumption over ``hours`` starting at ``hour``, with noise, 4 decimals."""
    table = _ELECTRICITY_KW if utility is Utility.ELECTRICITY else _WATER_M3_PER_H
    profile = table.get(kind) or table[UnitKind.HOME]
    mean = profile[hour % 24] * hours * scale
    used = max(0.0, rng.gauss(mean, mean * 0.25))
    return Decimal(f"{used:.4f}")
