"""Billing state kept beside the charges: each account's tier position (阶梯). Never commits."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection

from meterpay.db.bulk import update_many
from meterpay.db.schema import accounts
from meterpay.kernel.errors import Conflict
from meterpay.tariffs.usage import TierState


class TierStateMoved(Conflict):
    """Another transaction moved an account's tier position since this one read it.

    Tiers accumulate per account over all its meters; two batches pricing
    different meters of one account may race. The later one's compare-and-set
    fails, its transaction rolls back and ingest runs it again from the new
    position.
    """

    code = "tier_state_moved"


def save_tier_states(
    conn: Connection,
    before: Mapping[int, TierState | None],
    after: Mapping[int, TierState | None],
) -> None:
    """Move each account's tier position from ``before`` (as read with its meters)
    to ``after``, all or nothing; raise ``TierStateMoved`` if one moved meanwhile."""
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
