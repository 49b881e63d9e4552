"""The ``meterpay`` command: serve, migrate, demo, ledger verify, import."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from meterpay.bootstrap import build_runtime
from meterpay.config import Settings


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
    return parser


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from meterpay.db.partitions import months_ahead
    from meterpay.web.app import create_app

    settings = Settings()
    rt = build_runtime(settings)
    with rt.db.write() as conn:  # the months ahead exist before the first reading arrives
        rt.partitions.ensure(conn, months_ahead(rt.clock.now(), settings.partitions_ahead_months))
    uvicorn.run(create_app(rt), host=args.host or settings.host, port=args.port or settings.port)
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


if __name__ == "__main__":
    sys.exit(main())
