"""The MQTT link against a real Mosquitto: readings billed once, garbage harmless,
statuses and command results consumed, and two consumer processes sharing one
subscription losing and doubling nothing when one of them is killed.

Mosquitto is ``MP_TEST_MQTT_URL`` (default mqtt://127.0.0.1:1883). Tests skip
when it is unreachable, except under CI (``CI=true``), where that fails. Each
test uses its own topic prefix, group, client ids and gateway codes, and
removes the sessions and retained messages it made.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiomqtt
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from meterpay.config import Settings
from meterpay.db.engine import Database
from meterpay.db.schema import charges, readings
from meterpay.kernel.clock import FixedClock, SystemClock
from meterpay.kernel.money import round_to_fen
from meterpay.kernel.quantity import Utility
from meterpay.ledger.service import account_balance, verify_ledger
from meterpay.links.mqtt import ConsumerOptions, MqttConsumer
from meterpay.links.mqtt_batch import BatchHandler, LinkCounters, is_bad_input
from meterpay.links.mqtt_commands import (
    CommandAction,
    CommandOutcome,
    CommandResult,
    MeterCommand,
    RelayState,
    log_command_result,
    publish_command,
)
from meterpay.links.mqtt_delivery import Delivery, ReadingsContent, read_delivery
from meterpay.links.mqtt_payloads import GatewayReading, TopicKind, encode_readings, topic_for
from meterpay.links.mqtt_session import Broker, SessionOptions
from meterpay.metering import link_service as links
from meterpay.metering import service as metering
from meterpay.metering.gateways import Transport
from meterpay.metering.meters import Protocol
from meterpay.runtime import Runtime
from meterpay.sim.mqtt_gateway import GatewayFaults, SimulatedGateway, SimulatedMeter
from meterpay.sites import service as sites
from meterpay.sites.model import UnitKind
from meterpay.tariffs import service as tariffs
from tests.integration.builders import ACTOR, a_home

MQTT_URL = os.environ.get("MP_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
DEADLINE = 180.0  # seconds: generous, never a measure of speed
PRICE = Decimal("0.4883")


# --- the broker, and the tools to watch it -------------------------------------------


@pytest.fixture(scope="session")
def broker() -> Broker:
    """Mosquitto, or a skip (a failure under CI) with the reason."""
    address = Broker.parse(MQTT_URL)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    try:
        client.connect(address.host, address.port, keepalive=5)
        client.disconnect()
    except OSError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but Mosquitto at {MQTT_URL} is unreachable: {exc}")
        pytest.skip(f"Mosquitto at {MQTT_URL} is unreachable ({exc}); set MP_TEST_MQTT_URL")
    return address


@dataclass
class Isolation:
    """Names no other test (or run) uses, and the cleanup they need."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    client_ids: list[str] = field(default_factory=list)
    retained: list[str] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"mptest-{self.tag}/v1"

    @property
    def group(self) -> str:
        return f"g-{self.tag}"

    def client_id(self, name: str) -> str:
        self.client_ids.append(f"mptest-{self.tag}-{name}")
        return self.client_ids[-1]

    def status_topic(self, code: str) -> str:
        self.retained.append(topic_for(self.prefix, code, TopicKind.STATUS))
        return self.retained[-1]


@pytest.fixture
def iso(broker: Broker) -> Iterator[Isolation]:
    isolation = Isolation()
    yield isolation
    client = _raw_client(broker, f"mptest-{isolation.tag}-cleanup")
    for topic in isolation.retained:  # an empty retained message removes the retained one
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
    _close(client)
    for client_id in isolation.client_ids:  # a clean start ends the persistent session
        _close(_raw_client(broker, client_id))


def _raw_client(broker: Broker, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port, keepalive=30, clean_start=True)
    client.loop_start()
    return client


def _close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def wait_for(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Poll until ``condition`` holds; fail naming ``what`` after ``deadline`` seconds."""
    until = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > until:
            pytest.fail(f"timed out after {deadline:.0f} s waiting for {what}")
        time.sleep(0.05)


def options(broker: Broker, iso: Isolation, name: str) -> ConsumerOptions:
    return ConsumerOptions(
        session=SessionOptions(
            broker=broker,
            client_id=iso.client_id(name),
            group=iso.group,
            prefix=iso.prefix,
            receive_maximum=1000,
            session_expiry_seconds=300,
            keepalive_seconds=30,
        ),
        batch_readings=500,
        batch_seconds=0.05,
        ingest_threads=2,
    )


@contextmanager
def consuming(consumer: MqttConsumer) -> Iterator[MqttConsumer]:
    """The consumer running in a thread of its own until the block ends (then stopped)."""
    started: dict[str, object] = {}
    failure: list[BaseException] = []

    async def go() -> None:
        stop = asyncio.Event()
        started["loop"], started["stop"] = asyncio.get_running_loop(), stop
        await consumer.run(stop)

    def main() -> None:
        try:
            asyncio.run(go())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=main, name="mqtt-consumer")
    thread.start()
    wait_for(lambda: consumer.subscribed or bool(failure), "the consumer to subscribe", 30)
    try:
        yield consumer
    finally:
        loop, stop = started["loop"], started["stop"]
        assert isinstance(loop, asyncio.AbstractEventLoop) and isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        assert not thread.is_alive(), "the consumer did not stop"
    if failure:
        raise failure[0]


def _mqtt_readings(rt: Runtime, meter_id: int | None = None) -> list[tuple[datetime, Decimal]]:
    query = select(readings.c.read_at, readings.c.total).where(readings.c.source == "mqtt")
    if meter_id is not None:
        query = query.where(readings.c.meter_id == meter_id)
    with rt.db.read() as conn:
        return [(at, total) for at, total in conn.execute(query.order_by(readings.c.read_at))]


# --- (a) one gateway, one consumer -----------------------------------------------------


def test_a_gateways_readings_are_billed_once_and_garbage_between_them_changes_nothing(
    rt: Runtime, broker: Broker, iso: Isolation
) -> None:
    """Readings bill (source mqtt), a duplicate bills nothing, every kind of garbage is
    refused without stopping the consumer, and a good reading survives bad neighbours."""
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    home = a_home(rt)
    code = f"GW-{iso.tag}"
    gateway = links.create_gateway(
        rt, site_id=home.site.id, code=code, name="1栋网关", transport=Transport.MQTT, actor=ACTOR
    )
    metering.update_meter(rt, home.meter.id, gateway_id=gateway.id, actor=ACTOR)
    start = clock.now()
    clock.advance(timedelta(hours=3))
    address = home.meter.address
    consumer = MqttConsumer(rt, options(broker, iso, "a"))
    with consuming(consumer):
        gw = SimulatedGateway(code, [], broker=MQTT_URL, prefix=iso.prefix)
        iso.status_topic(code)
        gw.connect()
        wait_for(lambda: links.gateway_by_code(rt, code).status == "online", "online status")
        raw = _raw_client(broker, iso.client_id("raw"))
        readings_topic = topic_for(iso.prefix, code, TopicKind.READINGS)

        def publish(topic: str, payload: bytes) -> None:
            raw.publish(topic, payload, qos=1).wait_for_publish(10)

        gw.publish([GatewayReading(address, start + timedelta(minutes=30), Decimal("1.5"))])
        publish(readings_topic, b"\x00\x01 not json")
        publish(readings_topic, b'{"readings": {"address": "1"}}')
        publish(readings_topic, b"[]")
        second = GatewayReading(address, start + timedelta(minutes=60), Decimal("3.25"))
        gw.publish([second])
        gw.publish([second])  # a duplicate: stored once, billed once

        def at(minutes: int, *, naive: bool = False) -> str:
            moment = start + timedelta(minutes=minutes)
            return (moment.replace(tzinfo=None) if naive else moment).isoformat()

        publish(  # naive, absurd and unknown readings around a good one (a JSON number)
            readings_topic,
            (
                '{"readings": ['
                f'{{"address": "{address}", "read_at": "{at(75, naive=True)}", "total": "3.5"}},'
                f'{{"address": "{address}", "read_at": "{at(80)}", "total": 3.6e400}},'
                f'{{"address": "{address}", "read_at": "{at(90)}", "total": 4.0}},'
                f'{{"address": "999999999999", "read_at": "{at(0)}", "total": "1"}}'
                "]}"
            ).encode(),
        )
        publish(topic_for(iso.prefix, f"{code}-nobody", TopicKind.READINGS), b'{"readings": []}')
        publish(topic_for(iso.prefix, code, TopicKind.STATUS), b'{"status": "sleeping"}')
        wait_for(lambda: len(_mqtt_readings(rt, home.meter.id)) == 3, "three stored readings")
        wait_for(lambda: consumer.counters.rejected_messages >= 5, "the garbage to be counted")
        gw.drop()  # the Last Will says offline
        wait_for(lambda: links.gateway_by_code(rt, code).status == "offline", "the Last Will")
        _close(raw)

    stored = _mqtt_readings(rt, home.meter.id)
    assert [total for _, total in stored] == [Decimal("1.5"), Decimal("3.25"), Decimal("4.0")]
    assert account_balance(rt, home.account.id).fen == -round_to_fen(Decimal("4.0") * PRICE).fen
    counters = consumer.counters.snapshot()
    assert (counters["stored"], counters["duplicates"], counters["rejected_readings"]) == (3, 1, 3)
    notes = [f["note"] for f in links.recent_frames(rt, gateway_code=code)]
    assert any("not JSON" in n for n in notes)
    assert any(
        n.startswith("3 of 4 readings refused: readings[0].read_at:") and "no time zone offset" in n
        for n in notes
    )
    nobody = links.recent_frames(rt, gateway_code=f"{code}-nobody")
    assert [f["note"] for f in nobody] == [f"no gateway has the code '{code}-nobody'"]
    assert metering.get_meter(rt, home.meter.id).link_status == "online"
    assert verify_ledger(rt) == []


# --- commands out, results in --------------------------------------------------------


def test_a_command_reaches_its_gateway_and_the_result_comes_back_through_the_consumer(
    rt: Runtime, broker: Broker, iso: Isolation
) -> None:
    """publish_command at QoS 1; the gateway cuts the meter, refuses a stale command,
    and the consumer hands both results to the handler and logs them per meter."""
    home = a_home(rt)
    code = f"GW-{iso.tag}"
    gateway = links.create_gateway(
        rt, site_id=home.site.id, code=code, name="", transport=Transport.MQTT, actor=ACTOR
    )
    metering.update_meter(rt, home.meter.id, gateway_id=gateway.id, actor=ACTOR)
    address = home.meter.address
    results: list[tuple[str, CommandResult]] = []
    consumer = MqttConsumer(
        rt,
        options(broker, iso, "c"),
        on_command_result=lambda gateway_code, result: results.append((gateway_code, result)),
    )
    with consuming(consumer):
        gw = SimulatedGateway(code, [SimulatedMeter(address)], broker=MQTT_URL, prefix=iso.prefix)
        iso.status_topic(code)
        gw.connect()
        now = datetime.now(UTC)

        async def send() -> None:
            async with aiomqtt.Client(
                broker.host, broker.port, identifier=iso.client_id("outbox")
            ) as client:
                for command in (
                    MeterCommand("cmd-1", address, CommandAction.CUT, now + timedelta(minutes=5)),
                    MeterCommand(
                        "cmd-2", address, CommandAction.RESTORE, now - timedelta(minutes=1)
                    ),
                ):
                    await publish_command(client, code, command, prefix=iso.prefix)

        asyncio.run(send())
        wait_for(lambda: len(results) == 2, "two command results")
        gw.close(clear_status=True)

    answered = [(c, r.command_id, r.outcome, r.relay) for c, r in results]
    assert answered == [
        (code, "cmd-1", CommandOutcome.DONE, RelayState.DISCONNECTED),
        (code, "cmd-2", CommandOutcome.EXPIRED, RelayState.DISCONNECTED),
    ]
    assert gw.meters[address].relay is RelayState.DISCONNECTED
    wait_for(lambda: len(links.recent_frames(rt, meter_id=home.meter.id)) == 2, "frame log")
    notes = [f["note"] for f in links.recent_frames(rt, meter_id=home.meter.id)]
    assert notes == ["command cmd-2: expired", "command cmd-1: done"]


# --- (b) two consumer processes, one killed --------------------------------------------

GATEWAYS = 5
METERS_PER_GATEWAY = 40
ROUNDS = 50  # 5 x 40 x 50 = 10,000 readings
STEP = timedelta(minutes=10)


@dataclass
class Fleet:
    """Meters behind gateways, each billing into its own account on one flat tariff."""

    start: datetime
    gateways: dict[str, list[SimulatedMeter]]
    meter_ids: dict[str, int]  # by address
    account_ids: dict[str, int]  # by address
    initial: dict[str, Decimal]  # by address


def a_fleet(rt: Runtime, tag: str) -> Fleet:
    """Installed a day ago (real time: the consumer processes run on the system clock)."""
    real = Runtime(db=rt.db, clock=SystemClock(), settings=rt.settings)
    start = (datetime.now(UTC) - timedelta(days=1)).replace(second=0, microsecond=0)
    site = sites.create_site(real, code=f"MQ-{tag}", name="共享订阅小区", actor=ACTOR)
    tariff = tariffs.create_flat_tariff(
        real,
        site_id=site.id,
        code="electricity-flat",
        name="居民电价",
        utility=Utility.ELECTRICITY,
        unit_price=PRICE,
        effective_from=start - timedelta(days=365),
        actor=ACTOR,
    )
    rng = random.Random(tag)
    fleet = Fleet(start, {}, {}, {}, {})
    for g in range(GATEWAYS):
        code = f"GW-{tag}-{g}"
        gateway = links.create_gateway(
            real,
            site_id=site.id,
            code=code,
            name=f"{g + 1}栋",
            transport=Transport.MQTT,
            actor=ACTOR,
        )
        fleet.gateways[code] = []
        for m in range(METERS_PER_GATEWAY):
            unit = sites.create_unit(
                real,
                site_id=site.id,
                code=f"{g}-{m:03d}",
                name=f"{g}-{m}",
                kind=UnitKind.HOME,
                actor=ACTOR,
            )
            account = sites.open_account(
                real, unit_id=unit.id, utility=Utility.ELECTRICITY, tariff_id=tariff.id, actor=ACTOR
            )
            address, initial = f"{g:02d}{m:010d}", Decimal(rng.randint(0, 9_999_999)) / 100
            meter = metering.register_meter(
                real,
                unit_id=unit.id,
                utility=Utility.ELECTRICITY,
                protocol=Protocol.DLT645_2007,
                address=address,
                account_id=account.id,
                register_capacity=Decimal("1000000"),
                max_rate_per_hour=Decimal("20"),
                initial_total=initial,
                gateway_id=gateway.id,
                installed_at=start,
                actor=ACTOR,
            )
            fleet.gateways[code].append(SimulatedMeter(address, total=initial))
            fleet.meter_ids[address], fleet.account_ids[address] = meter.id, account.id
            fleet.initial[address] = initial
    return fleet


class ConsumerProcess:
    """``meterpay mqtt consume`` in a subprocess, its log collected line by line."""

    def __init__(self, client_id: str, group: str, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        command = [sys.executable, "-m", "meterpay.links.mqtt_cli", "mqtt", "consume"]
        self.proc = subprocess.Popen(  # noqa: S603  our own CLI, arguments from the test
            [*command, "--broker", MQTT_URL, "--client-id", client_id, "--group", group],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def said(self, words: str) -> bool:
        return any(words in line for line in self.lines)

    def wait_subscribed(self) -> None:
        wait_for(lambda: self.said("subscribed") or self.proc.poll() is not None, "a subscription")
        assert self.said("subscribed"), "\n".join(self.lines[-30:])

    def stop(self) -> int:
        """SIGTERM, as a supervisor stops it; the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self._reader.join(10)
        return code

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no batch finished, no PUBACK sent, no DISCONNECT
        self.proc.wait(60)


def _count_stored(rt: Runtime) -> int:
    with rt.db.read() as conn:
        query = select(func.count()).select_from(readings).where(readings.c.source == "mqtt")
        return int(conn.execute(query).scalar_one())


@pytest.mark.postgres
def test_two_consumer_processes_lose_and_double_nothing_when_one_is_killed_mid_run(
    pg_rt: Runtime, broker: Broker, iso: Isolation
) -> None:
    """10,000 QoS 1 readings through one shared subscription into two processes; one is
    SIGKILLed mid-run and restarted under its client id: every reading is stored once,
    every account is charged exactly the price of its consumption, the ledger holds."""
    fleet = a_fleet(pg_rt, iso.tag)
    env = {
        **os.environ,
        "MP_DATABASE_URL": pg_rt.db.url,
        "MP_MQTT_TOPIC_PREFIX": iso.prefix,
        "MP_MQTT_BATCH_MS": "50",
        "MP_MQTT_BATCH_READINGS": "500",
        "MP_MQTT_SESSION_EXPIRY_SECONDS": "600",
    }
    first, second = iso.client_id("consumer-1"), iso.client_id("consumer-2")
    consumers = [ConsumerProcess(first, iso.group, env), ConsumerProcess(second, iso.group, env)]
    gateways = [
        SimulatedGateway(code, meters, broker=MQTT_URL, prefix=iso.prefix, per_message=20, seed=g)
        for g, (code, meters) in enumerate(fleet.gateways.items())
    ]
    try:
        for consumer in consumers:
            consumer.wait_subscribed()
        for gw in gateways:
            iso.status_topic(gw.code)
            gw.connect()
        for k in range(1, ROUNDS // 2 + 1):
            for gw in gateways:
                gw.round(fleet.start + STEP * k, hours=STEP / timedelta(hours=1))
        wait_for(lambda: _count_stored(pg_rt) >= 1000, "the first thousand readings", 120)
        consumers[0].kill()
        stored_at_kill = _count_stored(pg_rt)
        for k in range(ROUNDS // 2 + 1, ROUNDS + 1):  # the dead consumer's share waits for it
            for gw in gateways:
                gw.round(fleet.start + STEP * k, hours=STEP / timedelta(hours=1))
        consumers[0] = ConsumerProcess(first, iso.group, env)  # as a supervisor restarts it
        consumers[0].wait_subscribed()
        total = GATEWAYS * METERS_PER_GATEWAY * ROUNDS
        wait_for(lambda: _count_stored(pg_rt) >= total, f"{total} stored readings")
        assert [c.stop() for c in consumers] == [0, 0]
    finally:
        for gw in gateways:
            gw.close(clear_status=True)
        for consumer in consumers:
            if consumer.proc.poll() is None:
                consumer.kill()
    print(f"stored when killed: {stored_at_kill}; restarted: {consumers[0].lines[-1]}")
    assert consumers[0].said("session resumed"), "the restarted consumer got a new session"
    _assert_stored_and_charged_once(pg_rt, fleet, gateways)


def _assert_stored_and_charged_once(
    rt: Runtime, fleet: Fleet, gateways: list[SimulatedGateway]
) -> None:
    with rt.db.read() as conn:
        per_meter = dict(
            conn.execute(
                select(readings.c.meter_id, func.count())
                .where(readings.c.source == "mqtt")
                .group_by(readings.c.meter_id)
            ).all()
        )
        charged = dict(
            conn.execute(
                select(charges.c.account_id, func.sum(charges.c.amount_fen)).group_by(
                    charges.c.account_id
                )
            ).all()
        )
        charge_rows, charged_readings = conn.execute(
            select(func.count(), func.count(charges.c.reading_id.distinct()))
        ).one()
    assert set(per_meter.values()) == {ROUNDS}
    assert len(per_meter) == len(fleet.meter_ids)
    assert charge_rows == charged_readings <= len(fleet.meter_ids) * ROUNDS
    final = {a: m.total for gw in gateways for a, m in gw.meters.items()}
    for address, account_id in fleet.account_ids.items():
        expected = round_to_fen((final[address] - fleet.initial[address]) * PRICE).fen
        assert (charged.get(account_id, 0), address) == (expected, address)
        assert account_balance(rt, account_id).fen == -expected
    assert verify_ledger(rt) == []


# --- acknowledgement after commit, without a broker ------------------------------------


def _delivery(code: str, batch: list[GatewayReading], mid: int) -> Delivery:
    topic = topic_for("t/v1", code, TopicKind.READINGS)
    payload = encode_readings(batch)
    return Delivery(topic, payload, mid, 1, 1, read_delivery("t/v1", topic, payload))


def _handle(handler: BatchHandler, code: str, deliveries: list[Delivery]) -> None:
    work = [(d, d.content) for d in deliveries if isinstance(d.content, ReadingsContent)]
    handler.readings(code, work)


def test_a_batch_redelivered_after_a_crash_before_its_puback_bills_nothing_more(
    rt: Runtime,
) -> None:
    """The commit happened, the PUBACK did not (the process died): the broker redelivers,
    the readings count as duplicates and the balance does not move again."""
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    home, code = a_home(rt), "GW-crash"
    gateway = links.create_gateway(
        rt, site_id=home.site.id, code=code, name="", transport=Transport.MQTT, actor=ACTOR
    )
    metering.update_meter(rt, home.meter.id, gateway_id=gateway.id, actor=ACTOR)
    start = clock.now()
    clock.advance(timedelta(hours=1))
    batch = [
        GatewayReading(home.meter.address, start + timedelta(minutes=m), Decimal(m) / 10)
        for m in (15, 30, 45)
    ]
    deliveries = [_delivery(code, batch[:2], 1), _delivery(code, batch[2:], 2)]

    def crash(_: Delivery) -> None:
        raise KeyboardInterrupt  # the process dies between the commit and the PUBACK

    with pytest.raises(KeyboardInterrupt):
        _handle(BatchHandler(rt, crash, log_command_result, LinkCounters()), code, deliveries)
    charged = account_balance(rt, home.account.id)
    acked: list[int] = []
    again = BatchHandler(rt, lambda d: acked.append(d.mid), log_command_result, LinkCounters())
    _handle(again, code, deliveries)
    assert acked == [1, 2]
    assert (again.counters.stored, again.counters.duplicates) == (0, 3)
    assert account_balance(rt, home.account.id) == charged
    assert charged.fen == -round_to_fen(Decimal("4.5") * PRICE).fen


def test_a_database_failure_acknowledges_nothing(tmp_path: Path) -> None:
    """When the database cannot be reached the handler raises before any PUBACK, so
    the consumer keeps the messages and tries again."""
    url = f"sqlite:///{tmp_path / 'missing' / 'meterpay.db'}"  # a directory that is not there
    rt = Runtime(db=Database(url), clock=SystemClock(), settings=Settings(database_url=url))
    acked: list[Delivery] = []
    handler = BatchHandler(rt, acked.append, log_command_result, LinkCounters())
    reading = GatewayReading("000000000101", datetime.now(UTC), Decimal(1))
    with pytest.raises(OperationalError):
        _handle(handler, "GW-down", [_delivery("GW-down", [reading], 7)])
    assert acked == []
    assert is_bad_input(OperationalError("SELECT 1", {}, Exception("down"))) is False


# --- the broker goes away --------------------------------------------------------------


@contextmanager
def private_broker(tmp_path: Path) -> Iterator[tuple[int, Callable[[bool], None]]]:
    """A Mosquitto of our own on a free port (without persistence: a restart forgets
    every session); yields the port and ``switch(on)`` to stop and start it."""
    binary = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but there is no mosquitto binary to run a private broker")
        pytest.skip("no mosquitto binary: cannot stop and restart a broker of our own")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    running: list[subprocess.Popen[bytes]] = []

    def switch(on: bool) -> None:
        if on:
            command = [binary, "-c", str(conf)]
            running.append(subprocess.Popen(command, stderr=subprocess.DEVNULL))  # noqa: S603
            wait_for(lambda: _accepts(port), f"the private broker on port {port}", 30)
        else:
            running.pop().terminate()

    switch(True)
    try:
        yield port, switch
    finally:
        for proc in running:
            proc.terminate()
            proc.wait(30)


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_consumer_reconnects_when_the_broker_restarts_and_keeps_billing(
    rt: Runtime, broker: Broker, iso: Isolation, tmp_path: Path
) -> None:
    """The broker goes away and comes back (having forgotten every session): the
    consumer reconnects with its backoff, subscribes again and bills what follows."""
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    home, code = a_home(rt), f"GW-{iso.tag}"
    gateway = links.create_gateway(
        rt, site_id=home.site.id, code=code, name="", transport=Transport.MQTT, actor=ACTOR
    )
    metering.update_meter(rt, home.meter.id, gateway_id=gateway.id, actor=ACTOR)
    start = clock.now()
    clock.advance(timedelta(hours=1))
    with private_broker(tmp_path) as (port, switch):
        url = f"mqtt://127.0.0.1:{port}"
        opts = options(Broker("127.0.0.1", port), iso, "r")
        consumer = MqttConsumer(rt, opts)
        with consuming(consumer):
            for n, minutes in enumerate((15, 30)):
                gw = SimulatedGateway(code, [], broker=url, prefix=iso.prefix)
                gw.connect()
                at = start + timedelta(minutes=minutes)
                gw.publish([GatewayReading(home.meter.address, at, Decimal(n + 1))])
                wait_for(
                    lambda n=n: len(_mqtt_readings(rt, home.meter.id)) == n + 1, "a stored reading"
                )
                gw.close()
                if n == 0:
                    switch(False)
                    wait_for(lambda: not consumer.subscribed, "the consumer to notice")
                    switch(True)
                    wait_for(lambda: consumer.subscribed, "the consumer to come back", 90)
    assert [t for _, t in _mqtt_readings(rt, home.meter.id)] == [Decimal(1), Decimal(2)]
    assert account_balance(rt, home.account.id).fen == -round_to_fen(2 * PRICE).fen


# --- the simulator's faults ------------------------------------------------------------


def test_a_faulty_gateway_garbage_duplicates_and_outages_still_bills_exactly_its_use(
    rt: Runtime, broker: Broker, iso: Isolation
) -> None:
    """A simulated gateway (home, shop and office profiles) that sends garbage, repeats
    messages and drops off the network, uploading its backlog on return: every reading
    is stored once and each account pays exactly for what its meter counted."""
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    home, code = a_home(rt), f"GW-{iso.tag}"
    gateway = links.create_gateway(
        rt, site_id=home.site.id, code=code, name="", transport=Transport.MQTT, actor=ACTOR
    )
    metering.update_meter(rt, home.meter.id, gateway_id=gateway.id, actor=ACTOR)
    start, rounds = clock.now(), 8
    clock.advance(timedelta(hours=3))
    faults = GatewayFaults(garbage=0.4, duplicates=0.4, offline=0.3, offline_rounds=2)
    meter = SimulatedMeter(home.meter.address, UnitKind.SHOP, scale=1.5)
    consumer = MqttConsumer(rt, options(broker, iso, "f"))
    with consuming(consumer):
        gw = SimulatedGateway(
            code, [meter], broker=MQTT_URL, prefix=iso.prefix, faults=faults, seed=3
        )
        iso.status_topic(code)
        gw.connect()
        for k in range(1, rounds + 1):
            gw.round(start + timedelta(minutes=15 * k), hours=0.25)
        gw.come_back()
        wait_for(lambda: len(_mqtt_readings(rt, home.meter.id)) == rounds, "every reading")
        wait_for(lambda: links.gateway_by_code(rt, code).status == "online", "online again")
        wait_for(
            lambda: consumer.counters.rejected_messages == gw.published.garbage,
            "the garbage to be refused",
        )
        gw.close(clear_status=True)
    sent = gw.published
    assert sent.garbage and sent.duplicates and sent.drops, "the seed no longer shows every fault"
    assert consumer.counters.stored == rounds
    assert consumer.counters.duplicates >= sent.duplicates  # readings, of repeated messages
    assert _mqtt_readings(rt, home.meter.id)[-1][1] == meter.total
    expected = round_to_fen(meter.total * PRICE).fen
    assert account_balance(rt, home.account.id).fen == -expected
