"""Ledger queries: ledger accounts, posting transfers, balances, history.

Posting is insert-on-conflict-do-nothing on the idempotency key, then the
posted totals of the touched ledger accounts move by the sum of the NEW
transfers only, in ledger-account id order (a global lock order, so
concurrent postings never deadlock). A use case that must decide before it
posts (a charge reads its account's tier position first) takes the same row
locks up front with ``lock_ledger_accounts``. Repositories never commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Integer, RowMapping, any_, literal, or_, select
from sqlalchemy.dialects import postgresql

from meterpay.db.bulk import copy_rows, is_postgres, update_many
from meterpay.db.rows import insert_ignoring_conflicts, insert_row
from meterpay.db.schema import ledger_accounts, transfers
from meterpay.kernel.errors import IdempotencyConflict, NotFound
from meterpay.ledger.model import LedgerAccountKind, LedgerAccountState, Transfer, TransferKind
from meterpay.ledger.rules import balance_of


@dataclass(frozen=True, slots=True)
class Posting:
    """A transfer with the bookkeeping the ledger keeps beside it."""

    transfer: Transfer
    account_id: int | None = None
    memo: str = ""


@dataclass(frozen=True, slots=True)
class TransferRecord:
    id: int
    idempotency_key: str
    debit_account_id: int
    credit_account_id: int
    amount_fen: int
    kind: TransferKind
    reverses_key: str | None
    account_id: int | None
    memo: str
    actor: str
    created_at: datetime


def create_ledger_account(
    conn: Connection, code: str, kind: LedgerAccountKind, site_id: int | None, now: datetime
) -> int:
    return insert_row(
        conn,
        ledger_accounts,
        {
            "code": code,
            "kind": kind.value,
            "site_id": site_id,
            "created_at": now,
            "debits_posted": 0,
            "credits_posted": 0,
        },
    )


def ledger_account_id(conn: Connection, code: str) -> int:
    found = conn.execute(select(ledger_accounts.c.id).where(ledger_accounts.c.code == code))
    row_id = found.scalar_one_or_none()
    if row_id is None:
        raise NotFound(f"ledger account {code} does not exist", code=code)
    return int(row_id)


def ensure_ledger_account(
    conn: Connection, code: str, kind: LedgerAccountKind, site_id: int | None, now: datetime
) -> int:
    """The id of the ledger account ``code``, created first if it does not exist.

    Concurrent first uses (a site's first payments arriving at once) all get the one
    account: the insert skips a code another transaction has just inserted, and the
    select then waits for that transaction and reads its row.
    """
    query = select(ledger_accounts.c.id).where(ledger_accounts.c.code == code)
    existing = conn.execute(query).scalar_one_or_none()
    if existing is not None:
        return int(existing)
    row = {
        "code": code,
        "kind": kind.value,
        "site_id": site_id,
        "created_at": now,
        "debits_posted": 0,
        "credits_posted": 0,
    }
    created = conn.execute(
        insert_ignoring_conflicts(conn, ledger_accounts)
        .values(**row)
        .returning(ledger_accounts.c.id)
    ).scalar_one_or_none()
    if created is not None:
        return int(created)
    return int(conn.execute(query).scalar_one())


def ledger_account_ids(conn: Connection, codes: set[str]) -> dict[str, int]:
    found = conn.execute(
        select(ledger_accounts.c.code, ledger_accounts.c.id).where(
            ledger_accounts.c.code.in_(sorted(codes))
        )
    )
    ids = {str(code): int(lid) for code, lid in found}
    missing = codes - ids.keys()
    if missing:
        raise NotFound(f"ledger accounts {sorted(missing)} do not exist", codes=sorted(missing))
    return ids


def lock_ledger_accounts(
    conn: Connection, ledger_account_ids: Iterable[int], codes: Iterable[str] = ()
) -> None:
    """Row-lock ledger accounts, by id and by code (codes that do not exist are
    skipped), in id order: the locks a posting to them takes, taken before the
    decision that leads to the posting. ``FOR NO KEY UPDATE``, the posting's own mode
    (``bulk.update_many``), so the posting later never strengthens a lock (a stronger
    lock would wait for other transactions' foreign-key checks on the row, which may be
    waiting for us).
    SQLite's single writer needs no row locks."""
    ids, wanted = sorted(set(ledger_account_ids)), sorted(set(codes))
    if not is_postgres(conn) or not (ids or wanted):
        return
    query = (
        select(ledger_accounts.c.id)
        .where(
            or_(
                ledger_accounts.c.id == any_(literal(ids, type_=postgresql.ARRAY(Integer))),
                ledger_accounts.c.code.in_(wanted),
            )
        )
        .order_by(ledger_accounts.c.id)
        .with_for_update(key_share=True)
    )
    conn.execute(query).all()


def post(conn: Connection, postings: Sequence[Posting], *, actor: str, now: datetime) -> set[str]:
    """Post transfers exactly once; return the keys that were new."""
    if not postings:
        return set()
    rows = [_row(p, actor, now) for p in postings]
    stmt = insert_ignoring_conflicts(conn, transfers).returning(transfers.c.idempotency_key)
    new_keys = {str(k) for k in conn.execute(stmt, rows).scalars()}
    _apply_totals([p.transfer for p in postings if p.transfer.idempotency_key in new_keys], conn)
    return new_keys


TRANSFER_COLUMNS = (
    "idempotency_key",
    "debit_account_id",
    "credit_account_id",
    "amount_fen",
    "kind",
    "reverses_key",
    "account_id",
    "memo",
    "actor",
    "created_at",
)


def post_fresh(conn: Connection, postings: Sequence[Posting], *, actor: str, now: datetime) -> None:
    """Post transfers whose keys cannot exist yet (e.g. keyed by a reading stored
    in this same transaction) by bulk append. Should a key exist after all, the
    unique constraint aborts the whole transaction: nothing is posted twice."""
    if postings:
        copy_rows(conn, transfers, TRANSFER_COLUMNS, [_row(p, actor, now) for p in postings])
        _apply_totals([p.transfer for p in postings], conn)


def require_same(conn: Connection, transfer: Transfer) -> TransferRecord:
    """For a repeated key: the stored transfer, which must be the same request."""
    stored = transfer_by_key(conn, transfer.idempotency_key)
    same = (stored.debit_account_id, stored.credit_account_id, stored.amount_fen) == (
        transfer.debit_account_id,
        transfer.credit_account_id,
        transfer.amount_fen,
    )
    if not same:
        raise IdempotencyConflict(
            f"idempotency key {transfer.idempotency_key} was used for a different transfer",
            key=transfer.idempotency_key,
        )
    return stored


def transfer_by_key(conn: Connection, key: str) -> TransferRecord:
    row = conn.execute(select(transfers).where(transfers.c.idempotency_key == key)).mappings()
    found = row.first()
    if found is None:
        raise NotFound(f"no transfer with key {key}", key=key)
    return _record(found)


def balance_fen(conn: Connection, ledger_account_id: int) -> int:
    row = conn.execute(
        select(
            ledger_accounts.c.kind,
            ledger_accounts.c.debits_posted,
            ledger_accounts.c.credits_posted,
        ).where(ledger_accounts.c.id == ledger_account_id)
    ).one()
    return balance_of(LedgerAccountKind(row.kind), int(row.debits_posted), int(row.credits_posted))


def wallet_balances(conn: Connection, wallet_ids: Iterable[int]) -> dict[int, int]:
    """Wallets' balances in fen (credit-normal), as this transaction sees them: exact for
    the wallets it has just moved, whose rows it holds until it ends."""
    ids = sorted(set(wallet_ids))
    if not ids:
        return {}
    query = select(
        ledger_accounts.c.id, ledger_accounts.c.debits_posted, ledger_accounts.c.credits_posted
    ).where(ledger_accounts.c.id.in_(ids))
    return {lid: int(credits) - int(debits) for lid, debits, credits in conn.execute(query)}


def history(
    conn: Connection, account_id: int, *, before_id: int | None, limit: int
) -> list[TransferRecord]:
    """Newest first, keyset-paged by transfer id."""
    query = select(transfers).where(transfers.c.account_id == account_id)
    if before_id is not None:
        query = query.where(transfers.c.id < before_id)
    query = query.order_by(transfers.c.id.desc()).limit(limit)
    return [_record(row) for row in conn.execute(query).mappings()]


def all_states(conn: Connection) -> list[LedgerAccountState]:
    query = select(ledger_accounts).order_by(ledger_accounts.c.id)
    return [
        LedgerAccountState(
            int(r.id),
            str(r.code),
            LedgerAccountKind(r.kind),
            int(r.debits_posted),
            int(r.credits_posted),
        )
        for r in conn.execute(query)
    ]


def stream_transfers(conn: Connection, chunk: int = 10_000) -> Iterator[Transfer]:
    result = conn.execution_options(yield_per=chunk).execute(
        select(transfers).order_by(transfers.c.id)
    )
    for row in result.mappings():
        yield _transfer(row)


def _apply_totals(new: Sequence[Transfer], conn: Connection) -> None:
    """Move posted totals by the new transfers, one row per ledger account, in id order."""
    totals: dict[int, dict[str, int]] = defaultdict(
        lambda: {"debits_posted": 0, "credits_posted": 0}
    )
    for t in new:
        totals[t.debit_account_id]["debits_posted"] += t.amount_fen
        totals[t.credit_account_id]["credits_posted"] += t.amount_fen
    rows = [{"id": lid, **moved} for lid, moved in totals.items()]
    update_many(
        conn, ledger_accounts, "id", ("debits_posted", "credits_posted"), rows, increment=True
    )


def _row(p: Posting, actor: str, now: datetime) -> dict[str, object]:
    t = p.transfer
    return {
        "idempotency_key": t.idempotency_key,
        "debit_account_id": t.debit_account_id,
        "credit_account_id": t.credit_account_id,
        "amount_fen": t.amount_fen,
        "kind": t.kind.value,
        "reverses_key": t.reverses_key,
        "account_id": p.account_id,
        "memo": p.memo,
        "actor": actor,
        "created_at": now,
    }


def _transfer(r: RowMapping) -> Transfer:
    return Transfer(
        idempotency_key=r["idempotency_key"],
        debit_account_id=r["debit_account_id"],
        credit_account_id=r["credit_account_id"],
        amount_fen=int(r["amount_fen"]),
        kind=TransferKind(r["kind"]),
        reverses_key=r["reverses_key"],
    )


def _record(r: RowMapping) -> TransferRecord:
    return TransferRecord(
        id=int(r["id"]),
        idempotency_key=r["idempotency_key"],
        debit_account_id=r["debit_account_id"],
        credit_account_id=r["credit_account_id"],
        amount_fen=int(r["amount_fen"]),
        kind=TransferKind(r["kind"]),
        reverses_key=r["reverses_key"],
        account_id=r["account_id"],
        memo=r["memo"],
        actor=r["actor"],
        created_at=r["created_at"],
    )
