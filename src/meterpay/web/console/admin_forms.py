"""What the administration pages share: reading a posted form (urlencoded or multipart),
typed fields with errors that name the field, times typed on the site's clock, the page
context (language, words, site choice) and a page answered with a status.

Only parsing and rendering live here; every decision is the services'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from zoneinfo import ZoneInfo

from fastapi import Request
from starlette.datastructures import FormData
from starlette.responses import Response

from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.money import InvalidAmount, Money
from meterpay.sites.model import Site
from meterpay.web.console.formats import SiteClock
from meterpay.web.console.labels import Lang, Words
from meterpay.web.console.templating import render

DEFAULT_ZONE: Final = "Asia/Shanghai"
MAX_FIELDS: Final = 400


async def form_of(request: Request) -> FormData:
    """The posted fields (a JSON body or none gives an empty form: the use case refuses)."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return FormData()
    return await request.form(max_fields=MAX_FIELDS)


def text(form: FormData, name: str, limit: int = 200) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def number(form: FormData, name: str) -> int | None:
    raw = text(form, name, 20)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name}: not a whole number: {raw!r}", field=name) from None


def number_or_none(form: FormData, name: str) -> int | None:
    """A whole number, or None when missing or not a number (an optional choice)."""
    try:
        return number(form, name)
    except InvalidInput:
        return None


def decimal(form: FormData, name: str, *, required: bool = True) -> Decimal | None:
    raw = text(form, name, 40)
    if not raw:
        if required:
            raise InvalidInput(f"{name} is required", field=name)
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise InvalidInput(f"{name}: not a number: {raw!r}", field=name) from None
    if not value.is_finite():
        raise InvalidInput(f"{name}: not a number: {raw!r}", field=name)
    return value


def money(form: FormData, name: str) -> Money | None:
    raw = text(form, name, 40)
    if not raw:
        return None
    try:
        return Money.from_yuan(raw)
    except (InvalidAmount, InvalidOperation, ValueError):
        raise InvalidInput(f"{name}: not an amount of money: {raw!r}", field=name) from None


def local_moment(raw: str, zone: str, field: str) -> datetime:
    """``2026-11-02T08:00`` or ``2026-11-02`` (midnight), typed on the site's clock."""
    try:
        if "T" in raw or " " in raw:
            moment = datetime.fromisoformat(raw.replace(" ", "T"))
        else:
            moment = datetime.combine(date.fromisoformat(raw), time())
    except ValueError:
        raise InvalidInput(f"{field}: not a date and time: {raw!r}", field=field) from None
    if moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=ZoneInfo(zone))


def day_start(raw: str | None, zone: str, field: str, *, after: bool = False) -> datetime | None:
    """Midnight of a ``YYYY-MM-DD`` day on the site's clock (of the next day: ``after``)."""
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{field}: not a date (YYYY-MM-DD): {raw!r}", field=field) from None
    return datetime.combine(day + timedelta(days=1 if after else 0), time(), ZoneInfo(zone))


def local_input(moment: datetime | None, zone: str) -> str:
    """A moment as a ``datetime-local`` input's value on the site's clock."""
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")


@dataclass(frozen=True, slots=True)
class Page:
    """The words, language and clock every administration page renders with."""

    lang: Lang
    now: datetime
    zone: str = DEFAULT_ZONE

    @property
    def words(self) -> Words:
        return Words(self.lang)

    @property
    def clock(self) -> SiteClock:
        return SiteClock.of(self.zone, self.now, self.lang)

    def context(self, **more: Any) -> dict[str, Any]:
        return {"w": self.words, "lang": self.lang, "clock": self.clock, "zone": self.zone} | more


def page_of(
    request: Request, now: datetime, site: Site | None = None, lang: str | None = None
) -> Page:
    chosen = lang or request.query_params.get("lang")
    return Page(Lang.of(chosen), now, site.timezone if site else DEFAULT_ZONE)


def answer(request: Request, name: str, context: Mapping[str, Any], status: int = 200) -> Response:
    response = render(request, name, dict(context))
    response.status_code = status
    return response


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"
