"""End-to-end MQTT ingest throughput: gateways -> Mosquitto -> one consumer -> database.

``measure(rt_or_db_url, ...)`` publishes ``readings`` readings of ``meters``
meters behind ``gateways`` simulated gateways (QoS 1, ``per_message`` readings
per message, each gateway in its own thread and connection, interval after
interval) through a real broker into one ``MqttConsumer`` in this process,
and times from the first publish to the moment the consumer has committed the
last reading. The database must be migrated-or-empty and hold no site
``BENCH`` (the fleet is set up by ``bench.ingest.set_up_fleet``: one prepaid
account per meter on a flat tariff). Not timed: setup, connecting, and the
checks afterwards (every reading stored once with source ``mqtt``, the
ledger's invariants). With ``copy_baseline=True`` on PostgreSQL it also times
a raw ``COPY`` of the same rows (``bench.ingest.time_copy``) for the ratio.

``python -m bench.mqtt_ingest`` runs it on a scratch PostgreSQL database
(``MP_BENCH_PG_URL``) against ``--broker`` (default mqtt://127.0.0.1:1883)
and prints the result. Mosquitto drops QoS 1 messages beyond
``max_queued_messages`` (default 1000) per session: keep
``readings / per_message`` well below ``receive_maximum + 1000`` or raise it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select, update

from bench.ingest import (
    INTERVAL,
    Workload,
    scratch_database,
    set_up_fleet,
    time_copy,
)
from meterpay.bootstrap import build_runtime
from meterpay.config import Settings
from meterpay.db.migrate import upgrade
from meterpay.db.schema import meters, readings
from meterpay.kernel.clock import SystemClock
from meterpay.ledger.service import verify_ledger
from meterpay.links.mqtt import ConsumerOptions, MqttConsumer
from meterpay.links.mqtt_payloads import GatewayReading
from meterpay.links.mqtt_session import Broker, SessionOptions
from meterpay.metering import link_service as links
from meterpay.metering.gateways import Transport
from meterpay.runtime import Runtime
from meterpay.sim.mqtt_gateway import SimulatedGateway
from meterpay.sites import service as sites

STALL = 30.0  # seconds without a reading stored: the rest is not coming
ACTOR = "bench"


def measure(
    rt_or_db_url: Runtime | str,
    *,
    readings_total: int = 20_000,
    meters_total: int = 1_000,
    gateways: int = 20,
    per_message: int = 50,
    broker: str = "mqtt://127.0.0.1:1883",
    batch_readings: int = 5_000,
    batch_ms: int = 200,
    ingest_threads: int = 4,
    copy_baseline: bool = False,
    seed: int = 1883,
) -> dict[str, Any]:
    """Readings/s from first publish to last commit, with what was stored and checked."""
    rt = _runtime(rt_or_db_url)
    intervals = max(1, readings_total // meters_total)
    work = Workload.generate(meters_total, intervals, datetime.now(UTC), seed)
    fleet = set_up_fleet(rt, work)
    codes = _attach_gateways(rt, fleet.meter_ids, gateways)
    plan = _publications(work, codes, intervals)
    tag = uuid.uuid4().hex[:8]
    options = _options(broker, tag, batch_readings, batch_ms, ingest_threads)
    expected = meters_total * intervals
    with _consuming(rt, options) as consumer:
        sims = [
            SimulatedGateway(
                code, [], broker=broker, prefix=options.session.prefix, per_message=per_message
            )
            for code in codes
        ]
        for sim in sims:
            sim.connect()
        started = time.perf_counter()
        published = _publish_all(sims, plan)
        publish_seconds = time.perf_counter() - started
        done = _wait_stored(consumer, expected)
        seconds = time.perf_counter() - started
        for sim in sims:
            sim.close(clear_status=True)
    _forget_session(Broker.parse(broker), options.session.client_id)
    result: dict[str, Any] = {
        "database": rt.db.dialect,
        "readings": expected,
        "meters": meters_total,
        "gateways": gateways,
        "messages": published,
        "per_message": per_message,
        "seconds": round(seconds, 3),
        "publish_seconds": round(publish_seconds, 3),
        "readings_per_s": round(expected / seconds, 1) if done else 0.0,
        "complete": done,
        **_checks(rt, consumer),
    }
    if copy_baseline and rt.db.is_postgres:
        copy = time_copy(
            rt.db.url, work.batches(fleet.meter_ids, 2_000, range(intervals)), rt.clock.now()
        )
        result["copy_readings_per_s"] = round(copy.rate, 1)
        result["ratio_to_copy"] = round(result["readings_per_s"] / copy.rate, 4)
    if isinstance(rt_or_db_url, str):
        rt.db.dispose()
    return result


def _runtime(rt_or_db_url: Runtime | str) -> Runtime:
    if not isinstance(rt_or_db_url, str):
        return rt_or_db_url
    rt = build_runtime(Settings(database_url=rt_or_db_url), clock=SystemClock())
    upgrade(rt.db, rt.clock)
    return rt


def _attach_gateways(rt: Runtime, meter_ids: Sequence[int], gateways: int) -> list[str]:
    """``gateways`` MQTT gateways on the bench site, meters shared out in runs (setup)."""
    [site] = sites.page(rt, "sites", after_id=None, limit=1, code="BENCH")
    codes = [f"BENCH-GW-{g:03d}" for g in range(gateways)]
    per = -(-len(meter_ids) // gateways)
    for g, code in enumerate(codes):
        gateway = links.create_gateway(
            rt, site_id=site.id, code=code, name=code, transport=Transport.MQTT, actor=ACTOR
        )
        with rt.db.write() as conn:
            ids = list(meter_ids[g * per : (g + 1) * per])
            conn.execute(update(meters).where(meters.c.id.in_(ids)).values(gateway_id=gateway.id))
    return codes


def _publications(
    work: Workload, codes: Sequence[str], intervals: int
) -> dict[str, list[list[GatewayReading]]]:
    """Per gateway, one list of readings per interval (meter ``n`` has address n+1)."""
    per = -(-len(work.initial) // len(codes))
    plan: dict[str, list[list[GatewayReading]]] = {code: [] for code in codes}
    totals = list(work.initial)
    for i in range(intervals):
        at = work.start + INTERVAL * (i + 1)
        for n in range(len(totals)):
            totals[n] += work.steps[n][i]
        for g, code in enumerate(codes):
            members = range(g * per, min((g + 1) * per, len(totals)))
            plan[code].append([GatewayReading(f"{n + 1:012d}", at, totals[n]) for n in members])
    return plan


def _publish_all(
    sims: Sequence[SimulatedGateway], plan: dict[str, list[list[GatewayReading]]]
) -> int:
    """Every gateway publishes its intervals in order, the gateways side by side."""
    threads = [threading.Thread(target=_publish_in_order, args=(s, plan[s.code])) for s in sims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(sim.published.messages for sim in sims)


def _publish_in_order(sim: SimulatedGateway, intervals: list[list[GatewayReading]]) -> None:
    for batch in intervals:
        sim.publish(batch)


def _wait_stored(consumer: MqttConsumer, expected: int) -> bool:
    """True once every reading is stored; False after ``STALL`` seconds without progress
    (the broker dropped messages: see ``max_queued_messages`` in docs/mqtt.md)."""
    seen, last_progress = -1, time.monotonic()
    while (done := consumer.counters.stored + consumer.counters.duplicates) < expected:
        if done != seen:
            seen, last_progress = done, time.monotonic()
        elif time.monotonic() - last_progress > STALL:
            return False
        time.sleep(0.005)
    return True


def _checks(rt: Runtime, consumer: MqttConsumer) -> dict[str, Any]:
    with rt.db.read() as conn:
        stored = conn.execute(
            select(func.count()).select_from(readings).where(readings.c.source == "mqtt")
        ).scalar_one()
    return {
        "stored": int(stored),
        "consumer": consumer.counters.snapshot(),
        "ledger_violations": len(verify_ledger(rt)),
    }


def _options(
    broker: str, tag: str, batch_readings: int, batch_ms: int, ingest_threads: int
) -> ConsumerOptions:
    return ConsumerOptions(
        session=SessionOptions(
            broker=Broker.parse(broker),
            client_id=f"bench-{tag}",
            group=f"bench-{tag}",
            prefix=f"bench-{tag}/v1",
            receive_maximum=2000,
            session_expiry_seconds=300,
            keepalive_seconds=30,
        ),
        batch_readings=batch_readings,
        batch_seconds=batch_ms / 1000,
        ingest_threads=ingest_threads,
    )


@contextmanager
def _consuming(rt: Runtime, options: ConsumerOptions) -> Iterator[MqttConsumer]:
    """The consumer on its own event loop in a thread, subscribed before the block."""
    consumer = MqttConsumer(rt, options)
    ready = threading.Event()
    handles: dict[str, Any] = {}

    async def run() -> None:
        handles["loop"], handles["stop"] = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        await consumer.run(handles["stop"])

    thread = threading.Thread(target=asyncio.run, args=(run(),), name="bench-mqtt-consumer")
    thread.start()
    ready.wait(30)
    until = time.monotonic() + 30
    while not consumer.subscribed:
        if time.monotonic() > until or not thread.is_alive():
            raise RuntimeError(f"the consumer did not subscribe to {options.session.broker}")
        time.sleep(0.01)
    try:
        yield consumer
    finally:
        handles["loop"].call_soon_threadsafe(handles["stop"].set)
        thread.join(120)


def _forget_session(broker: Broker, client_id: str) -> None:
    """Connect once with a clean start: the broker drops the bench consumer's session."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port, clean_start=True)
    client.loop_start()
    client.disconnect()
    client.loop_stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mqtt_ingest", description=__doc__)
    parser.add_argument("--readings", type=int, default=20_000)
    parser.add_argument("--meters", type=int, default=1_000)
    parser.add_argument("--gateways", type=int, default=20)
    parser.add_argument("--per-message", type=int, default=50)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    args = parser.parse_args(argv)
    with scratch_database() as (name, url):
        print(f"bench.mqtt_ingest on scratch database {name}, broker {args.broker}")
        result = measure(
            url,
            readings_total=args.readings,
            meters_total=args.meters,
            gateways=args.gateways,
            per_message=args.per_message,
            broker=args.broker,
            copy_baseline=True,
        )
    for key, value in result.items():
        print(f"  {key:<20} {value}")
    ok = (
        result["complete"]
        and result["stored"] == result["readings"]
        and not result["ledger_violations"]
    )
    if not ok:
        print(
            "bench.mqtt_ingest: readings missing or ledger WRONG (see above); missing readings"
            " usually mean the broker dropped messages (max_queued_messages, docs/mqtt.md)",
            file=sys.stderr,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
