"""A small compound with an account in every supply state, commands in several lifecycle
states and the owners' messages: the supply page's and the overview's test data.

On the fixed clock (Sunday 2026-11-01 08:00 in Shanghai); the site cuts electricity at
any hour, 30 minutes after the arrears notice, so the planned cut-off is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from meterpay.control import outbox
from meterpay.control import service as control
from meterpay.control.commands import CommandEvent, CommandKind
from meterpay.kernel.clock import FixedClock
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger import service as ledger
from meterpay.metering import service as metering
from meterpay.metering.ingest import ingest_readings
from meterpay.metering.meters import Protocol, ReadingIn, ReadingSource
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.sites.model import UnitKind
from meterpay.tariffs import service as tariffs

ACTOR = "test"
SITE_NAME = "和平<b>小区</b>"
SCRIPT_NAME = '<script>alert("owner")</script>'
PROTECTED_REASON = "重症监护 life support at home"
NOTICE = timedelta(minutes=30)


@dataclass
class Compound:
    site_id: int
    accounts: dict[str, int] = field(default_factory=dict)
    """Account ids by the state each was built to be in."""
    meters: dict[str, int] = field(default_factory=dict)
    phones: dict[str, str] = field(default_factory=dict)


def a_compound(rt: Runtime, *, code: str = "CON") -> Compound:
    """normal, low, very low (owned by a name full of HTML), in arrears (deferred),
    protected and water in arrears (a person decides), cut off (a verified cut) and
    restore pending (paid after the cut: a restore on its way)."""
    site = sites.create_site(rt, code=code, name=SITE_NAME, actor=ACTOR)
    compound = Compound(site.id)
    control.set_policy(
        rt,
        site.id,
        Utility.ELECTRICITY,
        {"notice_period_minutes": 30, "friendly_hours": None, "no_cutoff_on_rest_days": False},
        by=ACTOR,
        reason="test site: cut at any hour",
    )
    tariff = {u: _flat_tariff(rt, site.id, u) for u in Utility}
    plan = [
        ("normal", Utility.ELECTRICITY, "100.00", "0"),
        ("low", Utility.ELECTRICITY, "30.00", "0"),
        ("very_low", Utility.ELECTRICITY, "10.00", "0"),
        ("in_arrears", Utility.ELECTRICITY, "10.00", "15"),
        ("protected", Utility.ELECTRICITY, "10.00", "15"),
        ("water", Utility.WATER, "10.00", "15"),
        ("cut_off", Utility.ELECTRICITY, "10.00", "15"),
        ("restore_pending", Utility.ELECTRICITY, "10.00", "15"),
    ]
    for n, (name, utility, opening, _) in enumerate(plan, start=1):
        _account(
            rt,
            compound,
            tariff_id=tariff[utility],
            name=name,
            utility=utility,
            n=n,
            opening=opening,
        )
    _use(rt, compound, {name: Decimal(used) for name, _, _, used in plan if used != "0"})
    control.protect(rt, compound.accounts["protected"], reason=PROTECTED_REASON, by=ACTOR)
    for name in ("cut_off", "restore_pending"):
        _cut(rt, compound, name)
    ledger.cash_top_up(
        rt,
        account_id=compound.accounts["restore_pending"],
        amount=Money.from_yuan("50.00"),
        idempotency_key=f"{code}-pays",
        cashier="cashier",
    )
    return compound


def _flat_tariff(rt: Runtime, site_id: int, utility: Utility) -> int:
    return tariffs.create_flat_tariff(
        rt,
        site_id=site_id,
        code=f"{utility.value}-flat",
        name="一口价",
        utility=utility,
        unit_price="1.0000",
        effective_from=rt.clock.now() - timedelta(days=365),
        actor=ACTOR,
    ).id


def _account(
    rt: Runtime,
    compound: Compound,
    *,
    tariff_id: int,
    name: str,
    utility: Utility,
    n: int,
    opening: str,
) -> None:
    site_id = compound.site_id
    unit = sites.create_unit(
        rt,
        site_id=site_id,
        code=f"1-01{n:02d}",
        name=f"1栋1{n:02d}",
        kind=UnitKind.HOME,
        actor=ACTOR,
    )
    phone = f"1380000{n:04d}"
    owner = sites.create_customer(
        rt,
        site_id=site_id,
        name=SCRIPT_NAME if name == "very_low" else f"业主{n}",
        phone=phone,
        actor=ACTOR,
    )
    account = sites.open_account(
        rt, unit_id=unit.id, utility=utility, tariff_id=tariff_id, customer_id=owner.id, actor=ACTOR
    )
    electric = utility is Utility.ELECTRICITY
    meter = metering.register_meter(
        rt,
        unit_id=unit.id,
        utility=utility,
        protocol=Protocol.DLT645_2007 if electric else Protocol.CJT188,
        address=f"{n:012d}" if electric else f"{n:014d}",
        account_id=account.id,
        has_switch=True,
        actor=ACTOR,
    )
    ledger.cash_top_up(
        rt,
        account_id=account.id,
        amount=Money.from_yuan(opening),
        idempotency_key=f"{site_id}-{name}-opening",
        cashier="cashier",
    )
    compound.accounts[name] = account.id
    compound.meters[name] = meter.id
    compound.phones[name] = phone


def _use(rt: Runtime, compound: Compound, used: dict[str, Decimal]) -> None:
    """One reading an hour later for each of these accounts' meters (1 元 per unit)."""
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    clock.advance(timedelta(hours=1))
    readings = [
        ReadingIn(compound.meters[name], clock.now(), total, ReadingSource.MANUAL)
        for name, total in used.items()
    ]
    ingest_readings(rt, readings, actor=ACTOR)


def _cut(rt: Runtime, compound: Compound, name: str) -> None:
    """An operator's cut, sent and confirmed by the meter's read-back."""
    command = outbox.queue(
        rt,
        meter_id=compound.meters[name],
        kind=CommandKind.CUT,
        cause_key=f"test-cut:{compound.accounts[name]}",
        requested_by=ACTOR,
        account_id=compound.accounts[name],
    )
    (claimed,) = [c for c in outbox.claim(rt) if c.id == command.id]
    outbox.record(rt, claimed.id, CommandEvent.ACCEPTED)
    outbox.record(rt, claimed.id, CommandEvent.CONFIRMED)
