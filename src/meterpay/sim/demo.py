"""``meterpay demo``: a demo compound whose balances visibly move.

Seeds (once) a site of two buildings with about 200 units, each with an
electricity and a water account and meter and an opening balance, plus
common-area lighting; then a background simulator feeds readings through the
real ingest service while the API and the console serve. Simulated time starts
30 days back and runs in two-hour rounds until it reaches the present, then
follows real time.

Accounts move through the supply states within minutes: the arrears story (a
short notice period, balances sized to land in every state, a protected account,
owners paying at the counter) is ``meterpay.sim.demo_story``.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from meterpay.control import service as control
from meterpay.db.migrate import upgrade
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger.service import cash_top_up_in
from meterpay.metering import service as metering
from meterpay.metering.ingest import ingest_readings
from meterpay.metering.meters import Meter, MeterStatus, Protocol, ReadingIn, ReadingSource
from meterpay.payments.setup import with_sandbox
from meterpay.runtime import Runtime
from meterpay.sim.demo_people import logins_text, seed_people
from meterpay.sim.demo_story import (
    EMPTY,
    POLICY,
    PROTECTED_REASON,
    PROTECTED_UNIT,
    CounterPayments,
    opening_balance,
    usage_scale,
)
from meterpay.sim.load import consumption
from meterpay.sites import service as sites
from meterpay.sites.model import CustomerKind, UnitKind
from meterpay.tariffs.components import TariffComponents
from meterpay.tariffs.reference import BEIJING_POWER, BEIJING_WATER
from meterpay.tariffs.service import create_tariff

LIVE_MODELS = {
    Utility.ELECTRICITY: "generic-dds-645-2007-prepaid",
    Utility.WATER: "generic-cjt188-cold-water-valve-lsb",
}

log = logging.getLogger("meterpay.demo")

SITE_CODE = "DEMO"
ACTOR = "demo"
HISTORY = timedelta(days=30)
STEP = timedelta(minutes=30)
CATCH_UP_STEP = timedelta(hours=2)
LIVE_GAP = timedelta(minutes=15)
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英"


@dataclass
class SimMeter:
    meter: Meter
    kind: UnitKind
    scale: float
    total: Decimal


def run_demo(rt: Runtime, *, units_per_floor: int, interval: float, serve: bool) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    rt = with_sandbox(rt)  # owners top up online through the payment sandbox
    # no SMS gateway in a demo: an owner's sign-in code is shown on the page instead
    rt = replace(rt, settings=rt.settings.model_copy(update={"show_sign_in_codes": True}))
    upgrade(rt.db, rt.clock, partitions_ahead=rt.settings.partitions_ahead_months)
    site_id = _existing_site(rt) or seed(rt, units_per_floor=units_per_floor)
    seed_people(rt, site_id)
    simulator = Simulator(rt, site_id)
    if not serve:
        simulator.round()
        return 0
    live: list[Any] = []  # the demo's links, once started (stopped on the way out)
    threading.Thread(
        target=_go_live, args=(rt, site_id, simulator, interval, live), daemon=True
    ).start()
    import uvicorn

    from meterpay.web.app import create_app

    base = f"http://{rt.settings.host}:{rt.settings.port}"
    log.info("demo site %s; API on %s/docs\n%s", SITE_CODE, base, logins_text(base))
    from meterpay.web.console.job_pages import job_handlers
    from meterpay.workers.scheduler import BackgroundWorkers

    workers = BackgroundWorkers(rt, job_handlers=job_handlers())
    workers.start()
    try:
        uvicorn.run(create_app(rt), host=rt.settings.host, port=rt.settings.port)
    finally:
        workers.stop()
        for links in live:
            links.stop()
    return 0


def _go_live(
    rt: Runtime, site_id: int, simulator: Simulator, interval: float, live: list[Any]
) -> None:
    """Beside the web server: fill in the history, hand the meters to the links, then
    keep feeding the meters no link reads."""
    from meterpay.sim.demo_links import DemoLinks, place_on_links

    try:
        simulator.catch_up()
        units = _all_units(rt, site_id)
        meters = _all_meters(rt, site_id)
        placed = place_on_links(rt, site_id, meters, {u.id: u.code for u in units})
        demo_links = DemoLinks(rt, placed, {u.id: u.kind for u in units})
        demo_links.start()
        live.append(demo_links)
        simulator.leave_to_links(demo_links.carried_meter_ids)
    except Exception:
        log.exception("the demo's meters could not go live; feeding them directly")
    simulator.loop(interval)


def _existing_site(rt: Runtime) -> int | None:
    found = [s for s in sites.page(rt, "sites", after_id=None, limit=500) if s.code == SITE_CODE]
    return found[0].id if found else None


def seed(rt: Runtime, *, units_per_floor: int, rng: random.Random | None = None) -> int:
    """Create the demo compound in one transaction and give it opening balances."""
    site = sites.create_site(rt, code=SITE_CODE, name="阳光花园 Sunshine Garden", actor=ACTOR)
    for utility in Utility:
        control.set_policy(rt, site.id, utility, POLICY, by=ACTOR, reason="demo: a story to watch")
    since = rt.clock.now() - HISTORY
    power = create_tariff(
        rt,
        site_id=site.id,
        code="E-RES",
        name="居民生活用电（北京阶梯）",
        utility=Utility.ELECTRICITY,
        components=TariffComponents.from_dict(BEIJING_POWER),
        effective_from=since - timedelta(days=365),
        actor=ACTOR,
    )
    water = create_tariff(
        rt,
        site_id=site.id,
        code="W-RES",
        name="居民生活用水（北京阶梯，含水资源费、污水处理费）",
        utility=Utility.WATER,
        components=TariffComponents.from_dict(BEIJING_WATER),
        effective_from=since - timedelta(days=365),
        actor=ACTOR,
    )
    with rt.db.write() as conn:
        seeder = _Seeder(
            rt,
            conn,
            site.id,
            {Utility.ELECTRICITY: power.id, Utility.WATER: water.id},
            since,
            rng or random.Random(20261126),  # noqa: S311  simulation only
        )
        seeder.compound(units_per_floor)
    if seeder.protected is not None:
        control.protect(rt, seeder.protected, reason=PROTECTED_REASON, by=ACTOR)
    log.info("seeded demo site %s", SITE_CODE)
    return site.id


@dataclass
class _Seeder:
    rt: Runtime
    conn: Connection
    site_id: int
    tariffs: dict[Utility, int]
    since: datetime
    rng: random.Random
    protected: int | None = None

    def compound(self, units_per_floor: int) -> None:
        for b in (1, 2):
            building = sites.create_building_in(
                self.conn, site_id=self.site_id, code=f"B{b}", name=f"{b}号楼"
            )
            for level in range(1, 18):
                floor = sites.create_floor_in(self.conn, building_id=building.id, level=level)
                for n in range(1, units_per_floor + 1):
                    self.home(
                        floor.id,
                        f"{b}-{level:02d}{n:02d}",
                        f"{b}号楼{level}{n:02d}室",
                        UnitKind.SHOP if level == 1 else UnitKind.HOME,
                    )
            common = sites.create_unit_in(
                self.conn,
                site_id=self.site_id,
                code=f"{b}-PUBLIC",
                name=f"{b}号楼公区照明",
                kind=UnitKind.COMMON,
                floor_id=None,
                area_m2=None,
            )
            self.metered(common.id, common.code, Utility.ELECTRICITY, None, Money.from_yuan(2000))

    def home(self, floor_id: int, code: str, name: str, kind: UnitKind) -> None:
        """A unit's owner, accounts, meters and opening balances."""
        unit = sites.create_unit_in(
            self.conn,
            site_id=self.site_id,
            code=code,
            name=name,
            kind=kind,
            floor_id=floor_id,
            area_m2=None,
        )
        rng = self.rng
        owner = sites.create_customer_in(
            self.rt,
            self.conn,
            site_id=self.site_id,
            name=rng.choice(_SURNAMES) + rng.choice(_GIVEN),
            kind=CustomerKind.PERSON,
            phone=f"1{rng.choice('3578')}{rng.randrange(10**9):09d}",
        )
        for utility in Utility:
            protected = code == PROTECTED_UNIT and utility is Utility.ELECTRICITY
            address = _address(code, utility)
            story = EMPTY if protected else None
            opening = opening_balance(rng, kind, utility, address, story)
            account_id = self.metered(unit.id, code, utility, owner.id, opening)
            if protected:
                self.protected = account_id

    def metered(
        self, unit_id: int, code: str, utility: Utility, customer_id: int | None, opening: Money
    ) -> int:
        account = sites.open_account_in(
            self.rt,
            self.conn,
            unit_id=unit_id,
            utility=utility,
            tariff_id=self.tariffs[utility],
            customer_id=customer_id,
            number=None,
            actor=ACTOR,
        )
        electric = utility is Utility.ELECTRICITY
        metering.register_meter_in(
            self.rt,
            self.conn,
            unit_id=unit_id,
            utility=utility,
            protocol=Protocol.DLT645_2007 if electric else Protocol.CJT188,
            address=_address(code, utility),
            initial_total=Decimal(0),
            account_id=account.id,
            multiplier=1,
            register_capacity=Decimal(1_000_000 if electric else 100_000),
            max_rate_per_hour=Decimal(13 if electric else 3),
            has_switch=True,
            gateway_id=None,
            serial=None,
            model=LIVE_MODELS[utility],
            installed_at=self.since,
            actor=ACTOR,
        )
        cash_top_up_in(
            self.rt,
            self.conn,
            account_id=account.id,
            amount=opening,
            idempotency_key=f"demo-opening-{account.number}",
            cashier=ACTOR,
            note="开户预存 opening balance",
        )
        return account.id


def _address(code: str, utility: Utility) -> str:
    """A meter's address from its unit's code: 12 digits (DL/T 645), 14 (CJ/T 188)."""
    digits = "".join(ch for ch in code if ch.isdigit()).rjust(8, "0")
    return ("0000" + digits)[-12:] if utility is Utility.ELECTRICITY else ("101000" + digits)[-14:]


class Simulator:
    """Feeds every active meter of the site a reading per round."""

    def __init__(self, rt: Runtime, site_id: int) -> None:
        self.rt = rt
        self.rng = random.Random()  # noqa: S311  simulation, not security
        active = [m for m in _all_meters(rt, site_id) if m.status is MeterStatus.ACTIVE]
        units = {u.id: u for u in _all_units(rt, site_id)}
        self.meters = [
            SimMeter(m, units[m.unit_id].kind, usage_scale(m.address), m.last_total or Decimal(0))
            for m in active
        ]
        self.payer = CounterPayments(rt, site_id, self.rng)
        last = [m.last_read_at for m in active if m.last_read_at is not None]
        self.sim_time = max(last) if last else rt.clock.now()

    def catch_up(self) -> None:
        """Fill in the history in two-hour rounds (fast, before the links start), up to a
        quarter of an hour ago: the links' first readings then cover a real interval."""
        rounds = 0
        while (left := self.rt.clock.now() - LIVE_GAP - self.sim_time) > timedelta(minutes=1):
            self.round(min(CATCH_UP_STEP, left), quiet=True)
            rounds += 1
            if rounds % 60 == 0:
                log.info("filling in the demo's history: %s", self.sim_time.date())

    def leave_to_links(self, meter_ids: set[int]) -> None:
        """Stop feeding meters that a link now reads."""
        self.meters = [m for m in self.meters if m.meter.id not in meter_ids]

    def round(self, step: timedelta = STEP, *, quiet: bool = False) -> None:
        now = self.rt.clock.now()
        if not self.meters:
            return
        start, self.sim_time = self.sim_time, min(self.sim_time + step, now)
        hours = (self.sim_time - start).total_seconds() / 3600
        if hours <= 0:
            return
        batch = []
        for sim in self.meters:
            local_hour = (self.sim_time + timedelta(hours=8)).hour
            sim.total += consumption(
                sim.meter.utility,
                sim.kind,
                hour=local_hour,
                hours=hours,
                scale=sim.scale,
                rng=self.rng,
            )
            batch.append(ReadingIn(sim.meter.id, self.sim_time, sim.total, ReadingSource.SIMULATOR))
        result = ingest_readings(self.rt, batch, actor="simulator")
        if quiet:
            return
        log.info(
            "simulated %s: %s, charged %s 元",
            self.sim_time.isoformat(timespec="minutes"),
            result.counts,
            Money(result.charged_fen),
        )

    def loop(self, interval: float) -> None:
        stop = threading.Event()
        while not stop.wait(interval):
            try:
                self.round()
                self.payer.maybe_pay()
            except Exception:
                log.exception("simulator round failed; trying again next round")


def _all_meters(rt: Runtime, site_id: int) -> list[Meter]:
    found: list[Meter] = []
    while batch := metering.list_meters(
        rt, site_id=site_id, limit=500, after_id=found[-1].id if found else None
    ):
        found += batch
    return found


def _all_units(rt: Runtime, site_id: int) -> list[Any]:
    found: list[Any] = []
    while batch := sites.page(
        rt, "units", site_id=site_id, limit=500, after_id=found[-1].id if found else None
    ):
        found += batch
    return found
