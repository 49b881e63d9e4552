"""Arrears control end to end in the database: charges move accounts through the supply
states, the scheduler gives the final notice and queues the cut only when the rules
allow, the meter's read-back confirms it, and a top-up restores at once.

The fixed clock starts on Sunday 2026-11-01 08:00 in Shanghai (00:00 UTC).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select

from meterpay.alarms import service as alarm_service
from meterpay.alarms.model import AlarmKind
from meterpay.control import manual, outbox
from meterpay.control import service as control
from meterpay.control.commands import READ_BACK_EVERY, CommandEvent, CommandKind, CommandState
from meterpay.control.model import SupplyState
from meterpay.control.review import review_due
from meterpay.db.schema import accounts
from meterpay.kernel.clock import FixedClock
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger import service as ledger
from meterpay.metering import service as metering
from meterpay.metering.ingest import ingest_readings
from meterpay.metering.meters import ReadingIn, ReadingSource
from meterpay.notify import service as notify
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.tariffs import service as tariffs
from tests.integration.builders import ACTOR, Home, a_home

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Meter:
    """Readings for one meter, an hour apart, each adding ``kwh``."""

    def __init__(self, rt: Runtime, home: Home) -> None:
        self.rt, self.home, self.total = rt, home, Decimal(0)
        self.at = rt.clock.now()

    def use(self, kwh: str) -> None:
        self.total += Decimal(kwh)
        self.at += timedelta(hours=max(1, int(Decimal(kwh) / 20) + 1))
        clock = self.rt.clock
        assert isinstance(clock, FixedClock)
        if clock.now() < self.at:
            clock.advance(self.at - clock.now())
        reading = ReadingIn(self.home.meter.id, self.at, self.total, ReadingSource.MANUAL)
        ingest_readings(self.rt, [reading], actor=ACTOR)


def _home_with_owner(rt: Runtime, utility: Utility = Utility.ELECTRICITY) -> Home:
    home = a_home(rt, utility=utility, price="1.0000")
    owner = sites.create_customer(
        rt, site_id=home.site.id, name="张三", phone="13800000000", actor=ACTOR
    )
    sites.update_account(rt, home.account.id, customer_id=owner.id, actor=ACTOR)
    return home


def _top_up(rt: Runtime, home: Home, yuan: str, key: str) -> None:
    ledger.cash_top_up(
        rt,
        account_id=home.account.id,
        amount=Money.from_yuan(yuan),
        idempotency_key=key,
        cashier="cashier",
    )


def _state(rt: Runtime, home: Home) -> SupplyState:
    return control.supply_view(rt, home.account.id).account.state


def _topics(rt: Runtime, home: Home) -> list[str]:
    messages = notify.notifications(rt, account_id=home.account.id, limit=500)
    return sorted({m.topic.value for m in messages})


def _at(rt: Runtime, moment: datetime) -> None:
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    clock.advance(moment - clock.now())


def _commands(rt: Runtime, account_id: int) -> list[outbox.Command]:
    return outbox.find(rt, account_id=account_id)[::-1]


def test_charges_move_an_account_down_through_the_warnings_into_arrears(rt: Runtime) -> None:
    home = _home_with_owner(rt)
    _top_up(rt, home, "60.00", "first")
    meter = Meter(rt, home)
    assert _state(rt, home) is SupplyState.NORMAL
    meter.use("15")  # 45 元 < warning 1 (50 元)
    assert _state(rt, home) is SupplyState.LOW
    meter.use("30")  # 15 元 < warning 2 (20 元)
    assert _state(rt, home) is SupplyState.VERY_LOW
    meter.use("20")  # -5 元: below the arrears line (0)
    view = control.supply_view(rt, home.account.id)
    assert view.account.state is SupplyState.IN_ARREARS
    assert view.balance == Money.from_yuan("-5.00")
    assert view.account.notice_given_at == rt.clock.now()
    # The notice period (3 days) ends Wednesday 11:00, a workday morning: the cut-off
    # is planned then, and the final notice is due 30 minutes before.
    assert view.planned_cutoff_at is not None
    assert view.planned_cutoff_at >= view.account.notice_given_at + timedelta(days=3)
    assert [e["to_state"] for e in view.events][::-1] == ["low", "very_low", "in_arrears"]
    assert {"warning1", "warning2", "arrears_notice", "top_up_receipt"} <= set(_topics(rt, home))
    notice = next(
        m
        for m in notify.notifications(rt, account_id=home.account.id)
        if m.topic.value == "arrears_notice"
    )
    assert notice.params["planned_cutoff_at"] == view.planned_cutoff_at.isoformat()
    assert not _commands(rt, home.account.id)


def test_the_cut_waits_for_the_notice_period_and_the_final_notice_then_the_read_back_confirms_it(
    rt: Runtime,
) -> None:
    home = _home_with_owner(rt)
    _top_up(rt, home, "10.00", "first")
    Meter(rt, home).use("15")  # -5 元 on Sunday morning: arrears notice now
    notice_at = control.supply_view(rt, home.account.id).account.notice_given_at
    assert notice_at is not None
    for hours in range(0, 72, 5):  # the notice period: nothing is cut whatever runs
        _at(rt, notice_at + timedelta(hours=hours))
        review_due(rt)
        assert not _commands(rt, home.account.id)
    planned = control.supply_view(rt, home.account.id).planned_cutoff_at
    assert planned is not None
    local = planned.astimezone(SHANGHAI)
    assert local.weekday() < 5 and 8 <= local.hour < 18  # a workday, outside friendly hours
    _at(rt, planned - timedelta(minutes=30))
    review_due(rt)  # the final notice, 30 minutes before
    assert "final_notice" in _topics(rt, home)
    assert not _commands(rt, home.account.id)
    _at(rt, planned)
    review_due(rt)
    (cut,) = _commands(rt, home.account.id)
    assert cut.kind is CommandKind.CUT
    assert cut.expires_at <= planned + timedelta(hours=1)
    review_due(rt)  # deciding again queues nothing more
    assert len(_commands(rt, home.account.id)) == 1
    (claimed,) = outbox.claim(rt)
    outbox.record(rt, claimed.id, CommandEvent.ACCEPTED)
    outbox.record(rt, claimed.id, CommandEvent.CONFIRMED)
    assert _state(rt, home) is SupplyState.CUT_OFF
    assert "cut_off" in _topics(rt, home)

    _top_up(rt, home, "50.00", "pays")  # any time of day: a restore at once
    assert _state(rt, home) is SupplyState.RESTORE_PENDING
    restore = _commands(rt, home.account.id)[-1]
    assert restore.kind is CommandKind.RESTORE
    assert restore.option == "close_now"
    (claimed,) = outbox.claim(rt)
    outbox.record(rt, claimed.id, CommandEvent.ACCEPTED)
    outbox.record(rt, claimed.id, CommandEvent.CONFIRMED)
    assert _state(rt, home) is SupplyState.LOW  # restored, and 45 元 is below warning 1
    assert "restored" in _topics(rt, home)


def test_a_top_up_withdraws_a_cut_still_on_its_way_and_queues_exactly_one_restore(
    rt: Runtime,
) -> None:
    home = _home_with_owner(rt)
    control.set_policy(
        rt,
        home.site.id,
        Utility.ELECTRICITY,
        {
            "notice_period_minutes": 30,
            "friendly_hours": None,
            "no_cutoff_on_rest_days": False,
        },
        by="admin",
        reason="test site: cut at any time",
    )
    Meter(rt, home).use("5")  # -5 元
    for _ in range(3):  # the final notice, then the cut, 30 minutes apart
        rt.clock.advance(timedelta(minutes=30))  # type: ignore[attr-defined]
        review_due(rt)
    assert len(_commands(rt, home.account.id)) == 1
    outbox.claim(rt)  # the cut is sent, no answer yet
    _top_up(rt, home, "100.00", "pays")
    _top_up(rt, home, "100.00", "pays again")
    commands = _commands(rt, home.account.id)
    assert [c.kind for c in commands] == [CommandKind.CUT, CommandKind.RESTORE]
    assert commands[0].state is CommandState.EXPIRED
    assert commands[0].last_error.startswith("withdrawn")
    assert commands[1].state is CommandState.PENDING


def test_a_protected_account_is_never_cut_automatically_and_a_person_is_called(
    rt: Runtime,
) -> None:
    home = _home_with_owner(rt)
    control.protect(rt, home.account.id, reason="家中有呼吸机 life support", by="admin")
    Meter(rt, home).use("30")
    for _ in range(20):
        rt.clock.advance(timedelta(hours=7))  # type: ignore[attr-defined]
        review_due(rt)
    assert not _commands(rt, home.account.id)
    kinds = {a.kind for a in alarm_service.list_alarms(rt, object_id=str(home.account.id))}
    assert AlarmKind.CUTOFF_NEEDS_PERSON in kinds


def test_water_is_never_cut_automatically(rt: Runtime) -> None:
    home = _home_with_owner(rt, Utility.WATER)
    Meter(rt, home).use("3")
    for _ in range(20):
        rt.clock.advance(timedelta(hours=7))  # type: ignore[attr-defined]
        review_due(rt)
    assert _state(rt, home) is SupplyState.IN_ARREARS
    assert not _commands(rt, home.account.id)
    kinds = {a.kind for a in alarm_service.list_alarms(rt, object_id=str(home.account.id))}
    assert AlarmKind.CUTOFF_NEEDS_PERSON in kinds


def test_a_debt_of_another_kind_never_reaches_the_supply_decision(rt: Runtime) -> None:
    """民法典 第九百四十四条: the owner's water debt (another utility, another account) and
    any other debt leave the electricity account alone: no arrears, no cut, and its
    top-ups are credited in full."""
    power = _home_with_owner(rt)
    water_tariff = control_water_tariff(rt, power)
    water = sites.open_account(
        rt,
        unit_id=power.account.unit_id,
        utility=Utility.WATER,
        tariff_id=water_tariff,
        customer_id=power.account.customer_id,
        actor=ACTOR,
    )
    with rt.db.write() as conn:  # a deep water debt, as if from months of use
        conn.execute(
            accounts.update()
            .where(accounts.c.id == water.id)
            .values(supply_state=SupplyState.IN_ARREARS.value)
        )
    _top_up(rt, power, "100.00", "power")
    Meter(rt, power).use("10")  # 90 元 left
    assert _state(rt, power) is SupplyState.NORMAL
    assert control.supply_view(rt, power.account.id).balance == Money.from_yuan("90.00")
    for _ in range(10):
        rt.clock.advance(timedelta(hours=11))  # type: ignore[attr-defined]
        review_due(rt)
    assert not _commands(rt, power.account.id)


def control_water_tariff(rt: Runtime, home: Home) -> int:
    return tariffs.create_flat_tariff(
        rt,
        site_id=home.site.id,
        code="water-flat",
        name="居民水价",
        utility=Utility.WATER,
        unit_price="5.0000",
        effective_from=rt.clock.now() - timedelta(days=365),
        actor=ACTOR,
    ).id


def test_top_ups_and_charges_racing_on_one_account_neither_deadlock_nor_lose_a_state(
    pg_rt: Runtime,
) -> None:
    """A top-up moves the wallet, then the account; so does a charge (the lock order):
    on PostgreSQL, threads doing both at once all finish, and the state matches the
    balance at the end."""
    rt = pg_rt
    home = _home_with_owner(rt)
    base = rt.clock.now()
    rt.clock.advance(timedelta(hours=21))  # type: ignore[attr-defined]  no reading in the future

    def charges() -> None:  # in time order, one after another, as a meter reports
        for i in range(20):
            at, total = base + timedelta(hours=i + 1), Decimal(5 * (i + 1))
            reading = ReadingIn(home.meter.id, at, total, ReadingSource.MANUAL)
            ingest_readings(rt, [reading], actor=ACTOR)

    def top_up(i: int) -> None:
        _top_up(rt, home, "4.00", f"race-{i}")

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(charges)] + [pool.submit(top_up, i) for i in range(20)]
        for f in futures:
            f.result()
    view = control.supply_view(rt, home.account.id)
    assert view.balance == Money.from_yuan("-20.00")  # 80 元 paid, 100 kWh used
    # Whatever the interleaving, a balance below the arrears line ends in arrears: the
    # last move was a charge (arrears, from any state) or a top-up too small to restore.
    assert view.account.state is SupplyState.IN_ARREARS
    assert ledger.verify_ledger(rt) == []
    with rt.db.read() as conn:
        changed = conn.execute(
            select(accounts.c.supply_state).where(accounts.c.id == home.account.id)
        ).scalar_one()
    assert changed == view.account.state.value


def test_consumption_while_cut_off_raises_a_bypass_alarm(rt: Runtime) -> None:
    """Use over an interval that began after the cut was confirmed is a bypass (or a relay
    that did not open); the use that the confirming reading still carries is not."""
    home = _home_with_owner(rt)
    meter = Meter(rt, home)
    meter.use("2")  # in arrears

    def cut_off(at: datetime) -> None:
        with rt.db.write() as conn:  # as if the meter had confirmed the cut at ``at``
            conn.execute(
                accounts.update()
                .where(accounts.c.id == home.account.id)
                .values(supply_state=SupplyState.CUT_OFF.value, supply_changed_at=at)
            )

    cut_off(meter.at + timedelta(minutes=1))  # confirmed after the last reading was taken
    meter.use("1")
    assert alarm_service.list_alarms(rt, kind=AlarmKind.BYPASS) == []
    meter.use("1")
    meter.use("1")
    (bypass,) = alarm_service.list_alarms(rt, kind=AlarmKind.BYPASS)
    assert bypass.object_id == str(home.meter.id)
    assert bypass.occurrences == 2
    assert bypass.severity.value == "critical"


def test_an_acknowledged_command_is_read_back_again_until_it_is_verified_or_expires(
    rt: Runtime,
) -> None:
    """A read-back lost (a dropped link, a dead process, a relay the owner still has to
    press) is tried again every READ_BACK_EVERY by dispatchers that can read the meter,
    never re-sent; past its time to live the command expires."""
    home = _home_with_owner(rt)
    queued = outbox.queue(
        rt,
        meter_id=home.meter.id,
        kind=CommandKind.RESTORE,
        cause_key="test:read-back",
        requested_by="test",
    )
    (sent,) = outbox.claim(rt)
    outbox.record(rt, sent.id, CommandEvent.ACCEPTED)
    assert outbox.claim(rt, read_backs=True) == []  # its first read-back is not due yet
    rt.clock.advance(READ_BACK_EVERY)  # type: ignore[attr-defined]
    assert outbox.claim(rt) == []  # a dispatcher that cannot read back never re-sends it
    (again,) = outbox.claim(rt, read_backs=True)
    assert again.id == queued.id and again.state is CommandState.ACKNOWLEDGED
    assert again.attempts == 1  # read, not sent again
    rt.clock.advance(timedelta(days=8))  # type: ignore[attr-defined]
    outbox.claim(rt, read_backs=True)
    assert outbox.get(rt, queued.id).state is CommandState.EXPIRED


def test_a_payment_never_lifts_an_operators_emergency_cut(rt: Runtime) -> None:
    """An operator cut the meter by hand (an emergency); the owner then pays off arrears:
    the arrears restore is held for that meter and a person is told."""
    home = _home_with_owner(rt)
    metering.update_meter(rt, home.meter.id, actor=ACTOR, has_switch=True)
    Meter(rt, home).use("5")  # in arrears
    manual.request(
        rt,
        scope=manual.Scope.METER,
        scope_id=home.meter.id,
        kind=manual.ControlKind.CUT,
        reason="漏电抢修 emergency repair",
        requested_by="operator",
    )
    _top_up(rt, home, "100.00", "pays")
    assert _state(rt, home) is SupplyState.RESTORE_PENDING
    kinds = [c.kind for c in _commands(rt, home.account.id)]
    assert kinds == [CommandKind.CUT]  # the manual cut stands, no restore queued
    (held,) = alarm_service.list_alarms(rt, kind=AlarmKind.RESTORE_HELD)
    assert held.object_id == str(home.meter.id)


def test_a_warning_in_days_of_average_use_follows_the_accounts_own_use(rt: Runtime) -> None:
    """ "Warn when 5 days of average use are left": a home using about 10 元 a day is warned
    below 50 元; until it has any use, no days-based warning is guessed."""
    home = _home_with_owner(rt)
    control.set_policy(
        rt,
        home.site.id,
        Utility.ELECTRICITY,
        {"warning1": {"days": 5}, "warning2": {"days": 1}},
        by="admin",
        reason="warn by days",
    )
    _top_up(rt, home, "100.00", "first")
    meter = Meter(rt, home)
    for _ in range(4):  # 10 kWh = 10 元 a day, read daily, for four days: 60 元 left
        meter.at += timedelta(hours=23)  # ``use`` adds the 24th
        meter.use("10")
    assert _state(rt, home) is SupplyState.NORMAL  # 60 元 is 6 days of 10 元
    meter.at += timedelta(hours=23)
    meter.use("15")  # 45 元 left: about 4 days of 11 元
    assert _state(rt, home) is SupplyState.LOW
