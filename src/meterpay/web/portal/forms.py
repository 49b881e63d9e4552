"""Reading the portal's forms: urlencoded fields by hand (the counter's way), amounts of
money and warning levels, with a clear refusal naming the field."""

from __future__ import annotations

from decimal import InvalidOperation
from typing import Final
from urllib.parse import parse_qs

from fastapi import Request

from meterpay.control.model import WarningLevel
from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.money import InvalidAmount, Money

LANG_FIELD: Final = "lang"


async def form_fields(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0].strip() for k, v in parse_qs(body, max_num_fields=30).items()}


def amount_of(text: str, field: str = "amount") -> Money:
    try:
        amount = Money.from_yuan(text)
    except (InvalidAmount, InvalidOperation, ValueError) as exc:
        raise InvalidInput(f"not an amount of money: {text!r}", field=field) from exc
    if amount.fen <= 0:
        raise InvalidInput("the amount must be more than 0", field=field)
    return amount


def warning_of(kind: str, value: str, field: str) -> WarningLevel | None:
    """``site`` (or nothing): the site's level; ``amount``: 元; ``days``: days left."""
    if kind in ("", "site"):
        return None
    if kind == "amount":
        return WarningLevel.of_amount(amount_of(value, field))
    if kind == "days":
        try:
            days = int(value)
            return WarningLevel.of_days(days)
        except ValueError as exc:
            raise InvalidInput(f"{field}: a whole number of days >= 1", field=field) from exc
    raise InvalidInput(f"{field}: choose the property's level, an amount or days", field=field)
