"""Top-up orders: their states as a table, the site's limits, order numbers (plain data).

Invariants:
- an order moves only along ``TRANSITIONS``: created -> paid -> credited, created ->
  closed, credited -> refunded; a payment reported for a closed order is still
  credited (money received is never lost): closed -> paid;
- ``out_trade_no`` is made once per order from its id and never reused;
- a top-up is within the site's limits: at least ``min``, at most ``max``, and an
  account's top-ups of one day (site time) at most ``daily_cap`` — limits on the
  amount only, never on who pays or what else they owe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Final

from meterpay.kernel.errors import Conflict, InvalidInput
from meterpay.kernel.money import Money
from meterpay.payments.provider import Channel, ProviderName


class OrderState(StrEnum):
    CREATED = "created"
    PAID = "paid"
    """The provider says paid; not yet in the wallet (the account was closed meanwhile,
    or the amount did not match): a person looks."""
    CREDITED = "credited"
    CLOSED = "closed"
    REFUNDED = "refunded"
    """Refunded in full (a partial refund keeps ``credited`` with ``refunded_fen``)."""


class OrderEvent(StrEnum):
    PAID = "paid"
    CREDITED = "credited"
    CLOSED = "closed"
    REFUNDED = "refunded"


TRANSITIONS: Final[dict[tuple[OrderState, OrderEvent], OrderState]] = {
    (OrderState.CREATED, OrderEvent.PAID): OrderState.PAID,
    (OrderState.CREATED, OrderEvent.CLOSED): OrderState.CLOSED,
    (OrderState.CLOSED, OrderEvent.PAID): OrderState.PAID,
    (OrderState.PAID, OrderEvent.CREDITED): OrderState.CREDITED,
    (OrderState.CREDITED, OrderEvent.REFUNDED): OrderState.REFUNDED,
}


class IllegalOrderMove(Conflict):
    code = "illegal_order_move"


def move(state: OrderState, event: OrderEvent) -> OrderState:
    found = TRANSITIONS.get((state, event))
    if found is None:
        raise IllegalOrderMove(
            f"a {state.value} order cannot become {event.value}", state=state, event=event
        )
    return found


DEFAULT_MIN: Final = Money(100)  # 1 元
DEFAULT_MAX: Final = Money(500_000)  # 5,000 元
DEFAULT_DAILY_CAP: Final = Money(1_000_000)  # 10,000 元


class OutsideLimits(InvalidInput):
    code = "outside_topup_limits"


@dataclass(frozen=True, slots=True)
class Limits:
    minimum: Money = DEFAULT_MIN
    maximum: Money = DEFAULT_MAX
    daily_cap: Money = DEFAULT_DAILY_CAP

    def __post_init__(self) -> None:
        if not (Money(0) < self.minimum <= self.maximum <= self.daily_cap):
            raise InvalidInput("limits must be 0 < minimum <= maximum <= daily cap", field="limits")

    def check(self, amount: Money, *, today_so_far: Money) -> None:
        """Refuse an amount outside the limits, naming the limit."""
        if amount < self.minimum:
            raise OutsideLimits(f"a top-up is at least {self.minimum} 元", field="amount")
        if amount > self.maximum:
            raise OutsideLimits(f"a top-up is at most {self.maximum} 元", field="amount")
        if today_so_far + amount > self.daily_cap:
            left = self.daily_cap - today_so_far
            raise OutsideLimits(
                f"today's top-ups of this account would pass {self.daily_cap} 元"
                f" (left today: {max(left, Money(0))} 元)",
                field="amount",
            )


def out_trade_no(provider: ProviderName, order_id: int, day: date) -> str:
    """``MP`` + provider letter + date + the order id: unique, never reused, at most 32
    characters of [0-9A-Z] as both providers accept."""
    letter = {ProviderName.WECHAT: "W", ProviderName.ALIPAY: "A", ProviderName.SANDBOX: "S"}
    return f"MP{letter[provider]}{day:%Y%m%d}{order_id:012d}"


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    out_trade_no: str
    provider: ProviderName
    channel: Channel
    site_id: int
    account_id: int
    amount_fen: int
    state: OrderState
    requested_by: str
    created_at: datetime
    expires_at: datetime
    updated_at: datetime
    next_query_at: datetime | None
    transaction_id: str | None
    paid_at: datetime | None
    credited_at: datetime | None
    code_url: str | None
    pay_url: str | None
    refunded_fen: int
    note: str
    merchant: str = ""
    """The site's own merchant the order was made with; ``""``: the provider's default."""
    jsapi_params: Mapping[str, str] | None = None
    """What WeChat's JSAPI needs to open the payment (signed, for the payer's page): given
    when the order is made, never stored."""

    def taken_by(self, provider: ProviderName, merchant: str) -> bool:
        """Whether this merchant of this provider was asked for the order."""
        return self.provider is provider and self.merchant == merchant

    @property
    def amount(self) -> Money:
        return Money(self.amount_fen)
