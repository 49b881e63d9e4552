"""``meterpay links``: run this process's meter links (DTU listener, MQTT, Modbus TCP).

Thin: parse, build the settings, run ``meterpay.links.runner`` until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from meterpay.bootstrap import build_runtime
from meterpay.config import Settings
from meterpay.links.modbus_tcp import ModbusTcpSettings
from meterpay.links.mqtt import ConsumerOptions
from meterpay.links.runner import Links, dtu_settings
from meterpay.sim.simulate import Plan, run


def add_link_commands(sub: Any) -> None:
    links = sub.add_parser(
        "links",
        help="run the meter links: DTU listener (TCP, default port 9000) and MQTT consumer",
    )
    links.add_argument("--dtu-port", type=int, default=None, help="default MP_DTU_PORT (9000)")
    links.add_argument("--no-dtu", action="store_true", help="no DTU listener")
    links.add_argument("--mqtt", action="store_true", help="consume readings from MQTT too")
    links.add_argument(
        "--modbus",
        action="store_true",
        help="poll the Modbus TCP gateways too (one process only; or MP_MODBUS_ENABLED=true)",
    )
    links.add_argument("--broker", help="mqtt://host:port (default MP_MQTT_BROKER_URL)")
    links.add_argument("--client-id", help="this process's MQTT client id (MP_MQTT_CLIENT_ID)")
    links.set_defaults(run=_links)

    simulate = sub.add_parser(
        "simulate",
        help="simulated DTUs and DL/T 645 meters dialling a running DTU listener",
    )
    simulate.add_argument("--meters", type=int, default=100, help="meters (site SIM)")
    simulate.add_argument("--dtus", type=int, default=5, help="DTUs they hang on")
    simulate.add_argument(
        "--speed", type=float, default=1.0, help="meters consume this many times faster"
    )
    simulate.add_argument("--host", default="127.0.0.1", help="the DTU listener's host")
    simulate.add_argument("--port", type=int, default=None, help="default MP_DTU_PORT (9000)")
    simulate.set_defaults(run=_simulate)


def build_links(settings: Settings, args: argparse.Namespace, rt: Any) -> Links:
    dtu = None if args.no_dtu else dtu_settings(settings, port=args.dtu_port)
    mqtt = (
        ConsumerOptions.from_settings(settings, broker=args.broker, client_id=args.client_id)
        if args.mqtt
        else None
    )
    polling = args.modbus or settings.modbus_enabled
    modbus = ModbusTcpSettings.from_settings(settings) if polling else None
    return Links(rt, dtu=dtu, mqtt=mqtt, modbus=modbus)


def _links(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    rt = build_runtime(settings)
    links = build_links(settings, args, rt)
    if links.dtu is None and links.mqtt is None and links.modbus is None:
        print("links: nothing to run (--no-dtu without --mqtt or --modbus)")
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await links.run(stop)

    try:
        asyncio.run(main())
    finally:
        rt.db.dispose()
    return 0


def _simulate(args: argparse.Namespace) -> int:
    if args.meters < 1 or args.dtus < 1 or args.speed <= 0:
        print("simulate: --meters and --dtus must be at least 1, --speed positive")
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    rt = build_runtime(settings)
    plan = Plan(
        meters=args.meters,
        dtus=min(args.dtus, args.meters),
        speed=args.speed,
        host=args.host,
        port=settings.dtu_port if args.port is None else args.port,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(rt, plan, stop)

    try:
        asyncio.run(main())
    finally:
        rt.db.dispose()
    return 0
