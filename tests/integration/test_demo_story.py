"""The demo's arrears story: a seeded compound already spread over the supply states, a
short notice with the friendly-hours rules on, a protected account, and owners paying at
the counter so restores show."""

from __future__ import annotations

import random
from datetime import timedelta

from meterpay.control import overview
from meterpay.control import service as control
from meterpay.control.model import SupplyState
from meterpay.kernel.clock import FixedClock
from meterpay.kernel.quantity import Utility
from meterpay.runtime import Runtime
from meterpay.sim import demo, demo_story
from meterpay.sim.demo_story import PAY_AFTER_WAITING, PAY_EVERY, CounterPayments
from tests.integration.console_builders import a_compound


def _advance(rt: Runtime, by: timedelta) -> None:
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    clock.advance(by)


def test_the_seeded_demo_has_its_short_policy_a_protected_account_and_several_states(
    rt: Runtime,
) -> None:
    site_id = demo.seed(rt, units_per_floor=2)
    power = control.policy_fields(control.policy(rt, site_id, Utility.ELECTRICITY))
    assert (power["notice_period_minutes"], power["final_notice_lead_minutes"]) == (20, 5)
    assert power["friendly_hours"] == {"start": "18:00", "end": "08:00"}
    assert power["no_cutoff_on_rest_days"] is True
    counts = control.states_of_site(rt, site_id)
    assert sum(1 for n in counts.values() if n) > 1
    (protected,) = [
        a
        for a in overview.accounts_in(rt, site_id, list(SupplyState), limit=500)
        if a.protected_reason
    ]
    assert protected.protected_reason == demo_story.PROTECTED_REASON
    assert protected.unit_code == demo_story.PROTECTED_UNIT


def test_owners_pay_at_the_counter_cut_off_first_and_never_for_a_protected_account(
    rt: Runtime,
) -> None:
    compound = a_compound(rt)
    payments = CounterPayments(rt, compound.site_id, random.Random(7))
    assert payments.maybe_pay() is None  # not yet: every PAY_EVERY
    _advance(rt, PAY_EVERY)
    assert payments.maybe_pay() == compound.accounts["cut_off"]
    view = control.supply_view(rt, compound.accounts["cut_off"])
    assert view.account.state is SupplyState.RESTORE_PENDING
    assert view.balance.fen > 100_00 and (view.balance.fen + 5_00) % 50_00 == 0
    _advance(rt, PAY_EVERY)
    assert payments.maybe_pay() is None  # in arrears only minutes: the cut may still come
    paid = []
    for _ in range(4):
        _advance(rt, PAY_AFTER_WAITING)
        paid.append(payments.maybe_pay())
    assert compound.accounts["in_arrears"] in paid and compound.accounts["water"] in paid
    assert compound.accounts["protected"] not in paid
