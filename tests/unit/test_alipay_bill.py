"""Alipay's daily trade bill: a realistic GBK ZIP parsed to exact fen, and refused when it
disagrees with itself. The sample below is also what the fake Alipay gateway serves."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date, datetime

import pytest

from meterpay.payments.alipay_bill import BEIJING, BillInvalid, parse_bill_zip, yuan_to_fen
from meterpay.payments.provider import StatementKind

SELLER_ID = "2088102180000001"
DAY = date(2026, 11, 1)
DETAIL_HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,"
    "对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
    "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
    "退款批次号/请求号,服务费（元）,分润（元）,备注"
)
SUMMARY_HEADER = (
    "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,"
    "商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）"
)


def _line(*cells: str) -> str:
    """Alipay pads every cell with a tab before the comma."""
    return ",".join(f"{cell}\t" for cell in cells) + ","


def _trade(n: int, subject: str, at: str, amount: str, fee: str) -> str:
    """Trade ``n`` of the day: our R2026110100000n, Alipay's 20261101220014000010000000n."""
    zeros = ("0.00",) * 5
    return _line(
        f"202611012200140000100000000{n}", f"R2026110100000{n}", "交易", subject, at, at,
        "", "", "", "", "张*(138****8000)", amount, amount, *zeros, "", "0.00", "0.00", "",
        fee, "0.00", "",
    )  # fmt: skip


def _refund(trade_no: str, out_trade_no: str, order: str, refunded: str, fee: str) -> str:
    zeros = ("0.00",) * 5
    at = "2026-11-01 15:40:02"
    return _line(
        trade_no, out_trade_no, "退款", "阳光花园 1-0101 电费充值", at, at, "", "", "", "",
        "张*(138****8000)", order, refunded, *zeros, "", "0.00", "0.00", "RF20261101000001", fee,
        "0.00", "误充退款",
    )  # fmt: skip


def detail_csv(
    *, account: str = SELLER_ID + "0156", start: str = "2026年11月01日", trades: int = 3
) -> str:
    return "\n".join(
        [
            "#支付宝业务明细查询",
            f"#账号：[{account}]",
            f"#起始日期：[{start} 00:00:00]   终止日期：[2026年11月02日 00:00:00]",
            "#-----------------------------------------业务明细列表----------------------------------------",
            DETAIL_HEADER,
            _trade(1, "阳光花园 1-0101 电费充值",
                   "2026-11-01 08:12:31", "100.00", "-0.60"),
            _trade(2, "阳光花园 3-1202 水费充值",
                   "2026-11-01 09:30:00", "1234.56", "-7.41"),
            _trade(3, "阳光花园 2-0303 电费充值",
                   "2026-11-01 23:59:59", "0.01", "0.00"),
            _refund("2026110122001400001000000001", "R20261101000001", "100.00", "-30.00", "0.18"),
            "#-----------------------------------------业务明细列表结束------------------------------------",
            f"#交易合计：{trades}笔，商家实收共1334.57元，商家优惠共0.00元",
            "#退款合计：1笔，商家实收退款共-30.00元，商家优惠退款共0.00元",
            "#导出时间：[2026年11月02日 09:12:45]",
        ]
    )  # fmt: skip


def summary_csv(*, received: str = "1304.57", fee: str = "-7.83") -> str:
    figures = ("1434.57", received, "0.00", "0.00", "0.00", fee, "0.00", "1296.74")
    return "\n".join(
        [
            "#支付宝业务汇总查询",
            f"#账号：[{SELLER_ID}0156]",
            "#起始日期：[2026年11月01日 00:00:00]   终止日期：[2026年11月02日 00:00:00]",
            "#-----------------------------------------业务汇总列表----------------------------------------",
            SUMMARY_HEADER,
            _line("", "", "3", "1", *figures),
            _line("合计", "", "3", "1", *figures),
            "#----------------------------------------业务汇总列表结束-------------------------------------",
            "#导出时间：[2026年11月02日 09:12:45]",
        ]
    )  # fmt: skip


def bill_zip(detail: str | None = None, summary: str | None = None) -> bytes:
    """The ZIP as Alipay serves it: CRLF, GBK content *and* GBK member names (no UTF-8 flag,
    which Python's zipfile would set: names are patched in after writing ASCII stand-ins)."""
    prefix = f"{SELLER_ID}0156_{DAY:%Y%m%d}"
    files = {
        f"{prefix}_业务明细.csv": detail if detail is not None else detail_csv(),
        f"{prefix}_业务明细(汇总).csv": summary if summary is not None else summary_csv(),
    }
    buffer = io.BytesIO()
    names: dict[bytes, bytes] = {}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (name, text) in enumerate(files.items()):
            gbk_name = name.encode("gbk")
            stand_in = f"~{index}".ljust(len(gbk_name), "~")
            archive.writestr(stand_in, (text.replace("\n", "\r\n") + "\r\n").encode("gbk"))
            names[stand_in.encode("ascii")] = gbk_name
    data = buffer.getvalue()
    for placeholder, gbk_name in names.items():
        assert data.count(placeholder) == 2  # the local header and the central directory
        data = data.replace(placeholder, gbk_name)
    return data


def test_the_sample_zip_has_gbk_names_as_alipay_writes_them() -> None:
    """The sample's member names are GBK bytes without the UTF-8 flag, like Alipay's."""
    with zipfile.ZipFile(io.BytesIO(bill_zip())) as archive:
        assert all(not info.flag_bits & 0x800 for info in archive.infolist())
    with zipfile.ZipFile(io.BytesIO(bill_zip()), metadata_encoding="gbk") as archive:
        assert archive.namelist()[1].endswith("_业务明细(汇总).csv")


def test_a_day_s_bill_parses_to_exact_fen_with_refunds_as_refund_rows() -> None:
    """Trades and refunds become rows in fen; fees are what we pay, refunds give some back."""
    statement = parse_bill_zip(bill_zip(), day=DAY, seller_id=SELLER_ID)
    kinds = [row.kind for row in statement.rows]
    assert kinds == [StatementKind.PAYMENT] * 3 + [StatementKind.REFUND]
    first, second, third, refund = statement.rows
    assert (first.out_trade_no, first.transaction_id) == (
        "R20261101000001",
        "2026110122001400001000000001",
    )
    assert [r.amount_fen for r in statement.rows] == [10000, 123456, 1, 3000]
    assert [r.fee_fen for r in statement.rows] == [60, 741, 0, -18]
    assert refund.out_refund_no == "RF20261101000001"
    assert first.out_refund_no is None
    assert third.at == datetime(2026, 11, 1, 23, 59, 59, tzinfo=BEIJING)
    assert second.at.utcoffset() is not None


def test_the_summary_totals_are_carried_for_reconciliation() -> None:
    """The summary's 商家实收 合计 (payments minus refunds) and its fees, in fen."""
    statement = parse_bill_zip(bill_zip(), day=DAY, seller_id=SELLER_ID)
    assert statement.day == DAY
    assert statement.total_fen == 130457
    assert statement.fee_total_fen == 783
    payments = sum(r.amount_fen for r in statement.rows if r.kind is StatementKind.PAYMENT)
    refunds = sum(r.amount_fen for r in statement.rows if r.kind is StatementKind.REFUND)
    assert payments - refunds == statement.total_fen
    assert sum(r.fee_fen for r in statement.rows) == statement.fee_total_fen


@pytest.mark.parametrize(
    ("detail", "summary", "complaint"),
    [
        (detail_csv(), summary_csv(received="1304.58"), "商家实收 (汇总)"),
        (detail_csv(), summary_csv(fee="-7.82"), "服务费 (汇总)"),
        (detail_csv(trades=4), summary_csv(), "交易合计"),
        (detail_csv(account="20889999999999990156"), summary_csv(), "account"),
        (detail_csv(start="2026年10月31日"), summary_csv(), "starts on"),
        (detail_csv().replace(",交易\t", ",转账\t", 1), summary_csv(), "业务类型"),
        (detail_csv().replace("1234.56", "1234.5.6", 1), summary_csv(), "not an amount"),
        (detail_csv(), summary_csv().replace("合计", "小计"), "合计"),
    ],
)
def test_a_bill_that_disagrees_with_itself_is_refused(
    detail: str, summary: str, complaint: str
) -> None:
    """Counts, totals, the account, the day and every amount are checked, not trusted."""
    with pytest.raises(BillInvalid, match=re.escape(complaint)):
        parse_bill_zip(bill_zip(detail, summary), day=DAY, seller_id=SELLER_ID)


def test_a_download_that_is_not_a_zip_is_refused() -> None:
    """An HTML error page where the ZIP should be is not a statement."""
    with pytest.raises(BillInvalid, match="not a ZIP"):
        parse_bill_zip(b"<html>expired</html>", day=DAY, seller_id=SELLER_ID)


@pytest.mark.parametrize(
    ("text", "fen"),
    [("100.00", 10000), ("0.01", 1), ("-30.00", -3000), ("1234.5", 123450), ("7", 700)],
)
def test_yuan_strings_become_exact_fen(text: str, fen: int) -> None:
    """No float is ever involved: 1234.5 yuan is 123450 fen."""
    assert yuan_to_fen(text) == fen


@pytest.mark.parametrize("text", ["1e2", "0.001", "+1.00", " 1.00", "1,000.00", "", "NaN", "01.00"])
def test_anything_but_a_plain_yuan_string_is_refused(text: str) -> None:
    """Exponents, a third decimal, signs other than minus, padding and separators."""
    with pytest.raises(BillInvalid):
        yuan_to_fen(text)
