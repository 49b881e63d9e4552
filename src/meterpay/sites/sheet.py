"""An import sheet (批量导入) read and checked: file bytes in, typed rows and errors out.

One row of an .xlsx or .csv sheet (UTF-8 with or without BOM, or GBK as
Excel in China saves it) is one unit, with its owner and at most one
electricity and one water meter. The columns are the table in
``meterpay.sites.sheet_columns`` and are described in docs/import.md.

Invariants:
- every error of the file is reported, not just the first, each with its
  1-based sheet row and its column as the file names it (row 0: the file);
- typed rows come only from a file without errors: what is not all valid is
  not imported;
- the values that must be unique or must exist (``Reference``) are collected
  from every row whose cell parsed, even a row with other errors, so the
  database check that follows reports them too.

Pure: reads bytes or a path, never the database.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import openpyxl  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]

from meterpay.kernel.quantity import Utility
from meterpay.metering.meters import Protocol
from meterpay.sites.model import UnitKind
from meterpay.sites.sheet_columns import (
    COLUMN,
    COLUMNS,
    COMPANIONS,
    METER_COLUMNS,
    MeterColumns,
    bilingual,
    column_for_header,
)

Source = str | Path | bytes


@dataclass(frozen=True, slots=True, order=True)
class RowError:
    row: int
    column: str
    message: str


@dataclass(frozen=True, slots=True)
class MeterSpec:
    utility: Utility
    protocol: Protocol
    address: str
    multiplier: int
    initial_total: Decimal
    tariff_code: str
    register_capacity: Decimal
    has_switch: bool
    """A relay (electricity) or valve (water) the meter can open and close."""


@dataclass(frozen=True, slots=True)
class UnitRow:
    row: int
    code: str
    name: str
    kind: UnitKind
    building_code: str | None
    building_name: str | None
    floor_level: int | None
    area_m2: Decimal | None
    customer_name: str | None
    customer_phone: str | None
    meters: tuple[MeterSpec, ...]


class RefKind(StrEnum):
    UNIT_CODE = "unit_code"
    METER_ADDRESS = "meter_address"
    TARIFF_CODE = "tariff_code"


_REFERENCING_COLUMNS = (
    ("unit_code", RefKind.UNIT_CODE, None),
    ("elec_address", RefKind.METER_ADDRESS, Utility.ELECTRICITY),
    ("elec_tariff", RefKind.TARIFF_CODE, Utility.ELECTRICITY),
    ("water_address", RefKind.METER_ADDRESS, Utility.WATER),
    ("water_tariff", RefKind.TARIFF_CODE, Utility.WATER),
)


@dataclass(frozen=True, slots=True)
class Reference:
    """A value that must be unique (unit code, meter address) or must exist
    (tariff code): checked across the file and against the database, for
    every row whose cell parsed, even a row with other errors."""

    row: int
    column: str
    kind: RefKind
    value: str
    utility: Utility | None = None


@dataclass(frozen=True, slots=True)
class ParsedSheet:
    rows: tuple[UnitRow, ...]
    """Only for a file without errors: what is not all valid is not imported."""
    references: tuple[Reference, ...]
    errors: tuple[RowError, ...]


def in_row_order(errors: Sequence[RowError]) -> tuple[RowError, ...]:
    """Errors sorted by row; within a row they keep the order they were found in."""
    return tuple(sorted(errors, key=lambda error: error.row))


# --- reading a file into cells ----------------------------------------------


class UnreadableSheet(Exception):
    """The bytes are not a sheet we can read; the message says why."""


def read_cells(source: Source) -> list[list[str]]:
    """The first worksheet (.xlsx) or the records (.csv), as stripped text."""
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as exc:
        raise UnreadableSheet(bilingual("无法读取文件", f"cannot read the file: {exc}")) from exc
    if data.startswith(b"PK\x03\x04"):
        return _xlsx_cells(data)
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise UnreadableSheet(
            bilingual("不支持旧版 .xls，请另存为 .xlsx 或 .csv", "save .xls as .xlsx")
        )
    return _csv_cells(data)


def _xlsx_cells(data: bytes) -> list[list[str]]:
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), data_only=True)
    except Exception as exc:  # openpyxl has no one error for "not a workbook"
        raise UnreadableSheet(
            bilingual("无法读取 .xlsx 文件", f"not a readable .xlsx: {exc}")
        ) from exc
    rows = book.worksheets[0].iter_rows(values_only=True)
    return [[_cell_text(value) for value in row] for row in rows]


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel keeps every number as a float: 3.0 is floor 3
    return str(value).strip()


def _csv_cells(data: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):  # gb18030 reads GBK and extends it
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise UnreadableSheet(bilingual("无法识别文件编码", "neither UTF-8 nor GBK text"))
    try:
        return [[cell.strip() for cell in record] for record in csv.reader(io.StringIO(text))]
    except csv.Error as exc:
        raise UnreadableSheet(bilingual("CSV 格式错误", f"malformed CSV: {exc}")) from exc


# --- cells -> typed rows and errors ------------------------------------------


@dataclass(frozen=True, slots=True)
class _Header:
    positions: dict[str, int]
    labels: dict[str, str]
    named: set[int]
    """Every position with a header text, known or not."""

    def label(self, name: str) -> str:
        return self.labels.get(name) or COLUMN[name].zh


def parse_sheet(source: Source) -> ParsedSheet:
    """Read and check a sheet; a file that is no sheet is one error for row 0."""
    try:
        cells = read_cells(source)
    except UnreadableSheet as exc:
        return ParsedSheet((), (), (RowError(0, "", str(exc)),))
    return parse_cells(cells)


def parse_cells(cells: Sequence[Sequence[str]]) -> ParsedSheet:
    """Check every row of a sheet whose first non-blank row is the header."""
    numbered = [(number, row) for number, row in enumerate(cells, start=1) if any(row)]
    if not numbered:
        return ParsedSheet((), (), (RowError(0, "", bilingual("文件是空的", "the file is empty")),))
    (header_row, header_cells), *body = numbered
    header, errors = _read_header(header_row, header_cells)
    if not body:
        errors.append(RowError(header_row, "", bilingual("没有数据行", "no data rows")))
    valid: list[tuple[int, dict[str, Any]]] = []
    references: list[Reference] = []
    for number, row in body:
        values, row_errors = _parse_row(header, number, row)
        references += _references(header, number, values)
        errors += row_errors
        valid += [] if row_errors else [(number, values)]
    errors += _duplicates_in_file(references)
    rows = () if errors else tuple(_unit_row(number, values) for number, values in valid)
    return ParsedSheet(rows, tuple(references), in_row_order(errors))


def _read_header(row: int, cells: Sequence[str]) -> tuple[_Header, list[RowError]]:
    header = _Header({}, {}, {index for index, text in enumerate(cells) if text})
    errors: list[RowError] = []
    for index, text in enumerate(cells):
        column = column_for_header(text)
        if text and column is None:
            message = bilingual(f"未知列「{text}」", f"unknown column {text!r}")
            errors.append(RowError(row, text, message))
        elif column is not None and column.field in header.positions:
            errors.append(RowError(row, text, bilingual("列重复", "the column is given twice")))
        elif column is not None:
            header.positions[column.field] = index
            header.labels[column.field] = text
    missing = [c for c in COLUMNS if c.required and c.field not in header.positions]
    errors += [
        RowError(row, c.zh, bilingual("缺少必填列", f"missing column {c.en}")) for c in missing
    ]
    return header, errors


def _parse_row(
    header: _Header, number: int, cells: Sequence[str]
) -> tuple[dict[str, Any], list[RowError]]:
    values: dict[str, Any] = {}
    present: set[str] = set()
    errors: list[RowError] = []
    for name, index in header.positions.items():
        text = cells[index] if index < len(cells) else ""
        if not text:
            if COLUMN[name].required:
                errors.append(RowError(number, header.label(name), bilingual("必填", "required")))
            continue
        present.add(name)
        try:
            values[name] = COLUMN[name].parse(text)
        except ValueError as exc:
            errors.append(RowError(number, header.label(name), str(exc)))
    errors += _missing_companions(header, number, present)
    return values, errors + _stray(header, number, cells)


def _stray(header: _Header, number: int, cells: Sequence[str]) -> list[RowError]:
    """A value in a column without a header would be silently dropped: refuse it."""
    message = bilingual("该列没有表头", "a value in a column without a header")
    return [
        RowError(number, get_column_letter(index + 1), message)
        for index, text in enumerate(cells)
        if text and index not in header.named
    ]


def _missing_companions(header: _Header, number: int, present: set[str]) -> list[RowError]:
    errors: dict[str, RowError] = {}
    for given, needed in COMPANIONS:
        if given in present and needed not in present and needed not in errors:
            label = header.label(given)
            message = bilingual(f"填写了{label}时必填", f"required when {label} is given")
            errors[needed] = RowError(number, header.label(needed), message)
    return list(errors.values())


def _references(header: _Header, number: int, values: dict[str, Any]) -> list[Reference]:
    return [
        Reference(number, header.label(name), kind, values[name], utility)
        for name, kind, utility in _REFERENCING_COLUMNS
        if name in values
    ]


def _duplicates_in_file(references: Sequence[Reference]) -> list[RowError]:
    first_row: dict[tuple[RefKind, Utility | None, str], int] = {}
    errors = []
    for ref in references:
        if ref.kind is RefKind.TARIFF_CODE:
            continue
        first = first_row.setdefault((ref.kind, ref.utility, ref.value), ref.row)
        if first != ref.row:
            message = bilingual(f"与第{first}行重复", f"same {ref.value} as row {first}")
            errors.append(RowError(ref.row, ref.column, message))
    return errors


def _unit_row(number: int, values: dict[str, Any]) -> UnitRow:
    return UnitRow(
        row=number,
        code=values["unit_code"],
        name=values.get("unit_name", values["unit_code"]),
        kind=values["unit_kind"],
        building_code=values.get("building_code"),
        building_name=values.get("building_name"),
        floor_level=values.get("floor"),
        area_m2=values.get("area_m2"),
        customer_name=values.get("customer_name"),
        customer_phone=values.get("customer_phone"),
        meters=tuple(
            _meter_spec(m, values) for m in METER_COLUMNS if f"{m.prefix}_address" in values
        ),
    )


def _meter_spec(columns: MeterColumns, values: dict[str, Any]) -> MeterSpec:
    return MeterSpec(
        utility=columns.utility,
        protocol=columns.protocol,
        address=values[f"{columns.prefix}_address"],
        multiplier=values.get(f"{columns.prefix}_multiplier", 1),
        initial_total=values.get(f"{columns.prefix}_initial", Decimal(0)),
        tariff_code=values[f"{columns.prefix}_tariff"],
        register_capacity=columns.capacity,
        has_switch=values.get(f"{columns.prefix}_switch", False),
    )
