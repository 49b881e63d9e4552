"""Alipay (open platform, v2 gateway ``gateway.do``) as a ``PaymentProvider``.

Our own thin client over httpx + cryptography rather than python-alipay-sdk: the SDK does
not insist that a synchronous answer be signed before trusting it, finds the signed text by
searching the raw body, has no notify_time window nor app_id/seller_id checks on
notifications, and no statement parser. The parts: ``alipay_sign`` (signatures, and
``sign_notification`` for the sandbox and tests), ``alipay_gateway`` (signed calls, verified
answers), ``alipay_notify`` (notifications), ``alipay_bill`` (the daily statement).

Invariants:
- nothing an answer says is acted on unless Alipay's signature over it verifies;
- amounts leave as exact yuan strings (``"100.00"``) built from integer fen, and come back
  as exact fen;
- secrets (the app private key) are never logged and never in a repr.

Alipay facts the service should know: a precreate order does not exist at Alipay until the
payer scans the QR code, so until then ``query`` answers None and ``close`` has nothing to
close (the QR code stays payable until ``expires_at``, sent as ``time_expire``). A refund is
synchronous; retrying it with the same ``out_refund_no`` is safe (Alipay answers
``fund_change=N``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final

import httpx

from meterpay.kernel.clock import Clock
from meterpay.kernel.errors import InvalidInput
from meterpay.payments.alipay_bill import BillInvalid, beijing_time, parse_bill_zip, yuan_to_fen
from meterpay.payments.alipay_gateway import (
    GATEWAY,
    AlipayError,
    AlipayGateway,
    AlipayUnavailable,
    AlipayUntrusted,
    beijing,
)
from meterpay.payments.alipay_notify import TRADE_STATES, Merchant
from meterpay.payments.alipay_notify import verify_notification as _verify_notification
from meterpay.payments.alipay_sign import load_private_key, load_public_key
from meterpay.payments.provider import (
    Answer,
    Channel,
    Notification,
    OrderRequest,
    ProviderName,
    ProviderOrder,
    Refund,
    RefundRequest,
    RefundState,
    Statement,
    Trade,
)

__all__ = [
    "AlipayConfig",
    "AlipayError",
    "AlipayProvider",
    "AlipayUnavailable",
    "AlipayUntrusted",
    "StatementNotReady",
    "yuan",
]

log = logging.getLogger(__name__)

MAX_FEN: Final = 100_000_000 * 100
"""Alipay's ceiling for one order: 100,000,000.00 元."""


@dataclasses.dataclass(frozen=True, slots=True)
class AlipayConfig:
    """One Alipay application. The keys are PEM or the bare base64 Alipay's tools print."""

    app_id: str
    seller_id: str
    """The merchant's PID (2088…), the ``seller_id`` Alipay puts in notifications."""
    app_private_key: str = dataclasses.field(repr=False)
    alipay_public_key: str = dataclasses.field(repr=False)
    gateway_url: str = GATEWAY
    timeout: float = 10.0


class StatementNotReady(AlipayError):
    """Alipay has no bill for that day (yet): bills appear after 09:00 the next day."""

    code = "alipay_statement_not_ready"


def yuan(fen: int) -> str:
    """The exact yuan string Alipay expects: 10000 -> ``"100.00"``."""
    if isinstance(fen, bool) or not isinstance(fen, int) or fen < 0:
        raise InvalidInput(f"{fen!r} is not an amount in fen")
    return f"{fen // 100}.{fen % 100:02d}"


class AlipayProvider:
    """The ``PaymentProvider`` for Alipay; one instance per application, built at start-up."""

    name = ProviderName.ALIPAY

    def __init__(
        self, config: AlipayConfig, *, clock: Clock, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._config = config
        alipay_key = load_public_key(config.alipay_public_key)
        self._merchant = Merchant(config.app_id, config.seller_id, alipay_key)
        self._http = httpx.Client(transport=transport, timeout=config.timeout)
        self.gateway = AlipayGateway(
            app_id=config.app_id,
            url=config.gateway_url,
            private_key=load_private_key(config.app_private_key),
            alipay_key=alipay_key,
            clock=clock,
            http=self._http,
        )

    def __repr__(self) -> str:
        return (
            f"AlipayProvider(app_id={self._config.app_id!r}, gateway={self._config.gateway_url!r})"
        )

    def close_client(self) -> None:
        """Release the HTTP connections (at shut-down)."""
        self._http.close()

    # --- the PaymentProvider protocol ---------------------------------------------------

    def create_order(self, order: OrderRequest) -> ProviderOrder:
        if order.channel is not Channel.NATIVE:
            raise InvalidInput(
                f"Alipay takes Native (QR code) orders only; {order.channel} is WeChat's",
                channel=str(order.channel),
            )
        _check_amount(order.amount_fen)
        biz = {
            "out_trade_no": order.out_trade_no,
            "total_amount": yuan(order.amount_fen),
            "subject": order.description,
            "product_code": "FACE_TO_FACE_PAYMENT",
            "time_expire": beijing(order.expires_at),
        }
        node = self.gateway.call("alipay.trade.precreate", biz, notify_url=order.notify_url)
        qr_code = node.get("qr_code")
        if not isinstance(qr_code, str) or not qr_code:
            raise AlipayUntrusted("precreate answered no qr_code", method="alipay.trade.precreate")
        return ProviderOrder(out_trade_no=order.out_trade_no, code_url=qr_code)

    def query(self, out_trade_no: str) -> Trade | None:
        method = "alipay.trade.query"
        try:
            node = self.gateway.call(method, {"out_trade_no": out_trade_no})
        except AlipayError as exc:
            if exc.said("ACQ.TRADE_NOT_EXIST"):
                return None
            raise
        status = _text(node, "trade_status", method)
        if status not in TRADE_STATES:
            raise AlipayUntrusted(f"unknown trade_status {status!r}", method=method)
        paid_at = node.get("send_pay_date")
        return Trade(
            out_trade_no=_text(node, "out_trade_no", method),
            state=TRADE_STATES[status],
            amount_fen=_fen(node, "total_amount", method),
            transaction_id=node.get("trade_no") or None,
            paid_at=_parse_time(paid_at, method) if isinstance(paid_at, str) and paid_at else None,
            merchant_id=str(node.get("seller_id") or ""),
            app_id=self._config.app_id,
        )

    def close(self, out_trade_no: str) -> None:
        try:
            self.gateway.call("alipay.trade.close", {"out_trade_no": out_trade_no})
        except AlipayError as exc:
            # Not scanned yet: nothing exists at Alipay to close (see the module docstring).
            if not exc.said("ACQ.TRADE_NOT_EXIST"):
                raise

    def refund(self, request: RefundRequest) -> Refund:
        if not 0 < request.refund_fen <= request.total_fen:
            raise InvalidInput("a refund is more than zero and at most the order's amount")
        biz = {
            "out_trade_no": request.out_trade_no,
            "refund_amount": yuan(request.refund_fen),
            "out_request_no": request.out_refund_no,
            "refund_reason": request.reason,
        }
        pending = Refund(
            out_trade_no=request.out_trade_no,
            out_refund_no=request.out_refund_no,
            state=RefundState.PROCESSING,
            refund_fen=request.refund_fen,
        )
        try:
            node = self.gateway.call("alipay.trade.refund", biz)
        except AlipayUnavailable:
            return pending  # unknown outcome: retry with the same out_refund_no
        except AlipayError as exc:
            if exc.said("ACQ.SYSTEM_ERROR"):
                return pending  # Alipay: "retry with the same parameters"
            if exc.signed and exc.sub_code.startswith("ACQ."):
                log.warning("alipay refund %s refused: %s", request.out_refund_no, exc.sub_code)
                return dataclasses.replace(pending, state=RefundState.FAILED)
            raise
        done = node.get("gmt_refund_pay")
        return Refund(
            out_trade_no=request.out_trade_no,
            out_refund_no=request.out_refund_no,
            state=RefundState.SUCCESS,
            refund_fen=request.refund_fen,
            done_at=_parse_time(done, "alipay.trade.refund")
            if isinstance(done, str) and done
            else None,
        )

    def verify_notification(
        self, headers: Mapping[str, str], body: bytes, *, now: datetime
    ) -> Notification:
        return _verify_notification(headers, body, now=now, merchant=self._merchant)

    def answer(self, *, accepted: bool, message: str = "") -> Answer:
        """``success`` stops Alipay's resending; anything else (``fail``) makes it resend
        (up to 8 times over about 25 h). ``message`` is for our logs, never sent."""
        if not accepted:
            log.info("alipay notification not accepted: %s", message)
        return Answer(200, b"success" if accepted else b"fail", "text/plain; charset=utf-8")

    def statement(self, day: date) -> Statement:
        method = "alipay.data.dataservice.bill.downloadurl.query"
        try:
            node = self.gateway.call(method, {"bill_type": "trade", "bill_date": day.isoformat()})
        except AlipayError as exc:
            if exc.said("isp.bill_not_exist"):
                raise StatementNotReady(f"no Alipay bill for {day}", method=method) from exc
            raise
        url = _text(node, "bill_download_url", method)
        if not url.startswith(("https://", "http://")):
            raise AlipayUntrusted("bill_download_url is not an HTTP URL", method=method)
        return parse_bill_zip(
            self.gateway.download(url, method=method), day=day, seller_id=self._config.seller_id
        )


def _check_amount(fen: int) -> None:
    if isinstance(fen, bool) or not isinstance(fen, int) or not 0 < fen <= MAX_FEN:
        raise InvalidInput(f"an Alipay order is 0.01 to 100000000.00 yuan, not {fen!r} fen")


def _text(node: Mapping[str, Any], name: str, method: str) -> str:
    value = node.get(name)
    if not isinstance(value, str) or not value:
        raise AlipayUntrusted(f"{method}: the answer has no {name}", method=method)
    return value


def _fen(node: Mapping[str, Any], name: str, method: str) -> int:
    try:
        return yuan_to_fen(_text(node, name, method))
    except BillInvalid as exc:
        raise AlipayUntrusted(f"{method}: {name} is not an amount", method=method) from exc


def _parse_time(text: str, method: str) -> datetime:
    try:
        return beijing_time(text[:19])
    except BillInvalid as exc:
        raise AlipayUntrusted(f"{method}: {text!r} is not a time", method=method) from exc
