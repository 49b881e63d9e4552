"""A sheet reads into typed rows, or into every error it has, without a database."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from meterpay.kernel.quantity import Utility
from meterpay.metering.meters import Protocol
from meterpay.sites.model import UnitKind
from meterpay.sites.sheet import (
    MeterSpec,
    ParsedSheet,
    RefKind,
    RowError,
    UnitRow,
    parse_cells,
    parse_sheet,
    read_cells,
)

# fmt: off
HEADER = ["楼栋", "楼层", "房号", "名称", "类型", "面积", "业主姓名", "手机号",
          "电表地址", "电表倍率", "电表底数", "电价方案", "水表地址", "水表底数", "水价方案"]
ZHANG_SAN = ["1栋", "3", "1-0301", "", "住宅", "89.50", "张三", "13800138000",
             "000000000301", "", "1234.5", "居民电价", "1234567890abcd", "12.3", "居民水价"]
LI_SI = ["1栋", "3", "1-0302", "1栋302", "住宅", "", "李四", "139 0013 9000",
         "000000000302", "1", "", "居民电价", "", "", ""]
SHOP = ["2栋", "1", "S-101", "便利店", "商铺", "120", "", "",
        "000000000101", "80", "0", "居民电价", "00000000000A0F", "", "居民水价"]
SWITCH_HEADER = ["房号", "类型", "电表地址", "电价方案", "电表可通断",
                 "水表地址", "水价方案", "水表可通断"]
# fmt: on
GOOD = [HEADER, ZHANG_SAN, LI_SI, SHOP]


def csv_bytes(rows: list[list[str]], encoding: str) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out).writerows(rows)
    return out.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def errors_at(parsed: ParsedSheet) -> list[tuple[int, str]]:
    return [(error.row, error.column) for error in parsed.errors]


def switches(parsed: ParsedSheet) -> dict[Utility, bool]:
    (row,) = parsed.rows
    return {meter.utility: meter.has_switch for meter in row.meters}


# --- good sheets ---------------------------------------------------------------


def test_a_good_sheet_reads_into_one_typed_row_per_unit_with_its_meters() -> None:
    """Units, owners and meters come out typed, with defaults filled and addresses upper-cased."""
    parsed = parse_cells(GOOD)
    assert parsed.errors == ()
    zhang_san, li_si, shop = parsed.rows
    assert zhang_san == UnitRow(
        row=2,
        code="1-0301",
        name="1-0301",
        kind=UnitKind.HOME,
        building_code="1栋",
        building_name=None,
        floor_level=3,
        area_m2=Decimal("89.50"),
        customer_name="张三",
        customer_phone="13800138000",
        meters=(
            MeterSpec(
                Utility.ELECTRICITY,
                Protocol.DLT645_2007,
                "000000000301",
                multiplier=1,
                initial_total=Decimal("1234.5"),
                tariff_code="居民电价",
                register_capacity=Decimal(1_000_000),
                has_switch=False,
            ),
            MeterSpec(
                Utility.WATER,
                Protocol.CJT188,
                "1234567890ABCD",
                multiplier=1,
                initial_total=Decimal("12.3"),
                tariff_code="居民水价",
                register_capacity=Decimal(100_000),
                has_switch=False,
            ),
        ),
    )
    assert (li_si.name, li_si.customer_phone, li_si.area_m2) == ("1栋302", "13900139000", None)
    assert [(m.utility, m.multiplier, m.initial_total) for m in shop.meters] == [
        (Utility.ELECTRICITY, 80, Decimal(0)),
        (Utility.WATER, 1, Decimal(0)),
    ]


def test_an_xlsx_with_english_headers_and_numeric_cells_reads_as_typed() -> None:
    """Excel turns floors, areas and phones into numbers; they still read as typed."""
    header = [
        "building_code",
        "floor",
        "unit_code",
        "unit_kind",
        "area_m2",
        "customer_name",
        "customer_phone",
        "electricity_meter_address",
        "electricity_tariff_code",
        "Electricity_Switch",
    ]
    rows: list[list[object]] = [
        header,
        ["1栋", 3, "1-0301", "home", 89.5, "张三", 13800138000, "000000000301", "居民电价", True],
        [None] * 10,
        ["1栋", 3.0, "1-0302", "住宅", 90, "李四", 13900139000, "000000000302", "居民电价", 0],
    ]
    parsed = parse_sheet(xlsx_bytes(rows))
    assert parsed.errors == ()
    assert [(r.row, r.floor_level, r.area_m2, r.customer_phone) for r in parsed.rows] == [
        (2, 3, Decimal("89.5"), "13800138000"),
        (4, 3, Decimal(90), "13900139000"),
    ]
    assert [r.meters[0].has_switch for r in parsed.rows] == [True, False]


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig", "utf-8"])
def test_a_csv_saved_by_excel_in_china_as_gbk_or_utf8_with_bom_reads_the_same(
    encoding: str,
) -> None:
    """The same sheet in either encoding reads the same Chinese headers and names."""
    parsed = parse_sheet(csv_bytes(GOOD, encoding))
    assert parsed == parse_cells(GOOD)
    assert [row.customer_name for row in parsed.rows] == ["张三", "李四", None]


def test_a_sheet_is_read_from_a_path_as_from_its_bytes(tmp_path: Path) -> None:
    """A path names the same file its bytes are; the command line passes a path."""
    path = tmp_path / "units.csv"
    path.write_bytes(csv_bytes(GOOD, "gbk"))
    assert read_cells(path) == read_cells(str(path)) == read_cells(path.read_bytes())


# --- the relay and valve columns -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "has_switch"),
    [
        ("是", True),
        ("否", False),
        ("yes", True),
        ("No", False),
        ("TRUE", True),
        ("false", False),
        ("1", True),
        ("0", False),
    ],
)
def test_a_switch_cell_reads_yes_or_no_in_chinese_english_or_digits(
    text: str, has_switch: bool
) -> None:
    """是/否, yes/no, true/false and 1/0 all say whether the meter can switch."""
    row = ["1-0301", "住宅", "000000000301", "居民电价", text, "1234567890ABCD", "居民水价", text]
    parsed = parse_cells([SWITCH_HEADER, row])
    assert switches(parsed) == {Utility.ELECTRICITY: has_switch, Utility.WATER: has_switch}


def test_each_switch_column_speaks_only_for_its_own_meter() -> None:
    """A relay on the electricity meter says nothing about a valve on the water meter."""
    header = [
        "unit_code",
        "unit_kind",
        "electricity_meter_address",
        "electricity_tariff_code",
        "electricity_switch",
        "water_meter_address",
        "water_tariff_code",
        "water_switch",
    ]
    row = ["1-0301", "住宅", "000000000301", "居民电价", "是", "1234567890ABCD", "居民水价", "否"]
    assert switches(parse_cells([header, row])) == {
        Utility.ELECTRICITY: True,
        Utility.WATER: False,
    }


def test_a_meter_without_a_switch_column_or_with_a_blank_cell_has_no_switch() -> None:
    """The default is 否: no relay or valve unless the sheet says so."""
    assert all(not m.has_switch for row in parse_cells(GOOD).rows for m in row.meters)
    row = ["1-0301", "住宅", "000000000301", "居民电价", "", "1234567890ABCD", "居民水价", "是"]
    assert switches(parse_cells([SWITCH_HEADER, row])) == {
        Utility.ELECTRICITY: False,
        Utility.WATER: True,
    }


def test_a_switch_cell_that_is_not_yes_or_no_is_reported_in_its_column() -> None:
    """有 or 2 is not an answer: the row is refused, naming the column as written."""
    row = ["1-0301", "住宅", "000000000301", "居民电价", "有", "1234567890ABCD", "居民水价", "2"]
    parsed = parse_cells([SWITCH_HEADER, row])
    assert errors_at(parsed) == [(2, "电表可通断"), (2, "水表可通断")]
    assert "是/否" in parsed.errors[0].message
    assert parsed.rows == ()


def test_a_switch_without_its_meter_address_asks_for_the_address() -> None:
    """A relay on a meter the row does not have means nothing; the address is missing."""
    row = ["1-0301", "住宅", "000000000301", "居民电价", "是", "", "", "否"]
    parsed = parse_cells([SWITCH_HEADER, row])
    assert errors_at(parsed) == [(2, "水表地址")]
    assert "水表可通断" in parsed.errors[0].message


# --- errors ----------------------------------------------------------------------


def test_bad_cells_and_a_unit_code_given_twice_are_all_reported_in_row_order() -> None:
    """A bad phone, a bad kind and a repeated unit code: every error, and no rows."""
    bad_phone = [*LI_SI[:7], "1380013800", *LI_SI[8:]]
    bad_kind = [*SHOP[:4], "别墅", *SHOP[5:]]
    twice = [*ZHANG_SAN[:8], "000000000399", "", "", "居民电价", "", "", ""]
    parsed = parse_cells([HEADER, ZHANG_SAN, bad_phone, bad_kind, twice])
    assert errors_at(parsed) == [(3, "手机号"), (4, "类型"), (5, "房号")]
    assert "第2行" in parsed.errors[2].message
    assert parsed.rows == ()


def test_references_are_collected_even_from_rows_with_errors() -> None:
    """The database check still sees the tariff of a row whose phone is bad."""
    bad_phone = [*LI_SI[:7], "1380013800", *LI_SI[8:]]
    parsed = parse_cells([HEADER, bad_phone])
    assert {(r.row, r.kind, r.value) for r in parsed.references} == {
        (2, RefKind.UNIT_CODE, "1-0302"),
        (2, RefKind.METER_ADDRESS, "000000000302"),
        (2, RefKind.TARIFF_CODE, "居民电价"),
    }


def test_unknown_headers_are_reported_by_name_in_the_header_row() -> None:
    """A header the importer does not know is an error naming it, in the header row."""
    parsed = parse_cells([[*HEADER, "物业费"], [*ZHANG_SAN, "2.5"]])
    assert errors_at(parsed) == [(1, "物业费")]
    assert "物业费" in parsed.errors[0].message
    assert parsed.rows == ()


def test_a_missing_required_column_and_a_column_given_twice_are_header_errors() -> None:
    """Without 房号 no row can be a unit; 类型 and unit_kind are the same column."""
    parsed = parse_cells([["类型", "unit_kind"], ["住宅", "住宅"]])
    assert errors_at(parsed) == [(1, "unit_kind"), (1, "房号")]


def test_a_meter_needs_its_tariff_and_a_floor_needs_its_building() -> None:
    """Columns that go together are checked together, naming the missing one."""
    parsed = parse_cells(
        [["房号", "类型", "楼层", "水表地址"], ["G-1", "公区", "1", "0000000000000F"]]
    )
    assert set(errors_at(parsed)) == {(2, "楼栋"), (2, "水价方案")}


def test_a_value_under_no_header_is_refused_by_its_column_letter() -> None:
    """A cell right of the last header would be silently dropped, so it is an error."""
    parsed = parse_cells([["房号", "类型"], ["G-1", "公区", "备注"]])
    assert errors_at(parsed) == [(2, "C")]


def test_a_file_that_is_no_sheet_is_one_error_for_the_whole_file(tmp_path: Path) -> None:
    """Not a workbook, an old .xls, neither UTF-8 nor GBK, missing or empty: row 0, no column."""
    for source in (
        b"PK\x03\x04 not a zip",
        b"\xd0\xcf\x11\xe0 an old .xls",
        b"\x80\x80\x80",
        tmp_path / "missing.csv",
        b"",
        b",,\n\n",
    ):
        parsed = parse_sheet(source)
        assert [(e.row, e.column) for e in parsed.errors] == [(0, "")], source
        assert isinstance(parsed.errors[0], RowError)


def test_a_header_without_data_rows_is_an_error() -> None:
    """An empty template imports nothing and says so."""
    assert errors_at(parse_cells([HEADER, [""] * len(HEADER)])) == [(1, "")]
