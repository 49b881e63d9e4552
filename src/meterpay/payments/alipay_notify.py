"""Alipay's asynchronous notifications (``notify_type=trade_status_sync``), verified.

The body is a form POST (``application/x-www-form-urlencoded``; the charset is the
Content-Type's ``charset`` parameter, else the form's own ``charset`` field, else utf-8).
Verification, as Alipay documents it: drop ``sign`` and ``sign_type``, URL-decode the
values, sort by key, join ``k=v`` with ``&``, check SHA256withRSA with the Alipay public key
against base64(``sign``) — see ``alipay_sign``.

Invariants: nothing is believed before the signature checks out; then ``sign_type`` must be
RSA2, ``app_id`` ours, ``seller_id`` ours when present, ``notify_type`` trade_status_sync,
``notify_time`` at most 26 hours old (Alipay resends for about 25 h) and at most 5 minutes
ahead, every amount an exact yuan string. Anything else raises ``BadNotification``.
Whether ``out_trade_no`` exists and the amount equals our order is the service's check.

A refund reaches us as a notification carrying ``refund_fee``/``gmt_refund``/``out_biz_no``:
with ``TRADE_CLOSED`` after a full refund, with ``TRADE_SUCCESS`` after a partial one. Both
become a REFUND notification. Alipay's ``refund_fee`` is the *cumulative* amount refunded on
the trade, not this refund's amount.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message
from typing import Final
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from meterpay.kernel.clock import require_aware
from meterpay.payments.alipay_bill import BillInvalid, beijing_time, yuan_to_fen
from meterpay.payments.alipay_sign import SIGN_TYPE, rsa2_verify, sign_content
from meterpay.payments.provider import (
    BadNotification,
    Notification,
    NotificationKind,
    Refund,
    RefundState,
    Trade,
    TradeState,
)

MAX_AGE: Final = timedelta(hours=26)
MAX_AHEAD: Final = timedelta(minutes=5)
CHARSETS: Final = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "gbk": "gbk",
    "gb2312": "gbk",
    "gb18030": "gb18030",
}
AMOUNT_FIELDS: Final = (
    "total_amount",
    "receipt_amount",
    "invoice_amount",
    "buyer_pay_amount",
    "point_amount",
    "refund_fee",
)
PAID_STATES: Final = {"TRADE_SUCCESS", "TRADE_FINISHED"}
TRADE_STATES: Final = {
    "WAIT_BUYER_PAY": TradeState.NOT_PAID,
    "TRADE_SUCCESS": TradeState.PAID,
    "TRADE_FINISHED": TradeState.PAID,
    "TRADE_CLOSED": TradeState.CLOSED,
}
_YUAN_UNSIGNED = re.compile(r"(0|[1-9]\d{0,11})(\.\d{1,2})?")


@dataclass(frozen=True, slots=True)
class Merchant:
    """Who a notification must be for, and whose signature to trust."""

    app_id: str
    seller_id: str
    alipay_public_key: RSAPublicKey


def verify_notification(
    headers: Mapping[str, str], body: bytes, *, now: datetime, merchant: Merchant
) -> Notification:
    """Check and parse one notification; ``BadNotification`` for anything not to be trusted."""
    charset = _charset(headers, body)
    form = _form(body, charset)
    _check_signature(form, charset, merchant)
    _check_fields(form, now=now, merchant=merchant)
    return _notification(form)


def _form(body: bytes, charset: str) -> dict[str, str]:
    try:
        text = body.decode("ascii")  # a correctly URL-encoded form is plain ASCII
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, encoding=charset, errors="strict"
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadNotification("the notification body is not a URL-encoded form") from exc
    form = dict(pairs)
    if len(form) != len(pairs):
        raise BadNotification("the notification repeats a field")
    return form


def _charset(headers: Mapping[str, str], body: bytes) -> str:
    """The charset Alipay signed in: the form's ``charset`` field and the Content-Type's
    ``charset`` parameter, which must agree when both are given."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    message = Message()
    message["content-type"] = content_type or "application/x-www-form-urlencoded"
    if message.get_content_type() != "application/x-www-form-urlencoded":
        raise BadNotification(f"unexpected Content-Type {content_type!r}")
    in_header = message.get_param("charset")
    in_form = re.search(rb"(?:^|&)charset=([A-Za-z0-9-]*)(?:&|$)", body)
    declared = {
        _known_charset(name)
        for name in (in_header, in_form[1].decode("ascii") if in_form else None)
        if isinstance(name, str) and name
    }
    if len(declared) > 1:
        raise BadNotification(f"the Content-Type and the form disagree on the charset: {declared}")
    return declared.pop() if declared else "utf-8"


def _known_charset(name: str) -> str:
    charset = CHARSETS.get(name.lower())
    if charset is None:
        raise BadNotification(f"unsupported charset {name!r}")
    return charset


def _check_signature(form: Mapping[str, str], charset: str, merchant: Merchant) -> None:
    signature = form.get("sign", "")
    if not signature:
        raise BadNotification("the notification is not signed")
    content = sign_content(form, include_sign_type=False)
    if not rsa2_verify(content, signature, merchant.alipay_public_key, charset=charset):
        raise BadNotification("the notification's signature does not verify")
    if form.get("sign_type") != SIGN_TYPE:
        raise BadNotification(f"sign_type {form.get('sign_type')!r} is not {SIGN_TYPE}")


def _check_fields(form: Mapping[str, str], *, now: datetime, merchant: Merchant) -> None:
    if form.get("notify_type") != "trade_status_sync":
        raise BadNotification(f"notify_type {form.get('notify_type')!r} is not trade_status_sync")
    if form.get("app_id") != merchant.app_id:
        raise BadNotification(f"the notification is for app {form.get('app_id')!r}, not ours")
    seller = form.get("seller_id", "")
    if seller and seller != merchant.seller_id:
        raise BadNotification(f"the notification is for seller {seller!r}, not ours")
    for name in ("notify_id", "out_trade_no", "trade_no", "trade_status", "total_amount"):
        if not form.get(name):
            raise BadNotification(f"the notification has no {name}")
    for name in AMOUNT_FIELDS:
        if form.get(name) and not _YUAN_UNSIGNED.fullmatch(form[name]):
            raise BadNotification(f"{name} {form[name]!r} is not an amount in yuan")
    sent = _time(form, "notify_time")
    if sent is None:
        raise BadNotification("the notification has no notify_time")
    if sent < require_aware(now) - MAX_AGE or sent > now + MAX_AHEAD:
        raise BadNotification(f"notify_time {form['notify_time']} is too far from now")


def _notification(form: Mapping[str, str]) -> Notification:
    status = form["trade_status"]
    if status not in TRADE_STATES:
        raise BadNotification(f"unknown trade_status {status!r}")
    total = yuan_to_fen(form["total_amount"])
    if not (form.get("refund_fee") or form.get("gmt_refund")):
        trade = _trade(form, TRADE_STATES[status], total)
        return Notification(key=form["notify_id"], kind=NotificationKind.PAYMENT, trade=trade)
    refunded = yuan_to_fen(form["refund_fee"]) if form.get("refund_fee") else total
    state = TradeState.REFUNDED if refunded >= total else TradeState.PAID
    refund = Refund(
        out_trade_no=form["out_trade_no"],
        out_refund_no=form.get("out_biz_no", ""),
        state=RefundState.SUCCESS,
        refund_fen=refunded,
        done_at=_time(form, "gmt_refund"),
    )
    return Notification(
        key=form["notify_id"],
        kind=NotificationKind.REFUND,
        trade=_trade(form, state, total),
        refund=refund,
    )


def _trade(form: Mapping[str, str], state: TradeState, total: int) -> Trade:
    return Trade(
        out_trade_no=form["out_trade_no"],
        state=state,
        amount_fen=total,
        transaction_id=form["trade_no"],
        paid_at=_time(form, "gmt_payment"),
        merchant_id=form.get("seller_id", ""),
        app_id=form["app_id"],
    )


def _time(form: Mapping[str, str], name: str) -> datetime | None:
    """A Beijing-time field; Alipay writes ``gmt_refund`` with milliseconds."""
    text = form.get(name, "")
    if not text:
        return None
    try:
        return beijing_time(text[:19]) if len(text) in (19, 23) else beijing_time(text)
    except BillInvalid as exc:
        raise BadNotification(f"{name} {text!r} is not a time") from exc
