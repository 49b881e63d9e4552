"""The demo's live meters: building 1 read over DTUs, building 2 over MQTT.

Once the demo's history is filled in, its meters are read the way a real
compound's are: each floor of building 1 hangs on a simulated 4G DTU that
dials meterpay's DTU listener and answers DL/T 645 (electricity) and
CJ/T 188 (water) frames; each floor of building 2 has a simulated MQTT
gateway publishing JSON readings to the broker, which meterpay consumes. When
no broker answers, building 2 stays on the direct feed (the demo still runs
without Mosquitto). Gateways are registered once, idempotently, so an
existing demo database picks them up too.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import ROUND_CEILING, Decimal

from meterpay.drivers.models import bundled_models
from meterpay.links.mqtt import ConsumerOptions
from meterpay.links.mqtt_session import Broker
from meterpay.links.runner import BackgroundLinks, Links, dtu_settings
from meterpay.metering import link_service as links
from meterpay.metering import service as metering
from meterpay.metering.gateways import Transport
from meterpay.metering.meters import Meter, MeterStatus
from meterpay.runtime import Runtime
from meterpay.sim.demo import LIVE_MODELS
from meterpay.sim.demo_story import usage_scale
from meterpay.sim.dtu import DtuSettings, SimulatedDtu, SimulatedFleet, imei_like
from meterpay.sim.meters import meter_for
from meterpay.sim.mqtt_gateway import SimulatedGateway, SimulatedMeter
from meterpay.sites.model import UnitKind

log = logging.getLogger("meterpay.demo")

ACTOR = "demo"
POLL_SPEED = 30.0  # a 15-minute poll every 30 s: the console visibly moves
MQTT_PACE_S = 30.0


@dataclass
class LiveMeters:
    """Which demo meters are read over which link (meter ids by gateway code)."""

    dtu: dict[str, list[Meter]] = field(default_factory=lambda: defaultdict(list))
    mqtt: dict[str, list[Meter]] = field(default_factory=lambda: defaultdict(list))


def place_on_links(
    rt: Runtime, site_id: int, meters: list[Meter], units: dict[int, str]
) -> LiveMeters:
    """Register a gateway per floor (DTUs in building 1, MQTT in building 2) and hang
    each floor's meters on it; already done parts are left as they are."""
    live = LiveMeters()
    known = {g.code: g for g in links.list_gateways(rt, site_id=site_id, limit=500)}
    for found in meters:
        meter = found
        code = units.get(meter.unit_id, "")
        building, _, rest = code.partition("-")
        if meter.status is not MeterStatus.ACTIVE or not rest[:2].isdigit():
            continue  # common areas stay on the direct feed
        floor = int(rest[:2])
        dtu = building == "1"
        gateway_code = imei_like(floor) if dtu else f"mqtt-2-{floor:02d}"
        gateway = known.get(gateway_code)
        if gateway is None:
            gateway = known[gateway_code] = links.create_gateway(
                rt,
                site_id=site_id,
                code=gateway_code,
                name=f"{building}号楼{floor}层 {'DTU' if dtu else 'MQTT网关'}",
                transport=Transport.DTU if dtu else Transport.MQTT,
                actor=ACTOR,
            )
        if meter.gateway_id != gateway.id or meter.model != LIVE_MODELS[meter.utility]:
            meter = metering.update_meter(
                rt,
                meter.id,
                gateway_id=gateway.id,
                model=LIVE_MODELS[meter.utility],
                actor=ACTOR,
                reason="demo: read over a link",
            )
        (live.dtu if dtu else live.mqtt)[gateway_code].append(meter)
    return live


def broker_reachable(url: str) -> bool:
    broker = Broker.parse(url)
    try:
        with socket.create_connection((broker.host, broker.port), timeout=1):
            return True
    except OSError:
        return False


class DemoLinks:
    """meterpay's own links (DTU listener, MQTT consumer) plus the simulated devices."""

    def __init__(self, rt: Runtime, live: LiveMeters, kinds: dict[int, UnitKind]) -> None:
        self.rt = rt
        self.live = live
        self.kinds = kinds
        settings = rt.settings
        self.use_mqtt = bool(live.mqtt) and broker_reachable(settings.mqtt_broker_url)
        dtu = dtu_settings(settings)
        dtu = replace(dtu, host="127.0.0.1", timings=replace(dtu.timings, poll_speed=POLL_SPEED))
        mqtt = (
            ConsumerOptions.from_settings(settings, client_id="meterpay-demo")
            if self.use_mqtt
            else None
        )
        self.links = BackgroundLinks(Links(rt, dtu=dtu, mqtt=mqtt))
        self._stop = threading.Event()

    @property
    def carried_meter_ids(self) -> set[int]:
        """Meters a link reads (the rest the demo still feeds directly)."""
        carried = {m.id for group in self.live.dtu.values() for m in group}
        if self.use_mqtt:
            carried |= {m.id for group in self.live.mqtt.values() for m in group}
        return carried

    def start(self) -> None:
        self.links.start()
        threading.Thread(target=self._run_dtus, name="demo-dtus", daemon=True).start()
        if self.use_mqtt:
            for code, meters in self.live.mqtt.items():
                threading.Thread(
                    target=self._run_gateway, args=(code, meters), name=f"demo-{code}", daemon=True
                ).start()
        else:
            log.info(
                "no MQTT broker at %s: building 2 is fed directly", self.rt.settings.mqtt_broker_url
            )
        log.info(
            "demo links: %d DTUs on port %d, %d MQTT gateways",
            len(self.live.dtu),
            self.rt.settings.dtu_port,
            len(self.live.mqtt) if self.use_mqtt else 0,
        )

    def stop(self) -> None:
        self._stop.set()
        self.links.stop()

    def _run_dtus(self) -> None:
        models = bundled_models()
        settings = DtuSettings(heartbeat_seconds=30.0)
        dtus = [
            SimulatedDtu(
                code,
                "127.0.0.1",
                self.rt.settings.dtu_port,
                [
                    meter_for(
                        models[LIVE_MODELS[m.utility]],
                        m.address,
                        kind=self.kinds.get(m.unit_id, UnitKind.HOME),
                        scale=usage_scale(m.address),
                        opening=_register(m),
                        seed=m.address,
                    )
                    for m in meters
                ],
                settings=settings,
            )
            for code, meters in self.live.dtu.items()
        ]

        async def main() -> None:
            async with SimulatedFleet(dtus):
                while not self._stop.is_set():
                    await asyncio.sleep(1)

        try:
            asyncio.run(main())
        except Exception:
            log.exception("the simulated DTUs stopped")

    def _run_gateway(self, code: str, meters: list[Meter]) -> None:
        gateway = SimulatedGateway(
            code,
            [
                SimulatedMeter(
                    m.address,
                    self.kinds.get(m.unit_id, UnitKind.HOME),
                    m.utility,
                    _register(m),
                    scale=usage_scale(m.address),
                )
                for m in meters
            ],
            broker=self.rt.settings.mqtt_broker_url,
        )
        start = max((m.last_read_at for m in meters if m.last_read_at), default=self.rt.clock.now())
        try:
            gateway.run(
                self._stop,
                start=max(start, self.rt.clock.now()),
                step=timedelta(seconds=MQTT_PACE_S),
                pace_seconds=MQTT_PACE_S,
            )
        except Exception:
            log.exception("simulated MQTT gateway %s stopped", code)
        finally:
            gateway.close()


def _register(meter: Meter) -> Decimal:
    """Where the simulated register starts: the last reading, rounded up to the 0.01 a
    real register shows (rounded down, the first live reading would look backwards)."""
    return (meter.last_total or Decimal(0)).quantize(Decimal("0.01"), rounding=ROUND_CEILING)
