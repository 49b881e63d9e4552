"""``meterpay payments``: the daily reconciliation, and settling orders without news."""

from __future__ import annotations

import argparse
import json
from datetime import date
from typing import Any

from meterpay.bootstrap import build_runtime
from meterpay.payments import reconcile
from meterpay.payments import service as payments
from meterpay.payments.provider import ProviderName


def add_payment_commands(sub: Any, actor: str) -> None:
    group = sub.add_parser("payments", help="online top-ups: reconciliation, unpaid orders")
    commands = group.add_subparsers(title="payments commands")
    run = commands.add_parser(
        "reconcile", help="match a provider's daily statement to our top-ups (safe to repeat)"
    )
    run.add_argument("--provider", required=True, choices=[p.value for p in ProviderName])
    run.add_argument("--date", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
    run.add_argument(
        "--merchant", default="", help="a site's own merchant code (default: the provider's)"
    )
    run.set_defaults(run=lambda args: _reconcile(args, actor))
    settle = commands.add_parser(
        "settle", help="ask the providers about orders without a notification, close stale ones"
    )
    settle.set_defaults(run=_settle)


def _reconcile(args: argparse.Namespace, actor: str) -> int:
    rt = build_runtime()
    found = reconcile.reconcile(rt, args.provider, args.date, by=actor, merchant=args.merchant)
    print(
        json.dumps(
            {
                "run": found.id,
                "provider": found.provider.value,
                "merchant": found.merchant,
                "day": found.day.isoformat(),
                "status": found.status,
                "matched": found.matched,
                "totals": found.totals,
                "error": found.error,
                "items": [
                    {
                        "finding": i.finding.value,
                        "out_trade_no": i.out_trade_no,
                        "ours_fen": i.ours_fen,
                        "theirs_fen": i.theirs_fen,
                        "action": i.action,
                    }
                    for i in found.items
                ],
            },
            ensure_ascii=False,
            indent=2,
        )
    )
    return 0 if found.status == "clean" else 1


def _settle(_: argparse.Namespace) -> int:
    rt = build_runtime()
    print(f"{payments.settle_unpaid(rt, limit=1000)} orders looked at")
    return 0
