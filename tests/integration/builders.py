"""Readable domain data for integration tests: a small compound to bill."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from meterpay.kernel.quantity import Utility
from meterpay.metering import service as metering
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
