"""Billing state kept beside the charges: each account's tier position (阶梯). Never commits.

Tiers accumulate per account over all its meters. Ingest reads an account's position
under the account's row lock (``FOR NO KEY UPDATE``, after the ledger rows: the
product's lock order) and writes the new one back before it commits, so two batches
billing meters of one account take turns. The write keeps a compare-and-set on the
position it read, as a guard.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection

from meterpay.db.bulk import update_many
from meterpay.db.schema import accounts
from meterpay.kernel.errors import Conflict
from meterpay.tariffs.usage import TierState


class TierStateMoved(Conflict):
    """Another transaction moved an account's tier position since this one read it.

    Ingest reads the position under the account's row lock, so this only happens to
    a writer that skipped the lock; its transaction rolls back and nothing is lost.
    """

    code = "tier_state_moved"


def save_tier_states(
    conn: Connection,
    before: Mapping[int, TierState | None],
    after: Mapping[int, TierState | None],
) -> None:
    """Move each account's tier position from ``before`` (as read under the account's
    row lock) to ``after``, all or nothing; raise ``TierStateMoved`` if one moved
    meanwhile. ``update_many`` locks at the UPDATE's own strength (``FOR NO KEY
    UPDATE``), the lock the caller holds already: it never waits here."""
    rows = []
    for account_id, state in after.items():
        was = before.get(account_id)
        if state is None or state == was:
            continue
        rows.append(
            {
                "id": account_id,
                "tier_cycle_start": state.cycle_start,
                "tier_consumed": state.consumed,
                "was_tier_cycle_start": was.cycle_start if was else None,
                "was_tier_consumed": was.consumed if was else 0,
            }
        )
    guard = ("tier_cycle_start", "tier_consumed")
    changed = update_many(
        conn, accounts, "id", ("tier_cycle_start", "tier_consumed"), rows, guard=guard
    )
    if changed != len(rows):
        raise TierStateMoved(
            f"{len(rows) - changed} of {len(rows)} accounts' tier positions moved meanwhile"
        )
