"""WeChat Pay's daily trade bill (交易账单, ``bill_type=ALL``) as a ``Statement``.

The file is UTF-8 text in four parts: the detail header, one line per payment or refund,
the summary header (``总交易单数,…``) and one summary line. Fields are separated by
commas and every data field begins with a backtick (so spreadsheets keep long numbers);
amounts are yuan, fees have up to 5 decimals (``0.01000``). Columns are taken by their
header name, never by position: the ALL, SUCCESS and REFUND bills, and the early format
some merchants still get (总金额/总交易额 instead of 应结订单金额/订单金额), order them
differently.

Invariants:
- the download is checked against WeChat's SHA1 ``hash_value`` before it is read (the
  download itself is not signed);
- every amount converts to fen exactly or the bill is refused (``BadStatement``);
- the detail lines add up to the summary line, column by column, and their count is
  ``总交易单数``; a bill that does not is refused rather than half-trusted;
- ``交易状态`` SUCCESS is a payment, REFUND a refund; anything else (REVOKED belongs to
  付款码 payments, which meterpay does not take) refuses the bill.

A payment row's amount is ``订单金额`` (what our order asked for; equal to 应结订单金额
unless a 免充值券 paid part), a refund row's is ``申请退款金额`` (what we asked to refund),
and ``Statement.total_fen`` is 订单总金额 − 申请退款总金额, so the rows add up to it.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Final

from meterpay.payments.provider import Statement, StatementKind, StatementRow
from meterpay.payments.wechat_config import WechatPayError
from meterpay.payments.wechat_sign import CHINA

SUMMARY_FIRST: Final = "总交易单数"
PAYMENT_AMOUNT: Final = ("订单金额", "应结订单金额", "总金额")
REFUND_AMOUNT: Final = ("申请退款金额", "退款金额")
PAYMENTS_TOTAL: Final = ("订单总金额", "应结订单总金额", "总交易额")
REFUNDS_TOTAL: Final = ("申请退款总金额", "退款总金额", "总退款金额")
SUMS: Final = (  # detail column -> the summary column that must equal its sum
    ("应结订单金额", "应结订单总金额"),
    ("订单金额", "订单总金额"),
    ("总金额", "总交易额"),
    ("退款金额", "退款总金额"),
    ("退款金额", "总退款金额"),
    ("申请退款金额", "申请退款总金额"),
    ("充值券退款金额", "充值券退款总金额"),
    ("手续费", "手续费总金额"),
)
FEN: Final = Decimal(100)


class BadStatement(WechatPayError):
    """A bill we must not reconcile against: corrupt, inconsistent or not understood."""


def check_bill_hash(content: bytes, hash_type: str, hash_value: str) -> None:
    """The download is what WeChat announced (``hash_type`` SHA1, hex ``hash_value``)."""
    if hash_type.upper() != "SHA1":
        raise BadStatement(f"unsupported bill hash_type {hash_type!r}")
    digest = hashlib.sha1(content, usedforsecurity=False).hexdigest()
    if not hmac.compare_digest(digest, hash_value.strip().lower()):
        raise BadStatement("the downloaded bill does not match its SHA1 hash_value")


def yuan_to_fen(value: str, column: str) -> int:
    """An amount in yuan ("12.34", "0.01000", "-0.01") as exact fen."""
    try:
        amount = Decimal(value) * FEN
    except InvalidOperation:
        raise BadStatement(f"{column} {value!r} is not an amount") from None
    if not amount.is_finite() or amount != amount.to_integral_value():
        raise BadStatement(f"{column} {value!r} is not a whole number of fen")
    return int(amount)


def _fields(line: str) -> list[str]:
    """A header line (plain names) or a data line (every field after a backtick)."""
    if line.startswith("`"):
        return line[1:].split(",`")
    return [name.strip().lstrip("`") for name in line.split(",")]


def _column(record: dict[str, str], names: tuple[str, ...], default: str | None = None) -> str:
    for name in names:
        if name in record:
            return record[name]
    if default is not None:
        return default
    raise BadStatement(f"the bill has none of the columns {', '.join(names)}")


def parse_trade_bill(content: bytes, day: date) -> Statement:
    """The rows and the summary totals of one day's ALL bill."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadStatement("the bill is not UTF-8") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    split = next((i for i, line in enumerate(lines) if _fields(line)[0] == SUMMARY_FIRST), -1)
    if split < 1 or split + 2 != len(lines):
        raise BadStatement("the bill has no detail header or not exactly one summary line")
    header = _fields(lines[0])
    details = [_record(header, line) for line in lines[1:split]]
    summary = _record(_fields(lines[split]), lines[split + 1])
    _cross_check(details, summary)
    rows = [_row(record) for record in details]
    payments = yuan_to_fen(_column(summary, PAYMENTS_TOTAL), "payments total")
    refunds = yuan_to_fen(_column(summary, REFUNDS_TOTAL, "0"), "refunds total")  # SUCCESS bill
    fees = yuan_to_fen(summary.get("手续费总金额", "0"), "手续费总金额")
    return Statement(day=day, rows=rows, total_fen=payments - refunds, fee_total_fen=fees)


def _record(header: list[str], line: str) -> dict[str, str]:
    if not line.startswith("`"):
        raise BadStatement("a bill data line does not start with a backtick")
    values = _fields(line)
    if len(values) != len(header):
        raise BadStatement(f"a bill line has {len(values)} fields for {len(header)} columns")
    return dict(zip(header, (value.strip() for value in values), strict=True))


def _cross_check(details: list[dict[str, str]], summary: dict[str, str]) -> None:
    count = _decimal(summary.get(SUMMARY_FIRST, ""), SUMMARY_FIRST)
    if count != len(details):
        raise BadStatement(f"总交易单数 says {count} but the bill has {len(details)} lines")
    for column, total in SUMS:
        if total not in summary or not details or column not in details[0]:
            continue
        added = sum((_decimal(record[column], column) for record in details), Decimal(0))
        if added != _decimal(summary[total], total):
            raise BadStatement(
                f"the {column} column adds up to {added}, {total} says {summary[total]}"
            )


def _decimal(value: str, column: str) -> Decimal:
    try:
        found = Decimal(value)
    except InvalidOperation:
        raise BadStatement(f"{column} {value!r} is not a number") from None
    if not found.is_finite():
        raise BadStatement(f"{column} {value!r} is not a number")
    return found


def _row(record: dict[str, str]) -> StatementRow:
    currency = record.get("货币种类", "CNY")
    if currency != "CNY":
        raise BadStatement(f"a bill line is in {currency!r}, not CNY")
    state = record.get("交易状态", "")
    if state == "SUCCESS":
        kind, amount, refund_no = StatementKind.PAYMENT, _column(record, PAYMENT_AMOUNT), None
    elif state == "REFUND":
        kind, amount = StatementKind.REFUND, _column(record, REFUND_AMOUNT)
        refund_no = record.get("商户退款单号") or None
    else:
        raise BadStatement(f"a bill line has 交易状态 {state!r}, neither SUCCESS nor REFUND")
    return StatementRow(
        out_trade_no=record.get("商户订单号", ""),
        transaction_id=record.get("微信订单号", ""),
        kind=kind,
        amount_fen=yuan_to_fen(amount, "amount"),
        fee_fen=yuan_to_fen(record.get("手续费", "0"), "手续费"),
        at=_bill_time(record.get("交易时间", "")),
        out_refund_no=refund_no,
    )


def _bill_time(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)
    except ValueError:
        raise BadStatement(f"交易时间 {value!r} is not yyyy-MM-dd HH:mm:ss") from None
