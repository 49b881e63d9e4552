"""Owners looking at their balance, 200 at once: the portal's balance page and the API's
supply view, each signed in with the owner's own session, against a bare Starlette
endpoint that runs the same balance query without sign-in or a page, in one run.

``python -m bench.owner_balance`` (part of ``make bench``) sets up, not timed, on a
scratch PostgreSQL database (admin URL ``MP_BENCH_PG_URL``, as for ``bench.ingest``):
``--owners`` (200) prepaid accounts (``bench.ingest``'s fleet), each with its customer,
a mobile number, an owner user and a signed-in session (the rows ``sign_in_owner`` would
write, inserted in bulk: 200 argon2 hashes would only time the setup), and a top-up so
every balance is different.

Three servers, each ``uvicorn.run(app)`` in a process of its own on a free port of
127.0.0.1 (``bench.uvicorn_process``): meterpay's app twice is not needed — one meterpay
process serves both measured paths; the baseline is a bare Starlette endpoint at
``/balance/{account_id}`` that reads the account's wallet and its balance (the number the
page shows: ``ledger.repository.balance_fen``) in a read transaction and answers it as
JSON.

Timed: ``--owners`` concurrent keep-alive clients (httpx, asyncio, in this process), each
an owner with their cookie asking for their own account ``--requests`` (10) times, in
``--rounds`` (4) rounds; every round goes to each target in turns (ABBA), so whatever
else the shared machine does slows all alike. Targets: the portal page (``GET /portal``,
HTML with the owner's balances), the API (``GET /api/v1/accounts/{id}/supply``), the
baseline. Printed: requests/s, p50/p99 per request, server CPU per request, and the ratios
to the baseline. Checked afterwards: every answer was 200 and showed the owner's own
balance (the page and the API carry it to the fen). Times are never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import httpx
import uvicorn
from sqlalchemy import insert, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.ingest import Workload, connect_runtime, migrated_runtime, scratch_database, set_up_fleet
from bench.latency import Figure, row
from bench.uvicorn_process import HOST, ServedApp
from meterpay.auth import secrets as sec
from meterpay.db.engine import Database
from meterpay.db.schema import accounts, customers, user_sessions, users
from meterpay.kernel.money import Money
from meterpay.ledger import repository as ledger
from meterpay.ledger.service import cash_top_up
from meterpay.runtime import Runtime
from meterpay.web.app import create_app
from meterpay.web.guard import SESSION_COOKIE

REQUEST_TIMEOUT = 60.0


@dataclass(frozen=True)
class Owner:
    account_id: int
    token: str
    balance: Money


def serve_meterpay(port: int, url: str) -> None:
    uvicorn.run(create_app(connect_runtime(url)), host=HOST, port=port, log_level="warning")


def serve_bare(port: int, url: str) -> None:
    """The baseline: the account's wallet balance, read and answered; nothing else."""
    db = Database(url)

    def balance(account_id: int) -> int:
        with db.read() as conn:
            wallet = conn.execute(
                select(accounts.c.wallet_id).where(accounts.c.id == account_id)
            ).scalar_one()
            return ledger.balance_fen(conn, int(wallet))

    async def answer(request: Request) -> Response:
        fen = await asyncio.to_thread(balance, int(request.path_params["account_id"]))
        return JSONResponse({"balance": str(Money(fen))})

    async def ready(_: Request) -> Response:
        return Response(status_code=200)

    routes = [Route("/balance/{account_id:int}", answer), Route("/ready", ready)]
    uvicorn.run(Starlette(routes=routes), host=HOST, port=port, log_level="warning")


def set_up_owners(rt: Runtime, count: int) -> list[Owner]:
    """Accounts with owners signed in (bulk rows), each with its own balance."""
    fleet = set_up_fleet(rt, Workload.generate(count, 1, rt.clock.now(), seed=7), site_code="OWN")
    now = rt.clock.now()
    owners: list[Owner] = []
    with rt.db.read() as conn:
        account_ids = [
            int(i)
            for i in conn.execute(
                select(accounts.c.id)
                .where(accounts.c.site_id == fleet.site_id)
                .order_by(accounts.c.id)
            ).scalars()
        ]
    for n, account_id in enumerate(account_ids):
        amount = Money.from_yuan(Decimal(100 + n) + Decimal("0.37"))
        cash_top_up(
            rt, account_id=account_id, amount=amount, idempotency_key=f"own-{n}", cashier="bench"
        )
        owners.append(Owner(account_id, sec.new_token(), amount))
    with rt.db.write() as conn:
        for n, owner in enumerate(owners):
            phone = f"139{n:08d}"
            customer = conn.execute(
                insert(customers)
                .values(
                    site_id=fleet.site_id,
                    name=f"业主{n}",
                    kind="person",
                    phone=phone,
                    created_at=now,
                )
                .returning(customers.c.id)
            ).scalar_one()
            conn.execute(
                accounts.update()
                .where(accounts.c.id == owner.account_id)
                .values(customer_id=customer)
            )
            user = conn.execute(
                insert(users)
                .values(kind="owner", phone=phone, display_name=phone, created_at=now)
                .returning(users.c.id)
            ).scalar_one()
            conn.execute(
                insert(user_sessions).values(
                    token_hash=sec.digest(owner.token),
                    user_id=user,
                    csrf_token=sec.new_token(),
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + timedelta(days=30),
                )
            )
    return owners


@dataclass
class Target:
    label: str
    app: ServedApp
    path: str
    cookie: bool
    latency: Figure
    seconds: float = 0.0
    cpu_s: float | None = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


async def _owner_loop(client: httpx.AsyncClient, target: Target, owner: Owner, times: int) -> None:
    cookies = {SESSION_COOKIE: owner.token} if target.cookie else None
    path = target.path.format(account_id=owner.account_id)
    for _ in range(times):
        started = time.perf_counter()
        try:
            response = await client.get(path, cookies=cookies)
        except httpx.TransportError as exc:  # counted, not fatal: the answers say
            target.statuses[0] += 1
            if len(target.wrong) < 5:
                target.wrong.append(f"{path}: {type(exc).__name__}")
            continue
        target.latency.seconds.append(time.perf_counter() - started)
        target.statuses[response.status_code] += 1
        shown = f"{owner.balance.yuan:,.2f}" if "portal" in target.path else str(owner.balance)
        if response.status_code == 200 and shown not in response.text and len(target.wrong) < 5:
            target.wrong.append(f"{path}: {shown} not in the answer")


async def _round(target: Target, owners: Sequence[Owner], times: int) -> None:
    limits = httpx.Limits(max_connections=len(owners), max_keepalive_connections=len(owners))
    async with httpx.AsyncClient(
        base_url=target.app.url, limits=limits, timeout=REQUEST_TIMEOUT
    ) as client:
        cpu_before = target.app.cpu_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(_owner_loop(client, target, o, times) for o in owners))
        target.seconds += time.perf_counter() - started
        cpu_after = target.app.cpu_seconds()
    if target.cpu_s is not None and cpu_before is not None and cpu_after is not None:
        target.cpu_s += cpu_after - cpu_before
    else:
        target.cpu_s = None


async def measure(targets: list[Target], owners: list[Owner], opts: argparse.Namespace) -> None:
    for k in range(opts.rounds):
        for target in targets if k % 2 == 0 else targets[::-1]:
            await _round(target, owners, opts.requests)


def _print(targets: list[Target], base: Target) -> None:
    print(f"  {'':<46}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'p50/base':>11}{'p99/base':>10}")
    for target in targets:
        print(row(target.latency, None if target is base else base.latency))
    for target in targets:
        rate = target.requests / target.seconds
        cpu = (
            ""
            if not target.cpu_s
            else f"; server CPU {target.cpu_s / target.requests * 1000:.2f} ms/request"
        )
        ratio = (
            ""
            if target is base
            else f"; {rate / (base.requests / base.seconds):.3f} of the baseline"
        )
        print(f"  {target.label:<34} {rate:>8,.0f} requests/s{cpu}{ratio}")


def run(opts: argparse.Namespace) -> bool:
    with scratch_database() as (name, url):
        rt = migrated_runtime(url)
        try:
            print(f"PostgreSQL (scratch database {name}), {opts.owners} owners at once:")
            started = time.perf_counter()
            owners = set_up_owners(rt, opts.owners)
            took = time.perf_counter() - started
            print(f"  setup (not timed): {len(owners)} owners signed in, in {took:.1f} s")
            with (
                ServedApp(
                    serve_meterpay, (url,), ready_path="/openapi.json", name="meterpay"
                ) as app,
                ServedApp(serve_bare, (url,), ready_path="/ready", name="bare") as bare_app,
            ):
                base = Target(
                    "baseline: bare balance query",
                    bare_app,
                    "/balance/{account_id}",
                    False,
                    Figure("baseline: bare Starlette, same query"),
                )
                targets = [
                    Target(
                        "owner balance page /portal",
                        app,
                        "/portal",
                        True,
                        Figure("portal balance page (HTML, signed in)"),
                    ),
                    Target(
                        "API /accounts/{id}/supply",
                        app,
                        "/api/v1/accounts/{account_id}/supply",
                        True,
                        Figure("API supply view (JSON, signed in)"),
                    ),
                    base,
                ]
                asyncio.run(measure(targets, owners, opts))
            _print(targets, base)
            wrong = [w for t in targets for w in t.wrong]
            statuses = {t.label: dict(t.statuses) for t in targets}
            ok = all(set(t.statuses) == {200} for t in targets) and not wrong
            print(f"  answers: {json.dumps(statuses, ensure_ascii=False)}")
            print(f"  outcomes: {'; '.join(wrong) or 'every owner saw their own balance'}")
            return ok
        finally:
            rt.db.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.owner_balance",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--owners", type=int, default=200, help="owners asking at once")
    parser.add_argument("--requests", type=int, default=10, help="requests per owner per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds, each to every target")
    return 0 if run(parser.parse_args(argv)) else 1


if __name__ == "__main__":
    sys.exit(main())
