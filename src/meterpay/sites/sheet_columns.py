"""The columns of an import sheet (批量导入): what each header means and how a cell reads.

The columns are a declarative table, ``COLUMNS``: a new column is a row of it
(a field name, its Chinese and English header, a cell parser), not new code.
Which columns only make sense together is a second table, ``COMPANIONS``; the
two meters a row may carry are a third, ``METER_COLUMNS``.

Invariants:
- a cell parser gets the stripped, non-empty text of one cell and returns its
  typed value or raises ``ValueError`` whose text is the message for the user;
- every message is Chinese first, English in parentheses (``bilingual``);
- each column is known by exactly one Chinese and one English header, matched
  case-insensitively, ignoring a trailing ``*`` and spaces for underscores.

Pure: no database, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from meterpay.kernel.quantity import InvalidQuantity, Utility, parse_quantity
from meterpay.metering.meters import Protocol
from meterpay.sites.model import UnitKind


def bilingual(zh: str, en: str) -> str:
    """Every message in one shape: Chinese first, English in parentheses."""
    return f"{zh} ({en})"


# --- cells: parse one cell or raise ValueError with a message ---------------


def _text(limit: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if len(text) > limit:
            raise ValueError(bilingual(f"超过{limit}个字符", f"longer than {limit} characters"))
        return text

    return parse


def _floor_level(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(bilingual("楼层须为整数", "floor must be a whole number")) from None


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
            bilingual("类型须为 住宅/商铺/办公/公区", "kind must be home/shop/office/common")
        )
    return _UNIT_KINDS[text.casefold()]


def _area(text: str) -> Decimal:
    value = _finite_decimal(text)
    if value is None or value <= 0 or value != value.quantize(Decimal("0.01")):
        raise ValueError(
            bilingual("面积须为正数，最多两位小数", "area must be positive, 2 decimals at most")
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
            bilingual(
                "手机号须为1开头的11位大陆手机号", "phone: 11-digit mainland mobile starting with 1"
            )
        )
    return digits


def _address(pattern: str, zh: str, en: str) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def parse(text: str) -> str:
        if not compiled.fullmatch(text.upper()):
            raise ValueError(bilingual(f"{zh}（请将该列设为文本，保留前导0）", en))
        return text.upper()

    return parse


def _multiplier(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        raise ValueError(
            bilingual("倍率须为不小于1的整数", "multiplier must be a whole number >= 1")
        )
    return int(text)


def _reading(capacity: Decimal) -> Callable[[str], Decimal]:
    zh = f"底数须在0到{capacity}之间，最多4位小数"
    en = f"initial reading must be 0 to below {capacity}, 4 decimals at most"

    def parse(text: str) -> Decimal:
        try:
            value = parse_quantity(text)
        except InvalidQuantity:
            raise ValueError(bilingual(zh, en)) from None
        if not 0 <= value < capacity:
            raise ValueError(bilingual(zh, en))
        return value

    return parse


# Excel writes a boolean cell as TRUE/FALSE; people write 是/否 or 1/0.
_YES_NO = {
    **dict.fromkeys(("是", "yes", "true", "1"), True),
    **dict.fromkeys(("否", "no", "false", "0"), False),
}


def _yes_no(text: str) -> bool:
    if text.casefold() not in _YES_NO:
        raise ValueError(bilingual("须为 是/否", "must be yes/no, true/false or 1/0"))
    return _YES_NO[text.casefold()]


# --- the columns -------------------------------------------------------------

ELECTRICITY_CAPACITY: Final = Decimal(1_000_000)
WATER_CAPACITY: Final = Decimal(100_000)


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
    SheetColumn("elec_switch", "电表可通断", "electricity_switch", _yes_no),
    SheetColumn(
        "water_address",
        "水表地址",
        "water_meter_address",
        _address(r"[0-9A-F]{14}", "水表地址须为14位十六进制", "CJ/T 188 address: 14 hex digits"),
    ),
    SheetColumn("water_initial", "水表底数", "water_initial_reading", _reading(WATER_CAPACITY)),
    SheetColumn("water_tariff", "水价方案", "water_tariff_code", _text(64)),
    SheetColumn("water_switch", "水表可通断", "water_switch", _yes_no),
)
COLUMN: Mapping[str, SheetColumn] = {column.field: column for column in COLUMNS}
_BY_HEADER = {name.casefold(): c for c in COLUMNS for name in (c.zh, c.en)}


def column_for_header(text: str) -> SheetColumn | None:
    """The column a header cell names, or None for a header we do not know."""
    return _BY_HEADER.get(text.strip().rstrip("*").replace(" ", "_").casefold())


# A value in the first column means nothing without one in the second.
COMPANIONS: tuple[tuple[str, str], ...] = (
    ("floor", "building_code"),
    ("building_code", "floor"),
    ("building_name", "building_code"),
    ("customer_phone", "customer_name"),
    ("elec_multiplier", "elec_address"),
    ("elec_initial", "elec_address"),
    ("elec_tariff", "elec_address"),
    ("elec_switch", "elec_address"),
    ("elec_address", "elec_tariff"),
    ("water_initial", "water_address"),
    ("water_tariff", "water_address"),
    ("water_switch", "water_address"),
    ("water_address", "water_tariff"),
)


@dataclass(frozen=True, slots=True)
class MeterColumns:
    """One meter of a row: its columns are the fields ``<prefix>_address`` and so on."""

    utility: Utility
    protocol: Protocol
    capacity: Decimal
    prefix: str


METER_COLUMNS = (
    MeterColumns(Utility.ELECTRICITY, Protocol.DLT645_2007, ELECTRICITY_CAPACITY, "elec"),
    MeterColumns(Utility.WATER, Protocol.CJT188, WATER_CAPACITY, "water"),
)
METER_PROTOCOL: Mapping[Utility, Protocol] = {m.utility: m.protocol for m in METER_COLUMNS}
