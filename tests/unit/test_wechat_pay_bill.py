"""WeChat Pay's daily trade bill (交易账单): the ALL format read by column name, exact
fen, the summary cross-check, and the SHA1 check of the download. The sample
``test_wechat_pay_tradebill_ALL.csv`` follows WeChat's published layout: a plain header,
backtick-prefixed data fields, a summary header and one summary line."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from meterpay.payments.provider import StatementKind
from meterpay.payments.wechat_bill import BadStatement, check_bill_hash, parse_trade_bill

SAMPLE = (Path(__file__).parent / "test_wechat_pay_tradebill_ALL.csv").read_bytes()
DAY = date(2026, 11, 1)


def edited(old: str, new: str, content: bytes = SAMPLE) -> bytes:
    assert old.encode() in content
    return content.replace(old.encode(), new.encode(), 1)


def test_the_sample_bill_reads_as_payments_and_refunds_in_exact_fen() -> None:
    """SUCCESS lines are payments at 订单金额, REFUND lines refunds at 申请退款金额."""
    statement = parse_trade_bill(SAMPLE, DAY)
    assert statement.day == DAY
    kinds = [(row.kind, row.out_trade_no, row.amount_fen, row.fee_fen) for row in statement.rows]
    assert kinds == [
        (StatementKind.PAYMENT, "MPW20261101000001", 10000, 60),
        (StatementKind.PAYMENT, "MPW20261101000002", 5000, 30),
        (StatementKind.PAYMENT, "MPW20261101000003", 3000, 15),  # 5.00 of it paid by a coupon
        (StatementKind.REFUND, "MPW20261101000001", 2000, -12),
        (StatementKind.PAYMENT, "MPW20261101000005", 1234, 7),
    ]
    refund = statement.rows[3]
    assert refund.out_refund_no == "MPWR2026110100000001"
    assert refund.transaction_id == "4200002026110100000001"
    assert statement.rows[0].out_refund_no is None
    assert statement.rows[0].at == datetime(2026, 11, 1, 0, 15, 2, tzinfo=UTC)


def test_the_summary_totals_are_carried_and_match_the_rows() -> None:
    """total_fen is 订单总金额 − 申请退款总金额; the rows add up to it, fees too."""
    statement = parse_trade_bill(SAMPLE, DAY)
    assert statement.total_fen == 19234 - 2000
    assert statement.fee_total_fen == 100
    signed = sum(
        row.amount_fen if row.kind is StatementKind.PAYMENT else -row.amount_fen
        for row in statement.rows
    )
    assert signed == statement.total_fen
    assert sum(row.fee_fen for row in statement.rows) == statement.fee_total_fen


def test_crlf_line_ends_a_byte_order_mark_and_a_float_like_count_are_read() -> None:
    """Downloads come with CRLF, sometimes a BOM, and counts such as ``45.0``."""
    content = b"\xef\xbb\xbf" + edited("\n`5,", "\n`5.0,").replace(b"\n", b"\r\n")
    assert len(parse_trade_bill(content, DAY).rows) == 5


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("`187.34,", "`187.35,", "应结订单金额"),  # 应结订单总金额 off by a fen
        ("`192.34,", "`192.33,", "订单金额"),
        ("`1.00000,", "`1.01000,", "手续费"),
        ("`5,", "`6,", "总交易单数"),
        ("`20.00,`0.00,`ORIGINAL", "`20.01,`0.00,`ORIGINAL", "退款金额"),
    ],
)
def test_a_bill_whose_lines_do_not_add_up_to_its_summary_is_refused(
    old: str, new: str, message: str
) -> None:
    with pytest.raises(BadStatement, match=message):
        parse_trade_bill(edited(old, new), DAY)


def test_an_amount_below_the_fen_is_refused() -> None:
    content = edited("`0.07000,", "`0.07400,")
    with pytest.raises(BadStatement, match="whole number of fen"):
        parse_trade_bill(edited("`1.00000,", "`1.00400,", content), DAY)


def test_a_trade_state_other_than_success_or_refund_is_refused() -> None:
    with pytest.raises(BadStatement, match="REVOKED"):
        parse_trade_bill(edited("`SUCCESS,`OTHERS", "`REVOKED,`OTHERS"), DAY)


def test_a_line_with_a_missing_field_is_refused() -> None:
    with pytest.raises(BadStatement, match="fields for 27 columns"):
        parse_trade_bill(edited(",`0.60%,`100.00,`0.00,`", ",`0.60%,`100.00,`"), DAY)


def test_a_bill_without_its_summary_is_refused() -> None:
    content = SAMPLE[: SAMPLE.index("总交易单数".encode())]
    with pytest.raises(BadStatement, match="summary"):
        parse_trade_bill(content, DAY)


def test_columns_are_taken_by_name_as_in_the_success_only_bill() -> None:
    """The SUCCESS bill has fewer columns in another order; names, not positions, count."""
    content = (
        "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
        "交易状态,付款银行,货币种类,应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,"
        "订单金额,费率备注\n"
        "`2026-11-01 08:15:02,`wx2421b1c4370ec43b,`1900000001,`0,`,`4200002026110100000001,"
        "`MPW20261101000001,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`SUCCESS,`OTHERS,`CNY,"
        "`100.00,`0.00,`电费充值,`,`0.60000,`0.60%,`100.00,`\n"
        "总交易单数,应结订单总金额,手续费总金额,订单总金额\n"
        "`1,`100.00,`0.60000,`100.00\n"
    ).encode()
    statement = parse_trade_bill(content, DAY)
    assert [(row.amount_fen, row.fee_fen) for row in statement.rows] == [(10000, 60)]


def test_an_empty_day_reads_as_an_empty_statement() -> None:
    header = SAMPLE.split(b"\n", 1)[0]
    summary = (
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,"
        "手续费总金额,订单总金额,申请退款总金额"
    )
    content = header + f"\n{summary}\n`0,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00\n".encode()
    statement = parse_trade_bill(content, DAY)
    assert (statement.rows, statement.total_fen, statement.fee_total_fen) == ([], 0, 0)


def test_the_download_must_match_the_announced_sha1() -> None:
    """The download is unsigned: its SHA1 must be the one the signed answer announced."""
    digest = hashlib.sha1(SAMPLE, usedforsecurity=False).hexdigest()
    check_bill_hash(SAMPLE, "SHA1", digest)
    check_bill_hash(SAMPLE, "sha1", digest.upper())
    with pytest.raises(BadStatement, match="SHA1"):
        check_bill_hash(edited("`100.00,", "`900.00,"), "SHA1", digest)
    with pytest.raises(BadStatement, match="hash_type"):
        check_bill_hash(SAMPLE, "MD5", hashlib.md5(SAMPLE, usedforsecurity=False).hexdigest())
