"""Bulk import (批量导入) of units, customers, accounts and meters: the use case.

``meterpay.sites.sheet`` reads and checks the file on its own; here the
checked sheet meets the database. Each row creates a unit, its owner, and
for each meter a new prepaid account with the meter bound to it.

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

import getpass
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, select
from sqlalchemy.exc import DataError, IntegrityError

from meterpay.audit import repository as audit
from meterpay.db.rows import insert_row
from meterpay.db.schema import buildings, customers, floors, meters, tariffs, units
from meterpay.kernel.errors import DomainError
from meterpay.kernel.quantity import Utility
from meterpay.metering.service import register_meter_in
from meterpay.runtime import Runtime
from meterpay.sites import repository as sites_repo
from meterpay.sites.model import CustomerKind, Site
from meterpay.sites.service import create_unit_in, open_account_in
from meterpay.sites.sheet import (
    MeterSpec,
    Reference,
    RefKind,
    RowError,
    Source,
    UnitRow,
    in_row_order,
    parse_sheet,
)
from meterpay.sites.sheet_columns import METER_PROTOCOL, bilingual

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

    def to_record(self) -> dict[str, Any]:
        """The report as JSON-ready data (a background job's result)."""
        errors = [{"row": e.row, "column": e.column, "message": e.message} for e in self.errors]
        return {
            "site_code": self.site_code,
            "dry_run": self.dry_run,
            "errors": errors,
            "created": dict(self.created),
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> ImportReport:
        errors = tuple(
            RowError(int(e["row"]), str(e["column"]), str(e["message"]))
            for e in data.get("errors", ())
        )
        created = {str(k): int(v) for k, v in data.get("created", {}).items()}
        return cls(str(data["site_code"]), bool(data["dry_run"]), errors, created)


Step = Callable[[str, int, int], None]
"""Told of progress: the stage (``read``, ``check``, ``write``), steps done, steps in all."""
Written = Callable[[Connection, ImportReport], None]
"""Called inside the import's write transaction once every row is written (not on a
dry run): whatever it writes commits, or rolls back, with the import."""


def _quiet(stage: str, done: int, total: int) -> None:
    """No one is watching."""


class _Abandon(Exception):
    """Leaves the write transaction, rolling it back, with the report to return."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(report.site_code)
        self.report = report


def import_sheet(
    rt: Runtime,
    path_or_bytes: Source,
    *,
    site_code: str,
    actor: str,
    dry_run: bool = False,
    progress: Step = _quiet,
    on_written: Written | None = None,
) -> ImportReport:
    """Import a sheet into a site: everything, or nothing and every error."""
    progress("read", 0, 1)
    parsed = parse_sheet(path_or_bytes)
    progress("check", 0, len(parsed.rows))
    try:
        with rt.db.write() as conn:
            site = sites_repo.site_by_code(conn, site_code)
            errors = [*parsed.errors, *_check_database(conn, site.id, parsed.references)]
            if errors:
                raise _Abandon(ImportReport(site_code, dry_run, in_row_order(errors)))
            writer = _SheetWriter(rt, conn, site, actor=actor, dry_run=dry_run)
            created = writer.write_all(parsed.rows, progress)
            report = ImportReport(site_code, dry_run, created=created)
            if dry_run:
                raise _Abandon(report)
            if on_written is not None:
                on_written(conn, report)
            return report
    except _Abandon as abandoned:
        return abandoned.report


def _check_database(
    conn: Connection, site_id: int, references: Sequence[Reference]
) -> list[RowError]:
    known = _Known.load(conn, site_id)
    return [error for ref in references if (error := known.check(ref)) is not None]


_UTILITY_ZH = {Utility.ELECTRICITY: "电价", Utility.WATER: "水价"}


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
            message = bilingual("房号已存在", f"unit {ref.value} already exists in the site")
        elif ref.kind is RefKind.METER_ADDRESS and self._meter_exists(ref):
            message = bilingual(
                "表地址已被使用", f"a meter with address {ref.value} already exists"
            )
        elif ref.kind is RefKind.TARIFF_CODE:
            message = self._tariff_problem(ref)
        return None if message is None else RowError(ref.row, ref.column, message)

    def _meter_exists(self, ref: Reference) -> bool:
        protocol = METER_PROTOCOL[ref.utility] if ref.utility is not None else None
        return protocol is not None and (protocol.value, ref.value) in self.meter_addresses

    def _tariff_problem(self, ref: Reference) -> str | None:
        utility = self.tariffs.get(ref.value)
        if utility is None:
            return bilingual("价格方案不存在", f"no tariff {ref.value!r} in the site")
        if utility is not ref.utility:
            return bilingual(
                f"该方案是{_UTILITY_ZH[utility]}", f"tariff {ref.value} prices {utility}"
            )
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

    def write_all(self, rows: Sequence[UnitRow], progress: Step) -> dict[str, int]:
        for done, row in enumerate(rows, 1):
            try:
                self._write(row)
            except DomainError as exc:
                raise _Abandon(self._failure(row, exc.message)) from exc
            except (IntegrityError, DataError) as exc:  # e.g. an account number already taken
                raise _Abandon(self._failure(row, str(exc.orig).splitlines()[0])) from exc
            progress("write", done, len(rows))
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
        message = bilingual("写入失败", f"could not be written: {detail}")
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
            protocol=meter.protocol,
            address=meter.address,
            initial_total=meter.initial_total,
            account_id=account.id,
            multiplier=meter.multiplier,
            register_capacity=meter.register_capacity,
            max_rate_per_hour=None,
            has_switch=meter.has_switch,
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
        head = bilingual(
            f"导入失败，共{len(report.errors)}处错误，未导入任何数据",
            f"{len(report.errors)} error(s); nothing was imported",
        )
        return "\n".join([head, *(_error_line(e) for e in report.errors)])
    counts = "，".join(f"{_KIND_ZH[k]} {report.count(k)}" for k in CREATED_KINDS)
    if report.dry_run:
        return bilingual(f"检查通过，未写入（试运行）：将创建 {counts}", "dry run: nothing written")
    return bilingual(f"导入完成：已创建 {counts}", "imported")


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
        print(bilingual("导入失败", exc.message), file=sys.stderr)
        return 1
    print(render_report(report))
    return 0 if report.ok else 1


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name, e.g. in a container
        return "cli"
