"""What meterpay needs of a payment provider (WeChat Pay, Alipay, the local sandbox),
as plain data and one protocol. Providers live in ``payments/<name>.py``; the use cases
(``payments/service.py``) never see a provider's wire format.

Invariants every provider keeps:
- ``verify_notification`` accepts only what the provider itself signed, over the raw
  body bytes, with a fresh timestamp where the provider sends one; anything else raises
  ``BadNotification`` (a 4xx, nothing stored as processed, a security log entry);
- amounts are integer fen everywhere here, whatever the provider's wire format says
  (WeChat: fen; Alipay: yuan strings, converted exactly);
- ``out_trade_no`` is ours, unique and never reused; ``transaction_id`` is theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol

from meterpay.kernel.errors import InvalidInput


class ProviderName(StrEnum):
    WECHAT = "wechat"
    ALIPAY = "alipay"
    SANDBOX = "sandbox"


class Channel(StrEnum):
    """How the payer pays."""

    NATIVE = "native"
    """A QR code shown on the console or a counter screen (WeChat Native, Alipay precreate)."""
    JSAPI = "jsapi"
    """Inside WeChat's browser (the owners' H5 portal); needs the payer's openid."""


class NotificationKind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"


class BadNotification(InvalidInput):
    """A notification we must not trust: unsigned, badly signed, stale, a probe, for
    another merchant, or malformed. Answered 4xx; changes nothing."""

    code = "bad_notification"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    out_trade_no: str
    amount_fen: int
    description: str
    """Shown to the payer, e.g. "阳光花园 1-0101 电费充值"."""
    channel: Channel
    expires_at: datetime
    notify_url: str
    payer_openid: str | None = None
    """JSAPI only."""


@dataclass(frozen=True, slots=True)
class ProviderOrder:
    """What the payer needs to pay: a QR code's content, JSAPI parameters for
    ``WeixinJSBridge``, or a page URL (sandbox)."""

    out_trade_no: str
    code_url: str | None = None
    jsapi_params: Mapping[str, str] | None = None
    pay_url: str | None = None


class TradeState(StrEnum):
    NOT_PAID = "not_paid"
    PAID = "paid"
    CLOSED = "closed"
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class Trade:
    """A provider's view of one order (from a notification or a query)."""

    out_trade_no: str
    state: TradeState
    amount_fen: int
    transaction_id: str | None = None
    paid_at: datetime | None = None
    merchant_id: str = ""
    """mchid (WeChat), seller_id (Alipay)."""
    app_id: str = ""


@dataclass(frozen=True, slots=True)
class RefundRequest:
    out_trade_no: str
    out_refund_no: str
    refund_fen: int
    total_fen: int
    reason: str
    notify_url: str


class RefundState(StrEnum):
    PROCESSING = "processing"
    SUCCESS = "success"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Refund:
    out_trade_no: str
    out_refund_no: str
    state: RefundState
    refund_fen: int
    refund_id: str | None = None
    done_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """A verified notification, ready for the inbox."""

    key: str
    """Unique per delivery event: WeChat ``id``, Alipay ``notify_id``."""
    kind: NotificationKind
    trade: Trade | None = None
    refund: Refund | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """What the endpoint answers the provider."""

    status: int
    body: bytes
    content_type: str


class StatementKind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"


@dataclass(frozen=True, slots=True)
class StatementRow:
    """One line of a provider's daily statement (交易账单)."""

    out_trade_no: str
    transaction_id: str
    kind: StatementKind
    amount_fen: int
    fee_fen: int
    at: datetime
    out_refund_no: str | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    day: date
    rows: list[StatementRow] = field(default_factory=list)
    total_fen: int = 0
    """The statement's own summary total (payments minus refunds), for a cross-check."""
    fee_total_fen: int = 0


class PaymentProvider(Protocol):
    name: ProviderName

    def create_order(self, order: OrderRequest) -> ProviderOrder: ...

    def query(self, out_trade_no: str) -> Trade | None:
        """The provider's view; None when it does not know the order."""
        ...

    def close(self, out_trade_no: str) -> None: ...

    def refund(self, request: RefundRequest) -> Refund: ...

    def verify_notification(
        self, headers: Mapping[str, str], body: bytes, *, now: datetime
    ) -> Notification:
        """Check the signature over the raw body (and the timestamp, and probes), decrypt,
        and parse; ``BadNotification`` for anything not to be trusted."""
        ...

    def answer(self, *, accepted: bool, message: str = "") -> Answer:
        """The reply the provider expects: received, or please resend."""
        ...

    def statement(self, day: date) -> Statement:
        """Download and parse the day's statement."""
        ...
