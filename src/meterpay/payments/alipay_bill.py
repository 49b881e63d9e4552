"""Alipay's daily trade statement (交易账单, ``bill_type=trade``), parsed exactly.

``alipay.data.dataservice.bill.downloadurl.query`` gives a URL to a ZIP (named like
``20881234567890120156_20261101.csv.zip``) of two GBK-encoded CSV files whose names are
GBK too (no UTF-8 flag in the ZIP):

- ``…_业务明细.csv``, the detail: ``#`` comment lines (title, ``#账号：[…]``,
  ``#起始日期：[2026年11月01日 00:00:00]   终止日期：[…]``, a ``业务明细列表`` rule), one header
  line, one line per trade (业务类型 ``交易``) or refund (``退款``), a closing rule, then
  ``#交易合计：N笔，商家实收共X元，…`` and ``#退款合计：M笔，商家实收退款共-Y元，…``.
  Cells are padded with tabs/spaces. Columns (by name, never by position): 支付宝交易号,
  商户订单号, 业务类型, 商品名称, 创建时间, 完成时间, 门店编号, 门店名称, 操作员, 终端号, 对方账户,
  订单金额（元）, 商家实收（元）, 支付宝红包（元）, 集分宝（元）, 支付宝优惠（元）, 商家优惠（元）,
  券核销金额（元）, 券名称, 商家红包消费金额（元）, 卡消费金额（元）, 退款批次号/请求号,
  服务费（元）, 分润（元）, 备注.
- ``…_业务明细(汇总).csv``, the summary: ``#`` comments, a header 门店编号, 门店名称,
  交易订单总笔数, 退款订单总笔数, 订单金额（元）, 商家实收（元）, …, 服务费（元）, 分润（元）,
  实收净额（元）, one line per store and a last line ``合计``.

Sign conventions in the file: a refund's 商家实收 is negative; 服务费 is negative when
charged (a trade) and positive when returned (a refund).

Ours (``StatementRow``): ``amount_fen`` is positive for both kinds — the order amount
(订单金额) for a payment, the money returned (−商家实收) for a refund; ``fee_fen`` is the fee
we pay, positive on a payment and negative on a refund (−服务费). ``Statement.total_fen`` is
the summary's 商家实收 合计 (payments minus refunds), ``fee_total_fen`` is −服务费 合计.

Invariants: amounts are exact to the fen (yuan strings, never floats); a statement that
disagrees with itself — counts, 商家实收 or 服务费 of the rows against the detail's footer
and the summary's 合计, the account or the day — raises ``BillInvalid``; it is never
"mostly" parsed.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final
from zoneinfo import ZoneInfo

from meterpay.kernel.errors import InvalidInput
from meterpay.payments.provider import Statement, StatementKind, StatementRow

BEIJING: Final = ZoneInfo("Asia/Shanghai")
MAX_MEMBER_BYTES: Final = 64 * 1024 * 1024
"""A refusal point for a ZIP bomb; a real day's trade bill is far smaller."""
_YUAN = re.compile(r"-?(0|[1-9]\d*)(\.\d{1,2})?")
_FOOTERS: Final = {
    StatementKind.PAYMENT: (
        "交易合计",
        re.compile(r"#交易合计[：:](\d+)笔[，,]商家实收共(-?[\d.]+)元"),
    ),
    StatementKind.REFUND: (
        "退款合计",
        re.compile(r"#退款合计[：:](\d+)笔[，,]商家实收退款共(-?[\d.]+)元"),
    ),
}
_ACCOUNT = re.compile(r"#账号[：:]\[(\d+)\]")
_START = re.compile(r"#起始日期[：:]\[(\d{4})年(\d{2})月(\d{2})日")
_KINDS: Final = {"交易": StatementKind.PAYMENT, "退款": StatementKind.REFUND}


class BillInvalid(InvalidInput):
    """An Alipay statement that does not parse or disagrees with itself."""

    code = "alipay_bill_invalid"


def parse_bill_zip(data: bytes, *, day: date, seller_id: str) -> Statement:
    """Parse the downloaded ZIP of one day's trade bill for ``seller_id`` (the PID)."""
    detail_text, summary_text = _members(data)
    detail = _parse_detail(detail_text, day=day, seller_id=seller_id)
    summary = _summary_totals(summary_text)
    _cross_check(detail, summary)
    return Statement(
        day=day,
        rows=detail.rows,
        total_fen=summary["商家实收(元)"],
        fee_total_fen=-summary["服务费(元)"],
    )


def yuan_to_fen(text: str) -> int:
    """Exact fen from a yuan string like ``-12.30``; anything else raises ``BillInvalid``."""
    if not _YUAN.fullmatch(text):
        raise BillInvalid(f"{text!r} is not an amount in yuan")
    whole, _, cents = text.lstrip("-").partition(".")
    fen = int(whole) * 100 + int(cents.ljust(2, "0"))
    return -fen if text.startswith("-") else fen


def _members(data: bytes) -> tuple[str, str]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data), metadata_encoding="gbk")
    except zipfile.BadZipFile as exc:
        raise BillInvalid("the statement download is not a ZIP file") from exc
    with archive:
        details: list[str] = []
        summaries: list[str] = []
        for info in archive.infolist():
            if info.is_dir() or not info.filename.lower().endswith(".csv"):
                continue
            if info.file_size > MAX_MEMBER_BYTES:
                raise BillInvalid(f"{info.filename} is too large ({info.file_size} bytes)")
            text = archive.read(info).decode("gb18030")
            (summaries if "汇总" in info.filename else details).append(text)
    if len(details) != 1 or len(summaries) != 1:
        raise BillInvalid(
            f"expected one 业务明细 and one 汇总 CSV, found {len(details)} and {len(summaries)}"
        )
    return details[0], summaries[0]


@dataclass
class _Detail:
    rows: list[StatementRow]
    received: dict[StatementKind, int]
    """Σ 商家实收 per kind, as the file states them (refunds negative)."""
    fee_fen: int
    """Σ 服务费, as the file states it."""
    footer: dict[StatementKind, tuple[int, int]]
    """Per kind: (count, 商家实收) from the ``#交易合计``/``#退款合计`` lines."""


def _split(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """Comment lines, and the data lines as dicts keyed by normalised header names."""
    lines = [line for line in text.splitlines() if line.strip()]
    comments = [line.strip() for line in lines if line.lstrip().startswith("#")]
    table = [line for line in lines if not line.lstrip().startswith("#")]
    if not table:
        raise BillInvalid("the statement has no header line")
    reader = csv.reader(table)
    header = [_column(cell) for cell in next(reader)]
    records = []
    for cells in reader:
        if len(cells) < len(header):
            raise BillInvalid(f"a line has {len(cells)} cells, the header {len(header)}")
        records.append({name: cell.strip() for name, cell in zip(header, cells, strict=False)})
    return comments, records


def _column(name: str) -> str:
    return name.strip().replace("（", "(").replace("）", ")")


def _parse_detail(text: str, *, day: date, seller_id: str) -> _Detail:
    comments, records = _split(text)
    _check_heading(comments, day=day, seller_id=seller_id)
    detail = _Detail(rows=[], received=dict.fromkeys(_KINDS.values(), 0), fee_fen=0, footer={})
    for record in records:
        kind = _KINDS.get(_cell(record, "业务类型"))
        if kind is None:
            raise BillInvalid(f"unknown 业务类型 {record.get('业务类型')!r}")
        received = yuan_to_fen(_cell(record, "商家实收(元)"))
        fee = yuan_to_fen(_cell(record, "服务费(元)"))
        detail.received[kind] += received
        detail.fee_fen += fee
        detail.rows.append(_row(record, kind, received=received, fee=fee))
    for kind, (label, pattern) in _FOOTERS.items():
        found = next((m for m in map(pattern.match, comments) if m), None)
        if found is None:
            raise BillInvalid(f"the detail has no #{label} footer line")
        detail.footer[kind] = (int(found[1]), yuan_to_fen(found[2]))
    return detail


def _row(record: dict[str, str], kind: StatementKind, *, received: int, fee: int) -> StatementRow:
    refund = kind is StatementKind.REFUND
    return StatementRow(
        out_trade_no=_cell(record, "商户订单号"),
        transaction_id=_cell(record, "支付宝交易号"),
        kind=kind,
        amount_fen=-received if refund else yuan_to_fen(_cell(record, "订单金额(元)")),
        fee_fen=-fee,
        at=beijing_time(record.get("完成时间") or _cell(record, "创建时间")),
        out_refund_no=_cell(record, "退款批次号/请求号") if refund else None,
    )


def _check_heading(comments: list[str], *, day: date, seller_id: str) -> None:
    for line in comments:
        if (account := _ACCOUNT.match(line)) and not account[1].startswith(seller_id):
            raise BillInvalid(f"the statement is for account {account[1]}, not {seller_id}")
        if (start := _START.match(line)) and date(
            int(start[1]), int(start[2]), int(start[3])
        ) != day:
            raise BillInvalid(
                f"the statement starts on {start[1]}-{start[2]}-{start[3]}, not {day}"
            )


def _summary_totals(text: str) -> dict[str, int]:
    _, records = _split(text)
    total = next((r for r in records if r.get("门店编号") == "合计"), None)
    if total is None:
        raise BillInvalid("the summary has no 合计 line")
    names = ("交易订单总笔数", "退款订单总笔数")
    counts = {name: _count(_cell(total, name)) for name in names}
    amounts = {name: yuan_to_fen(_cell(total, name)) for name in ("商家实收(元)", "服务费(元)")}
    return counts | amounts


def _cross_check(detail: _Detail, summary: dict[str, int]) -> None:
    count = {k: sum(1 for r in detail.rows if r.kind is k) for k in StatementKind}
    checks = {
        "trade count (汇总)": (count[StatementKind.PAYMENT], summary["交易订单总笔数"]),
        "refund count (汇总)": (count[StatementKind.REFUND], summary["退款订单总笔数"]),
        "trade count (交易合计)": (
            count[StatementKind.PAYMENT],
            detail.footer[StatementKind.PAYMENT][0],
        ),
        "refund count (退款合计)": (
            count[StatementKind.REFUND],
            detail.footer[StatementKind.REFUND][0],
        ),
        "商家实收 (交易合计)": (
            detail.received[StatementKind.PAYMENT],
            detail.footer[StatementKind.PAYMENT][1],
        ),
        "商家实收 (退款合计)": (
            detail.received[StatementKind.REFUND],
            detail.footer[StatementKind.REFUND][1],
        ),
        "商家实收 (汇总)": (sum(detail.received.values()), summary["商家实收(元)"]),
        "服务费 (汇总)": (detail.fee_fen, summary["服务费(元)"]),
    }
    for what, (rows, stated) in checks.items():
        if rows != stated:
            raise BillInvalid(f"{what}: the rows give {rows}, the statement says {stated}")


def _cell(record: dict[str, str], name: str) -> str:
    value = record.get(name)
    if value is None:
        raise BillInvalid(f"the statement has no {name} column")
    return value


def _count(text: str) -> int:
    if not text.isdigit():
        raise BillInvalid(f"{text!r} is not a count")
    return int(text)


def beijing_time(text: str) -> datetime:
    """``yyyy-MM-dd HH:mm:ss`` in Beijing time (how Alipay writes every time)."""
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
    except ValueError as exc:
        raise BillInvalid(f"{text!r} is not a time like 2026-11-01 08:00:00") from exc
