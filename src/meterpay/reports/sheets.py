"""Tables as Excel workbooks (.xlsx, openpyxl): the console's "export to Excel".

Money goes in as numbers with a two-decimal ¥ format (an accountant sums them), times as
the site's local time without a zone (Excel has none) with the zone named in the header,
text as text — never a formula: a cell that starts with ``=``, ``+``, ``-`` or ``@`` is
written as text behind an apostrophe (CSV/Excel injection, as OWASP advises).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

import openpyxl  # type: ignore[import-untyped]
from openpyxl.styles import Font  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]

from meterpay.kernel.money import Money

MONEY_FORMAT: Final = '"¥"#,##0.00;-"¥"#,##0.00'
TIME_FORMAT: Final = "yyyy-mm-dd hh:mm:ss"
MAX_ROWS: Final = 1_000_000
XLSX: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    width: int = 14


def workbook(
    title: str, columns: Sequence[Column], rows: Iterable[Sequence[Any]], *, zone: str
) -> bytes:
    """One sheet named ``title``: a bold header row, then ``rows`` (at most a million)."""
    book = openpyxl.Workbook(write_only=False)
    sheet = book.active
    sheet.title = title[:31]
    tz = ZoneInfo(zone)
    sheet.append([c.title for c in columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for n, row in enumerate(rows, start=2):
        if n > MAX_ROWS:
            break
        sheet.append([_cell(v, tz) for v in row])
        for cell, value in zip(sheet[n], row, strict=False):
            if isinstance(value, Money):
                cell.number_format = MONEY_FORMAT
            elif isinstance(value, datetime):
                cell.number_format = TIME_FORMAT
    for i, column in enumerate(columns, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = column.width
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _cell(value: Any, zone: ZoneInfo) -> Any:
    if isinstance(value, Money):
        return value.yuan
    if isinstance(value, datetime):
        return value.astimezone(zone).replace(tzinfo=None)
    if isinstance(value, date | int | float | Decimal) or value is None:
        return value
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
