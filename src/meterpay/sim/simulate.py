"""``meterpay simulate``: simulated DTUs and meters that drive a running meterpay.

The simulation registers (once, idempotently) a site ``SIM`` with ``meters``
electricity meters (DL/T 645-2007, relay, plaintext 1CH) spread over ``dtus``
DTUs, each meter with its own prepaid account on a flat tariff and an opening
balance, in the database meterpay uses (``MP_DATABASE_URL``); then it dials
the running DTU listener (``meterpay links`` or ``meterpay serve --links``)
with that many simulated DTUs over real TCP, and their meters answer the
listener's polls and obey its relay commands until stopped. ``speed`` makes
the meters consume that many times faster than real time (at a high speed,
raise the meters' rated maximum or readings are flagged as spikes).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_CEILING, Decimal

from meterpay.drivers.models import bundled_models
from meterpay.kernel.money import Money
from meterpay.kernel.quantity import Utility
from meterpay.ledger.service import cash_top_up
from meterpay.metering import link_service as links
from meterpay.metering import service as metering
from meterpay.metering.gateways import Gateway, Transport
from meterpay.metering.meters import Meter, Protocol
from meterpay.runtime import Runtime
from meterpay.sim.dtu import DtuSettings, SimulatedDtu, SimulatedFleet, imei_like
from meterpay.sim.meters import meter_for
from meterpay.sites import service as sites
from meterpay.sites.model import UnitKind
from meterpay.tariffs import service as tariffs

log = logging.getLogger("meterpay.simulate")

SITE_CODE = "SIM"
ACTOR = "simulate"
MODEL = "generic-dds-645-2007-prepaid"
PRICE = "0.4883"
KINDS = (UnitKind.HOME, UnitKind.HOME, UnitKind.HOME, UnitKind.SHOP, UnitKind.OFFICE)


@dataclass(frozen=True, slots=True)
class Plan:
    meters: int
    dtus: int
    speed: float
    host: str
    port: int


def provision(rt: Runtime, plan: Plan) -> dict[str, list[Meter]]:
    """The SIM site's meters by DTU code, creating what is missing."""
    found = [s for s in sites.page(rt, "sites", after_id=None, limit=500) if s.code == SITE_CODE]
    site = (
        found[0] if found else sites.create_site(rt, code=SITE_CODE, name="模拟小区", actor=ACTOR)
    )
    tariff_id = _tariff(rt, site.id)
    gateways = {g.code: g for g in links.list_gateways(rt, site_id=site.id, limit=500)}
    by_dtu: dict[str, list[Meter]] = {}
    for n in range(plan.meters):
        code = imei_like(900_000 + n % plan.dtus)
        gateway = gateways.get(code) or links.create_gateway(
            rt,
            site_id=site.id,
            code=code,
            name=f"模拟DTU {n % plan.dtus + 1}",
            transport=Transport.DTU,
            actor=ACTOR,
        )
        gateways[code] = gateway
        by_dtu.setdefault(code, []).append(_meter(rt, site.id, tariff_id, gateway, n))
    return by_dtu


def _tariff(rt: Runtime, site_id: int) -> int:
    found = tariffs.list_tariffs(rt, site_id=site_id, after_id=None, limit=500)
    existing = [t for t in found if t.code == "SIM-FLAT"]
    if existing:
        return existing[0].id
    return tariffs.create_flat_tariff(
        rt,
        site_id=site_id,
        code="SIM-FLAT",
        name="模拟电价",
        utility=Utility.ELECTRICITY,
        unit_price=PRICE,
        effective_from=rt.clock.now() - timedelta(days=365),
        actor=ACTOR,
    ).id


def _meter(rt: Runtime, site_id: int, tariff_id: int, gateway: Gateway, n: int) -> Meter:
    address = f"{990_000_000_000 + n:012d}"
    existing = links.meter_ids_by_address(rt, gateway.code, [address])
    if existing:
        return metering.get_meter(rt, existing[address])
    unit = sites.create_unit(
        rt,
        site_id=site_id,
        code=f"SIM-{n + 1:05d}",
        name=f"模拟{n + 1}号",
        kind=KINDS[n % len(KINDS)],
        actor=ACTOR,
    )
    account = sites.open_account(
        rt, unit_id=unit.id, utility=Utility.ELECTRICITY, tariff_id=tariff_id, actor=ACTOR
    )
    cash_top_up(
        rt,
        account_id=account.id,
        amount=Money.from_yuan(200),
        idempotency_key=f"sim-opening-{account.number}",
        cashier=ACTOR,
    )
    return metering.register_meter(
        rt,
        unit_id=unit.id,
        utility=Utility.ELECTRICITY,
        protocol=Protocol.DLT645_2007,
        address=address,
        account_id=account.id,
        gateway_id=gateway.id,
        model=MODEL,
        has_switch=True,
        max_rate_per_hour=Decimal(40),
        actor=ACTOR,
    )


async def run(rt: Runtime, plan: Plan, stop: asyncio.Event) -> None:
    """Provision, then run the DTUs against ``plan.host:plan.port`` until ``stop``."""
    by_dtu = await asyncio.to_thread(provision, rt, plan)
    model = bundled_models()[MODEL]
    kinds = {
        m.id: KINDS[i % len(KINDS)] for i, m in enumerate(m for g in by_dtu.values() for m in g)
    }
    dtus = [
        SimulatedDtu(
            code,
            plan.host,
            plan.port,
            [
                meter_for(
                    model,
                    m.address,
                    kind=kinds[m.id],
                    speed=plan.speed,
                    opening=(m.last_total or Decimal(0)).quantize(
                        Decimal("0.01"), rounding=ROUND_CEILING
                    ),
                    seed=m.address,
                )
                for m in meters
            ],
            settings=DtuSettings(),
        )
        for code, meters in by_dtu.items()
    ]
    log.info(
        "simulating %d meters on %d DTUs against %s:%d (speed %g)",
        sum(len(m) for m in by_dtu.values()),
        len(dtus),
        plan.host,
        plan.port,
        plan.speed,
    )
    async with SimulatedFleet(dtus):
        await stop.wait()
