"""Settle accounts' supply states after their balances moved (charges, top-ups,
credits), inside the transaction that moved them.

Invariants:
- only the utility account's own balance is judged (``control.rules.evaluate``):
  no other debt can reach a cut-off or a refused top-up;
- a balance that lifts an account in arrears or cut off to its restore point
  queues exactly one restore command per meter, keyed by the balance change that
  caused it, and withdraws the account's open cut commands in the same
  transaction, so a cut decided before the payment is never carried out after it;
- the hot path stays cheap: an account whose band did not change costs a few
  comparisons and no statement; only crossings are re-read and written;
- every decision is made under the account's row lock (ingest takes it before it
  reads the state; a top-up takes it here), and the state it was based on is
  compared again when it is written (``SupplyStateMoved``: a guard that a writer
  holding the lock never trips).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection

from meterpay.alarms import repository as alarms
from meterpay.alarms.model import AlarmKind
from meterpay.control import effects, outbox
from meterpay.control import repository as repo
from meterpay.control.calendar import CutoffDayType
from meterpay.control.commands import CommandKind
from meterpay.control.model import SupplyEvent, SupplyState, ThresholdOverrides
from meterpay.control.repository import AccountSupply, SitePolicy, SupplyChange, SupplyStateMoved
from meterpay.control.rules import ArrearsAlarm, CutoffDecision, evaluate, should_alarm
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger import repository as ledger


@dataclass(frozen=True, slots=True)
class Held:
    """An account as the caller read it under its row lock: enough to see whether its
    new balance crosses a line."""

    account_id: int
    site_id: int
    utility: Utility
    state: SupplyState
    overrides: ThresholdOverrides | None
    cause: str
    """What moved the balance: ``reading:<id>``, ``topup:<key>``, ..."""
    changed_at: datetime | None = None
    """When the supply state last changed (a cut-off: when the meter confirmed it)."""


def settle(
    conn: Connection, held: Sequence[Held], balances: Mapping[int, Money], *, now: datetime
) -> list[SupplyChange]:
    """Judge each account's new balance; write, announce and act on the crossings.

    The caller holds the accounts' row locks, taken before it read ``held`` (ingest:
    ``metering.repository.lock_billed_accounts``); they are not asked for again here,
    where a stronger lock would have to wait behind other transactions' foreign-key
    checks on the accounts."""
    if not held:
        return []
    policies = repo.site_policies(conn, {h.site_id for h in held})
    crossing = [h for h in held if _crosses(h, balances[h.account_id], policies)]
    if not crossing:
        return []
    fresh = repo.account_supplies(conn, [h.account_id for h in crossing])
    for h in crossing:
        if fresh[h.account_id].state is not h.state:  # a writer that skipped the lock
            raise SupplyStateMoved(
                f"account {h.account_id} left supply state {h.state}", account_id=h.account_id
            )
    return settle_locked(
        conn,
        [(fresh[h.account_id], h.cause) for h in crossing],
        balances,
        policies=policies,
        now=now,
    )


def settle_account(
    conn: Connection, account_id: int, *, cause: str, now: datetime
) -> tuple[AccountSupply, Money]:
    """After this transaction moved an account's wallet (a top-up, a refund, a
    correction): lock the account row (ledger rows first: the lock order), read the
    wallet's new balance and settle the supply state. Returns the account as locked and
    its balance."""
    supply = repo.account_supply(conn, account_id, lock=True)
    balance = Money(ledger.balance_fen(conn, supply.wallet_id))
    settle_locked(conn, [(supply, cause)], {account_id: balance}, now=now)
    return supply, balance


def settle_locked(
    conn: Connection,
    accounts: Sequence[tuple[AccountSupply, str]],
    balances: Mapping[int, Money],
    *,
    policies: Mapping[tuple[int, Utility], SitePolicy] | None = None,
    now: datetime,
) -> list[SupplyChange]:
    """``settle`` for accounts whose rows the caller has locked (a top-up)."""
    if policies is None:
        policies = repo.site_policies(conn, {a.site_id for a, _ in accounts})
    averages = _averages(conn, [a for a, _ in accounts], policies, now)
    day_type: CutoffDayType | None = None
    changes: list[SupplyChange] = []
    decisions: dict[int, CutoffDecision] = {}
    calls: dict[int, ArrearsAlarm] = {}
    for account, cause in accounts:
        site = policies[(account.site_id, account.utility)]
        thresholds = effects.thresholds_for(account, site)
        balance = balances[account.id]
        found = evaluate(
            balance, account.state, thresholds, average_daily_use=averages.get(account.id)
        )
        if found.event is None:
            continue
        decision = None
        if found.event is SupplyEvent.FELL_BELOW_CUTOFF:
            day_type = day_type or repo.day_type_source(conn)
            decision = effects.first_decision(account, site, thresholds, day_type, now)
            decisions[account.id] = decision
            call = should_alarm(
                balance,
                SupplyState.IN_ARREARS,
                decision,
                now=now,
                notice_given_at=now,
                thresholds=thresholds,
                policy=site.policy,
            )
            if call is not None:
                calls[account.id] = call
        changes.append(
            effects.change(
                account,
                found.event,
                to_state=found.state,
                balance=balance,
                cause=cause,
                now=now,
                decision=decision,
            )
        )
    repo.save_changes(conn, changes, now)
    effects.announce(conn, changes, now, decisions=decisions, calls=calls)
    _restore(conn, [c for c in changes if c.event is SupplyEvent.BALANCE_RESTORED], policies, now)
    return changes


def _crosses(h: Held, balance: Money, policies: Mapping[tuple[int, Utility], SitePolicy]) -> bool:
    site = policies[(h.site_id, h.utility)]
    overrides = h.overrides
    if overrides is None and (site.thresholds.warning1.days or site.thresholds.warning2.days):
        return True  # days-based lines need the average use: look closer
    if overrides is not None and (
        (overrides.warning1 and overrides.warning1.days)
        or (overrides.warning2 and overrides.warning2.days)
    ):
        return True
    probe = AccountSupply(h.account_id, h.site_id, h.utility, "", None, 0, h.state, overrides)
    thresholds = effects.thresholds_for(probe, site)
    return evaluate(balance, h.state, thresholds).event is not None


def _averages(
    conn: Connection,
    accounts: Sequence[AccountSupply],
    policies: Mapping[tuple[int, Utility], SitePolicy],
    now: datetime,
) -> dict[int, Money]:
    """Average daily use, only for the accounts whose warning lines are in days."""
    wanted = []
    for account in accounts:
        t = effects.thresholds_for(account, policies[(account.site_id, account.utility)])
        if t.warning1.days is not None or t.warning2.days is not None:
            wanted.append(account.id)
    return repo.average_daily_use(conn, wanted, now) if wanted else {}


def _restore(
    conn: Connection,
    restored: Sequence[SupplyChange],
    policies: Mapping[tuple[int, Utility], SitePolicy],
    now: datetime,
) -> None:
    """One restore command per meter of each paid-up account; its open arrears cuts
    withdrawn. A meter an operator has cut by hand (an emergency) is left cut, with an
    alarm: only a person lifts that. An account without meters has nothing to switch:
    its restore is confirmed at once."""
    if not restored:
        return
    meters = repo.meters_of(conn, [c.account.id for c in restored])
    confirmed: list[SupplyChange] = []
    for c in restored:
        account = c.account
        # Only the arrears cuts: an operator's emergency cut stands until a person lifts it.
        outbox.withdraw_in(
            conn,
            account_id=account.id,
            kind=CommandKind.CUT,
            cause_prefix=f"arrears:{account.id}:",
            now=now,
            reason=c.cause,
        )
        style = policies[(account.site_id, account.utility)].policy.restore_style
        held = outbox.manually_cut(conn, meters[account.id])
        for meter_id in held:  # a payment never lifts an operator's emergency cut
            alarms.raise_in(
                conn,
                kind=AlarmKind.RESTORE_HELD,
                object_type="meter",
                object_id=meter_id,
                dedupe_key=f"restore_held:{meter_id}:{c.cause}",
                message=f"账户 {account.number} 已缴清，但表 {meter_id} 处于人工停供，需人工恢复",
                now=now,
                site_id=account.site_id,
                details={"account_id": account.id, "cause": c.cause},
            )
        for meter_id in meters[account.id]:
            if meter_id in held:
                continue
            outbox.queue_in(
                conn,
                meter_id=meter_id,
                kind=CommandKind.RESTORE,
                cause_key=f"restore:{account.id}:{meter_id}:{c.cause}",
                requested_by="arrears",
                now=now,
                account_id=account.id,
                reason=f"余额已恢复 balance restored ({c.cause})",
                option=style.value if account.utility is Utility.ELECTRICITY else None,
            )
        if not meters[account.id]:
            moved = replace(account, state=c.to_state)
            confirmed.append(
                effects.change(
                    moved,
                    SupplyEvent.RESTORE_CONFIRMED,
                    to_state=SupplyState.NORMAL,
                    balance=c.balance,
                    cause=f"{c.cause}:no-meter",
                    now=now,
                )
            )
    repo.save_changes(conn, confirmed, now)
    effects.announce(conn, confirmed, now)
