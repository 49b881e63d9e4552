"""What billing needs to know about where money goes (plain data, no I/O)."""

from __future__ import annotations

from typing import NamedTuple


class BillingTarget(NamedTuple):
    """Where a meter's charges go: its account's wallet and its site's revenue."""

    account_id: int
    wallet_id: int
    revenue_id: int
    tariff_id: int
    revenue_code: str
    """The energy revenue ledger account's code; surcharges append ``:<code>``."""
    time_zone: str = "Asia/Shanghai"
