"""The scheduler's arrears work: decide the deferred cut-offs, give final notices, check
that cuts and restores got through. One transaction per round; accounts are locked
and, on PostgreSQL, those another process holds are skipped.

Invariants:
- a cut command is queued only on ``decide_cutoff``'s ``cut_now``: after the notice
  period, after a final notice given ``final_notice_lead`` before, outside
  friendly hours on a known workday, never for a protected account or a utility
  that is not cut automatically; it expires at the end of the allowed window;
- one cut attempt per final notice: the command's cause names the notice, so
  deciding again cannot queue a second one, and a failed attempt needs a new
  final notice (and waits ``RETRY_CUT_AFTER``) before the next;
- a cut or restore that ended failed or expired raises an alarm.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Connection

from meterpay.alarms import repository as alarms
from meterpay.alarms.model import AlarmKind
from meterpay.control import effects, outbox
from meterpay.control import repository as repo
from meterpay.control.calendar import CutoffDayType
from meterpay.control.commands import FINAL, CommandKind, CommandState
from meterpay.control.model import SupplyState
from meterpay.control.outbox import Command
from meterpay.control.repository import AccountSupply, SitePolicy
from meterpay.control.rules import CutoffVerdict, decide_cutoff, should_alarm
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger.repository import balance_fen
from meterpay.notify import outbox as notify
from meterpay.notify.model import Topic
from meterpay.runtime import Runtime

RETRY_CUT_AFTER: Final = timedelta(hours=1)
CHECK_RESTORE_EVERY: Final = timedelta(hours=1)
MAX_CUT_TTL: Final = timedelta(hours=1)


def review_due(rt: Runtime, *, limit: int = 200) -> int:
    """Decide every account whose time has come; how many were looked at."""
    now = rt.clock.now()
    with rt.db.read() as conn:  # usually nothing is due: no write lock for that
        if not repo.any_due_for_decision(conn, now):
            return 0
    with rt.db.write() as conn:
        due = repo.due_for_decision(conn, now, limit=limit)
        policies = repo.site_policies(conn, {a.site_id for a in due})
        day_type = repo.day_type_source(conn)
        schedule = {a.id: _review(conn, a, policies, day_type, now) for a in due}
        repo.set_next_decision(conn, schedule)
        return len(due)


def _review(
    conn: Connection,
    account: AccountSupply,
    policies: Mapping[tuple[int, Utility], SitePolicy],
    day_type: CutoffDayType,
    now: datetime,
) -> datetime | None:
    if account.state is SupplyState.RESTORE_PENDING:
        return _check_restore(conn, account, now)
    if account.state is not SupplyState.IN_ARREARS or account.notice_given_at is None:
        return None
    return _decide(conn, account, policies[(account.site_id, account.utility)], day_type, now)


def _decide(
    conn: Connection,
    account: AccountSupply,
    site: SitePolicy,
    day_type: CutoffDayType,
    now: datetime,
) -> datetime | None:
    episode = account.notice_given_at
    assert episode is not None  # noqa: S101  checked by the caller
    cuts = outbox.of_account(
        conn, account.id, kind=CommandKind.CUT, cause_prefix=f"arrears:{account.id}:"
    )
    cuts = [c for c in cuts if c.created_at >= episode]
    open_cuts = [c for c in cuts if c.state not in FINAL]
    if open_cuts:  # an attempt is on its way: look again when it must have ended
        return max(c.expires_at for c in open_cuts)
    failed = [c for c in cuts if c.state in (CommandState.FAILED, CommandState.EXPIRED)]
    for c in failed:
        _alarm_failed(conn, account, c, now)
    if failed and now < (last_end := max(c.updated_at for c in failed)) + RETRY_CUT_AFTER:
        return last_end + RETRY_CUT_AFTER
    thresholds = effects.thresholds_for(account, site)
    decision = decide_cutoff(
        now,
        notice_given_at=episode,
        final_notice_given_at=account.final_notice_given_at,
        thresholds=thresholds,
        policy=site.policy,
        day_type=day_type,
        protection=account.protection,
    )
    balance = Money(balance_fen(conn, account.wallet_id))
    call = should_alarm(
        balance,
        account.state,
        decision,
        now=now,
        notice_given_at=episode,
        thresholds=thresholds,
        policy=site.policy,
    )
    if call is not None:
        effects.raise_arrears_alarm(conn, account, call, episode=episode, now=now)
    if decision.verdict is CutoffVerdict.CUT_NOW:
        return _cut(conn, account, decision.window_ends_at or now, site, now)
    if decision.verdict is CutoffVerdict.DEFER and decision.final_notice_at is not None:
        given = account.final_notice_given_at
        if decision.final_notice_at <= now and decision.final_notice_at != given:
            planned = now + thresholds.final_notice_lead
            _final_notice(conn, account, balance, planned, now)
            return planned
    return effects.next_look(decision, now)


def _cut(
    conn: Connection,
    account: AccountSupply,
    window_ends_at: datetime,
    site: SitePolicy,
    now: datetime,
) -> datetime:
    """Queue the cut of each of the account's meters, alive until the window closes."""
    ttl = min(window_ends_at - now, MAX_CUT_TTL)
    if ttl <= timedelta(0):
        return now + effects.REVIEW_EVERY
    attempt = (account.final_notice_given_at or now).isoformat()
    meters = repo.meters_of(conn, [account.id])[account.id]
    for meter_id in meters:
        outbox.queue_in(
            conn,
            meter_id=meter_id,
            kind=CommandKind.CUT,
            cause_key=f"arrears:{account.id}:{attempt}:{meter_id}",
            requested_by="arrears",
            now=now,
            account_id=account.id,
            reason=f"欠费停供 arrears cut-off (notice {account.notice_given_at:%Y-%m-%d %H:%M})",
            ttl=ttl,
        )
    if not meters:
        alarms.raise_in(
            conn,
            kind=AlarmKind.CUTOFF_NEEDS_PERSON,
            object_type="account",
            object_id=account.id,
            dedupe_key=f"no_meter:{account.id}:{attempt}",
            message=f"账户 {account.number} 欠费应停供，但没有可控制的表",
            now=now,
            site_id=account.site_id,
        )
        return now + effects.REVIEW_EVERY
    return now + ttl


def _final_notice(
    conn: Connection, account: AccountSupply, balance: Money, planned: datetime, now: datetime
) -> None:
    repo.set_final_notice(conn, account.id, now)
    notify.queue_in(
        conn,
        site_id=account.site_id,
        topic=Topic.FINAL_NOTICE,
        dedupe_key=f"{Topic.FINAL_NOTICE.value}:{account.id}:{now.isoformat()}",
        now=now,
        account_id=account.id,
        customer_id=account.customer_id,
        params={
            "account_number": account.number,
            "utility": account.utility.value,
            "balance": str(balance),
            "planned_cutoff_at": planned.isoformat(),
            "site_name": repo.site_name(conn, account.site_id),
        },
    )


def _check_restore(conn: Connection, account: AccountSupply, now: datetime) -> datetime | None:
    restores = outbox.of_account(
        conn, account.id, kind=CommandKind.RESTORE, since=account.notice_given_at
    )
    pending = [c for c in restores if c.state not in FINAL]
    for c in restores:
        if c.state in (CommandState.FAILED, CommandState.EXPIRED):
            _alarm_failed(conn, account, c, now)
    if pending:
        return min(max(c.expires_at for c in pending), now + CHECK_RESTORE_EVERY)
    return None


def _alarm_failed(
    conn: Connection, account: AccountSupply, command: Command, now: datetime
) -> None:
    command_id, kind, state, error = command.id, command.kind, command.state, command.last_error
    if error.startswith("withdrawn"):
        return
    alarms.raise_in(
        conn,
        kind=AlarmKind.COMMAND_FAILED,
        object_type="account",
        object_id=account.id,
        dedupe_key=f"command_failed:{command_id}",
        message=f"账户 {account.number} 的 {kind.value} 指令 #{command_id} 未完成：{state.value}",
        now=now,
        site_id=account.site_id,
        details={
            "command_id": command_id,
            "kind": kind.value,
            "state": state.value,
            "error": error,
        },
    )
