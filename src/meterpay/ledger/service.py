"""Use cases on money: cash top-up, balances, history, ledger verification."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from meterpay.audit import repository as audit
from meterpay.control.supply import settle_account
from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.money import Money
from meterpay.ledger import repository as repo
from meterpay.ledger.model import LedgerAccountKind, Transfer, TransferKind, Violation
from meterpay.ledger.repository import Posting, TransferRecord
from meterpay.ledger.rules import check_invariants
from meterpay.notify import outbox as notify
from meterpay.notify.model import Topic
from meterpay.runtime import Runtime
from meterpay.sites import repository as sites
from meterpay.sites.model import Account, AccountStatus, Site, cash_code, revenue_code
from meterpay.tariffs.fees import topup_fee_amount
from meterpay.tariffs.repository import price_schedules


@dataclass(frozen=True, slots=True)
class TopUpResult:
    transfer: TransferRecord
    balance: Money
    duplicate: bool


def cash_top_up(
    rt: Runtime,
    *,
    account_id: int,
    amount: Money,
    idempotency_key: str,
    cashier: str,
    note: str = "",
) -> TopUpResult:
    """Cash or POS money at the counter into an account's wallet, exactly once.

    Top-ups are never refused for debts of any kind; only a closed account or
    a non-positive amount is refused.
    """
    with rt.db.write() as conn:
        return cash_top_up_in(
            rt,
            conn,
            account_id=account_id,
            amount=amount,
            idempotency_key=idempotency_key,
            cashier=cashier,
            note=note,
        )


def cash_top_up_in(
    rt: Runtime,
    conn: Connection,
    *,
    account_id: int,
    amount: Money,
    idempotency_key: str,
    cashier: str,
    note: str = "",
) -> TopUpResult:
    """``cash_top_up`` inside the caller's transaction (seeding, imports)."""
    if amount.fen <= 0:
        raise InvalidInput("a top-up must be more than 0.00 元", field="amount")
    if not idempotency_key.strip():
        raise InvalidInput("an idempotency key is required", field="idempotency_key")
    key = f"topup:cash:{idempotency_key}"
    now = rt.clock.now()
    # Ledger rows before account rows (the product's lock order): the wallet moves
    # first, then the account is locked to settle its supply state.
    account = sites.account(conn, account_id)
    if account.status is not AccountStatus.OPEN:
        raise InvalidInput(f"account {account.number} is closed", field="account_id")
    site = sites.site(conn, account.site_id)
    transfer = Transfer(
        key,
        repo.ledger_account_id(conn, cash_code(site.code)),
        account.wallet_id,
        amount.fen,
        TransferKind.TOP_UP,
    )
    new = repo.post(
        conn, [Posting(transfer, account_id=account_id, memo=note)], actor=cashier, now=now
    )
    stored = repo.require_same(conn, transfer)
    if new:
        _charge_topup_fee(conn, account, site, transfer, actor=cashier, now=now)
        credited(conn, account_id, cause=key, amount=amount, now=now)
        audit.record(
            conn,
            at=now,
            actor=cashier,
            action="money.top_up",
            object_type="account",
            object_id=account_id,
            site_id=site.id,
            after={"amount": str(amount), "key": key},
            reason=note,
        )
    balance = Money(repo.balance_fen(conn, account.wallet_id))
    return TopUpResult(stored, balance, duplicate=not new)


def credited(
    conn: Connection, account_id: int, *, cause: str, amount: Money, now: datetime
) -> None:
    """After money reached an account's wallet (in the same transaction): settle its
    supply state — a restore is queued at once when it is paid up, any time of day —
    and queue the owner's receipt. Closed meanwhile: the whole top-up is refused."""
    supply, balance = settle_account(conn, account_id, cause=cause, now=now)
    if sites.account(conn, account_id).status is not AccountStatus.OPEN:
        raise InvalidInput(f"account {supply.number} is closed", field="account_id")
    notify.queue_in(
        conn,
        site_id=supply.site_id,
        topic=Topic.TOP_UP_RECEIPT,
        dedupe_key=f"{Topic.TOP_UP_RECEIPT.value}:{account_id}:{cause}",
        now=now,
        account_id=account_id,
        customer_id=supply.customer_id,
        params={
            "account_number": supply.number,
            "utility": supply.utility.value,
            "amount": str(amount),
            "balance": str(balance),
        },
    )


def _charge_topup_fee(
    conn: Connection, account: Account, site: Site, top_up: Transfer, *, actor: str, now: datetime
) -> None:
    """The tariff's top-up service fee, if it sets one (off by default; see its warnings)."""
    versions = price_schedules(conn, [account.tariff_id]).get(account.tariff_id, [])
    current = [v for v in versions if v.effective_from <= now and v.components is not None]
    fee = current[-1].components.topup_fee if current and current[-1].components else None
    amount = topup_fee_amount(fee, Money(top_up.amount_fen))
    if amount.fen <= 0:
        return
    revenue_id = repo.ensure_ledger_account(
        conn,
        f"{revenue_code(site.code, account.utility)}:topup_fee",
        LedgerAccountKind.REVENUE,
        site.id,
        now,
    )
    fee_transfer = Transfer(
        f"{top_up.idempotency_key}:fee",
        account.wallet_id,
        revenue_id,
        amount.fen,
        TransferKind.CHARGE,
    )
    repo.post(
        conn,
        [Posting(fee_transfer, account.id, "充值服务费 top-up service fee")],
        actor=actor,
        now=now,
    )


def account_balance(rt: Runtime, account_id: int) -> Money:
    with rt.db.read() as conn:
        account = sites.account(conn, account_id)
        return Money(repo.balance_fen(conn, account.wallet_id))


def account_history(
    rt: Runtime, account_id: int, *, before_id: int | None = None, limit: int = 50
) -> list[TransferRecord]:
    with rt.db.read() as conn:
        sites.account(conn, account_id)
        return repo.history(conn, account_id, before_id=before_id, limit=limit)


def verify_ledger(rt: Runtime) -> list[Violation]:
    """Check every ledger invariant over the whole ledger (read-only)."""
    with rt.db.read() as conn:
        return check_invariants(repo.all_states(conn), repo.stream_transfers(conn))
