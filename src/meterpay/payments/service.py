"""Use cases on online top-ups: create an order, take a provider's notification, settle
orders nobody told us about.

Invariants:
- a notification is verified first (signature, timestamp, merchant), then stored in the
  inbox under its unique key in the same transaction that acts on it: a duplicate key
  is answered "received" and changes nothing, whenever it comes;
- the order row is locked before it is credited; the wallet is credited from the
  provider's clearing account under the key ``topup:<provider>:<out_trade_no>``, so
  concurrent or repeated deliveries, and the query path, credit exactly once;
- the supply consequences (a restore queued at once when the account is paid up) and
  the owner's receipt are written in that same transaction (``ledger.service.credited``);
- a notification whose amount is not our order's is refused like a forged one: 4xx,
  nothing changes, a security entry and an alarm for a person; on the query path the
  order is marked ``paid`` and nothing is credited, with the same alarm;
- the providers are called outside any transaction: a slow provider never holds a lock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from meterpay.alarms import repository as alarms
from meterpay.alarms.model import AlarmKind
from meterpay.audit import repository as audit
from meterpay.kernel.errors import InvalidInput, NotFound
from meterpay.kernel.money import Money
from meterpay.ledger import repository as ledger
from meterpay.ledger.model import LedgerAccountKind, Transfer, TransferKind
from meterpay.ledger.repository import Posting
from meterpay.ledger.service import credited
from meterpay.payments import refunds
from meterpay.payments import repository as repo
from meterpay.payments.merchants import DEFAULT
from meterpay.payments.model import Order, OrderEvent, OrderState, move, out_trade_no
from meterpay.payments.provider import (
    Answer,
    BadNotification,
    Channel,
    Notification,
    NotificationKind,
    OrderRequest,
    PaymentProvider,
    ProviderName,
    Trade,
    TradeState,
)
from meterpay.payments.registry import clearing_code, merchant_for_site, provider_of
from meterpay.payments.registry import notify_url as registry_notify_url
from meterpay.runtime import Runtime
from meterpay.sites import repository as sites
from meterpay.sites.model import AccountStatus

log = logging.getLogger(__name__)

ORDER_TTL: Final = timedelta(minutes=15)
FIRST_QUERY: Final = timedelta(minutes=2)
"""No notification this long after the order: ask the provider."""
QUERY_EVERY: Final = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Taken:
    """What became of one notification."""

    answer: Answer
    outcome: str
    order: Order | None = None


# --- orders ---------------------------------------------------------------------------------


def create_order(
    rt: Runtime,
    *,
    account_id: int,
    amount: Money,
    provider: ProviderName,
    channel: Channel,
    requested_by: str,
    notify_url: str | None = None,
    payer_openid: str | None = None,
) -> Order:
    """An order for ``amount`` into the account, and the provider's way to pay it (a QR
    code's content, JSAPI parameters or a page), through the site's own merchant of that
    provider if it has one, else the default merchant. Refused outside the site's limits
    or for a closed account; never for what else the owner owes. ``notify_url`` replaces
    the merchant's own notify address (tests)."""
    if channel is Channel.JSAPI and not payer_openid:
        raise InvalidInput("a JSAPI payment needs the payer's openid", field="payer_openid")
    now = rt.clock.now()
    with rt.db.write() as conn:
        account = sites.account(conn, account_id)
        if account.status is not AccountStatus.OPEN:
            raise InvalidInput(f"account {account.number} is closed", field="account_id")
        site = sites.site(conn, account.site_id)
        merchant = merchant_for_site(rt, provider, site.code)
        payments = provider_of(rt, provider, merchant)
        day_start = _day_start(now, site.timezone)
        repo.limits(conn, site.id).check(
            amount, today_so_far=repo.topped_up_since(conn, account_id, day_start)
        )
        order_id = repo.insert_order(
            conn,
            {
                "out_trade_no": f"pending-{now.timestamp()}-{account_id}"[:32],
                "provider": provider.value,
                "merchant": merchant,
                "channel": channel.value,
                "site_id": site.id,
                "account_id": account_id,
                "amount_fen": amount.fen,
                "state": OrderState.CREATED.value,
                "requested_by": requested_by,
                "created_at": now,
                "expires_at": now + ORDER_TTL,
                "updated_at": now,
                "next_query_at": now + FIRST_QUERY,
            },
        )
        number = out_trade_no(provider, order_id, now.astimezone(ZoneInfo(site.timezone)).date())
        repo.save_order(conn, order_id, out_trade_no=number)
        description = f"{site.name} {account.number} {_utility_word(account.utility.value)}充值"
    request = OrderRequest(
        number,
        amount.fen,
        description,
        channel,
        now + ORDER_TTL,
        notify_url or registry_notify_url(rt, provider, merchant),
        payer_openid,
    )
    try:
        made = payments.create_order(request)
    except Exception as exc:
        with rt.db.write() as conn:
            repo.save_order(
                conn,
                order_id,
                state=move(OrderState.CREATED, OrderEvent.CLOSED).value,
                updated_at=rt.clock.now(),
                next_query_at=None,
                note=f"the provider refused the order: {exc}"[:500],
            )
        raise
    with rt.db.write() as conn:
        repo.save_order(conn, order_id, code_url=made.code_url, pay_url=made.pay_url)
        return replace(repo.order(conn, order_id), jsapi_params=made.jsapi_params)


def _utility_word(utility: str) -> str:
    return {"electricity": "电费", "water": "水费"}.get(utility, "")


def _day_start(now: datetime, zone: str) -> datetime:
    local = now.astimezone(ZoneInfo(zone))
    return datetime.combine(local.date(), time(0), tzinfo=ZoneInfo(zone))


def get_order(rt: Runtime, order_id: int) -> Order:
    with rt.db.read() as conn:
        return repo.order(conn, order_id)


def orders_of(rt: Runtime, account_id: int, *, limit: int = 50) -> list[Order]:
    with rt.db.read() as conn:
        sites.account(conn, account_id)
        return repo.orders_of(conn, account_id, limit=limit)


# --- notifications ---------------------------------------------------------------------------


def take_notification(
    rt: Runtime,
    provider: ProviderName | str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    merchant: str = DEFAULT,
    remote_addr: str | None = None,
) -> Taken:
    """Verify, store and act on one notification to ``merchant``'s address; what to
    answer the provider.

    ``BadNotification`` for anything not to be trusted: nothing is stored but a
    security entry in the audit log.
    """
    payments = provider_of(rt, provider, merchant)
    now = rt.clock.now()
    try:
        notification = payments.verify_notification(headers, body, now=now)
        _check_against_order(rt, payments.name, merchant, notification, now)
    except BadNotification as exc:
        with rt.db.write() as conn:
            audit.record(
                conn,
                at=now,
                actor=f"provider:{payments.name.value}",
                action="security.payment_notification_rejected",
                object_type="payment_notification",
                object_id=f"{payments.name.value}/{merchant}" if merchant else payments.name.value,
                after={"reason": exc.message, **{k: str(v) for k, v in exc.details.items()}},
                reason=exc.message,
                source_ip=remote_addr,
            )
        log.warning("rejected a %s notification from %s: %s", payments.name, remote_addr, exc)
        raise
    with rt.db.write() as conn:
        return _take(
            conn,
            payments,
            notification,
            merchant=merchant,
            headers=headers,
            body=body,
            remote_addr=remote_addr,
            now=now,
        )


def _check_against_order(
    rt: Runtime, provider: ProviderName, merchant: str, notification: Notification, now: datetime
) -> None:
    """A payment whose amount is not our order's is refused like a forged one (nothing
    changes, the provider is answered 4xx), and a person is called."""
    trade = notification.trade
    if trade is None or trade.state is not TradeState.PAID:
        return
    with rt.db.read() as conn:
        order = repo.order_by_trade_no(conn, trade.out_trade_no)
    if order is None or not order.taken_by(provider, merchant):
        return
    if trade.amount_fen == order.amount_fen:
        return
    with rt.db.write() as conn:
        _mismatch(conn, order, trade, now, f"paid {Money(trade.amount_fen)} 元")
    raise BadNotification(
        f"the notification says {Money(trade.amount_fen)} 元 for order"
        f" {order.out_trade_no} of {order.amount} 元",
        out_trade_no=order.out_trade_no,
    )


def _take(
    conn: Connection,
    payments: PaymentProvider,
    notification: Notification,
    *,
    merchant: str,
    headers: Mapping[str, str],
    body: bytes,
    remote_addr: str | None,
    now: datetime,
) -> Taken:
    trade = notification.trade
    stored = repo.store_notification(
        conn,
        {
            "provider": payments.name.value,
            "merchant": merchant,
            "key": notification.key[:128],
            "kind": notification.kind.value,
            "received_at": now,
            "remote_addr": remote_addr,
            "headers": {k.lower(): v for k, v in headers.items()},
            "body": body.decode("utf-8", errors="replace"),
            "out_trade_no": (trade.out_trade_no if trade else None)
            or (notification.refund.out_trade_no if notification.refund else None),
            "outcome": "received",
        },
    )
    accepted = payments.answer(accepted=True)
    if stored is None:
        return Taken(accepted, "duplicate")
    if notification.kind is NotificationKind.REFUND and notification.refund is not None:
        outcome = refunds.settle(
            conn, notification.refund, now, provider=payments.name, merchant=merchant
        )
        repo.set_outcome(conn, stored, outcome)
        return Taken(accepted, outcome)
    if trade is None:
        repo.set_outcome(conn, stored, "kept", "neither a payment nor a refund")
        return Taken(accepted, "kept")
    outcome, order = credit_trade(
        conn, payments.name, trade, now, cause=notification.key, merchant=merchant
    )
    repo.set_outcome(conn, stored, outcome)
    return Taken(accepted, outcome, order)


def credit_trade(
    conn: Connection,
    provider: ProviderName,
    trade: Trade,
    now: datetime,
    *,
    cause: str,
    merchant: str = DEFAULT,
) -> tuple[str, Order | None]:
    """Credit the order a merchant's provider says is paid (a notification, or our
    query), exactly once; returns what happened and the order. Only the merchant the
    order was made with can credit it."""
    if trade.state is not TradeState.PAID:
        return "not_paid", None
    order = repo.order_by_trade_no(conn, trade.out_trade_no, lock=True)
    if order is None or not order.taken_by(provider, merchant):
        log.warning(
            "%s %s reports %s paid: no such order of ours",
            provider,
            merchant or "(default merchant)",
            trade.out_trade_no,
        )
        return "unknown_order", None
    if order.state in (OrderState.CREDITED, OrderState.REFUNDED):
        return "already_credited", order
    state: OrderState = order.state
    if state is not OrderState.PAID:  # the money is with the provider now, whatever follows
        state = move(state, OrderEvent.PAID)
        repo.save_order(
            conn,
            order.id,
            state=state.value,
            transaction_id=trade.transaction_id,
            paid_at=trade.paid_at or now,
            updated_at=now,
            next_query_at=None,
        )
    if trade.amount_fen != order.amount_fen:
        _mismatch(conn, order, trade, now, f"paid {Money(trade.amount_fen)} 元")
        return "amount_mismatch", repo.order(conn, order.id)
    account = sites.account(conn, order.account_id)
    if account.status is not AccountStatus.OPEN:
        _mismatch(conn, order, trade, now, f"account {account.number} closed before the payment")
        return "account_closed", repo.order(conn, order.id)
    site = sites.site(conn, account.site_id)
    clearing = ledger.ensure_ledger_account(
        conn, clearing_code(site.code, provider), LedgerAccountKind.ASSET, site.id, now
    )
    key = f"topup:{provider.value}:{order.out_trade_no}"
    transfer = Transfer(key, clearing, account.wallet_id, order.amount_fen, TransferKind.TOP_UP)
    memo = f"{provider.value} {trade.transaction_id or ''}".strip()
    if ledger.post(
        conn, [Posting(transfer, account.id, memo)], actor=f"provider:{provider}", now=now
    ):
        credited(conn, account.id, cause=key, amount=order.amount, now=now)
    repo.save_order(
        conn,
        order.id,
        state=move(state, OrderEvent.CREDITED).value,
        credited_at=now,
        updated_at=now,
        next_query_at=None,
    )
    log.info("order %s credited (%s)", order.out_trade_no, cause)
    return "credited", repo.order(conn, order.id)


def _mismatch(conn: Connection, order: Order, trade: Trade, now: datetime, what: str) -> None:
    alarms.raise_in(
        conn,
        kind=AlarmKind.PAYMENT_MISMATCH,
        object_type="topup_order",
        object_id=order.id,
        dedupe_key=f"payment_mismatch:{order.out_trade_no}",
        message=f"充值单 {order.out_trade_no} 需人工核对：{what}，订单 {order.amount} 元",
        now=now,
        site_id=order.site_id,
        details={
            "out_trade_no": order.out_trade_no,
            "order_fen": order.amount_fen,
            "paid_fen": trade.amount_fen,
            "transaction_id": trade.transaction_id,
        },
    )


# --- orders nobody told us about -------------------------------------------------------------


def settle_unpaid(rt: Runtime, *, limit: int = 50) -> int:
    """Ask the providers about open orders without news: credit the paid ones (the query
    path); past their time, close them at the provider, ask once more (the payer may have
    paid in between: then it is credited), and close them here. A provider that cannot
    be reached is asked again later; the order stays open meanwhile. How many orders
    were looked at."""
    now = rt.clock.now()
    with rt.db.read() as conn:
        due = repo.due_for_query(conn, now, limit=limit)
    for order in due:
        try:
            payments = provider_of(rt, order.provider, order.merchant)
        except NotFound:  # its merchant is no longer configured here: nobody to ask
            continue
        try:
            trade = payments.query(order.out_trade_no)
            if (trade is None or trade.state is not TradeState.PAID) and now >= order.expires_at:
                payments.close(order.out_trade_no)
                trade = payments.query(order.out_trade_no)
        except Exception:  # away, or the close was refused (already paid): ask again later
            log.exception("settling %s with its provider failed", order.out_trade_no)
            with rt.db.write() as conn:
                repo.save_order(conn, order.id, next_query_at=now + QUERY_EVERY)
            continue
        with rt.db.write() as conn:
            if trade is not None and trade.state is TradeState.PAID:
                credit_trade(
                    conn, order.provider, trade, now, cause="query", merchant=order.merchant
                )
            elif now >= order.expires_at:
                _close(conn, order, now)
            else:
                repo.save_order(conn, order.id, next_query_at=now + QUERY_EVERY)
    return len(due)


def _close(conn: Connection, order: Order, now: datetime) -> None:
    current = repo.order(conn, order.id, lock=True)
    if current.state is OrderState.CREATED:
        repo.save_order(
            conn,
            order.id,
            state=move(current.state, OrderEvent.CLOSED).value,
            updated_at=now,
            next_query_at=None,
            note="unpaid when it expired",
        )
