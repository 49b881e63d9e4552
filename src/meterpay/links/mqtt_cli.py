"""``meterpay mqtt consume``: run one MQTT consumer, and the dispatcher that publishes the
outbox's commands to MQTT gateways, until SIGTERM or Ctrl-C.

``add_mqtt_commands(subparsers)`` adds the ``mqtt`` command to the
``meterpay`` parser; ``main(argv)`` runs it standalone
with the same arguments (``python -m meterpay.links.mqtt_cli mqtt consume …``),
as tests and supervisors do.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from meterpay.bootstrap import build_runtime
from meterpay.config import Settings
from meterpay.kernel.errors import DomainError
from meterpay.links.mqtt import ConsumerOptions, MqttConsumer
from meterpay.links.mqtt_command_dispatch import CommandResults, MqttCommandDispatcher
from meterpay.runtime import Runtime

log = logging.getLogger("meterpay.links.mqtt")


def add_mqtt_commands(sub: Any) -> None:
    """``mqtt consume``; ``sub`` is the ``meterpay`` parser's subparsers."""
    mqtt = sub.add_parser("mqtt", help="MQTT gateways: consume their readings (docs/mqtt.md)")
    commands = mqtt.add_subparsers(title="mqtt commands")
    consume = commands.add_parser(
        "consume",
        help="consume readings, statuses and command results, publish the outbox's commands,"
        " until SIGTERM (MP_MQTT_* settings)",
    )
    consume.add_argument("--broker", help="mqtt://host:port (default MP_MQTT_BROKER_URL)")
    consume.add_argument(
        "--client-id",
        help="this process's stable client id: its persistent session (default MP_MQTT_CLIENT_ID)",
    )
    consume.add_argument("--group", help="shared subscription group (default MP_MQTT_GROUP)")
    consume.set_defaults(run=_consume)


def _consume(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    try:
        options = ConsumerOptions.from_settings(
            settings, broker=args.broker, client_id=args.client_id, group=args.group
        )
    except DomainError as exc:
        print(f"mqtt consume: {exc.message}", file=sys.stderr)
        return 2
    rt = build_runtime(settings)
    try:
        asyncio.run(consume_until_signalled(rt, options))
    finally:
        rt.db.dispose()
    return 0


async def consume_until_signalled(rt: Runtime, options: ConsumerOptions) -> None:
    """Consume (and carry the outbox's MQTT commands) until SIGTERM or SIGINT, then
    finish the batch in hand and disconnect."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    consumer = MqttConsumer(rt, options, on_command_result=CommandResults(rt))
    await asyncio.gather(consumer.run(stop), MqttCommandDispatcher(rt, options.session).run(stop))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meterpay", description=__doc__)
    add_mqtt_commands(parser.add_subparsers(title="commands"))
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
