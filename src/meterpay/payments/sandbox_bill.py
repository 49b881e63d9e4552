"""The sandbox's daily ALL trade bill (交易账单), rendered as WeChat Pay renders it: a plain
header, one line per payment and refund whose every field begins with a backtick, then
the summary header and line; CRLF; amounts in yuan; a 0.6% fee, handed back in
proportion on a refund. ``wechat_bill.parse_trade_bill`` must read what this writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from meterpay.payments.sandbox_orders import SandboxOrder, SandboxRefund
from meterpay.payments.wechat_sign import CHINA

FEE_RATE: Final = Decimal("0.006")
PAYER_OPENID: Final = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
"""Shown when an order (Native) has no payer openid of its own."""
BILL_COLUMNS: Final = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
BILL_SUMMARY: Final = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)


def trade_bill(
    day: date,
    orders: Sequence[SandboxOrder],
    refunds: Sequence[SandboxRefund],
    *,
    appid: str,
    mchid: str,
) -> bytes:
    """The ALL bill of ``day`` (Beijing time); empty when nothing happened that day."""
    lines: list[str] = []
    settled = refunded = fees = Decimal(0)
    for order in orders:
        if order.success_time and order.success_time.astimezone(CHINA).date() == day:
            fee = _fee(order.total)
            lines.append(_line(order, order.success_time, fee, appid=appid, mchid=mchid))
            settled, fees = settled + _yuan(order.total), fees + fee
    for refund in refunds:
        if refund.created.astimezone(CHINA).date() == day:
            fee = -_fee(refund.refund)
            line = _line(refund.order, refund.created, fee, appid=appid, mchid=mchid, refund=refund)
            lines.append(line)
            refunded, fees = refunded + _yuan(refund.refund), fees + fee
    if not lines:
        return b""
    summary = (
        f"`{len(lines)},`{settled:.2f},`{refunded:.2f},`0.00,`{fees:.5f},"
        f"`{settled:.2f},`{refunded:.2f}"
    )
    return "\r\n".join([BILL_COLUMNS, *lines, BILL_SUMMARY, summary, ""]).encode()


def _yuan(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))


def _fee(fen: int) -> Decimal:
    return (_yuan(fen) * FEE_RATE).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _line(
    order: SandboxOrder,
    at: datetime,
    fee: Decimal,
    *,
    appid: str,
    mchid: str,
    refund: SandboxRefund | None = None,
) -> str:
    paid = 0 if refund else order.total
    refunded = _yuan(refund.refund) if refund else Decimal("0.00")
    fields = [
        at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
        appid,
        mchid,
        "0",
        "",
        order.transaction_id,
        order.out_trade_no,
        order.openid or PAYER_OPENID,
        order.trade_type,
        "REFUND" if refund else "SUCCESS",
        "OTHERS",
        "CNY",
        f"{_yuan(paid)}",
        "0.00",
        refund.refund_id if refund else "0",
        refund.out_refund_no if refund else "0",
        f"{refunded}",
        "0.00",
        "ORIGINAL" if refund else "",
        "SUCCESS" if refund else "",
        order.description,
        "",
        f"{fee:.5f}",
        "0.60%",
        f"{_yuan(paid)}",
        f"{refunded}",
        "",
    ]
    return ",".join(f"`{value}" for value in fields)
