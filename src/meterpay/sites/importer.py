"""Bulk import (批量导入) of units, customers, accounts and meters from a sheet.

One row of an .xlsx or .csv sheet (UTF-8 with or without BOM, or GBK as
Excel in China saves it) is one unit, with its owner and at most one
electricity and one water meter, each billing into a new prepaid account.
The columns are described in docs/import.md.

Invariants:
- all-or-nothing: the whole file is checked (every cell, every row against
  the others and against the database) and then written in ONE write
  transaction; any error, found before or while writing, rolls the whole
  file back. A file is never half-imported.
- every error of the file is reported, not just the first, each with its
  1-based sheet row and its column as the file names it (row 0: the file).
- a dry run makes exactly the same checks and writes, then rolls back.
"""

from __future__ import annotations

import csv
import getpass
import io
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any

import openpyxl  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]
from sqlalchemy import Connection, Table, select
from sqlalchemy.exc import DataError, IntegrityError

from meterpay.audit import repository as audit
from meterpay.db.rows import insert_row, to_model
from meterpay.db.schema import buildings, customers, floors, meters, sites, tariffs, units
from meterpay.kernel.errors import DomainError, NotFound
from meterpay.kernel.quantity import InvalidQuantity, Utility, parse_quantity
from meterpay.metering.meters import Protocol
from meterpay.metering.service import register_meter_in
from meterpay.runtime import Runtime
from meterpay.sites.model import CustomerKind, Site, UnitKind
from meterpay.sites.service import create_unit_in, open_account_in

Source = str | Path | bytes


def _msg(zh: str, en: str) -> str:
    """Every message in one shape: Chinese first, English in parentheses."""
    return f"{zh} ({en})"


@dataclass(frozen=True, slots=True, order=True)
class RowError:
    row: int
    column: str
    message: str


# --- cells: parse one cell or raise ValueError with a message ---------------


def _text(limit: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if len(text) > limit:
            raise ValueError(_msg(f"超过{limit}个字符", f"longer than {limit} characters"))
        return text

    return parse


def _floor_level(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(_msg("楼层须为整数", "floor must be a whole number")) from None


_UNIT_KINDS = {
    "住宅": UnitKind.HOME,
    "商铺": UnitKind.SHOP,
    "办公": UnitKind.OFFICE,
    "公区": UnitKind.COMMON,
    **{kind.value: kind for kind in UnitKind},
}


def _unit_kind(text: str) -> UnitKind:
    if text.casefold() not in _UNIT_KINDS:
        raise ValueError(
            _msg("类型须为 住宅/商铺/办公/公区", "kind must be home/shop/office/common")
        )
    return _UNIT_KINDS[text.casefold()]


def _area(text: str) -> Decimal:
    value = _finite_decimal(text)
    if value is None or value <= 0 or value != value.quantize(Decimal("0.01")):
        raise ValueError(
            _msg("面积须为正数，最多两位小数", "area must be positive, 2 decimals at most")
        )
    return value


def _finite_decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


_MOBILE = re.compile(r"1[3-9][0-9]{9}")


def _phone(text: str) -> str:
    digits = re.sub(r"[\s-]", "", text)
    if not _MOBILE.fullmatch(digits):
        raise ValueError(
            _msg(
                "手机号须为1开头的11位大陆手机号", "phone: 11-digit mainland mobile starting with 1"
            )
        )
    return digits


def _address(pattern: str, zh: str, en: str) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def parse(text: str) -> str:
        if not compiled.fullmatch(text.upper()):
            raise ValueError(_msg(f"{zh}（请将该列设为文本，保留前导0）", en))
        return text.upper()

    return parse


def _multiplier(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        raise ValueError(_msg("倍率须为不小于1的整数", "multiplier must be a whole number >= 1"))
    return int(text)


def _reading(capacity: Decimal) -> Callable[[str], Decimal]:
    zh = f"底数须在0到{capacity}之间，最多4位小数"
    en = f"initial reading must be 0 to below {capacity}, 4 decimals at most"

    def parse(text: str) -> Decimal:
        try:
            value = parse_quantity(text)
        except InvalidQuantity:
            raise ValueError(_msg(zh, en)) from None
        if not 0 <= value < capacity:
            raise ValueError(_msg(zh, en))
        return value

    return parse


# --- columns -----------------------------------------------------------------

ELECTRICITY_CAPACITY = Decimal(1_000_000)
WATER_CAPACITY = Decimal(100_000)


@dataclass(frozen=True, slots=True)
class SheetColumn:
    field: str
    zh: str
    en: str
    parse: Callable[[str], Any]
    required: bool = False


COLUMNS: tuple[SheetColumn, ...] = (
    SheetColumn("building_code", "楼栋", "building_code", _text(32)),
    SheetColumn("building_name", "楼栋名称", "building_name", _text(200)),
    SheetColumn("floor", "楼层", "floor", _floor_level),
    SheetColumn("unit_code", "房号", "unit_code", _text(64), required=True),
    SheetColumn("unit_name", "名称", "unit_name", _text(200)),
    SheetColumn("unit_kind", "类型", "unit_kind", _unit_kind, required=True),
    SheetColumn("area_m2", "面积", "area_m2", _area),
    SheetColumn("customer_name", "业主姓名", "customer_name", _text(200)),
    SheetColumn("customer_phone", "手机号", "customer_phone", _phone),
    SheetColumn(
        "elec_address",
        "电表地址",
        "electricity_meter_address",
        _address(r"[0-9]{12}", "电表地址须为12位数字", "DL/T 645 address: 12 decimal digits"),
    ),
    SheetColumn("elec_multiplier", "电表倍率", "electricity_multiplier", _multiplier),
    SheetColumn(
        "elec_initial", "电表底数", "electricity_initial_reading", _reading(ELECTRICITY_CAPACITY)
    ),
    SheetColumn("elec_tariff", "电价方案", "electricity_tariff_code", _text(64)),
    SheetColumn(
        "water_address",
        "水表地址",
        "water_meter_address",
        _address(r"[0-9A-F]{14}", "水表地址须为14位十六进制", "CJ/T 188 address: 14 hex digits"),
    ),
    SheetColumn("water_initial", "水表底数", "water_initial_reading", _reading(WATER_CAPACITY)),
    SheetColumn("water_tariff", "水价方案", "water_tariff_code", _text(64)),
)
_COLUMN = {column.field: column for column in COLUMNS}
_BY_HEADER = {name.casefold(): c for c in COLUMNS for name in (c.zh, c.en)}

# A value in the first column means nothing without one in the second.
_NEEDS = (
    ("floor", "building_code"),
    ("building_code", "floor"),
    ("building_name", "building_code"),
    ("customer_phone", "customer_name"),
    ("elec_multiplier", "elec_address"),
    ("elec_initial", "elec_address"),
    ("elec_tariff", "elec_address"),
    ("elec_address", "elec_tariff"),
    ("water_initial", "water_address"),
    ("water_tariff", "water_address"),
    ("water_address", "water_tariff"),
)


@dataclass(frozen=True, slots=True)
class _MeterColumns:
    utility: Utility
    protocol: Protocol
    capacity: Decimal
    prefix: str


_METERS = (
    _MeterColumns(Utility.ELECTRICITY, Protocol.DLT645_2007, ELECTRICITY_CAPACITY, "elec"),
    _MeterColumns(Utility.WATER, Protocol.CJT188, WATER_CAPACITY, "water"),
)
_PROTOCOL = {m.utility: m.protocol for m in _METERS}
_CAPACITY = {m.utility: m.capacity for m in _METERS}
_UTILITY_ZH = {Utility.ELECTRICITY: "电价", Utility.WATER: "水价"}


# --- typed rows --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeterSpec:
    utility: Utility
    address: str
    multiplier: int
    initial_total: Decimal
    tariff_code: str


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


# --- reading a file into cells ----------------------------------------------


class UnreadableSheet(Exception):
    """The bytes are not a sheet we can read; the message says why."""


def read_cells(source: Source) -> list[list[str]]:
    """The first worksheet (.xlsx) or the records (.csv), as stripped text."""
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as exc:
        raise UnreadableSheet(_msg("无法读取文件", f"cannot read the file: {exc}")) from exc
    if data.startswith(b"PK\x03\x04"):
        return _xlsx_cells(data)
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise UnreadableSheet(_msg("不支持旧版 .xls，请另存为 .xlsx 或 .csv", "save .xls as .xlsx"))
    return _csv_cells(data)


def _xlsx_cells(data: bytes) -> list[list[str]]:
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), data_only=True)
    except Exception as exc:  # openpyxl has no one error for "not a workbook"
        raise UnreadableSheet(_msg("无法读取 .xlsx 文件", f"not a readable .xlsx: {exc}")) from exc
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
        raise UnreadableSheet(_msg("无法识别文件编码", "neither UTF-8 nor GBK text"))
    try:
        return [[cell.strip() for cell in record] for record in csv.reader(io.StringIO(text))]
    except csv.Error as exc:
        raise UnreadableSheet(_msg("CSV 格式错误", f"malformed CSV: {exc}")) from exc


# --- the pure part: cells -> typed rows and errors --------------------------


@dataclass(frozen=True, slots=True)
class _Header:
    positions: dict[str, int]
    labels: dict[str, str]
    named: set[int]
    """Every position with a header text, known or not."""

    def label(self, name: str) -> str:
        return self.labels.get(name) or _COLUMN[name].zh


def parse_sheet(source: Source) -> ParsedSheet:
    try:
        cells = read_cells(source)
    except UnreadableSheet as exc:
        return ParsedSheet((), (), (RowError(0, "", str(exc)),))
    return parse_cells(cells)


def parse_cells(cells: Sequence[Sequence[str]]) -> ParsedSheet:
    """Check every row of a sheet whose first non-blank row is the header."""
    numbered = [(number, row) for number, row in enumerate(cells, start=1) if any(row)]
    if not numbered:
        return ParsedSheet((), (), (RowError(0, "", _msg("文件是空的", "the file is empty")),))
    (header_row, header_cells), *body = numbered
    header, errors = _read_header(header_row, header_cells)
    if not body:
        errors.append(RowError(header_row, "", _msg("没有数据行", "no data rows")))
    valid: list[tuple[int, dict[str, Any]]] = []
    references: list[Reference] = []
    for number, row in body:
        values, row_errors = _parse_row(header, number, row)
        references += _references(header, number, values)
        errors += row_errors
        valid += [] if row_errors else [(number, values)]
    errors += _duplicates_in_file(references)
    rows = () if errors else tuple(_unit_row(number, values) for number, values in valid)
    return ParsedSheet(rows, tuple(references), _in_row_order(errors))


def _in_row_order(errors: Sequence[RowError]) -> tuple[RowError, ...]:
    return tuple(sorted(errors, key=lambda error: error.row))


def _read_header(row: int, cells: Sequence[str]) -> tuple[_Header, list[RowError]]:
    header = _Header({}, {}, {index for index, text in enumerate(cells) if text})
    errors: list[RowError] = []
    for index, text in enumerate(cells):
        column = _BY_HEADER.get(text.strip().rstrip("*").replace(" ", "_").casefold())
        if text and column is None:
            errors.append(
                RowError(row, text, _msg(f"未知列「{text}」", f"unknown column {text!r}"))
            )
        elif column is not None and column.field in header.positions:
            errors.append(RowError(row, text, _msg("列重复", "the column is given twice")))
        elif column is not None:
            header.positions[column.field] = index
            header.labels[column.field] = text
    missing = [c for c in COLUMNS if c.required and c.field not in header.positions]
    errors += [RowError(row, c.zh, _msg("缺少必填列", f"missing column {c.en}")) for c in missing]
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
            if _COLUMN[name].required:
                errors.append(RowError(number, header.label(name), _msg("必填", "required")))
            continue
        present.add(name)
        try:
            values[name] = _COLUMN[name].parse(text)
        except ValueError as exc:
            errors.append(RowError(number, header.label(name), str(exc)))
    errors += _missing_companions(header, number, present)
    return values, errors + _stray(header, number, cells)


def _stray(header: _Header, number: int, cells: Sequence[str]) -> list[RowError]:
    """A value in a column without a header would be silently dropped: refuse it."""
    message = _msg("该列没有表头", "a value in a column without a header")
    return [
        RowError(number, get_column_letter(index + 1), message)
        for index, text in enumerate(cells)
        if text and index not in header.named
    ]


def _missing_companions(header: _Header, number: int, present: set[str]) -> list[RowError]:
    errors: dict[str, RowError] = {}
    for given, needed in _NEEDS:
        if given in present and needed not in present and needed not in errors:
            label = header.label(given)
            message = _msg(f"填写了{label}时必填", f"required when {label} is given")
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
            message = _msg(f"与第{first}行重复", f"same {ref.value} as row {first}")
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
        meters=tuple(_meter_spec(m, values) for m in _METERS if f"{m.prefix}_address" in values),
    )


def _meter_spec(columns: _MeterColumns, values: dict[str, Any]) -> MeterSpec:
    return MeterSpec(
        utility=columns.utility,
        address=values[f"{columns.prefix}_address"],
        multiplier=values.get(f"{columns.prefix}_multiplier", 1),
        initial_total=values.get(f"{columns.prefix}_initial", Decimal(0)),
        tariff_code=values[f"{columns.prefix}_tariff"],
    )


# --- the use case: check against the database, write in one transaction -----


@dataclass(frozen=True, slots=True)
class ImportReport:
    site_code: str
    dry_run: bool
    errors: tuple[RowError, ...] = ()
    created: dict[str, int] = field(default_factory=dict)
    """How many buildings, floors, units, customers, accounts and meters."""

    @property
    def ok(self) -> bool:
        return not self.errors

    def count(self, kind: str) -> int:
        return self.created.get(kind, 0)


class _Abandon(Exception):
    """Leaves the write transaction, rolling it back, with the report to return."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(report.site_code)
        self.report = report


def import_sheet(
    rt: Runtime, path_or_bytes: Source, *, site_code: str, actor: str, dry_run: bool = False
) -> ImportReport:
    """Import a sheet into a site: everything, or nothing and every error."""
    parsed = parse_sheet(path_or_bytes)
    try:
        with rt.db.write() as conn:
            site = _site_by_code(conn, site_code)
            errors = [*parsed.errors, *_check_database(conn, site.id, parsed.references)]
            if errors:
                raise _Abandon(ImportReport(site_code, dry_run, _in_row_order(errors)))
            writer = _SheetWriter(rt, conn, site, actor=actor, dry_run=dry_run)
            created = writer.write_all(parsed.rows)
            report = ImportReport(site_code, dry_run, created=created)
            if dry_run:
                raise _Abandon(report)
            return report
    except _Abandon as abandoned:
        return abandoned.report


def _site_by_code(conn: Connection, code: str) -> Site:
    row = conn.execute(select(sites).where(sites.c.code == code)).mappings().first()
    if row is None:
        raise NotFound(f"no site with code {code!r}", field="site_code")
    return to_model(Site, row)


def _check_database(
    conn: Connection, site_id: int, references: Sequence[Reference]
) -> list[RowError]:
    known = _Known.load(conn, site_id)
    return [error for ref in references if (error := known.check(ref)) is not None]


@dataclass(frozen=True, slots=True)
class _Known:
    """What the site already has that the sheet may clash with or refer to."""

    unit_codes: set[str]
    meter_addresses: set[tuple[str, str]]
    tariffs: dict[str, Utility]

    @classmethod
    def load(cls, conn: Connection, site_id: int) -> _Known:
        in_use = meters.c.site_id == site_id, meters.c.status != "removed"
        found_meters = conn.execute(select(meters.c.protocol, meters.c.address).where(*in_use))
        found_tariffs = conn.execute(
            select(tariffs.c.code, tariffs.c.utility).where(tariffs.c.site_id == site_id)
        )
        return cls(
            set(conn.scalars(select(units.c.code).where(units.c.site_id == site_id))),
            {(protocol, address.upper()) for protocol, address in found_meters},
            {code: Utility(utility) for code, utility in found_tariffs},
        )

    def check(self, ref: Reference) -> RowError | None:
        message = None
        if ref.kind is RefKind.UNIT_CODE and ref.value in self.unit_codes:
            message = _msg("房号已存在", f"unit {ref.value} already exists in the site")
        elif ref.kind is RefKind.METER_ADDRESS and self._meter_exists(ref):
            message = _msg("表地址已被使用", f"a meter with address {ref.value} already exists")
        elif ref.kind is RefKind.TARIFF_CODE:
            message = self._tariff_problem(ref)
        return None if message is None else RowError(ref.row, ref.column, message)

    def _meter_exists(self, ref: Reference) -> bool:
        protocol = _PROTOCOL[ref.utility] if ref.utility is not None else None
        return protocol is not None and (protocol.value, ref.value) in self.meter_addresses

    def _tariff_problem(self, ref: Reference) -> str | None:
        utility = self.tariffs.get(ref.value)
        if utility is None:
            return _msg("价格方案不存在", f"no tariff {ref.value!r} in the site")
        if utility is not ref.utility:
            return _msg(f"该方案是{_UTILITY_ZH[utility]}", f"tariff {ref.value} prices {utility}")
        return None


class _SheetWriter:
    """Creates the rows of a checked sheet inside the caller's transaction.

    A failure on any row abandons the transaction with that row's error.
    """

    def __init__(
        self, rt: Runtime, conn: Connection, site: Site, *, actor: str, dry_run: bool
    ) -> None:
        self.rt, self.conn, self.site, self.actor, self.dry_run = rt, conn, site, actor, dry_run
        self.now = rt.clock.now()
        self.created: Counter[str] = Counter()
        self.tariff_ids = _ids_by_code(conn, tariffs, site.id)
        self.building_ids = _ids_by_code(conn, buildings, site.id)
        self.floor_ids: dict[tuple[int, int], int] = {}
        self.customer_ids: dict[tuple[str, str], int] = {}

    def write_all(self, rows: Sequence[UnitRow]) -> dict[str, int]:
        for row in rows:
            try:
                self._write(row)
            except DomainError as exc:
                raise _Abandon(self._failure(row, exc.message)) from exc
            except (IntegrityError, DataError) as exc:  # e.g. an account number already taken
                raise _Abandon(self._failure(row, str(exc.orig).splitlines()[0])) from exc
        created = {kind: self.created[kind] for kind in CREATED_KINDS}
        audit.record(
            self.conn,
            at=self.now,
            actor=self.actor,
            action="site.import",
            object_type="site",
            object_id=self.site.id,
            site_id=self.site.id,
            after=created,
        )
        return created

    def _failure(self, row: UnitRow, detail: str) -> ImportReport:
        message = _msg("写入失败", f"could not be written: {detail}")
        return ImportReport(self.site.code, self.dry_run, (RowError(row.row, "", message),))

    def _write(self, row: UnitRow) -> None:
        unit = create_unit_in(
            self.conn,
            site_id=self.site.id,
            code=row.code,
            name=row.name,
            kind=row.kind,
            floor_id=self._floor_id(row),
            area_m2=row.area_m2,
        )
        self.created["units"] += 1
        customer_id = self._customer_id(row)
        for meter in row.meters:
            self._install(unit.id, customer_id, meter)

    def _install(self, unit_id: int, customer_id: int | None, meter: MeterSpec) -> None:
        account = open_account_in(
            self.rt,
            self.conn,
            unit_id=unit_id,
            utility=meter.utility,
            tariff_id=self.tariff_ids[meter.tariff_code],
            customer_id=customer_id,
            number=None,
            actor=self.actor,
        )
        register_meter_in(
            self.rt,
            self.conn,
            unit_id=unit_id,
            utility=meter.utility,
            protocol=_PROTOCOL[meter.utility],
            address=meter.address,
            initial_total=meter.initial_total,
            account_id=account.id,
            multiplier=meter.multiplier,
            register_capacity=_CAPACITY[meter.utility],
            max_rate_per_hour=None,
            has_switch=False,
            gateway_id=None,
            serial=None,
            model=None,
            installed_at=self.now,
            actor=self.actor,
        )
        self.created["accounts"] += 1
        self.created["meters"] += 1

    def _floor_id(self, row: UnitRow) -> int | None:
        if row.building_code is None or row.floor_level is None:
            return None
        building_id = self.building_ids.get(row.building_code)
        if building_id is None:
            building_id = self._insert(
                buildings,
                site_id=self.site.id,
                code=row.building_code,
                name=row.building_name or row.building_code,
            )
            self.building_ids[row.building_code] = building_id
        key = (building_id, row.floor_level)
        if key not in self.floor_ids:
            self.floor_ids[key] = self._existing_floor(*key) or self._insert(
                floors, building_id=building_id, level=row.floor_level, name=f"{row.floor_level}层"
            )
        return self.floor_ids[key]

    def _existing_floor(self, building_id: int, level: int) -> int | None:
        query = select(floors.c.id).where(
            floors.c.building_id == building_id, floors.c.level == level
        )
        return self.conn.scalar(query)

    def _customer_id(self, row: UnitRow) -> int | None:
        """One customer per name and phone: an owner of two units is one person."""
        if row.customer_name is None:
            return None
        key = (row.customer_name, row.customer_phone or "")
        if row.customer_phone and key in self.customer_ids:
            return self.customer_ids[key]
        found = self._existing_customer(*key) if row.customer_phone else None
        self.customer_ids[key] = found or self._insert(
            customers,
            site_id=self.site.id,
            name=row.customer_name,
            kind=CustomerKind.PERSON.value,
            phone=row.customer_phone,
            created_at=self.now,
        )
        return self.customer_ids[key]

    def _existing_customer(self, name: str, phone: str) -> int | None:
        query = select(customers.c.id).where(
            customers.c.site_id == self.site.id,
            customers.c.name == name,
            customers.c.phone == phone,
        )
        return self.conn.execute(query.order_by(customers.c.id).limit(1)).scalar()

    def _insert(self, table: Table, **values: Any) -> int:
        self.created[table.name] += 1
        return insert_row(self.conn, table, values)


CREATED_KINDS = ("buildings", "floors", "units", "customers", "accounts", "meters")


def _ids_by_code(conn: Connection, table: Table, site_id: int) -> dict[str, int]:
    query = select(table.c.code, table.c.id).where(table.c.site_id == site_id)
    return {code: row_id for code, row_id in conn.execute(query)}


# --- the command line ----------------------------------------------------------

_KIND_ZH = {
    "buildings": "楼栋",
    "floors": "楼层",
    "units": "房间",
    "customers": "业主",
    "accounts": "账户",
    "meters": "表计",
}


def render_report(report: ImportReport) -> str:
    if not report.ok:
        head = _msg(
            f"导入失败，共{len(report.errors)}处错误，未导入任何数据",
            f"{len(report.errors)} error(s); nothing was imported",
        )
        return "\n".join([head, *(_error_line(e) for e in report.errors)])
    counts = "，".join(f"{_KIND_ZH[k]} {report.count(k)}" for k in CREATED_KINDS)
    if report.dry_run:
        return _msg(f"检查通过，未写入（试运行）：将创建 {counts}", "dry run: nothing written")
    return _msg(f"导入完成：已创建 {counts}", "imported")


def _error_line(error: RowError) -> str:
    where = "文件" if error.row == 0 else f"第{error.row}行"
    return (
        f"{where} 列{error.column}: {error.message}"
        if error.column
        else f"{where}: {error.message}"
    )


def run_import_cli(rt: Runtime, file: str, *, site_code: str, dry_run: bool) -> int:
    """``meterpay import FILE --site CODE [--dry-run]``: 0 imported (or checked), 1 not."""
    try:
        report = import_sheet(rt, file, site_code=site_code, actor=_cli_actor(), dry_run=dry_run)
    except DomainError as exc:
        print(_msg("导入失败", exc.message), file=sys.stderr)
        return 1
    print(render_report(report))
    return 0 if report.ok else 1


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name, e.g. in a container
        return "cli"
