"""Refunds of online top-ups, through the provider the money came from.

Invariants:
- only a credited order is refunded, and only money not yet spent: a refund never
  exceeds the order's amount less what was refunded or is being refunded, nor the
  account's balance;
- the money leaves the wallet when the refund is asked for (so it cannot be spent twice)
  and comes back if the provider refuses it; both moves are keyed by the refund's
  ``out_refund_no``, which is derived from the caller's idempotency key: asking again
  returns the same refund and asks the provider again (providers are idempotent on it);
- a refund's state moves processing -> succeeded | failed, never back; the provider's
  answer or its refund notification (through the same inbox as payments) decides;
- the account's supply state is settled after each move, like any balance change.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import Connection, func, insert, select, update

from meterpay.audit import repository as audit
from meterpay.control.supply import settle_account
from meterpay.db.rows import to_model
from meterpay.db.schema import topup_refunds
from meterpay.kernel.errors import Conflict, IdempotencyConflict, InvalidInput
from meterpay.kernel.money import Money
from meterpay.ledger import repository as ledger
from meterpay.ledger.model import LedgerAccountKind, Transfer, TransferKind
from meterpay.ledger.repository import Posting
from meterpay.ledger.rules import reversal_of
from meterpay.payments import repository as repo
from meterpay.payments.model import Order, OrderEvent, OrderState, move
from meterpay.payments.provider import ProviderName, Refund, RefundRequest, RefundState
from meterpay.payments.registry import clearing_code, provider_of
from meterpay.payments.registry import notify_url as registry_notify_url
from meterpay.runtime import Runtime
from meterpay.sites import repository as sites

log = logging.getLogger(__name__)


class RefundStatus(StrEnum):
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


FINAL: Final = frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED})


@dataclass(frozen=True, slots=True)
class TopupRefund:
    id: int
    order_id: int
    out_refund_no: str
    amount_fen: int
    state: RefundStatus
    reason: str
    requested_by: str
    created_at: datetime
    updated_at: datetime
    refund_id: str | None
    done_at: datetime | None
    note: str


def refund_number(order_id: int, idempotency_key: str) -> str:
    digest = hashlib.sha256(f"{order_id}:{idempotency_key}".encode()).hexdigest()
    return f"MPR{order_id:010d}{digest[:16].upper()}"


def refund(
    rt: Runtime,
    *,
    order_id: int,
    amount: Money,
    reason: str,
    by: str,
    idempotency_key: str,
    notify_url: str | None = None,
) -> TopupRefund:
    """Refund part or all of a credited top-up; the same key returns the same refund."""
    if not reason.strip():
        raise InvalidInput("a refund needs a reason", field="reason")
    if amount.fen <= 0:
        raise InvalidInput("a refund must be more than 0.00 元", field="amount")
    if not idempotency_key.strip():
        raise InvalidInput("an idempotency key is required", field="idempotency_key")
    now = rt.clock.now()
    number = refund_number(order_id, idempotency_key)
    with rt.db.write() as conn:
        order = repo.order(conn, order_id, lock=True)
        existing = _by_number(conn, number)
        if existing is not None:
            if existing.amount_fen != amount.fen:
                raise IdempotencyConflict(
                    f"refund {number} was asked for {Money(existing.amount_fen)} 元",
                    out_refund_no=number,
                )
            if existing.state in FINAL:
                return existing
        else:
            _check_refundable(conn, order, amount)
            _move_money(conn, order, amount, key=f"refund:{number}", back=False, now=now)
            conn.execute(
                insert(topup_refunds).values(
                    order_id=order.id,
                    out_refund_no=number,
                    amount_fen=amount.fen,
                    state=RefundStatus.PROCESSING.value,
                    reason=reason[:200],
                    requested_by=by,
                    created_at=now,
                    updated_at=now,
                )
            )
            audit.record(
                conn,
                at=now,
                actor=by,
                action="money.refund",
                object_type="topup_order",
                object_id=order.id,
                site_id=order.site_id,
                after={"out_refund_no": number, "amount": str(amount)},
                reason=reason,
            )
    request = RefundRequest(
        order.out_trade_no,
        number,
        amount.fen,
        order.amount_fen,
        reason,
        notify_url or registry_notify_url(rt, order.provider, order.merchant),
    )
    try:
        answer = provider_of(rt, order.provider, order.merchant).refund(request)
    except Exception as exc:  # unknown outcome: the notification or a retry decides
        log.exception("refund %s: the provider did not answer", number)
        with rt.db.write() as conn:
            _note(conn, number, f"provider: {exc}", rt.clock.now())
            return _require(conn, number)
    with rt.db.write() as conn:
        settle(conn, answer, rt.clock.now(), provider=order.provider, merchant=order.merchant)
        return _require(conn, number)


def _check_refundable(conn: Connection, order: Order, amount: Money) -> None:
    if order.state is not OrderState.CREDITED:
        raise Conflict(f"only a credited top-up can be refunded ({order.state.value})")
    pending = conn.execute(
        select(func.coalesce(func.sum(topup_refunds.c.amount_fen), 0)).where(
            topup_refunds.c.order_id == order.id,
            topup_refunds.c.state == RefundStatus.PROCESSING.value,
        )
    ).scalar_one()
    left = order.amount_fen - order.refunded_fen - int(pending)
    if amount.fen > left:
        raise InvalidInput(
            f"at most {Money(left)} 元 of this top-up can be refunded", field="amount"
        )
    account = sites.account(conn, order.account_id)
    balance = Money(ledger.balance_fen(conn, account.wallet_id))
    if amount > balance:
        raise InvalidInput(
            f"only the unspent balance ({balance} 元) can be refunded", field="amount"
        )


def _move_money(
    conn: Connection, order: Order, amount: Money, *, key: str, back: bool, now: datetime
) -> None:
    """Wallet -> the provider's clearing account (or back, when the refund failed), then
    settle the account's supply state (ledger rows first, then the account)."""
    account = sites.account(conn, order.account_id)
    site = sites.site(conn, account.site_id)
    clearing = ledger.ensure_ledger_account(
        conn, clearing_code(site.code, order.provider), LedgerAccountKind.ASSET, site.id, now
    )
    if back:  # the refund's own transfer, reversed
        original = ledger.transfer_by_key(conn, key.replace("refund-failed:", "refund:", 1))
        transfer = reversal_of(
            Transfer(
                original.idempotency_key,
                original.debit_account_id,
                original.credit_account_id,
                original.amount_fen,
                original.kind,
            ),
            key,
        )
        memo = f"退款失败退回 refund failed {order.out_trade_no}"
    else:
        transfer = Transfer(key, account.wallet_id, clearing, amount.fen, TransferKind.REFUND)
        memo = f"退款 refund {order.out_trade_no}"
    if not ledger.post(conn, [Posting(transfer, account.id, memo)], actor="refund", now=now):
        return
    settle_account(conn, account.id, cause=key, now=now)


def settle(
    conn: Connection, answer: Refund, now: datetime, *, provider: ProviderName, merchant: str
) -> str:
    """Apply a merchant's word on a refund (its answer, or a refund notification); only
    the merchant the order was paid to speaks for its refunds."""
    found = _by_number(conn, answer.out_refund_no) if answer.out_refund_no else None
    if found is None:
        return "unknown_refund"
    order = repo.order(conn, found.order_id, lock=True)
    if not order.taken_by(provider, merchant):
        return "unknown_refund"
    if found.state in FINAL or answer.state is RefundState.PROCESSING:
        return "unchanged"
    if answer.state is RefundState.SUCCESS:
        refunded = order.refunded_fen + found.amount_fen
        state = order.state
        if refunded == order.amount_fen:
            state = move(state, OrderEvent.REFUNDED)
        repo.save_order(conn, order.id, refunded_fen=refunded, state=state.value, updated_at=now)
        _finish(conn, found, RefundStatus.SUCCEEDED, answer, now)
        return "refunded"
    amount = Money(found.amount_fen)
    _move_money(conn, order, amount, key=f"refund-failed:{found.out_refund_no}", back=True, now=now)
    _finish(conn, found, RefundStatus.FAILED, answer, now)
    return "refund_failed"


def _finish(
    conn: Connection, found: TopupRefund, state: RefundStatus, answer: Refund, now: datetime
) -> None:
    conn.execute(
        update(topup_refunds)
        .where(topup_refunds.c.id == found.id)
        .values(
            state=state.value,
            refund_id=answer.refund_id,
            done_at=answer.done_at or now,
            updated_at=now,
        )
    )


def _note(conn: Connection, number: str, note: str, now: datetime) -> None:
    conn.execute(
        update(topup_refunds)
        .where(topup_refunds.c.out_refund_no == number)
        .values(note=note[:500], updated_at=now)
    )


def _by_number(conn: Connection, number: str) -> TopupRefund | None:
    row = (
        conn.execute(select(topup_refunds).where(topup_refunds.c.out_refund_no == number))
        .mappings()
        .first()
    )
    return to_model(TopupRefund, row) if row else None


def _require(conn: Connection, number: str) -> TopupRefund:
    found = _by_number(conn, number)
    assert found is not None  # noqa: S101  written in this use case
    return found


def refunds_of(rt: Runtime, order_id: int) -> list[TopupRefund]:
    with rt.db.read() as conn:
        repo.order(conn, order_id)
        query = select(topup_refunds).where(topup_refunds.c.order_id == order_id)
        return [
            to_model(TopupRefund, r)
            for r in conn.execute(query.order_by(topup_refunds.c.id)).mappings()
        ]
