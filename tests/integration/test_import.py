"""A sheet of units, owners and meters is imported whole, or not at all."""

from __future__ import annotations

import csv
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from meterpay.db.schema import accounts, customers, floors, ledger_accounts, meters, units
from meterpay.kernel.quantity import Utility
from meterpay.metering import service as metering
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.sites.importer import ImportReport, import_sheet, run_import_cli
from meterpay.sites.model import Site, UnitKind
from meterpay.sites.sheet import RowError
from meterpay.tariffs import service as tariffs

ACTOR = "test"
# fmt: off
HEADER = ["楼栋", "楼层", "房号", "名称", "类型", "面积", "业主姓名", "手机号",
          "电表地址", "电表倍率", "电表底数", "电价方案", "水表地址", "水表底数", "水价方案"]
ZHANG_SAN = ["1栋", "3", "1-0301", "", "住宅", "89.50", "张三", "13800138000",
             "000000000301", "", "1234.5", "居民电价", "1234567890ABCD", "12.3", "居民水价"]
LI_SI = ["1栋", "3", "1-0302", "1栋302", "住宅", "", "李四", "139 0013 9000",
         "000000000302", "1", "", "居民电价", "", "", ""]
SHOP = ["2栋", "1", "S-101", "便利店", "商铺", "120", "", "",
        "000000000101", "80", "0", "居民电价", "00000000000A0F", "", "居民水价"]
# fmt: on
GOOD = [HEADER, ZHANG_SAN, LI_SI, SHOP]
TABLES = {
    "units": units,
    "customers": customers,
    "accounts": accounts,
    "meters": meters,
    "floors": floors,
    "ledger_accounts": ledger_accounts,
}


@pytest.fixture
def site(rt: Runtime) -> Site:
    """阳光小区 with one electricity and one water tariff."""
    site = sites.create_site(rt, code="SUNNY", name="阳光小区", actor=ACTOR)
    for code, utility, price in (
        ("居民电价", Utility.ELECTRICITY, "0.5283"),
        ("居民水价", Utility.WATER, "3.4500"),
    ):
        tariffs.create_flat_tariff(
            rt,
            site_id=site.id,
            code=code,
            name=code,
            utility=utility,
            unit_price=price,
            effective_from=rt.clock.now() - timedelta(days=30),
            actor=ACTOR,
        )
    return site


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as out:
        csv.writer(out).writerows(rows)
    return path


def write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


def counts(rt: Runtime) -> dict[str, int]:
    with rt.db.read() as conn:
        return {
            name: conn.scalar(select(func.count()).select_from(table)) or 0
            for name, table in TABLES.items()
        }


def created(report: ImportReport) -> dict[str, int]:
    return {kind: n for kind, n in report.created.items() if n}


def test_a_good_csv_creates_units_owners_accounts_and_meters_at_their_baseline(
    rt: Runtime, site: Site, tmp_path: Path
) -> None:
    """Three units, two owners, five accounts, each meter starting at its initial reading."""
    report = import_sheet(
        rt, write_csv(tmp_path / "units.csv", GOOD), site_code="SUNNY", actor=ACTOR
    )
    assert report.errors == ()
    assert created(report) == {
        "buildings": 2,
        "floors": 2,
        "units": 3,
        "customers": 2,
        "accounts": 5,
        "meters": 5,
    }
    found = {m.address: m for m in metering.list_meters(rt, site_id=site.id)}
    assert found["000000000301"].last_total == Decimal("1234.5000")
    assert found["000000000101"].multiplier == 80
    assert found["1234567890ABCD"].utility is Utility.WATER
    baseline = metering.recent_readings(rt, found["1234567890ABCD"].id)
    assert [(r["quality"], r["total"]) for r in baseline] == [("baseline", Decimal("12.3"))]
    account = sites.get(rt, "accounts", found["000000000301"].account_id)
    owner = sites.get(rt, "customers", account.customer_id)
    assert (account.number, owner.name, owner.phone) == ("E-1-0301", "张三", "13800138000")
    unit = sites.get(rt, "units", account.unit_id)
    assert (unit.name, unit.kind, unit.area_m2) == ("1-0301", UnitKind.HOME, Decimal("89.50"))


def test_a_file_with_three_bad_rows_reports_all_three_and_creates_nothing(
    rt: Runtime, site: Site, tmp_path: Path
) -> None:
    """A bad phone, an unknown tariff and a unit code twice: three errors, no rows."""
    bad_phone = [*LI_SI[:7], "1380013800", *LI_SI[8:]]
    no_such_tariff = [*SHOP[:11], "商业电价", *SHOP[12:]]
    twice = [*ZHANG_SAN[:8], "000000000399", "", "", "居民电价", "", "", ""]
    before = counts(rt)
    path = write_csv(tmp_path / "bad.csv", [HEADER, ZHANG_SAN, bad_phone, no_such_tariff, twice])
    report = import_sheet(rt, path, site_code="SUNNY", actor=ACTOR)
    assert [(e.row, e.column) for e in report.errors] == [
        (3, "手机号"),
        (4, "电价方案"),
        (5, "房号"),
    ]
    assert "第2行" in report.errors[2].message
    assert counts(rt) == before


def test_the_switch_columns_record_a_relay_or_a_valve_on_each_meter(
    rt: Runtime, site: Site, tmp_path: Path
) -> None:
    """电表可通断 and 水表可通断 reach the meters; a meter without a value has no switch."""
    header = [*HEADER, "电表可通断", "水表可通断"]
    rows: list[list[object]] = [
        header,
        [*ZHANG_SAN, "是", "否"],
        [*LI_SI, True, None],
        [*SHOP, "", "1"],
    ]
    path = write_xlsx(tmp_path / "units.xlsx", rows)
    assert import_sheet(rt, path, site_code="SUNNY", actor=ACTOR).errors == ()
    found = {m.address: m.has_switch for m in metering.list_meters(rt, site_id=site.id)}
    assert found == {
        "000000000301": True,
        "1234567890ABCD": False,
        "000000000302": True,
        "000000000101": False,
        "00000000000A0F": True,
    }


def test_a_dry_run_checks_everything_and_writes_nothing(
    rt: Runtime, site: Site, tmp_path: Path
) -> None:
    """The dry run reports what it would create; the database is as it was."""
    before = counts(rt)
    report = import_sheet(
        rt, write_csv(tmp_path / "units.csv", GOOD), site_code="SUNNY", actor=ACTOR, dry_run=True
    )
    assert report.ok and report.dry_run
    assert report.count("meters") == 5
    assert counts(rt) == before


def test_a_unit_code_already_in_the_database_is_reported(
    rt: Runtime, site: Site, tmp_path: Path
) -> None:
    """Importing the same sheet twice refuses the second time, on every row."""
    path = write_csv(tmp_path / "units.csv", GOOD)
    assert import_sheet(rt, path, site_code="SUNNY", actor=ACTOR).ok
    before = counts(rt)
    report = import_sheet(rt, path, site_code="SUNNY", actor=ACTOR)
    unit_errors = [e for e in report.errors if e.column == "房号"]
    assert [e.row for e in unit_errors] == [2, 3, 4]
    assert "已存在" in unit_errors[0].message
    assert {e.column for e in report.errors} == {"房号", "电表地址", "水表地址"}
    assert counts(rt) == before


def test_the_command_prints_each_error_with_its_row_and_column_and_fails(
    rt: Runtime, site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``meterpay import`` exits 1 and names 第N行 列X for every error."""
    bad = [*ZHANG_SAN[:4], "别墅", *ZHANG_SAN[5:]]
    path = write_csv(tmp_path / "units.csv", [HEADER, bad])
    assert run_import_cli(rt, str(path), site_code="SUNNY", dry_run=False) == 1
    assert "第2行 列类型: 类型须为" in capsys.readouterr().out
    good = write_csv(tmp_path / "good.csv", GOOD)
    assert run_import_cli(rt, str(good), site_code="SUNNY", dry_run=False) == 0
    assert "导入完成" in capsys.readouterr().out


def test_an_unknown_site_or_an_unreadable_file_is_refused(
    rt: Runtime, site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No site, no import; a file that is no sheet is one error for the whole file."""
    path = write_csv(tmp_path / "units.csv", GOOD)
    assert run_import_cli(rt, str(path), site_code="NOPE", dry_run=False) == 1
    assert "NOPE" in capsys.readouterr().err
    report = import_sheet(rt, b"PK\x03\x04 not a zip", site_code="SUNNY", actor=ACTOR)
    assert [(e.row, e.column) for e in report.errors] == [(0, "")]
    assert isinstance(report.errors[0], RowError)


def test_a_row_that_fails_while_writing_rolls_back_the_rows_written_before_it(
    rt: Runtime, site: Site, tmp_path: Path
) -> None:
    """An account number taken by another unit fails row 4; rows 2 and 3 vanish too."""
    other = sites.create_unit(
        rt, site_id=site.id, code="X-1", name="临时", kind=UnitKind.COMMON, actor=ACTOR
    )
    tariff_id = tariffs.list_tariffs(rt, site_id=site.id, after_id=None, limit=1)[0].id
    sites.open_account(
        rt,
        unit_id=other.id,
        utility=Utility.ELECTRICITY,
        tariff_id=tariff_id,
        number="E-1-0301",
        actor=ACTOR,
    )
    before = counts(rt)
    path = write_csv(tmp_path / "units.csv", [HEADER, LI_SI, SHOP, ZHANG_SAN])
    report = import_sheet(rt, path, site_code="SUNNY", actor=ACTOR)
    assert [(e.row, e.column) for e in report.errors] == [(4, "")]
    assert counts(rt) == before
