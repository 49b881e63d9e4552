"""Outbox commands to meters on MQTT gateways, against a real Mosquitto: published on the
gateway's command topic, settled by the gateway's results through the consumer, and
verified by the relay state the gateway reports.

The broker fixtures and isolation (own prefix, group, client ids) are the MQTT link
tests'; Mosquitto unreachable skips, or fails under CI.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiomqtt
import paho.mqtt.client as mqtt
import pytest

from meterpay.control import outbox
from meterpay.control.commands import CommandKind, CommandState
from meterpay.kernel.clock import FixedClock
from meterpay.kernel.errors import InvalidInput, NotFound
from meterpay.links.mqtt_command_dispatch import CommandResults, MqttCommandDispatcher
from meterpay.links.mqtt_commands import (
    CommandAction,
    CommandOutcome,
    CommandResult,
    RelayState,
    encode_command_result,
    parse_command,
)
from meterpay.links.mqtt_payloads import TopicKind, topic_for
from meterpay.links.mqtt_session import Broker
from meterpay.links.runner import BackgroundLinks, Links
from meterpay.metering.gateways import Transport
from meterpay.metering.meters import Protocol
from meterpay.runtime import Runtime
from meterpay.sim.mqtt_gateway import GatewayFaults, SimulatedGateway, SimulatedMeter
from tests.integration.builders import LinkedMeter, LinkedSite, a_linked_site
from tests.integration.test_mqtt_link import (  # the broker fixtures are shared
    MQTT_URL,
    Isolation,
    _close,
    _raw_client,
    broker,  # noqa: F401  a fixture
    iso,  # noqa: F401  a fixture
    options,
    wait_for,
)

OBEYS, STUCK = "000000000101", "000000000102"


def a_site_on_mqtt(rt: Runtime, code: str) -> LinkedSite:
    """Two meters behind one MQTT gateway: one obeys, one has a stuck relay."""
    return a_linked_site(
        rt,
        code="MQC",
        gateway_code=code,
        transport=Transport.MQTT,
        meters=[LinkedMeter(a, Protocol.DLT645_2007) for a in (OBEYS, STUCK)],
        price=Decimal("0.5"),
    )


def _queue(rt: Runtime, meter_id: int, kind: CommandKind, cause: str) -> outbox.Command:
    return outbox.queue(rt, meter_id=meter_id, kind=kind, cause_key=cause, requested_by="test")


def _settled(rt: Runtime, command_id: int) -> bool:
    return outbox.get(rt, command_id).state in (CommandState.VERIFIED, CommandState.FAILED)


def test_a_cut_and_a_restore_reach_the_meter_through_the_running_links_and_are_verified(
    rt: Runtime,
    broker: Broker,  # noqa: F811  the fixture
    iso: Isolation,  # noqa: F811  the fixture
) -> None:
    """``Links`` with MQTT runs the dispatcher and the consumer: the simulated meter's relay
    opens and closes, each command ends verified, the stuck relay's ends failed, and a
    result delivered again changes nothing."""
    code = f"GW-{iso.tag}"
    site = a_site_on_mqtt(rt, code)
    gateway = SimulatedGateway(
        code,
        [SimulatedMeter(OBEYS), SimulatedMeter(STUCK, relay_stuck=True)],
        broker=MQTT_URL,
        prefix=iso.prefix,
    )
    iso.status_topic(code)
    gateway.connect()
    running = BackgroundLinks(Links(site.live, mqtt=options(broker, iso, "links")))
    running.start()
    try:
        consumer = running.links.consumer
        assert consumer is not None
        wait_for(lambda: consumer.subscribed, "the consumer to subscribe", 30)
        relays = []
        for kind in (CommandKind.CUT, CommandKind.RESTORE):
            command = _queue(site.live, site.meter_ids[OBEYS], kind, f"test:{kind.value}")
            wait_for(lambda c=command: _settled(site.live, c.id), f"the {kind.value}")
            relays.append((outbox.get(site.live, command.id).state, gateway.meters[OBEYS].relay))
        stuck = _queue(site.live, site.meter_ids[STUCK], CommandKind.CUT, "test:stuck")
        wait_for(lambda: _settled(site.live, stuck.id), "the stuck relay's cut")
        verified = outbox.get(site.live, command.id)
        results_before = consumer.counters.command_results
        raw = _raw_client(broker, iso.client_id("raw"))
        again = CommandResult(
            f"cmd-{command.id}", OBEYS, CommandOutcome.DONE, datetime.now(UTC), RelayState.CONNECTED
        )
        raw.publish(
            topic_for(iso.prefix, code, TopicKind.COMMAND_RESULTS),
            encode_command_result(again),
            qos=1,
        ).wait_for_publish(10)
        wait_for(lambda: consumer.counters.command_results > results_before, "the duplicate")
        _close(raw)
    finally:
        running.stop()
        gateway.close(clear_status=True)
    assert relays == [
        (CommandState.VERIFIED, RelayState.DISCONNECTED),
        (CommandState.VERIFIED, RelayState.CONNECTED),
    ]
    assert outbox.get(rt, command.id) == verified  # the duplicate changed nothing
    failed = outbox.get(rt, stuck.id)
    assert failed.state is CommandState.FAILED
    assert failed.last_error == "gateway answered failed"
    assert gateway.meters[STUCK].relay is RelayState.CONNECTED


def test_a_silent_gateway_gets_the_command_again_with_backoff_until_it_expires(
    rt: Runtime,
    broker: Broker,  # noqa: F811  the fixture
    iso: Isolation,  # noqa: F811  the fixture
) -> None:
    """Every try is published (QoS 1, not retained, the command's own id and expiry) and
    counted; nothing answers; the tries back off (30 s, doubling) and the cut, whose hour
    is up before an eighth try, ends expired — sent seven times, never lost."""
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    code = f"GW-{iso.tag}"
    site = a_site_on_mqtt(rt, code)
    gateway = SimulatedGateway(
        code,
        [SimulatedMeter(OBEYS)],
        broker=MQTT_URL,
        prefix=iso.prefix,
        faults=GatewayFaults(silent_commands=1.0),
    )
    iso.status_topic(code)
    gateway.connect()
    watcher = _raw_client(broker, iso.client_id("watch"))
    seen: list[mqtt.MQTTMessage] = []
    watcher.on_message = lambda _c, _u, message: seen.append(message)
    watcher.subscribe(topic_for(iso.prefix, code, TopicKind.COMMANDS), qos=1)
    command = _queue(rt, site.meter_ids[OBEYS], CommandKind.CUT, "test:silent")
    dispatcher = MqttCommandDispatcher(rt, options(broker, iso, "disp").session)
    waits: list[timedelta] = []

    async def dispatch_until_final() -> None:
        async with aiomqtt.Client(broker.host, broker.port, identifier=iso.client_id("pub")) as c:
            while outbox.get(rt, command.id).state is not CommandState.EXPIRED:
                sent = len(seen)
                if await dispatcher.round(c):
                    await asyncio.to_thread(wait_for, lambda n=sent: len(seen) > n, "the try")
                state = outbox.get(rt, command.id)
                if state.state is CommandState.SENT:
                    waits.append(state.next_attempt_at - clock.now())
                    clock.advance(state.next_attempt_at - clock.now())

    try:
        asyncio.run(dispatch_until_final())
        wait_for(lambda: gateway.published.commands_ignored == len(seen), "the gateway")
    finally:
        _close(watcher)
        gateway.close(clear_status=True)
    final = outbox.get(rt, command.id)
    assert (final.state, final.attempts, final.last_error) == (CommandState.EXPIRED, 7, "timed_out")
    assert waits == [timedelta(seconds=30 * 2**n) for n in range(6)] + [timedelta(minutes=30)]
    assert len(seen) == 7 and gateway.published.command_results == 0
    for message in seen:
        assert (message.qos, message.retain) == (1, False)
        sent = parse_command(bytes(message.payload))
        assert (sent.command_id, sent.address, sent.action) == (
            f"cmd-{command.id}",
            OBEYS,
            CommandAction.CUT,
        )
        assert sent.expires_at == command.expires_at


def _result(
    command_id: str, outcome: CommandOutcome, relay: RelayState | None = None, address: str = OBEYS
) -> CommandResult:
    return CommandResult(command_id, address, outcome, datetime.now(UTC), relay)


def test_results_settle_commands_once_and_stray_results_change_nothing(rt: Runtime) -> None:
    """done without a relay acknowledges; a later done with the relay verifies; the same
    result again, a result for an unknown or foreign id, one naming another meter and one
    for a final command change nothing; rejected and expired fail their commands."""
    code = "GW-RESULTS"
    site = a_site_on_mqtt(rt, code)
    meter_id = site.meter_ids[OBEYS]
    cut = _queue(rt, meter_id, CommandKind.CUT, "test:cut")
    restore = _queue(rt, meter_id, CommandKind.RESTORE, "test:restore")
    read = _queue(rt, meter_id, CommandKind.READ_STATUS, "test:read")
    late = _queue(rt, meter_id, CommandKind.CUT, "test:late")
    assert len(outbox.claim(rt, transports={Transport.MQTT})) == 4
    results = CommandResults(rt)
    cut_id = f"cmd-{cut.id}"

    results(code, _result(cut_id, CommandOutcome.DONE))
    assert outbox.get(rt, cut.id).state is CommandState.ACKNOWLEDGED
    results(code, _result(cut_id, CommandOutcome.DONE, RelayState.DISCONNECTED))
    verified = outbox.get(rt, cut.id)
    assert verified.state is CommandState.VERIFIED
    results(code, _result(cut_id, CommandOutcome.DONE, RelayState.DISCONNECTED))
    results(code, _result(cut_id, CommandOutcome.FAILED))  # a final command stays final
    assert outbox.get(rt, cut.id) == verified
    for stray in ("cmd-999999", "gateway-own-42"):
        with pytest.raises(NotFound):
            results(code, _result(stray, CommandOutcome.DONE))
    with pytest.raises(InvalidInput):  # another gateway cannot answer for this meter
        results("GW-OTHER", _result(f"cmd-{restore.id}", CommandOutcome.DONE))
    with pytest.raises(InvalidInput):
        results(code, _result(f"cmd-{restore.id}", CommandOutcome.DONE, address=STUCK))
    assert outbox.get(rt, restore.id).state is CommandState.SENT

    results(code, _result(f"cmd-{restore.id}", CommandOutcome.REJECTED))
    results(code, _result(f"cmd-{read.id}", CommandOutcome.DONE, RelayState.CONNECTED))
    results(code, _result(f"cmd-{late.id}", CommandOutcome.EXPIRED, RelayState.CONNECTED))
    states = {c.id: outbox.get(rt, c.id) for c in (restore, read, late)}
    assert states[restore.id].state is CommandState.FAILED
    assert states[restore.id].last_error == "gateway answered rejected"
    assert states[read.id].state is CommandState.VERIFIED  # a read done is all there is
    assert states[late.id].state is CommandState.FAILED


def test_a_done_that_reports_the_relay_the_other_way_fails_the_command(rt: Runtime) -> None:
    site = a_site_on_mqtt(rt, "GW-CONTRA")
    cut = _queue(rt, site.meter_ids[OBEYS], CommandKind.CUT, "test:contra")
    outbox.claim(rt, transports={Transport.MQTT})
    CommandResults(rt)(
        "GW-CONTRA", _result(f"cmd-{cut.id}", CommandOutcome.DONE, RelayState.CONNECTED)
    )
    failed = outbox.get(rt, cut.id)
    assert (failed.state, failed.last_error) == (
        CommandState.FAILED,
        "gateway reports the relay connected",
    )
