"""How the console writes money and times: ``¥1,234.56`` and ``-¥12.34``; times in the
site's own time zone, ``11月27日 14:30`` (``27 Nov 14:30`` in English), with the year
only when it is not the year of the page's own moment. Money is formatted from whole
fen (exact); no clock is read here: the page's moment is passed in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from meterpay.kernel.money import Money
from meterpay.web.console.labels import Lang

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def yuan(amount: Money) -> str:
    sign = "-" if amount.fen < 0 else ""
    whole, fen = divmod(abs(amount.fen), 100)
    return f"{sign}¥{whole:,}.{fen:02d}"


def iso(moment: datetime | None) -> str:
    """For ``<time datetime=...>``: machines (and the later charts) read this."""
    return moment.isoformat(timespec="seconds") if moment is not None else ""


@dataclass(frozen=True, slots=True)
class SiteClock:
    """Times as the site's wall clock shows them, relative to the page's moment."""

    zone: ZoneInfo
    now: datetime
    lang: Lang = Lang.ZH_CN

    @classmethod
    def of(cls, zone: str, now: datetime, lang: Lang = Lang.ZH_CN) -> SiteClock:
        return cls(ZoneInfo(zone), now, lang)

    def __call__(self, moment: datetime | None) -> str:
        """A moment on the site's clock; an empty string for no moment."""
        if moment is None:
            return ""
        local = moment.astimezone(self.zone)
        other_year = local.year != self.now.astimezone(self.zone).year
        if self.lang is Lang.EN:
            year = f" {local.year}" if other_year else ""
            return f"{local.day} {_MONTHS[local.month - 1]}{year} {local:%H:%M}"
        year = f"{local.year}年" if other_year else ""
        return f"{year}{local.month}月{local.day}日 {local:%H:%M}"
