"""The supply overview (``meterpay.control.overview``) that the console's supply page
shows: one consistent read of a site, limited lists, masked recipients."""

from __future__ import annotations

from datetime import timedelta

import pytest

from meterpay.control import overview
from meterpay.control.commands import CommandKind, CommandState
from meterpay.control.model import SupplyState
from meterpay.control.rules import CutoffReason
from meterpay.kernel.errors import NotFound
from meterpay.kernel.money import Money
from meterpay.ledger import service as ledger
from meterpay.notify import service as notify
from meterpay.notify.model import ChannelName
from meterpay.runtime import Runtime
from tests.conftest import START
from tests.integration.console_builders import NOTICE, PROTECTED_REASON, a_compound


def test_the_overview_counts_every_state_and_lists_the_urgent_accounts_first(
    rt: Runtime,
) -> None:
    compound = a_compound(rt)
    found = overview.supply_overview(rt, compound.site_id)
    assert found is not None
    assert found.counts == {
        SupplyState.NORMAL: 1,
        SupplyState.LOW: 1,
        SupplyState.VERY_LOW: 1,
        SupplyState.IN_ARREARS: 3,
        SupplyState.CUT_OFF: 1,
        SupplyState.RESTORE_PENDING: 1,
    }
    states = [a.state for a in found.accounts.rows]
    assert states == sorted(states, key=overview.ATTENTION_ORDER.index)
    assert states[0] is SupplyState.CUT_OFF and states[-1] is SupplyState.LOW
    assert found.accounts.total == 7 and not found.accounts.has_more
    assert compound.accounts["normal"] not in {a.account_id for a in found.accounts.rows}


def test_accounts_in_arrears_carry_their_planned_cut_off_or_the_person_who_must_decide(
    rt: Runtime,
) -> None:
    """A deferred cut-off has its moment; protected and water accounts need a person."""
    compound = a_compound(rt)
    rows = {
        a.account_id: a
        for a in overview.accounts_in(rt, compound.site_id, [SupplyState.IN_ARREARS])
    }
    deferred = rows[compound.accounts["in_arrears"]]
    assert deferred.planned_cutoff_at == START + timedelta(hours=1) + NOTICE
    assert deferred.cutoff_reason is CutoffReason.NOTICE_PERIOD and not deferred.needs_person
    assert deferred.balance == Money.from_yuan("-5.00")
    protected = rows[compound.accounts["protected"]]
    assert protected.needs_person and protected.cutoff_reason is CutoffReason.PROTECTED
    assert protected.protected_reason == PROTECTED_REASON
    water = rows[compound.accounts["water"]]
    assert water.needs_person and water.cutoff_reason is CutoffReason.MANUAL_ONLY


def test_the_accounts_table_is_paged_and_filtered_by_state(rt: Runtime) -> None:
    compound = a_compound(rt)
    first = overview.supply_overview(rt, compound.site_id, offset=0, limit=3)
    second = overview.supply_overview(rt, compound.site_id, offset=3, limit=3)
    assert first is not None and second is not None
    assert len(first.accounts.rows) == 3 and first.accounts.has_more
    seen = {a.account_id for a in first.accounts.rows}
    assert seen.isdisjoint(a.account_id for a in second.accounts.rows)
    only = overview.supply_overview(rt, compound.site_id, state=SupplyState.LOW)
    assert only is not None
    assert [a.account_id for a in only.accounts.rows] == [compound.accounts["low"]]
    assert only.accounts.total == 1


def test_the_latest_events_commands_and_messages_are_newest_first_and_limited(
    rt: Runtime,
) -> None:
    compound = a_compound(rt)
    found = overview.supply_overview(rt, compound.site_id, latest=5)
    assert found is not None
    for rows in (found.events, found.commands, found.messages):
        ids = [r.id for r in rows]
        assert ids == sorted(ids, reverse=True) and 0 < len(ids) <= 5
    restore, *cuts = found.commands
    assert (restore.kind, restore.state) == (CommandKind.RESTORE, CommandState.PENDING)
    assert {(c.kind, c.state) for c in cuts} == {(CommandKind.CUT, CommandState.VERIFIED)}
    assert found.events[0].to_state is SupplyState.RESTORE_PENDING
    assert found.events[0].cause.startswith("topup:")


def test_owners_messages_are_masked_and_integrators_webhooks_left_out(rt: Runtime) -> None:
    compound = a_compound(rt)
    notify.create_webhook(rt, site_id=compound.site_id, url="https://example.com/hook")
    ledger.cash_top_up(
        rt,
        account_id=compound.accounts["normal"],
        amount=Money.from_yuan("1.00"),
        idempotency_key="after-the-webhook",
        cashier="cashier",
    )
    found = overview.supply_overview(rt, compound.site_id, latest=50)
    assert found is not None
    channels = {m.channel for m in found.messages}
    assert ChannelName.WEBHOOK not in channels
    assert {ChannelName.SMS, ChannelName.IN_APP} <= channels
    phones = set(compound.phones.values())
    for message in found.messages:
        assert message.recipient not in phones
        if message.channel is ChannelName.SMS:
            assert message.recipient.startswith("138****")


def test_open_alarms_belong_to_the_site(rt: Runtime) -> None:
    compound = a_compound(rt)
    other = a_compound(rt, code="OTHER")
    found = overview.supply_overview(rt, compound.site_id)
    assert found is not None
    assert found.alarms and {a.site_id for a in found.alarms} == {compound.site_id}
    assert other.site_id != compound.site_id


def test_no_site_is_none_and_an_unknown_site_is_not_found(rt: Runtime) -> None:
    assert overview.supply_overview(rt) is None
    a_compound(rt)
    with pytest.raises(NotFound):
        overview.supply_overview(rt, 999_999)
    found = overview.supply_overview(rt)
    assert found is not None and [s.code for s in found.sites] == ["CON"]
