"""What printed counter pages (receipts, shift reports) need beyond the console's
formats: the full date and time on the site's clock (a receipt is kept for years, so
the year is always written) and the paper sizes a counter prints on.

The paper decides the page's ``@page`` size: an 80 mm thermal roll (the height follows
the content) or an A6 sheet. Only these fixed values ever reach the page's CSS.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from meterpay.web.console.labels import Lang


class Paper(StrEnum):
    THERMAL_80MM = "80mm"
    A6 = "a6"

    @classmethod
    def of(cls, value: str | None) -> Paper:
        return cls.A6 if value and value.lower() == cls.A6.value else cls.THERMAL_80MM

    @property
    def page_size(self) -> str:
        """The CSS ``@page`` size: a roll is as long as what is printed on it."""
        return "A6 portrait" if self is Paper.A6 else "80mm auto"


@dataclass(frozen=True, slots=True)
class FullClock:
    """``2026年11月1日 08:00:05`` (``2026-11-01 08:00:05`` in English) on the site's clock."""

    zone: ZoneInfo
    lang: Lang = Lang.ZH_CN

    @classmethod
    def of(cls, zone: str, lang: Lang = Lang.ZH_CN) -> FullClock:
        return cls(ZoneInfo(zone), lang)

    def __call__(self, moment: datetime | None) -> str:
        if moment is None:
            return ""
        local = moment.astimezone(self.zone)
        if self.lang is Lang.EN:
            return f"{local:%Y-%m-%d %H:%M:%S}"
        return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M:%S}"
