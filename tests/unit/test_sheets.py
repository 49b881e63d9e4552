"""Excel exports: money stays a number the accountant can sum, times are the site's,
and nothing in a cell is ever run as a formula."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import openpyxl  # type: ignore[import-untyped]

from meterpay.kernel.money import Money
from meterpay.reports.sheets import MONEY_FORMAT, Column, workbook


def test_an_export_keeps_money_as_numbers_times_local_and_formulas_inert() -> None:
    data = workbook(
        "账户",
        [Column("账户"), Column("余额"), Column("时间（北京时间）")],
        [
            ["E-0101", Money(12345), datetime(2026, 11, 27, 6, 30, tzinfo=UTC)],
            ['=HYPERLINK("http://evil")', Money(-5), None],
        ],
        zone="Asia/Shanghai",
    )
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert [c.value for c in sheet[1]] == ["账户", "余额", "时间（北京时间）"]
    assert sheet["B2"].value == 123.45 and sheet["B2"].number_format == MONEY_FORMAT
    assert sheet["C2"].value == datetime(2026, 11, 27, 14, 30, tzinfo=UTC).replace(tzinfo=None)
    assert sheet["A3"].value.startswith("'=") and sheet["A3"].data_type == "s"
    assert sheet["B3"].value == -0.05
