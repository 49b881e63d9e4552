"""The blank import sheet (批量导入模板) a property office fills in: every column the
importer knows (``sites.sheet_columns.COLUMNS``), Chinese headers, required ones
marked ``*`` (the importer ignores the mark). One example row (a unit and its owner; meters need the
site's own tariff codes) shows the formats; the office replaces it."""

from __future__ import annotations

from typing import Final

from meterpay.reports.sheets import Column, workbook
from meterpay.sites.sheet_columns import COLUMNS

EXAMPLE: Final = {
    "building_code": "1",
    "building_name": "1号楼",
    "floor": "3",
    "unit_code": "1-301",
    "unit_name": "1号楼301室",
    "unit_kind": "住宅",
    "area_m2": "89.5",
    "customer_name": "张三",
    "customer_phone": "13800000000",
    "elec_address": "",
    "elec_multiplier": "",
    "elec_initial": "",
    "elec_tariff": "",
    "elec_switch": "",
    "water_address": "",
    "water_initial": "",
    "water_tariff": "",
    "water_switch": "",
}


def template_sheet(*, zone: str = "Asia/Shanghai") -> bytes:
    """The .xlsx template."""
    columns = [Column(c.zh + ("*" if c.required else ""), width=14) for c in COLUMNS]
    return workbook("导入模板", columns, [[EXAMPLE.get(c.field, "") for c in COLUMNS]], zone=zone)
