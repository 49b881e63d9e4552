"""Fixed periodic fees (monthly service fee, meter rental) falling due.

Invariants:
- a monthly fee falls due once per calendar month, on the month's first day;
  ``fixed_fees_due`` lists the fees of every month whose first day lies in
  ``[period_start, period_end)``, so back-to-back periods never list a month
  twice and never skip one;
- charging a fee exactly once is the caller's job: the key is the account,
  the fee's code and ``FeeDue.period_key`` (``"2025-03"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from meterpay.kernel.money import Money, round_to_fen
from meterpay.tariffs.components import TariffComponents, TopUpFee


@dataclass(frozen=True, slots=True)
class FeeDue:
    """One fixed fee for one month: ``component`` is ``"fee:<code>"``."""

    code: str
    name: str
    month: date
    amount: Money

    @property
    def component(self) -> str:
        return f"fee:{self.code}"

    @property
    def period_key(self) -> str:
        return f"{self.month:%Y-%m}"


def fixed_fees_due(
    components: TariffComponents, period_start: date, period_end: date
) -> list[FeeDue]:
    """The fees of every month starting in ``[period_start, period_end)``, month by month."""
    for bound in (period_start, period_end):
        if isinstance(bound, datetime) or not isinstance(bound, date):
            raise TypeError(f"fee periods are dates, got {bound!r}")
    if period_end < period_start:
        raise ValueError(f"period ends ({period_end}) before it starts ({period_start})")
    return [
        FeeDue(fee.code, fee.name, month, fee.amount)
        for month in _month_starts(period_start, period_end)
        for fee in components.fixed_fees
    ]


def _month_starts(start: date, end: date) -> list[date]:
    month = start.replace(day=1)
    if month < start:
        month = _next_month(month)
    months = []
    while month < end:
        months.append(month)
        month = _next_month(month)
    return months


def _next_month(month: date) -> date:
    if month.month == 12:
        return month.replace(year=month.year + 1, month=1)
    return month.replace(month=month.month + 1)


def topup_fee_amount(fee: TopUpFee | None, top_up: Money) -> Money:
    """The service fee on a top-up (percent rounded half up to the fen); zero without one.

    Off by default and usually unlawful for residential supply (物业管理条例
    第四十四条): see ``components.topup_fee_warnings``.
    """
    if fee is None:
        return Money(0)
    if fee.fixed is not None:
        return fee.fixed
    assert fee.percent is not None  # noqa: S101  TopUpFee holds exactly one of the two
    return round_to_fen(top_up.yuan * fee.percent / 100)
