"""WeChat Pay's notifications (支付/退款结果通知) and its transaction and refund objects.

A notification is trusted only in this order: the signature over the raw body with the
platform key that ``Wechatpay-Serial`` names, a fresh timestamp, not a probe
(``wechat_sign.check_signature``); then the envelope is parsed, the resource decrypted
with the APIv3 key (AES-256-GCM authenticates it too), and the plaintext must be for
this merchant (mchid, and appid where WeChat sends one). Every refusal is a
``BadNotification`` whose ``details["reason"]`` says why in a few words — never a key.

Whether the amount and the ids match OUR order is the service's question: it knows the
order; this module only carries ``amount.total``, ``mchid`` and ``appid`` through.

The same transaction and refund objects come back from the query and refund APIs, so
``trade_from`` and ``refund_from`` serve both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from meterpay.kernel.clock import require_aware
from meterpay.payments.provider import (
    BadNotification,
    Notification,
    NotificationKind,
    Refund,
    RefundState,
    Trade,
    TradeState,
)
from meterpay.payments.wechat_config import WechatKeys
from meterpay.payments.wechat_sign import check_signature, decrypt_resource

TRADE_STATES: Final = {
    "SUCCESS": TradeState.PAID,
    "REFUND": TradeState.REFUNDED,
    "NOTPAY": TradeState.NOT_PAID,
    "USERPAYING": TradeState.NOT_PAID,
    "ACCEPT": TradeState.NOT_PAID,
    "PAYERROR": TradeState.NOT_PAID,  # the bank refused; the order can still be closed
    "CLOSED": TradeState.CLOSED,
    "REVOKED": TradeState.CLOSED,
}
REFUND_STATES: Final = {
    "SUCCESS": RefundState.SUCCESS,
    "PROCESSING": RefundState.PROCESSING,
    "ABNORMAL": RefundState.FAILED,  # e.g. the payer's card is gone: a person must act
    "CLOSED": RefundState.FAILED,
}
REFUND_EVENTS: Final = ("REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED")
PAYMENT_EVENT: Final = "TRANSACTION.SUCCESS"


class Malformed(ValueError):
    """A WeChat object that lacks a field or has one of the wrong type."""


# --- WeChat's objects --------------------------------------------------------------------------


def text(obj: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if isinstance(value, str) and (value or not required):
        return value
    if value is None and not required:
        return ""
    raise Malformed(f"{key} is missing or not a string")


def fen(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Malformed(f"{key} is missing or not a whole number of fen")
    return value


def mapping(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise Malformed(f"{key} is missing or not an object")
    return value


def moment(obj: Mapping[str, Any], key: str) -> datetime | None:
    """An RFC 3339 time WeChat sends (``2026-11-01T10:00:00+08:00``), when present."""
    value = text(obj, key, required=False)
    if not value:
        return None
    try:
        return require_aware(datetime.fromisoformat(value))
    except ValueError:
        raise Malformed(f"{key} is not an RFC 3339 time") from None


def trade_from(obj: Mapping[str, Any]) -> Trade:
    """A transaction object (notification plaintext or query answer) as a ``Trade``."""
    state = TRADE_STATES.get(text(obj, "trade_state"))
    if state is None:
        raise Malformed("unknown trade_state")
    found = obj.get("amount")
    amount: Mapping[str, Any] = found if isinstance(found, dict) else {}
    paid = state in (TradeState.PAID, TradeState.REFUNDED)
    return Trade(
        out_trade_no=text(obj, "out_trade_no"),
        state=state,
        amount_fen=fen(amount, "total") if paid or "total" in amount else 0,
        transaction_id=text(obj, "transaction_id", required=paid) or None,
        paid_at=moment(obj, "success_time"),
        merchant_id=text(obj, "mchid"),
        app_id=text(obj, "appid", required=False),
    )


def refund_from(obj: Mapping[str, Any], *, status_key: str = "status") -> Refund:
    """A refund object: the refund API's answer (``status``) or a refund notification's
    plaintext (``refund_status``)."""
    state = REFUND_STATES.get(text(obj, status_key))
    if state is None:
        raise Malformed(f"unknown {status_key}")
    return Refund(
        out_trade_no=text(obj, "out_trade_no"),
        out_refund_no=text(obj, "out_refund_no"),
        state=state,
        refund_fen=fen(mapping(obj, "amount"), "refund"),
        refund_id=text(obj, "refund_id", required=False) or None,
        done_at=moment(obj, "success_time"),
    )


# --- notifications -----------------------------------------------------------------------------


def _refuse(reason: str, event_id: str = "") -> BadNotification:
    details = {"reason": reason, "event_id": event_id} if event_id else {"reason": reason}
    return BadNotification(f"WeChat Pay notification refused: {reason}", **details)


@dataclass(frozen=True, slots=True)
class NotificationVerifier:
    """Verifies and parses the notifications of one merchant."""

    mchid: str
    appid: str
    keys: WechatKeys = field(repr=False)

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: datetime) -> Notification:
        reason = check_signature(self.keys.platform, headers, body, now)
        if reason:
            raise _refuse(reason)
        try:
            envelope = _json_object(body, "the body")
        except Malformed as exc:
            raise _refuse(str(exc)) from None
        event_id = envelope.get("id")
        if not isinstance(event_id, str) or not event_id:
            raise _refuse("the notification has no id")
        try:
            plaintext = self._plaintext(envelope)
            return self._parse(event_id, text(envelope, "event_type"), plaintext)
        except Malformed as exc:
            raise _refuse(str(exc), event_id) from None

    def _plaintext(self, envelope: Mapping[str, Any]) -> Mapping[str, Any]:
        if envelope.get("resource_type") != "encrypt-resource":
            raise Malformed("resource_type is not encrypt-resource")
        resource = mapping(envelope, "resource")
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise Malformed("the resource algorithm is not AEAD_AES_256_GCM")
        try:
            plain = decrypt_resource(
                self.keys.apiv3,
                text(resource, "ciphertext"),
                text(resource, "nonce"),
                text(resource, "associated_data", required=False),
            )
        except ValueError:
            raise Malformed("the resource does not decrypt with our APIv3 key") from None
        return _json_object(plain, "the resource")

    def _parse(self, event_id: str, event_type: str, plain: Mapping[str, Any]) -> Notification:
        if text(plain, "mchid") != self.mchid:
            raise Malformed("the notification is for another mchid")
        if event_type == PAYMENT_EVENT:
            if text(plain, "appid") != self.appid:
                raise Malformed("the notification is for another appid")
            trade = trade_from(plain)
            if trade.state is not TradeState.PAID:
                raise Malformed("TRANSACTION.SUCCESS without trade_state SUCCESS")
            return Notification(key=event_id, kind=NotificationKind.PAYMENT, trade=trade)
        if event_type in REFUND_EVENTS:
            if text(plain, "refund_status") != event_type.removeprefix("REFUND."):
                raise Malformed("refund_status does not match the event_type")
            refund = refund_from(plain, status_key="refund_status")
            return Notification(key=event_id, kind=NotificationKind.REFUND, refund=refund)
        raise Malformed("unexpected event_type")


def _json_object(raw: bytes, what: str) -> Mapping[str, Any]:
    try:
        found = json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise Malformed(f"{what} is not JSON") from None
    if not isinstance(found, dict):
        raise Malformed(f"{what} is not a JSON object")
    return found
