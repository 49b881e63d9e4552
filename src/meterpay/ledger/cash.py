"""Use cases of the cash counter (收费台), one transaction each: take a payment in cash
or by bank-card POS and issue its receipt, reverse a receipt, report a shift.

Invariants:
- a payment is the product's cash top-up (``ledger.service.cash_top_up_in``: the
  transfer ``topup:cash:<key>``, the top-up fee, the supply settling, the owner's
  message, the audit) plus its receipt, in one transaction: both or neither; the
  same idempotency key hands back the same receipt and moves nothing;
- a correction is never an edit: ``reverse`` posts the mirror of the top-up (and of
  its fee, if one was charged) as ``reversal`` transfers, at most once per receipt,
  with a reason, written to the audit log with the balance before and after;
- a reversal lowers the balance, so it settles the account's supply state exactly as
  a charge does (``control.supply.settle_locked`` with the account row locked, after
  the ledger rows: the product's lock order): a correction can put an account into
  arrears, with the arrears notice and cut-off rules that follow.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from meterpay.audit import repository as audit
from meterpay.control.supply import settle_account
from meterpay.kernel.errors import IdempotencyConflict, InvalidInput, NotFound
from meterpay.kernel.money import Money
from meterpay.ledger import cash_model
from meterpay.ledger import cash_repository as repo
from meterpay.ledger import repository as ledger
from meterpay.ledger.cash_model import (
    AlreadyReversed,
    CounterDay,
    Issued,
    PaymentMethod,
    Receipt,
    ReceiptView,
    Reversal,
    ShiftReport,
    check_reason,
    receipt_number,
    reversal_key,
)
from meterpay.ledger.model import Transfer
from meterpay.ledger.repository import Posting, TransferRecord
from meterpay.ledger.rules import reversal_of
from meterpay.ledger.service import TopUpResult, cash_top_up_in
from meterpay.runtime import Runtime
from meterpay.sites import repository as sites
from meterpay.sites.model import AccountStatus


def take_payment(
    rt: Runtime,
    *,
    account_id: int,
    amount: Money,
    method: PaymentMethod | str,
    idempotency_key: str,
    cashier: str,
    note: str = "",
) -> Issued:
    """Money at the counter into an account's wallet, with its numbered receipt."""
    paid_by = _method(method)
    with rt.db.write() as conn:
        topped = cash_top_up_in(
            rt,
            conn,
            account_id=account_id,
            amount=amount,
            idempotency_key=idempotency_key,
            cashier=cashier,
            note=note,
        )
        if topped.duplicate:
            return _repeated(conn, topped.transfer, paid_by)
        return Issued(_issue(conn, account_id, topped, paid_by, cashier=cashier, note=note), None)


def reverse(
    rt: Runtime,
    *,
    reason: str,
    by: str,
    receipt_no: str | None = None,
    transfer_key: str | None = None,
) -> Issued:
    """Undo a receipt's payment by reversing transfers, once, with a reason."""
    why = check_reason(reason)
    if (receipt_no is None) == (transfer_key is None):
        raise InvalidInput(
            "name the receipt by its number or by its transfer key", field="receipt_no"
        )
    now = rt.clock.now()
    with rt.db.write() as conn:
        receipt = _find(conn, receipt_no, transfer_key)
        if repo.reversal_of(conn, receipt.id) is not None:
            raise AlreadyReversed(f"receipt {receipt.receipt_no} is reversed already")
        wallet_id = sites.account(conn, receipt.account_id).wallet_id
        before = Money(ledger.balance_fen(conn, wallet_id))
        key = reversal_key(receipt.transfer_key)
        postings = _reversing(conn, receipt, why)
        if key not in ledger.post(conn, postings, actor=by, now=now):
            raise AlreadyReversed(f"receipt {receipt.receipt_no} is reversed already")
        balance = _settle_lowered(conn, receipt.account_id, cause=key, now=now)
        reversal = repo.add_reversal(
            conn,
            {
                "receipt_id": receipt.id,
                "transfer_key": key,
                "reason": why,
                "reversed_by": by,
                "at": now,
                "balance_after_fen": balance.fen,
            },
        )
        _audit_reversal(conn, receipt, reversal, before, len(postings))
        return Issued(receipt, reversal)


def receipt(rt: Runtime, receipt_no: str) -> Issued:
    with rt.db.read() as conn:
        found = repo.receipt_by_no(conn, receipt_no)
        return Issued(found, repo.reversal_of(conn, found.id))


def receipt_view(rt: Runtime, receipt_no: str) -> ReceiptView:
    """A receipt with the site, account, unit and payer its printed form shows."""
    with rt.db.read() as conn:
        return repo.receipt_view(conn, receipt_no)


def shift_report(
    rt: Runtime,
    *,
    cashier: str | None,
    start: datetime,
    end: datetime,
    site_id: int | None = None,
) -> ShiftReport:
    """A cashier's receipts in ``[start, end)`` and the reversals of their receipts made
    in it, totalled per method; ``cashier=None``: every cashier (of ``site_id``)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("start and end need a time zone offset", field="start")
    if end <= start:
        raise InvalidInput("end must be after start", field="end")
    if end - start > timedelta(days=366):
        raise InvalidInput("a report covers at most a year", field="end")
    with rt.db.read() as conn:
        receipts = repo.receipts_between(
            conn, cashier=cashier, site_id=site_id, start=start, end=end
        )
        reversals = repo.reversals_between(
            conn, cashier=cashier, site_id=site_id, start=start, end=end
        )
    return cash_model.shift_report(
        cashier=cashier,
        site_id=site_id,
        start=start,
        end=end,
        receipts=receipts,
        reversals=reversals,
    )


def day_report(
    rt: Runtime,
    *,
    site_id: int | None = None,
    day: date | None = None,
    cashier: str | None = None,
) -> CounterDay | None:
    """One day of a site's counter on the site's own calendar (00:00 to 00:00); the
    first site and today when not named; None when there is no site at all."""
    now = rt.clock.now()
    with rt.db.read() as conn:
        chosen = site_id if site_id is not None else repo.first_site_id(conn)
        if chosen is None:
            return None
        site = sites.site(conn, chosen)
    zone = ZoneInfo(site.timezone)
    local_day = day or now.astimezone(zone).date()
    start = datetime.combine(local_day, time(), tzinfo=zone)
    end = datetime.combine(local_day + timedelta(days=1), time(), tzinfo=zone)
    report = shift_report(rt, cashier=cashier, start=start, end=end, site_id=site.id)
    return CounterDay(site=site, day=local_day, at=now, report=report)


# --- the pieces -------------------------------------------------------------------------


def _method(method: PaymentMethod | str) -> PaymentMethod:
    try:
        return PaymentMethod(method)
    except ValueError:
        choices = ", ".join(m.value for m in PaymentMethod)
        raise InvalidInput(f"payment method must be one of {choices}", field="method") from None


def _issue(
    conn: Connection,
    account_id: int,
    topped: TopUpResult,
    method: PaymentMethod,
    *,
    cashier: str,
    note: str,
) -> Receipt:
    """Number and store the receipt of a new top-up; the number's row is taken last."""
    transfer = topped.transfer
    account = sites.account(conn, account_id)
    site = sites.site(conn, account.site_id)
    at = transfer.created_at
    year = at.astimezone(ZoneInfo(site.timezone)).year
    seq = repo.next_seq(conn, site.id, year)
    issued = repo.add_receipt(
        conn,
        {
            "receipt_no": receipt_number(site.code, year, seq),
            "site_id": site.id,
            "year": year,
            "seq": seq,
            "transfer_key": transfer.idempotency_key,
            "account_id": account.id,
            "amount_fen": transfer.amount_fen,
            "method": method.value,
            "cashier": cashier,
            "at": at,
            "note": note,
            "balance_after_fen": topped.balance.fen,
        },
    )
    audit.record(
        conn,
        at=at,
        actor=cashier,
        action="counter.payment",
        object_type="counter_receipt",
        object_id=issued.receipt_no,
        site_id=site.id,
        after={
            "account_id": account.id,
            "amount": str(issued.amount),
            "method": method.value,
            "key": transfer.idempotency_key,
            "balance": str(topped.balance),
        },
        reason=note,
    )
    return issued


def _repeated(conn: Connection, transfer: TransferRecord, method: PaymentMethod) -> Issued:
    """The receipt of a repeated request, which must be the same payment."""
    found = repo.receipt_by_key(conn, transfer.idempotency_key)
    if found is None or found.method is not method:
        raise IdempotencyConflict(
            f"idempotency key {transfer.idempotency_key} was used for a different payment",
            key=transfer.idempotency_key,
        )
    return Issued(found, repo.reversal_of(conn, found.id), duplicate=True)


def _find(conn: Connection, receipt_no: str | None, transfer_key: str | None) -> Receipt:
    if receipt_no is not None:
        return repo.receipt_by_no(conn, receipt_no)
    found = repo.receipt_by_key(conn, transfer_key or "")
    if found is None:
        raise NotFound(f"no counter receipt for transfer {transfer_key}", key=transfer_key)
    return found


def _reversing(conn: Connection, receipt: Receipt, reason: str) -> list[Posting]:
    """The mirror of the top-up and, when one was charged, of its top-up fee."""
    memo = f"冲正 reversal {receipt.receipt_no}: {reason}"[:500]
    postings = []
    for key in (receipt.transfer_key, f"{receipt.transfer_key}:fee"):
        try:
            original = _transfer(ledger.transfer_by_key(conn, key))
        except NotFound:
            continue  # no fee was charged
        mirror = reversal_of(original, reversal_key(key))
        postings.append(Posting(mirror, account_id=receipt.account_id, memo=memo))
    return postings


def _transfer(record: TransferRecord) -> Transfer:
    return Transfer(
        record.idempotency_key,
        record.debit_account_id,
        record.credit_account_id,
        record.amount_fen,
        record.kind,
        record.reverses_key,
    )


def _settle_lowered(conn: Connection, account_id: int, *, cause: str, now: datetime) -> Money:
    """After the wallet went down (in this transaction): lock the account row and settle
    its supply state as a charge would: warnings, arrears and the notices that follow."""
    supply, balance = settle_account(conn, account_id, cause=cause, now=now)
    if sites.account(conn, account_id).status is not AccountStatus.OPEN:
        raise InvalidInput(f"account {supply.number} is closed", field="receipt_no")
    return balance


def _audit_reversal(
    conn: Connection, receipt: Receipt, reversal: Reversal, before: Money, transfers: int
) -> None:
    audit.record(
        conn,
        at=reversal.at,
        actor=reversal.reversed_by,
        action="counter.reverse",
        object_type="counter_receipt",
        object_id=receipt.receipt_no,
        site_id=receipt.site_id,
        before={
            "reversed": False,
            "balance": str(before),
            "amount": str(receipt.amount),
            "method": receipt.method.value,
            "key": receipt.transfer_key,
        },
        after={
            "reversed": True,
            "balance": str(reversal.balance_after),
            "reversal_key": reversal.transfer_key,
            "transfers": transfers,
        },
        reason=reversal.reason,
    )
