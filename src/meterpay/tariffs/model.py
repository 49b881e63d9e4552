"""Tariffs and their versions.

A version takes effect at its ``effective_from``; consumption is priced by the
version in force when it was used (see ``billing.rules.split_by_versions``).
A version's price rules are its ``components`` (``tariffs.components``);
``unit_price`` is the base energy price, kept beside them for listings and the
flat fast path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from meterpay.kernel.quantity import Utility
from meterpay.tariffs.components import TariffComponents


@dataclass(frozen=True, slots=True)
class TariffVersion:
    id: int
    tariff_id: int
    effective_from: datetime
    unit_price: Decimal
    created_at: datetime
    components: TariffComponents | None = None


@dataclass(frozen=True, slots=True)
class Tariff:
    id: int
    site_id: int
    code: str
    name: str
    utility: Utility
    created_at: datetime
    versions: tuple[TariffVersion, ...] = ()
