"""``meterpay fees run`` and ``meterpay resale share``: the monthly billing runs."""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from meterpay.billing.fees import charge_monthly_fees
from meterpay.billing.resale import share_supplier_bill
from meterpay.bootstrap import build_runtime
from meterpay.kernel.errors import DomainError, NotFound
from meterpay.kernel.money import InvalidAmount, Money
from meterpay.kernel.quantity import Utility
from meterpay.runtime import Runtime
from meterpay.sites import service as sites


def add_billing_commands(sub: Any, actor: str) -> None:
    fees = sub.add_parser("fees", help="monthly fixed fees (月服务费, 表计租赁费 …)")
    fee_commands = fees.add_subparsers(title="fees commands")
    run = fee_commands.add_parser("run", help="charge a month's fixed fees (safe to repeat)")
    run.add_argument("--month", required=True, type=_month, help="YYYY-MM")
    run.add_argument("--site", help="site code (default: every site)")
    run.set_defaults(run=lambda args: _fees_run(args, actor))

    resale = sub.add_parser("resale", help="转供电/转供水: share a supplier bill (model 2)")
    resale_commands = resale.add_subparsers(title="resale commands")
    share = resale_commands.add_parser(
        "share", help="share a supplier's monthly bill over the sub-meters by consumption"
    )
    share.add_argument("--site", required=True, help="site code")
    share.add_argument("--utility", required=True, choices=[u.value for u in Utility])
    share.add_argument("--month", required=True, type=_month, help="YYYY-MM")
    share.add_argument("--amount", required=True, help="the bill in 元, e.g. 12345.67")
    share.add_argument("--evidence", required=True, help="bill number or file reference")
    share.add_argument(
        "--landlord",
        action="append",
        default=[],
        metavar="ACCOUNT_NUMBER",
        help="the landlord's own account (never charged a share); repeatable",
    )
    share.set_defaults(run=lambda args: _resale_share(args, actor))


def _month(text: str) -> date:
    try:
        year, month = (int(part) for part in text.split("-"))
        return date(year, month, 1)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month like 2026-11") from exc


def _site_id(rt: Runtime, code: str) -> int:
    found = sites.page(rt, "sites", after_id=None, limit=1, code=code)
    if not found:
        raise NotFound(f"no site with code {code!r}")
    return int(found[0].id)


def _fees_run(args: argparse.Namespace, actor: str) -> int:
    rt = build_runtime()
    try:
        site_id = _site_id(rt, args.site) if args.site else None
        run = charge_monthly_fees(rt, month=args.month, site_id=site_id, actor=actor)
    except DomainError as exc:
        print(f"月度固定费用未收取 (fees not charged): {exc}")
        return 1
    print(
        f"{args.month:%Y年%m月} 固定费用: 收取 {len(run.charged)} 笔, 合计 "
        f"{Money(run.total_fen)} 元; 已收过 {run.already} 笔 (already charged)"
    )
    return 0


def _resale_share(args: argparse.Namespace, actor: str) -> int:
    rt = build_runtime()
    try:
        site_id = _site_id(rt, args.site)
        numbers = set(args.landlord)
        landlords = {
            a.id
            for a in sites.page(rt, "accounts", after_id=None, limit=500, site_id=site_id)
            if a.number in numbers
        }
        if len(landlords) != len(numbers):
            raise NotFound(f"unknown landlord accounts among {sorted(numbers)}")
        run = share_supplier_bill(
            rt,
            site_id=site_id,
            utility=Utility(args.utility),
            month=args.month,
            amount=Money.from_yuan(args.amount),
            evidence=args.evidence,
            landlord_account_ids=landlords,
            actor=actor,
        )
    except (DomainError, InvalidAmount) as exc:
        print(f"分摊未完成 (not shared): {exc}")
        return 1
    print(
        f"供电/供水账单 #{run.bill_id} {args.month:%Y年%m月}: 分摊到 {len(run.shares)} 户, "
        f"合计 {Money(sum(run.shares.values()))} 元; 业主自用 {Money(run.landlord_fen)} 元"
    )
    return 0
