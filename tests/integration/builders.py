"""Readable domain data for integration tests: a small compound to bill."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from meterpay.kernel.clock import SystemClock
from meterpay.kernel.quantity import Utility
from meterpay.metering import link_service as links
from meterpay.metering import service as metering
from meterpay.metering.gateways import Transport
from meterpay.metering.meters import Meter, Protocol
from meterpay.runtime import Runtime
from meterpay.sites import service as sites
from meterpay.sites.model import Account, Site, UnitKind
from meterpay.tariffs import service as tariffs

ACTOR = "test"


@dataclass
class Home:
    site: Site
    account: Account
    meter: Meter
    tariff_id: int


def a_home(
    rt: Runtime,
    *,
    price: str = "0.4883",
    code: str = "HOME",
    utility: Utility = Utility.ELECTRICITY,
    multiplier: int = 1,
    register_capacity: Decimal | None = Decimal("100000"),
    max_rate_per_hour: Decimal | None = Decimal("20"),
) -> Home:
    """One site with one flat tariff, one home, its account and its meter at 0."""
    site = sites.create_site(rt, code=code, name="测试小区", actor=ACTOR)
    tariff = tariffs.create_flat_tariff(
        rt,
        site_id=site.id,
        code=f"{utility.value}-flat",
        name="居民电价",
        utility=utility,
        unit_price=price,
        effective_from=rt.clock.now() - timedelta(days=365),
        actor=ACTOR,
    )
    unit = sites.create_unit(
        rt, site_id=site.id, code="1-0101", name="1栋101", kind=UnitKind.HOME, actor=ACTOR
    )
    account = sites.open_account(
        rt, unit_id=unit.id, utility=utility, tariff_id=tariff.id, actor=ACTOR
    )
    meter = metering.register_meter(
        rt,
        unit_id=unit.id,
        utility=utility,
        protocol=Protocol.DLT645_2007,
        address="000000000101",
        account_id=account.id,
        multiplier=multiplier,
        register_capacity=register_capacity,
        max_rate_per_hour=max_rate_per_hour,
        initial_total=Decimal(0),
        actor=ACTOR,
    )
    return Home(site, account, meter, tariff.id)


@dataclass
class LinkedSite:
    """A site whose meters hang on one gateway, each with its own account on a flat tariff.

    ``live`` runs on the same database with the real clock: links stamp readings with it.
    """

    live: Runtime
    site_id: int
    gateway_code: str
    meter_ids: dict[str, int]


@dataclass(frozen=True)
class LinkedMeter:
    address: str
    protocol: Protocol
    model: str | None = None


def a_linked_site(
    rt: Runtime,
    *,
    code: str,
    gateway_code: str,
    transport: Transport,
    meters: list[LinkedMeter],
    price: Decimal,
    kind: UnitKind = UnitKind.HOME,
    initial_total: Decimal = Decimal(0),
) -> LinkedSite:
    site = sites.create_site(rt, code=code, name=f"{code}小区", actor=ACTOR)
    tariff = tariffs.create_flat_tariff(
        rt,
        site_id=site.id,
        code="E-FLAT",
        name="电价",
        utility=Utility.ELECTRICITY,
        unit_price=str(price),
        effective_from=rt.clock.now().replace(year=2025),
        actor=ACTOR,
    )
    gateway = links.create_gateway(
        rt, site_id=site.id, code=gateway_code, name=gateway_code, transport=transport, actor=ACTOR
    )
    meter_ids = {}
    for n, wanted in enumerate(meters, start=1):
        unit = sites.create_unit(
            rt, site_id=site.id, code=f"{code}-{n:04d}", name=f"{n}室", kind=kind, actor=ACTOR
        )
        account = sites.open_account(
            rt, unit_id=unit.id, utility=Utility.ELECTRICITY, tariff_id=tariff.id, actor=ACTOR
        )
        meter = metering.register_meter(
            rt,
            unit_id=unit.id,
            utility=Utility.ELECTRICITY,
            protocol=wanted.protocol,
            address=wanted.address,
            initial_total=initial_total,
            account_id=account.id,
            gateway_id=gateway.id,
            model=wanted.model,
            has_switch=True,
            actor=ACTOR,
        )
        meter_ids[wanted.address] = meter.id
    live = Runtime(db=rt.db, clock=SystemClock(), settings=rt.settings)
    return LinkedSite(live, site.id, gateway_code, meter_ids)
