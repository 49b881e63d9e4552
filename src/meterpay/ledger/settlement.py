"""Move-out settlement (退费): close an account when its occupant leaves, in ONE transaction.

1. the final readings are ingested inside the settlement's transaction (billed as usual,
   exactly once: a retry after a crash either finds the settlement or starts over);
2. the balance after the final charges is paid out in cash (wallet -> the site's cash
   account) or transferred into the next occupant's wallet, which settles that account's
   supply like a top-up (``ledger.service.credited``); a negative balance is not paid:
   it stays as a debt on the closed account, the next occupant never inherits it;
3. the meters are handed over at their last accepted reading (their cursor): they bill
   the next occupant's account (or nobody) from there, with no gap and nothing twice;
   the old account's arrears cuts are withdrawn, and meters an arrears cut may have
   opened are restored for a next occupant who is not in arrears;
4. the account is closed; one ``move_out_settlements`` row and one audit entry.

The same idempotency key hands back the same settlement; another request under it, or a
second settlement of a closed account, is refused. Locks follow the product's order:
meters, ledger rows, account rows, command rows.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from meterpay.audit import repository as audit
from meterpay.billing.repository import TierStateMoved
from meterpay.control import outbox
from meterpay.control import repository as control
from meterpay.control.commands import CommandKind
from meterpay.control.model import SupplyState
from meterpay.control.repository import SupplyStateMoved
from meterpay.db.engine import TRANSIENT_RETRIES, is_transient
from meterpay.db.partitions import month_of
from meterpay.kernel.clock import require_aware
from meterpay.kernel.errors import IdempotencyConflict, InvalidInput, NotFound
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger import repository as ledger
from meterpay.ledger import settlement_repository as repo
from meterpay.ledger.model import Transfer, TransferKind
from meterpay.ledger.repository import Posting
from meterpay.ledger.service import credited
from meterpay.ledger.settlement_model import (
    AlreadySettled,
    FinalReading,
    HandedOver,
    Payout,
    Settlement,
    SettlementView,
    check_final_readings,
    check_next_occupant,
    check_request,
    closing,
    payout_key,
    refused_reading,
    request_digest,
    restore_cause,
)
from meterpay.metering.ingest import ReadingOutcome, ingest_in
from meterpay.metering.meters import Meter, ReadingIn
from meterpay.runtime import Runtime
from meterpay.sites import repository as sites
from meterpay.sites.model import Account, AccountStatus, cash_code

CUT_STATES = (SupplyState.IN_ARREARS, SupplyState.CUT_OFF)


@dataclass(frozen=True, slots=True)
class MoveOut:
    """One settlement request, checked for shape."""

    account_id: int
    readings: tuple[ReadingIn, ...]
    payout: Payout
    to_account_id: int | None
    reason: str
    by: str
    key: str
    digest: str


def settle_move_out(
    rt: Runtime,
    *,
    account_id: int,
    final_readings: Sequence[ReadingIn] = (),
    payout: Payout | str,
    to_account_id: int | None = None,
    reason: str,
    by: str,
    idempotency_key: str,
) -> Settlement:
    """Final readings, final charges, payout or debt, meters handed over, account
    closed: all or nothing, once per account and per idempotency key."""
    method, why = check_request(
        account_id=account_id,
        payout=payout,
        to_account_id=to_account_id,
        reason=reason,
        idempotency_key=idempotency_key,
    )
    for r in final_readings:
        require_aware(r.read_at)
    readings = tuple(final_readings)
    request = MoveOut(
        account_id,
        readings,
        method,
        to_account_id,
        why,
        by,
        idempotency_key.strip(),
        request_digest(
            account_id=account_id, payout=method, to_account_id=to_account_id, readings=readings
        ),
    )
    # Partitions first, outside the write transaction (as ingest does): one connection.
    rt.partitions.ensure_with(rt.db.engine, {month_of(r.read_at) for r in readings})
    for attempt in range(TRANSIENT_RETRIES):
        try:
            with rt.db.write() as conn:
                return _settle(rt, conn, request)
        except (DBAPIError, TierStateMoved, SupplyStateMoved) as exc:
            transient = isinstance(exc, (TierStateMoved, SupplyStateMoved)) or is_transient(exc)
            if not transient or attempt == TRANSIENT_RETRIES - 1:
                raise
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311  jitter only
    raise AssertionError("unreachable")


def get_settlement(rt: Runtime, settlement_id: int) -> Settlement:
    with rt.db.read() as conn:
        return repo.by_id(conn, settlement_id)


def settlements_of(rt: Runtime, account_id: int) -> list[Settlement]:
    """The settlement that closed the account and those that handed over to it."""
    with rt.db.read() as conn:
        sites.account(conn, account_id)
        return repo.of_account(conn, account_id)


def settlement_view(rt: Runtime, settlement_id: int) -> SettlementView:
    with rt.db.read() as conn:
        return repo.view(conn, settlement_id)


def _settle(rt: Runtime, conn: Connection, request: MoveOut) -> Settlement:
    account, nxt, meter_ids = _lock(conn, request)
    repeated = _repeated(conn, request)
    if repeated is not None:
        return repeated
    account, nxt = _parties(conn, account.id, nxt)
    check_final_readings(request.readings, meter_ids)
    now = rt.clock.now()
    opening = ledger.balance_fen(conn, account.wallet_id)
    charged = _final_charges(rt, conn, request)
    balance = ledger.balance_fen(conn, account.wallet_id)
    amounts = closing(balance)
    transfer_key = _pay_out(conn, account, nxt, request, amount_fen=amounts.payout_fen, now=now)
    handed = _hand_over(conn, account, nxt, meter_ids, by=request.by, now=now)
    if nxt is not None and transfer_key is not None and request.payout is Payout.TRANSFER:
        credited(conn, nxt.id, cause=transfer_key, amount=Money(amounts.payout_fen), now=now)
    to_id = nxt.id if nxt is not None else None
    settlement = repo.add(
        conn,
        {
            "idempotency_key": request.key,
            "request_digest": request.digest,
            "site_id": account.site_id,
            "account_id": account.id,
            "final_readings": [
                repo.final_reading_json(f) for f in _final_readings(handed, request, charged)
            ],
            "charges_fen": opening - balance,
            "balance_fen": balance,
            "payout": request.payout.value,
            "payout_fen": amounts.payout_fen,
            "to_account_id": to_id,
            "transfer_key": transfer_key,
            "debt_fen": amounts.debt_fen,
            "meters": [repo.handed_over_json(HandedOver(m.id, m.address, to_id)) for m in handed],
            "settled_by": request.by,
            "at": now,
            "reason": request.reason,
        },
    )
    _audit(conn, account, settlement)
    return settlement


def _lock(conn: Connection, request: MoveOut) -> tuple[Account, Account | None, list[int]]:
    """The account's meters, then the ledger rows the settlement moves."""
    account = sites.account(conn, request.account_id)
    meter_ids = repo.lock_meters_of(conn, account.id)
    nxt = _next_occupant(conn, request.to_account_id)
    repo.lock_ledger_rows(conn, _moved_ledger_rows(conn, account, nxt, request.payout))
    return account, nxt, meter_ids


def _parties(
    conn: Connection, account_id: int, nxt: Account | None
) -> tuple[Account, Account | None]:
    """Both accounts read again under the locks: a concurrent settlement has committed."""
    account = sites.account(conn, account_id)
    if account.status is not AccountStatus.OPEN:
        raise AlreadySettled(f"account {account.number} is closed already", account_id=account.id)
    if nxt is None:
        return account, None
    nxt = sites.account(conn, nxt.id)
    check_next_occupant(account, nxt)
    return account, nxt


def _hand_over(
    conn: Connection,
    account: Account,
    nxt: Account | None,
    meter_ids: Sequence[int],
    *,
    by: str,
    now: datetime,
) -> list[Meter]:
    """Account rows (after the ledger rows), then the meters change hands at their
    cursor, the account closes, and its arrears cuts are withdrawn (command rows)."""
    for locked in sorted({account.id, *([nxt.id] if nxt is not None else [])}):
        sites.account(conn, locked, lock=True)
    handed = repo.meters_by_id(conn, meter_ids)
    before = control.account_supply(conn, account.id).state
    repo.hand_over(conn, meter_ids, nxt.id if nxt is not None else None)
    repo.close_account(conn, account.id, now)
    withdrawn = outbox.withdraw_in(
        conn,
        kind=CommandKind.CUT,
        now=now,
        reason=f"account {account.number} closed at move-out",
        account_id=account.id,
        cause_prefix=f"arrears:{account.id}:",
    )
    if nxt is not None and (before is SupplyState.CUT_OFF or withdrawn):
        _restore_for_next(conn, account, nxt, handed, by=by, now=now)
    return handed


def _next_occupant(conn: Connection, to_account_id: int | None) -> Account | None:
    if to_account_id is None:
        return None
    try:
        return sites.account(conn, to_account_id)
    except NotFound:
        raise InvalidInput(
            f"account {to_account_id} does not exist", field="to_account_id"
        ) from None


def _moved_ledger_rows(
    conn: Connection, account: Account, nxt: Account | None, payout: Payout
) -> list[int]:
    rows = [account.wallet_id]
    if payout is Payout.CASH:
        rows.append(
            ledger.ledger_account_id(conn, cash_code(sites.site(conn, account.site_id).code))
        )
    elif nxt is not None:
        rows.append(nxt.wallet_id)
    return rows


def _repeated(conn: Connection, request: MoveOut) -> Settlement | None:
    found = repo.by_key(conn, request.key)
    if found is None:
        return None
    settlement, digest = found
    if digest != request.digest:
        raise IdempotencyConflict(
            f"idempotency key {request.key} was used for another move-out settlement",
            key=request.key,
            settlement_id=settlement.id,
        )
    return replace(settlement, duplicate=True)


def _final_charges(rt: Runtime, conn: Connection, request: MoveOut) -> dict[int, int]:
    """Ingest the final readings in this transaction; what each meter's reading charged.
    One that would not bill refuses the whole settlement (nothing is kept)."""
    if not request.readings:
        return {}
    outcomes = ingest_in(rt, conn, request.readings, actor=request.by)
    refused = [o for o in outcomes if refused_reading(o.quality, o.flags)]
    if refused:
        raise InvalidInput(
            "final readings that would not bill: "
            + "; ".join(_refusal(o) for o in refused)
            + "; nothing was changed",
            field="final_readings",
            meters=[o.meter_id for o in refused],
        )
    return {o.meter_id: o.charge_fen for o in outcomes}


def _refusal(o: ReadingOutcome) -> str:
    what = ", ".join(o.flags) or "another total is stored at that time"
    return f"meter {o.meter_id} at {o.read_at.isoformat()} is {o.quality} ({what})"


def _pay_out(
    conn: Connection,
    account: Account,
    nxt: Account | None,
    request: MoveOut,
    *,
    amount_fen: int,
    now: datetime,
) -> str | None:
    """Post the payout (if there is anything to pay); its transfer key."""
    if amount_fen <= 0:
        return None
    if request.payout is Payout.CASH:
        site = sites.site(conn, account.site_id)
        to_id, memo = (
            ledger.ledger_account_id(conn, cash_code(site.code)),
            "退费 现金 move-out payout",
        )
    else:
        assert nxt is not None  # noqa: S101  check_request demands the next occupant
        to_id, memo = nxt.wallet_id, f"退费 转入 {nxt.number} move-out transfer"
    key = payout_key(account.id)
    transfer = Transfer(key, account.wallet_id, to_id, amount_fen, TransferKind.PAYOUT)
    ledger.post(conn, [Posting(transfer, account.id, memo)], actor=request.by, now=now)
    ledger.require_same(conn, transfer)
    return key


def _restore_for_next(
    conn: Connection,
    account: Account,
    nxt: Account,
    handed: Sequence[Meter],
    *,
    by: str,
    now: datetime,
) -> None:
    """Meters an arrears cut of the old account opened (or may have: a cut was on its
    way) are closed again for a next occupant who is not in arrears; an operator's
    emergency cut stands. A next occupant in arrears keeps them as its own state says
    (a credit that lifts it restores all its meters, these included)."""
    if not handed or control.account_supply(conn, nxt.id).state in CUT_STATES:
        return
    held = outbox.manually_cut(conn, [m.id for m in handed])
    style = control.site_policy(conn, nxt.site_id, nxt.utility).policy.restore_style
    for meter in handed:
        if meter.id in held:
            continue
        outbox.queue_in(
            conn,
            meter_id=meter.id,
            kind=CommandKind.RESTORE,
            cause_key=restore_cause(account.id, meter.id),
            requested_by=by,
            now=now,
            account_id=nxt.id,
            reason=f"迁入恢复供应 handed over from {account.number}",
            option=style.value if nxt.utility is Utility.ELECTRICITY else None,
        )


def _final_readings(
    handed: Sequence[Meter], request: MoveOut, charged: dict[int, int]
) -> list[FinalReading]:
    """Each meter at its cursor after the final readings: its handover reading."""
    entered_at = {r.meter_id: r.read_at for r in request.readings}
    return [
        FinalReading(
            meter_id=m.id,
            address=m.address,
            read_at=m.last_read_at or m.installed_at,
            total=m.last_total if m.last_total is not None else Decimal(0),
            charge=Money(charged.get(m.id, 0)),
            entered=m.last_read_at is not None and entered_at.get(m.id) == m.last_read_at,
        )
        for m in handed
    ]


def _audit(conn: Connection, account: Account, s: Settlement) -> None:
    audit.record(
        conn,
        at=s.at,
        actor=s.settled_by,
        action="account.move_out",
        object_type="account",
        object_id=account.id,
        site_id=account.site_id,
        before={"status": account.status.value, "balance": str(s.balance)},
        after={
            "status": AccountStatus.CLOSED.value,
            "settlement_id": s.id,
            "key": s.idempotency_key,
            "charges": str(s.charges),
            "payout": s.payout.value,
            "payout_amount": str(s.payout_amount),
            "to_account_id": s.to_account_id,
            "transfer_key": s.transfer_key,
            "debt": str(s.debt),
            "meters": ",".join(str(m.meter_id) for m in s.meters),
        },
        reason=s.reason,
    )
