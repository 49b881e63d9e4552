"""The daily reconciliation: a provider's statement for a day against our orders, and
what is done about each difference.

- paid but not credited: the provider is asked (the query path) and the order credited
  exactly as a notification would credit it;
- credited but not paid, amounts that differ, payments that are not ours: a critical
  alarm for a person; nothing is moved automatically;
- every run is stored with its totals (paid, refunded, fees, credited) and findings, so
  a day can be looked at, and run again, later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, insert, select

from meterpay.alarms import repository as alarms
from meterpay.alarms.model import AlarmKind
from meterpay.db.rows import to_model
from meterpay.db.schema import reconciliation_items, reconciliation_runs, topup_orders
from meterpay.kernel.errors import NotFound
from meterpay.payments.merchants import DEFAULT
from meterpay.payments.model import OrderState
from meterpay.payments.provider import ProviderName, TradeState
from meterpay.payments.reconcile_rules import Finding, Findings, Item, OurOrder, match
from meterpay.payments.registry import merchants_of, provider_of
from meterpay.payments.service import credit_trade
from meterpay.runtime import Runtime

log = logging.getLogger(__name__)

CHINA: Final = ZoneInfo("Asia/Shanghai")
"""Both providers cut their statements at midnight China time."""


@dataclass(frozen=True, slots=True)
class RunItem:
    id: int
    run_id: int
    finding: Finding
    out_trade_no: str
    ours_fen: int | None
    theirs_fen: int | None
    transaction_id: str | None
    action: str


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    provider: ProviderName
    merchant: str
    day: date
    ran_at: datetime
    ran_by: str
    status: str
    matched: int
    totals: dict[str, Any]
    error: str
    items: tuple[RunItem, ...] = ()


@dataclass(frozen=True, slots=True)
class Book:
    """Whose statement: a provider's merchant."""

    provider: ProviderName
    merchant: str

    @property
    def label(self) -> str:
        return f"{self.provider.value}/{self.merchant}" if self.merchant else self.provider.value


def reconcile(
    rt: Runtime, provider: ProviderName | str, day: date, *, by: str, merchant: str = DEFAULT
) -> Run:
    """Fetch a merchant's statement of the day, match it to that merchant's orders, act
    on the differences, store the run."""
    payments = provider_of(rt, provider, merchant)
    name = payments.name
    book = Book(name, merchant)
    try:
        statement = payments.statement(day)
    except Exception as exc:  # the statement is not ready, or the provider is away
        log.warning("no %s statement for %s: %s", name, day, exc)
        with rt.db.write() as conn:
            return _store(
                conn,
                book,
                day,
                by=by,
                now=rt.clock.now(),
                findings=None,
                error=f"{exc}"[:500],
                actions={},
            )
    with rt.db.read() as conn:
        paid, known = _ours(conn, book, day, {r.out_trade_no for r in statement.rows})
    findings = match(statement, paid, known)
    actions = {item.out_trade_no: _act(rt, book, day, item) for item in findings.items}
    with rt.db.write() as conn:
        return _store(
            conn,
            book,
            day,
            by=by,
            now=rt.clock.now(),
            findings=findings,
            error="",
            actions=actions,
        )


def _ours(
    conn: Connection, book: Book, day: date, named: set[str]
) -> tuple[list[OurOrder], list[OurOrder]]:
    start = datetime.combine(day, time(0), tzinfo=CHINA)
    end = start + timedelta(days=1)
    columns = (
        topup_orders.c.out_trade_no,
        topup_orders.c.amount_fen,
        topup_orders.c.state,
        topup_orders.c.transaction_id,
    )
    mine = and_(
        topup_orders.c.provider == book.provider.value, topup_orders.c.merchant == book.merchant
    )
    paid_query = select(*columns).where(
        mine, topup_orders.c.paid_at >= start, topup_orders.c.paid_at < end
    )
    paid = [_our(row) for row in conn.execute(paid_query)]
    known: list[OurOrder] = []
    names = sorted(named)
    for at in range(0, len(names), 1000):
        chunk = names[at : at + 1000]
        query = select(*columns).where(mine, topup_orders.c.out_trade_no.in_(chunk))
        known.extend(_our(row) for row in conn.execute(query))
    return paid, known


def _our(row: Any) -> OurOrder:
    number, amount, state, transaction = row
    return OurOrder(number, int(amount), OrderState(state), transaction)


def _act(rt: Runtime, book: Book, day: date, item: Item) -> str:
    if item.finding is Finding.MATCHED:
        return ""
    if item.finding is Finding.PAID_NOT_CREDITED:
        return _credit_by_query(rt, book, item)
    now = rt.clock.now()
    with rt.db.write() as conn:
        alarms.raise_in(
            conn,
            kind=AlarmKind.RECONCILIATION,
            object_type="topup_order",
            object_id=item.out_trade_no,
            dedupe_key=f"reconciliation:{book.label}:{day.isoformat()}:{item.out_trade_no}",
            message=_TEXT[item.finding].format(
                no=item.out_trade_no,
                day=day.isoformat(),
                ours=_yuan(item.ours_fen),
                theirs=_yuan(item.theirs_fen),
            ),
            now=now,
            details={
                "provider": book.provider.value,
                "merchant": book.merchant,
                "day": day.isoformat(),
                "finding": item.finding.value,
                "ours_fen": item.ours_fen,
                "theirs_fen": item.theirs_fen,
                "transaction_id": item.transaction_id,
            },
        )
    return "alarm"


def _credit_by_query(rt: Runtime, book: Book, item: Item) -> str:
    payments = provider_of(rt, book.provider, book.merchant)
    try:
        trade = payments.query(item.out_trade_no)
    except Exception as exc:
        log.exception("querying %s for the reconciliation failed", item.out_trade_no)
        return f"query failed: {exc}"[:200]
    if trade is None or trade.state is not TradeState.PAID:
        return "the provider does not confirm the payment"
    with rt.db.write() as conn:
        outcome, _ = credit_trade(
            conn,
            book.provider,
            trade,
            rt.clock.now(),
            cause="reconciliation",
            merchant=book.merchant,
        )
    return outcome


def _yuan(fen: int | None) -> str:
    return "—" if fen is None else f"{fen / 100:.2f}"


_TEXT: Final = {
    Finding.CREDITED_NOT_PAID: "对账 {day}：充值单 {no} 已入账 {ours} 元，但账单中没有这笔支付",
    Finding.AMOUNT_MISMATCH: "对账 {day}：充值单 {no} 金额不符，我方 {ours} 元，账单 {theirs} 元",
    Finding.NOT_OURS: "对账 {day}：账单中有一笔不属于本系统的支付 {no}（{theirs} 元）",
}


def _store(
    conn: Connection,
    book: Book,
    day: date,
    *,
    by: str,
    now: datetime,
    findings: Findings | None,
    error: str,
    actions: dict[str, str],
) -> Run:
    if findings is None:
        status, matched, totals = "failed", 0, {}
    else:
        status = "clean" if findings.clean else "discrepancies"
        matched = len(findings.of(Finding.MATCHED))
        totals = {
            "statement_total_fen": findings.statement_total_fen,
            "paid_total_fen": findings.paid_total_fen,
            "refund_total_fen": findings.refund_total_fen,
            "fee_total_fen": findings.fee_total_fen,
            "credited_total_fen": findings.credited_total_fen,
        }
    run_id = conn.execute(
        insert(reconciliation_runs)
        .values(
            provider=book.provider.value,
            merchant=book.merchant,
            day=day,
            ran_at=now,
            ran_by=by,
            status=status,
            matched=matched,
            totals=totals,
            error=error,
        )
        .returning(reconciliation_runs.c.id)
    ).scalar_one()
    rows = [
        {
            "run_id": run_id,
            "finding": i.finding.value,
            "out_trade_no": i.out_trade_no,
            "ours_fen": i.ours_fen,
            "theirs_fen": i.theirs_fen,
            "transaction_id": i.transaction_id,
            "action": actions.get(i.out_trade_no, ""),
        }
        for i in (findings.items if findings else [])
        if i.finding is not Finding.MATCHED
    ]
    if rows:
        conn.execute(insert(reconciliation_items), rows)
    return _load(conn, int(run_id))


STATEMENTS_READY: Final = time(10, 30)
"""WeChat offers a day's bill after 10:00 the next morning (Alipay earlier): ask after this."""
RETRY_FAILED_AFTER: Final = timedelta(hours=1)


def reconcile_due(rt: Runtime) -> int:
    """The scheduler's job: reconcile yesterday's statement of each merchant once it is
    ready, unless done already (a failed run is tried again hourly); how many ran."""
    now = rt.clock.now()
    local = now.astimezone(CHINA)
    if local.time() < STATEMENTS_READY:
        return 0
    day = local.date() - timedelta(days=1)
    ran = 0
    for name, merchant in merchants_of(rt):
        with rt.db.read() as conn:
            latest = conn.execute(
                select(reconciliation_runs.c.status, reconciliation_runs.c.ran_at)
                .where(
                    reconciliation_runs.c.provider == name.value,
                    reconciliation_runs.c.merchant == merchant,
                    reconciliation_runs.c.day == day,
                )
                .order_by(reconciliation_runs.c.id.desc())
                .limit(1)
            ).first()
        if latest is not None and (
            latest.status != "failed" or now - latest.ran_at < RETRY_FAILED_AFTER
        ):
            continue
        reconcile(rt, name, day, by="scheduler", merchant=merchant)
        ran += 1
    return ran


def get_run(rt: Runtime, run_id: int) -> Run:
    with rt.db.read() as conn:
        return _load(conn, run_id)


def runs(rt: Runtime, *, provider: ProviderName | None = None, limit: int = 30) -> list[Run]:
    query = select(reconciliation_runs.c.id).order_by(reconciliation_runs.c.id.desc()).limit(limit)
    if provider is not None:
        query = query.where(reconciliation_runs.c.provider == provider.value)
    with rt.db.read() as conn:
        return [_load(conn, int(i)) for i in conn.execute(query).scalars()]


def _load(conn: Connection, run_id: int) -> Run:
    row = (
        conn.execute(select(reconciliation_runs).where(reconciliation_runs.c.id == run_id))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"reconciliation run {run_id} does not exist", run_id=run_id)
    items = conn.execute(
        select(reconciliation_items)
        .where(reconciliation_items.c.run_id == run_id)
        .order_by(reconciliation_items.c.id)
    ).mappings()
    return replace(to_model(Run, row), items=tuple(to_model(RunItem, i) for i in items))
