"""The sandbox's orders and refunds, and the objects WeChat Pay v3 makes of them (a
transaction as queried or notified, a refund as answered or notified)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from meterpay.payments.wechat_sign import CHINA


@dataclass
class SandboxOrder:
    out_trade_no: str
    trade_type: str
    description: str
    total: int
    notify_url: str
    time_expire: str
    openid: str = ""
    prepay_id: str = ""
    trade_state: str = "NOTPAY"
    transaction_id: str = ""
    success_time: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return now >= datetime.fromisoformat(self.time_expire)


@dataclass
class SandboxRefund:
    out_refund_no: str
    refund_id: str
    order: SandboxOrder
    refund: int
    created: datetime
    status: str = "PROCESSING"


def transaction_object(order: SandboxOrder, *, appid: str, mchid: str) -> dict[str, Any]:
    """A transaction as WeChat answers a query or puts it in a notification."""
    found: dict[str, Any] = {
        "appid": appid,
        "mchid": mchid,
        "out_trade_no": order.out_trade_no,
        "trade_type": order.trade_type,
        "trade_state": order.trade_state,
        "trade_state_desc": order.trade_state,
        "attach": "",
        "payer": {"openid": order.openid},
        "amount": {"payer_currency": "CNY"},
    }
    if order.success_time is not None:
        paid_at = order.success_time.astimezone(CHINA).replace(microsecond=0)
        found |= {
            "transaction_id": order.transaction_id,
            "bank_type": "OTHERS",
            "success_time": paid_at.isoformat(),
            "amount": {
                "total": order.total,
                "payer_total": order.total,
                "currency": "CNY",
                "payer_currency": "CNY",
            },
        }
    return found


def refund_object(refund: SandboxRefund, *, mchid: str) -> dict[str, Any]:
    """A refund as WeChat answers the refund API (``status``)."""
    return {
        "mchid": mchid,
        "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no,
        "transaction_id": refund.order.transaction_id,
        "out_trade_no": refund.order.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": refund.created.astimezone(CHINA).replace(microsecond=0).isoformat(),
        "status": refund.status,
        "amount": {
            "total": refund.order.total,
            "refund": refund.refund,
            "payer_total": refund.order.total,
            "payer_refund": refund.refund,
            "currency": "CNY",
        },
    }


def amount_valid(amount: object) -> bool:
    """A positive whole number of fen, in CNY."""
    if not isinstance(amount, dict):
        return False
    total = amount.get("total")
    positive = isinstance(total, int) and not isinstance(total, bool) and total > 0
    return positive and amount.get("currency") == "CNY"


def expiry_valid(time_expire: str) -> bool:
    """RFC 3339 with an offset and whole seconds, as WeChat insists."""
    try:
        expire = datetime.fromisoformat(time_expire)
    except ValueError:
        return False
    return expire.utcoffset() is not None and not expire.microsecond
