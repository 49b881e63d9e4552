"""The ``meterpay`` command: serve, migrate, demo, ledger verify, import, tariff."""

from __future__ import annotations

import argparse
import getpass
import sys
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from meterpay.bootstrap import build_runtime
from meterpay.config import Settings
from meterpay.kernel.errors import DomainError

if TYPE_CHECKING:
    from meterpay.tariffs.model import Tariff
    from meterpay.tariffs.rules import Quote


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    result: int = args.run(args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meterpay",
        description=(
            "meterpay — 物业水电预付费系统: prepaid water and electricity for property managers. "
            "The database is MP_DATABASE_URL (default sqlite:///./meterpay.db)."
        ),
    )
    sub = parser.add_subparsers(title="commands")

    serve = sub.add_parser("serve", help="serve the API (default http://127.0.0.1:8000)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument(
        "--links",
        action="store_true",
        help="also run the DTU listener (MP_DTU_PORT) here, and Modbus TCP polling if enabled",
    )
    serve.add_argument("--mqtt", action="store_true", help="also consume MQTT readings here")
    serve.set_defaults(run=_serve)

    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    migrate.set_defaults(run=_migrate)

    demo = sub.add_parser("demo", help="migrate, seed a demo compound, simulate readings, serve")
    demo.add_argument("--units-per-floor", type=int, default=6)
    demo.add_argument(
        "--interval", type=float, default=5.0, help="seconds between simulated reading rounds"
    )
    demo.add_argument("--no-serve", action="store_true", help="seed and exit")
    demo.set_defaults(run=_demo)

    ledger = sub.add_parser("ledger", help="ledger tools")
    ledger_sub = ledger.add_subparsers(title="ledger commands")
    verify = ledger_sub.add_parser("verify", help="check every ledger invariant")
    verify.set_defaults(run=_verify)

    importer = sub.add_parser(
        "import", help="import units, customers, accounts and meters from an .xlsx or .csv sheet"
    )
    importer.add_argument("file")
    importer.add_argument("--site", required=True, help="site code")
    importer.add_argument("--dry-run", action="store_true", help="check only, import nothing")
    importer.set_defaults(run=_import)
    _add_tariff_commands(sub)
    return parser


def _add_tariff_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tariff = sub.add_parser("tariff", help="tariffs: import or export YAML/JSON, quote a profile")
    commands = tariff.add_subparsers(title="tariff commands")
    importer = commands.add_parser(
        "import", help="create a tariff and its versions from a YAML or JSON file"
    )
    importer.add_argument("file", help="a .yaml/.yml or .json tariff file (docs/tariffs.md)")
    importer.add_argument("--site", required=True, help="site code")
    importer.set_defaults(run=_tariff_import)
    exporter = commands.add_parser("export", help="print a tariff as a YAML or JSON file")
    exporter.add_argument("id", type=int, help="tariff id")
    exporter.add_argument("--format", choices=("yaml", "json"), default="yaml")
    exporter.set_defaults(run=_tariff_export)
    quote = commands.add_parser(
        "quote", help="price a consumption profile without touching any account"
    )
    quote.add_argument("id", type=int, help="tariff id")
    quote.add_argument(
        "--profile",
        required=True,
        help="CSV (quantity,start,end[,tip,peak,flat,valley,time_zone]) or YAML/JSON file",
    )
    quote.set_defaults(run=_tariff_quote)

    from meterpay.auth_cli import add_auth_commands
    from meterpay.billing_cli import add_billing_commands
    from meterpay.frame_cli import add_frame_commands
    from meterpay.links.mqtt_cli import add_mqtt_commands
    from meterpay.links_cli import add_link_commands
    from meterpay.payments_cli import add_payment_commands

    add_auth_commands(sub)
    add_billing_commands(sub, _actor())
    add_payment_commands(sub, _actor())
    add_frame_commands(sub)
    add_link_commands(sub)
    add_mqtt_commands(sub)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from meterpay.db.partitions import months_ahead
    from meterpay.web.app import create_app

    settings = Settings()
    rt = build_runtime(settings)
    with rt.db.write() as conn:  # the months ahead exist before the first reading arrives
        rt.partitions.ensure(conn, months_ahead(rt.clock.now(), settings.partitions_ahead_months))
    background = None
    if args.links or args.mqtt:
        from meterpay.links.modbus_tcp import ModbusTcpSettings
        from meterpay.links.mqtt import ConsumerOptions
        from meterpay.links.runner import BackgroundLinks, Links, dtu_settings

        background = BackgroundLinks(
            Links(
                rt,
                dtu=dtu_settings(settings) if args.links else None,
                mqtt=ConsumerOptions.from_settings(settings) if args.mqtt else None,
                modbus=(
                    ModbusTcpSettings.from_settings(settings)
                    if args.links and settings.modbus_enabled
                    else None
                ),
            )
        )
        background.start()
    from meterpay.web.console.job_pages import job_handlers
    from meterpay.workers.scheduler import BackgroundWorkers

    workers = BackgroundWorkers(rt, job_handlers=job_handlers())
    workers.start()
    try:
        uvicorn.run(
            create_app(rt), host=args.host or settings.host, port=args.port or settings.port
        )
    finally:
        workers.stop()
        if background is not None:
            background.stop()
    return 0


def _migrate(_: argparse.Namespace) -> int:
    from meterpay.db.migrate import upgrade

    rt = build_runtime()
    upgrade(rt.db, rt.clock, partitions_ahead=rt.settings.partitions_ahead_months)
    print(f"database is up to date ({rt.db.dialect})")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from meterpay.sim.demo import run_demo

    return run_demo(
        build_runtime(),
        units_per_floor=args.units_per_floor,
        interval=args.interval,
        serve=not args.no_serve,
    )


def _verify(_: argparse.Namespace) -> int:
    from meterpay.ledger.service import verify_ledger

    rt = build_runtime()
    violations = verify_ledger(rt)
    for v in violations:
        print(f"VIOLATION {v.rule}: {v.detail}")
    if violations:
        print(f"ledger verify: {len(violations)} violation(s)")
        return 1
    print("ledger verify: clean — every invariant holds")
    return 0


def _import(args: argparse.Namespace) -> int:
    from meterpay.sites.importer import run_import_cli

    return run_import_cli(build_runtime(), args.file, site_code=args.site, dry_run=args.dry_run)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name, e.g. in a container
        return "cli"


def _failed(zh: str, problem: object) -> int:
    print(f"{zh} ({problem})", file=sys.stderr)
    return 1


def _tariff_import(args: argparse.Namespace) -> int:
    """Create the tariff with all its versions, in one transaction (validated first)."""
    from meterpay.kernel.errors import NotFound
    from meterpay.sites import service as sites
    from meterpay.tariffs import service as tariffs
    from meterpay.tariffs.files import FileFormat, load_tariff

    rt = build_runtime()
    try:
        doc = load_tariff(Path(args.file).read_text(encoding="utf-8"), FileFormat.of(args.file))
        found = sites.page(rt, "sites", after_id=None, limit=1, code=args.site)
        if not found:
            raise NotFound(f"no site with code {args.site!r}")
        tariff = tariffs.create_tariff_with_versions(
            rt,
            site_id=found[0].id,
            code=doc.code,
            name=doc.name,
            utility=doc.utility,
            versions=[(v.effective_from, v.components) for v in doc.versions],
            actor=_actor(),
        )
    except (DomainError, OSError, UnicodeDecodeError) as exc:
        return _failed("导入电价失败", getattr(exc, "message", exc))
    print(f"已导入 {doc.code}「{doc.name}」: tariff id {tariff.id}, {len(doc.versions)} 个版本")
    return 0


def _tariff_export(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from meterpay.sites import service as sites
    from meterpay.tariffs import service as tariffs
    from meterpay.tariffs.files import FileFormat, dump_tariff, tariff_doc

    rt = build_runtime()
    try:
        tariff = tariffs.get_tariff(rt, args.id)
        zone = ZoneInfo(sites.get(rt, "sites", tariff.site_id).timezone)
    except DomainError as exc:
        return _failed("导出电价失败", exc.message)
    sys.stdout.write(dump_tariff(tariff_doc(tariff), FileFormat(args.format), zone))
    return 0


def _tariff_quote(args: argparse.Namespace) -> int:
    from meterpay.tariffs import service as tariffs
    from meterpay.tariffs.files import FileFormat, load_profile

    rt = build_runtime()
    try:
        text = Path(args.profile).read_text(encoding="utf-8")
        profile = load_profile(text, FileFormat.of(args.profile))
        tariff = tariffs.get_tariff(rt, args.id)
        quote = tariffs.quote_tariff(rt, args.id, profile.usages, state=profile.state)
    except (DomainError, OSError, UnicodeDecodeError) as exc:
        return _failed("试算失败", getattr(exc, "message", exc))
    print(_quote_table(tariff, quote))
    return 0


def _quote_table(tariff: Tariff, quote: Quote) -> str:
    """The quote as a table: 项目 档位 时段 数量 单价 金额, then subtotals and the total."""
    from meterpay.kernel.money import round_to_fen

    names = _component_names(tariff)
    unit = tariff.utility.unit
    header = ("项目", "档位", "时段", f"数量({unit})", "单价(元)", "金额(元)")
    rows = [
        (
            names.get(line.component, line.component),
            f"第{line.tier}档" if line.tier else "-",
            line.period.label if line.period else "-",
            str(line.quantity),
            str(line.unit_price),
            str(round_to_fen(line.exact_amount)),
        )
        for line in quote.lines
    ]
    widths = [max(_width(row[i]) for row in (header, *rows)) for i in range(len(header))]
    table = [_row(header, widths), *(_row(row, widths) for row in rows)]
    table.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for component, money in quote.totals.items():
        table.append(f"小计 {names.get(component, component)}: {money} 元")
    table.append(f"合计 {tariff.name} ({tariff.code}): {quote.total} 元")
    return "\n".join(table)


def _component_names(tariff: Tariff) -> dict[str, str]:
    from meterpay.kernel.quantity import Utility

    names = {"energy": "电费" if tariff.utility == Utility.ELECTRICITY else "水费"}
    for version in tariff.versions:
        for surcharge in version.components.surcharges if version.components else ():
            names[surcharge.component] = surcharge.name
    return names


def _width(text: str) -> int:
    """Columns on a terminal: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    """Text left-aligned in the first three columns, numbers right-aligned in the rest."""
    padded = [
        cell + " " * (w - _width(cell)) if i < 3 else " " * (w - _width(cell)) + cell
        for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
    ]
    return "  ".join(padded).rstrip()


if __name__ == "__main__":
    sys.exit(main())
