"""Payment-notification throughput: WeChat Pay's ``TRANSACTION.SUCCESS`` notifications
posted to ``POST /api/v1/payments/notify/wechat`` by concurrent clients, against a bare
endpoint that only stores the raw body, in one run.

``python -m bench.payment_notify`` (part of ``make bench``) sets up, not timed, on a
scratch PostgreSQL database (admin URL ``MP_BENCH_PG_URL``, as for ``bench.ingest``):

- one site with ``--orders`` (2,000) prepaid accounts (``bench.ingest``'s fleet: a wallet
  and a meter each, paid up), each with one WeChat Native order of 10 - 500 元 in state
  ``created``, inserted through ``payments.repository`` as ``create_order`` leaves it once
  WeChat has answered (no round trip to a provider), and the site's WeChat clearing
  account, as a site has it from its first online top-up on (``--first-payments`` leaves
  it out: the first notifications then race to create it);
- keys made for the run (``SandboxKeys``: the merchant's key pair, a platform key in
  WeChat's public-key mode, an APIv3 key) and, for every order, the notification WeChat
  would send: the body signed with the platform key (SHA256withRSA, 2048 bits), the
  transaction encrypted with AES-256-GCM (``wechat_sign.sign_notification``). Signing is
  the provider's work, so it stays out of the timing. ``--duplicates`` (0.2) of them are
  delivered a second time, the copies shuffled in among the rest (WeChat redelivers until
  it sees a 2xx, and may do so while the first delivery is still being handled);
- two servers, each ``uvicorn.run(app)`` in a process of its own on a free port of
  127.0.0.1 (``bench.uvicorn_process``; log level warning, so no access log):
  meterpay's app (``create_app``) with a ``WechatPay`` provider holding the run's keys, as
  ``meterpay serve`` builds it minus the background workers; and the baseline, a bare
  Starlette endpoint at the same path that INSERTs the raw body into a plain table of the
  same database and commits (``Database.write`` in ``asyncio.to_thread``, as the real
  endpoint runs its service): the cost of receiving and persisting a notification,
  without verifying or crediting it.

Timed: ``--clients`` (16) concurrent keep-alive clients (httpx, asyncio, in this process)
post the deliveries, raw, to each server: the deliveries are cut into ``--rounds`` (4)
slices and every slice goes to both servers in turns (ABBA), so whatever else the shared
machine does slows both alike. Printed: requests/s (all requests over the time of that
server's rounds), p50/p99 latency per request, the server process's CPU time per request,
and the ratios ours / baseline; then, in this process, the pure verification cost per
notification (``WechatPay.verify_notification``: signature, AES-GCM decrypt, parse)
beside ours' server CPU per request.

Checked afterwards (not timed): every answer was 204; every order is ``credited`` and its
account's wallet holds exactly the order's amount; the inbox holds one row per
notification, each ``credited``; one top-up transfer per order; ``verify_ledger`` is
``[]``; the baseline table holds one row per request. Times are never asserted; the exit
status says whether every outcome was right.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import httpx
import uvicorn
from sqlalchemy import func, select, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.ingest import (
    ACTOR,
    Workload,
    connect_runtime,
    migrated_runtime,
    scratch_database,
    set_up_fleet,
)
from bench.latency import Figure, row, timed
from bench.uvicorn_process import HOST, ServedApp
from meterpay.db.engine import Database
from meterpay.db.schema import accounts, ledger_accounts, payment_notifications, topup_orders
from meterpay.db.schema import transfers as transfer_rows
from meterpay.kernel.clock import SystemClock
from meterpay.ledger import repository as ledger_repo
from meterpay.ledger.model import LedgerAccountKind, TransferKind
from meterpay.ledger.rules import balance_of
from meterpay.ledger.service import verify_ledger
from meterpay.payments import repository as orders_repo
from meterpay.payments.model import OrderState, out_trade_no
from meterpay.payments.provider import Channel, ProviderName
from meterpay.payments.registry import clearing_code
from meterpay.payments.sandbox import SandboxKeys
from meterpay.payments.service import FIRST_QUERY, ORDER_TTL
from meterpay.payments.wechat import WechatConfig, WechatPay
from meterpay.payments.wechat_notification import PAYMENT_EVENT
from meterpay.payments.wechat_sign import CHINA, sign_notification, transaction_resource
from meterpay.runtime import Runtime
from meterpay.web.app import create_app

SITE = "PAYBENCH"
NOTIFY_PATH = "/api/v1/payments/notify/wechat"
AMOUNTS_FEN = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000)  # 10 - 500 元
BASELINE_TABLE = "notify_baseline"
REQUEST_TIMEOUT = 60.0


@dataclass(frozen=True)
class Placed:
    """One order waiting for its payment."""

    out_trade_no: str
    account_id: int
    amount_fen: int


@dataclass(frozen=True)
class Delivery:
    """A notification as it comes over the wire: headers and raw body."""

    headers: dict[str, str]
    body: bytes


# --- the two servers (each runs in a spawned process) ---------------------------------------


def serve_meterpay(port: int, url: str, config: WechatConfig) -> None:
    """meterpay's app with the run's WeChat Pay merchant, as ``meterpay serve`` runs it."""
    rt = connect_runtime(url)
    rt.payments[ProviderName.WECHAT] = WechatPay(config, clock=SystemClock())
    uvicorn.run(create_app(rt), host=HOST, port=port, log_level="warning")


def serve_bare(port: int, url: str) -> None:
    """The baseline: receive the body, INSERT it, COMMIT, answer 204."""
    db = Database(url)

    def persist(body: bytes) -> None:
        with db.write() as conn:
            conn.execute(
                text(f"INSERT INTO {BASELINE_TABLE} (body) VALUES (:body)"),
                {"body": body.decode("utf-8", errors="replace")},
            )

    async def receive(request: Request) -> Response:
        await asyncio.to_thread(persist, await request.body())
        return Response(status_code=204)

    async def ready(_: Request) -> Response:
        return Response(status_code=200)

    app = Starlette(
        routes=[
            Route("/api/v1/payments/notify/{provider}", receive, methods=["POST"]),
            Route("/ready", ready),
        ]
    )
    uvicorn.run(app, host=HOST, port=port, log_level="warning")


# --- setup (not timed) ------------------------------------------------------------------------


def set_up_orders(rt: Runtime, count: int, seed: int, *, first_payments: bool) -> list[Placed]:
    """A site of ``count`` accounts, one created WeChat order each; unless
    ``first_payments``, the site's WeChat clearing account too, as a site has it from its
    first online top-up on."""
    now = rt.clock.now()
    fleet = set_up_fleet(rt, Workload.generate(count, 1, now, seed), site_code=SITE)
    rng = random.Random(seed)
    placed = []
    with rt.db.write() as conn:
        if not first_payments:
            code = clearing_code(SITE, ProviderName.WECHAT)
            ledger_repo.create_ledger_account(
                conn, code, LedgerAccountKind.ASSET, fleet.site_id, now
            )
        account_ids = (
            conn.execute(
                select(accounts.c.id)
                .where(accounts.c.site_id == fleet.site_id)
                .order_by(accounts.c.id)
            )
            .scalars()
            .all()
        )
        for account_id in account_ids:
            amount = rng.choice(AMOUNTS_FEN)
            values = _created_order(fleet.site_id, account_id, amount, now)
            order_id = orders_repo.insert_order(conn, values)
            number = out_trade_no(ProviderName.WECHAT, order_id, now.astimezone(CHINA).date())
            orders_repo.save_order(
                conn,
                order_id,
                out_trade_no=number,
                code_url=f"weixin://wxpay/bizpayurl?pr={number}",
            )
            placed.append(Placed(number, account_id, amount))
    with rt.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE TABLE {BASELINE_TABLE} (id bigserial PRIMARY KEY, body text)"))
        conn.execute(text("ANALYZE"))
    return placed


def _created_order(
    site_id: int, account_id: int, amount_fen: int, now: datetime
) -> dict[str, object]:
    """The row ``create_order`` writes before it asks the provider."""
    return {
        "out_trade_no": f"pending-{account_id}",
        "provider": ProviderName.WECHAT.value,
        "channel": Channel.NATIVE.value,
        "site_id": site_id,
        "account_id": account_id,
        "amount_fen": amount_fen,
        "state": OrderState.CREATED.value,
        "requested_by": ACTOR,
        "created_at": now,
        "expires_at": now + ORDER_TTL,
        "updated_at": now,
        "next_query_at": now + FIRST_QUERY,
    }


def notifications(keys: SandboxKeys, placed: Sequence[Placed], at: datetime) -> list[Delivery]:
    """What WeChat sends for each order once paid: signed, its resource encrypted."""
    found = []
    for n, order in enumerate(placed):
        resource = transaction_resource(
            mchid=keys.mchid,
            appid=keys.appid,
            out_trade_no=order.out_trade_no,
            transaction_id=f"4200{n:024d}",
            amount_fen=order.amount_fen,
            paid_at=at,
        )
        headers, body = sign_notification(
            platform_key=keys.platform,
            serial=keys.platform_serial,
            apiv3_key=keys.apiv3_key,
            event_type=PAYMENT_EVENT,
            resource=resource,
            at=at,
        )
        found.append(Delivery(headers, body))
    return found


def with_duplicates(notes: list[Delivery], share: float, seed: int) -> list[Delivery]:
    """Every notification once, ``share`` of them twice, in a shuffled order."""
    rng = random.Random(seed)
    deliveries = notes + rng.sample(notes, round(len(notes) * share))
    rng.shuffle(deliveries)
    return deliveries


# --- the measurement ---------------------------------------------------------------------------


@dataclass
class Served:
    """What one server did over its rounds."""

    label: str
    app: ServedApp
    latency: Figure
    seconds: float = 0.0
    cpu_s: float | None = 0.0
    client_cpu_s: float = 0.0  # this process's, posting to this server
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms_per_request(self) -> float | None:
        return None if self.cpu_s is None else self.cpu_s / self.requests * 1000


async def _post_all(
    client: httpx.AsyncClient, deliveries: list[Delivery], clients: int, into: Served
) -> None:
    pending = iter(deliveries)  # shared by the clients: each takes the next delivery

    async def client_loop() -> None:
        for delivery in pending:
            started = time.perf_counter()
            response = await client.post(
                NOTIFY_PATH, content=delivery.body, headers=delivery.headers
            )
            into.latency.seconds.append(time.perf_counter() - started)
            into.statuses[response.status_code] += 1

    await asyncio.gather(*(client_loop() for _ in range(clients)))


async def _round(
    client: httpx.AsyncClient, served: Served, deliveries: list[Delivery], clients: int
) -> None:
    cpu_before, client_before = served.app.cpu_seconds(), time.process_time()
    started = time.perf_counter()
    await _post_all(client, deliveries, clients, served)
    served.seconds += time.perf_counter() - started
    served.client_cpu_s += time.process_time() - client_before
    cpu_after = served.app.cpu_seconds()
    if served.cpu_s is not None and cpu_before is not None and cpu_after is not None:
        served.cpu_s += cpu_after - cpu_before
    else:
        served.cpu_s = None


async def measure(ours: Served, bare: Served, deliveries: list[Delivery], opts: Options) -> None:
    """Each slice of the deliveries to both servers, in ABBA order."""
    limits = httpx.Limits(max_connections=opts.clients, max_keepalive_connections=opts.clients)
    size = -(-len(deliveries) // opts.rounds)
    slices = [deliveries[k : k + size] for k in range(0, len(deliveries), size)]
    async with (
        httpx.AsyncClient(base_url=ours.app.url, limits=limits, timeout=REQUEST_TIMEOUT) as to_ours,
        httpx.AsyncClient(base_url=bare.app.url, limits=limits, timeout=REQUEST_TIMEOUT) as to_bare,
    ):
        for client, path in ((to_ours, "/"), (to_bare, "/ready")):  # open every connection
            await asyncio.gather(*(client.get(path) for _ in range(opts.clients)))
        turns = [(to_ours, ours), (to_bare, bare)]
        for k, deliveries_k in enumerate(slices):
            for client, served in turns if k % 2 == 0 else turns[::-1]:
                await _round(client, served, deliveries_k, opts.clients)


def time_verification(config: WechatConfig, notes: list[Delivery]) -> Figure:
    """In this process: verify each notification once (signature, decrypt, parse)."""
    provider = WechatPay(config, clock=SystemClock())
    figure = Figure("verify_notification alone, in-process")
    try:
        now = datetime.now(UTC)
        for note in notes:
            timed(figure, partial(provider.verify_notification, note.headers, note.body, now=now))
    finally:
        provider.close_client()
    return figure


# --- outcomes (not timed) ----------------------------------------------------------------------


def check_outcomes(rt: Runtime, placed: list[Placed], ours: Served, bare: Served) -> list[str]:
    """What must be true afterwards; the list of what is not."""
    wrong = [
        f"{s.label} answered {dict(s.statuses)}, not 204 to all {s.requests:,} requests"
        for s in (ours, bare)
        if set(s.statuses) != {204}
    ]
    with rt.db.read() as conn:
        states = Counter(conn.execute(select(topup_orders.c.state)).scalars())
        wallets = {
            int(a): balance_of(LedgerAccountKind(kind), int(d), int(c))
            for a, kind, d, c in conn.execute(
                select(
                    accounts.c.id,
                    ledger_accounts.c.kind,
                    ledger_accounts.c.debits_posted,
                    ledger_accounts.c.credits_posted,
                ).join(ledger_accounts, ledger_accounts.c.id == accounts.c.wallet_id)
            )
        }
        inbox = Counter(conn.execute(select(payment_notifications.c.outcome)).scalars())
        top_ups = conn.execute(
            select(func.count())
            .select_from(transfer_rows)
            .where(transfer_rows.c.kind == TransferKind.TOP_UP.value)
        ).scalar_one()
        stored = conn.execute(text(f"SELECT count(*) FROM {BASELINE_TABLE}")).scalar_one()
    n = len(placed)
    if states != {OrderState.CREDITED.value: n}:
        wrong.append(f"orders {dict(states)}, expected {n:,} credited")
    if off := [p for p in placed if wallets.get(p.account_id) != p.amount_fen]:
        wrong.append(f"{len(off):,} wallets do not hold exactly their order's amount")
    if inbox != {"credited": n}:
        wrong.append(f"inbox {dict(inbox)}, expected {n:,} rows, each credited")
    if top_ups != n:
        wrong.append(f"{top_ups:,} top-up transfers for {n:,} orders")
    if stored != bare.requests:
        wrong.append(f"the baseline stored {stored:,} of {bare.requests:,} bodies")
    return wrong


# --- orchestration -----------------------------------------------------------------------------


@dataclass
class Options:
    orders: int
    duplicates: float
    clients: int
    rounds: int
    seed: int
    first_payments: bool


def run(opts: Options) -> bool:
    """Scratch database, setup, the two servers measured in turns, the checks; drop."""
    with scratch_database() as (name, url):
        rt = migrated_runtime(url)
        try:
            with rt.db.read() as conn:
                durable = conn.execute(text("SHOW synchronous_commit")).scalar_one()
            print(f"PostgreSQL (scratch database {name}, synchronous_commit={durable}):")
            started = time.perf_counter()
            placed = set_up_orders(rt, opts.orders, opts.seed, first_payments=opts.first_payments)
            keys = SandboxKeys.generate()
            notes = notifications(keys, placed, rt.clock.now())
            deliveries = with_duplicates(notes, opts.duplicates, opts.seed)
            print(
                f"  setup (not timed): {len(placed):,} accounts with a created order each,"
                f" {len(notes):,} notifications signed and encrypted,"
                f" {len(deliveries) - len(notes):,} delivered twice,"
                f" in {time.perf_counter() - started:.1f} s"
            )
            config = keys.merchant_config("http://127.0.0.1:9")  # never called: no outbound
            with (
                ServedApp(serve_meterpay, (url, config), ready_path="/", name="meterpay") as app,
                ServedApp(serve_bare, (url,), ready_path="/ready", name="bare") as bare_app,
            ):
                ours = Served("meterpay notify endpoint", app, Figure("meterpay notify endpoint"))
                bare = Served("bare INSERT+COMMIT", bare_app, Figure("baseline: INSERT+COMMIT"))
                asyncio.run(measure(ours, bare, deliveries, opts))
            verify = time_verification(config, notes)
            _print(ours, bare, verify)
            wrong = check_outcomes(rt, placed, ours, bare)
            violations = verify_ledger(rt)
            print(f"  outcomes: {'; '.join(wrong) or 'as expected'}")
            print(f"  verify_ledger: {violations or 'clean ([])'}"[:2000])
            return not wrong and not violations
        finally:
            rt.db.dispose()


def _print(ours: Served, bare: Served, verify: Figure) -> None:
    print(f"  {'':<46}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'p50/base':>11}{'p99/base':>10}")
    print(row(ours.latency, bare.latency))
    print(row(bare.latency))
    for served in (ours, bare):
        cpu = served.cpu_ms_per_request
        print(
            f"  {served.label:<26} {served.requests:>6,} requests in {served.seconds:6.2f} s"
            f" = {served.rate:>7,.0f} requests/s"
            + (f"; server CPU {cpu:.2f} ms/request" if cpu is not None else "")
            + f", client CPU {served.client_cpu_s / served.requests * 1000:.2f} ms/request"
        )
    print(f"  throughput ratio ours/baseline {ours.rate / bare.rate:.3f}")
    mean = sum(verify.seconds) / len(verify.seconds) * 1000
    share = ours.cpu_ms_per_request
    print(
        f"  {verify.label}: p50 {verify.p(50):.3f} ms, mean {mean:.3f} ms"
        f" (= {1000 / mean:,.0f} notifications/s on one core)"
        + (f"; {mean / share:.0%} of the endpoint's server CPU per request" if share else "")
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.payment_notify",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--orders", type=int, default=2_000, help="accounts, one order each")
    parser.add_argument(
        "--duplicates", type=float, default=0.2, help="share of notifications delivered twice"
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument("--rounds", type=int, default=4, help="slices, each to both servers")
    parser.add_argument("--seed", type=int, default=645)
    parser.add_argument(
        "--first-payments",
        action="store_true",
        help="start without the site's WeChat clearing account: the first notifications"
        " race to create it",
    )
    opts = Options(**vars(parser.parse_args(argv)))
    if opts.orders < 1 or opts.clients < 1 or opts.rounds < 1 or not 0 <= opts.duplicates <= 1:
        parser.error("--orders, --clients and --rounds must be positive, --duplicates in 0..1")
    print(
        f"bench.payment_notify: {opts.orders:,} WeChat Pay payment notifications"
        f" (+{opts.duplicates:.0%} delivered twice) posted by {opts.clients} concurrent clients"
        f" to the notify endpoint, against a bare INSERT+COMMIT endpoint, {opts.rounds} rounds each"
    )
    ok = run(opts)
    if not ok:
        print("bench.payment_notify: outcomes or ledger are WRONG (see above)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
