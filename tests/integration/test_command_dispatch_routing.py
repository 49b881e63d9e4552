"""Which dispatcher claims which command, on SQLite and PostgreSQL: a claim filtered by
transport takes only commands of meters behind gateways of those transports, the
unfiltered claim still takes every one, and a command no running link can route stays
pending until its time to live expires it."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

from meterpay.control import outbox
from meterpay.control.commands import CommandKind, CommandState
from meterpay.kernel.clock import FixedClock
from meterpay.metering.gateways import Transport
from meterpay.metering.meters import Protocol
from meterpay.runtime import Runtime
from tests.integration.builders import LinkedMeter, a_home, a_linked_site

ADDRESS = "000000000101"


def _meter_behind(rt: Runtime, transport: Transport) -> int:
    """One meter behind a gateway of ``transport``, on a site of its own."""
    site = a_linked_site(
        rt,
        code=f"S-{transport.value}",
        gateway_code=f"GW-{transport.value}",
        transport=transport,
        meters=[LinkedMeter(ADDRESS, Protocol.DLT645_2007)],
        price=Decimal("0.5"),
    )
    return site.meter_ids[ADDRESS]


def _cut(rt: Runtime, meter_id: int, cause: str) -> outbox.Command:
    return outbox.queue(
        rt, meter_id=meter_id, kind=CommandKind.CUT, cause_key=cause, requested_by="test"
    )


def _clock(rt: Runtime) -> FixedClock:
    assert isinstance(rt.clock, FixedClock)
    return rt.clock


def test_a_dispatcher_claims_only_the_commands_of_its_transports(rt: Runtime) -> None:
    meters = {t: _meter_behind(rt, t) for t in Transport}
    commands = {t: _cut(rt, m, f"cut:{t.value}") for t, m in meters.items()}
    mqtt = outbox.claim(rt, transports={Transport.MQTT})
    assert [c.id for c in mqtt] == [commands[Transport.MQTT].id]
    both = outbox.claim(rt, transports=[Transport.DTU, Transport.MODBUS_TCP])
    assert sorted(c.id for c in both) == sorted(
        commands[t].id for t in (Transport.DTU, Transport.MODBUS_TCP)
    )
    assert outbox.get(rt, commands[Transport.HTTP].id).state is CommandState.PENDING
    assert outbox.claim(rt, transports={Transport.MQTT}) == []  # nothing more for MQTT


def test_without_a_filter_every_due_command_is_claimed_as_before(rt: Runtime) -> None:
    home = a_home(rt)  # a meter on no gateway at all
    linked = _meter_behind(rt, Transport.MQTT)
    ids = {_cut(rt, home.meter.id, "cut:home").id, _cut(rt, linked, "cut:mqtt").id}
    assert {c.id for c in outbox.claim(rt)} == ids


def test_a_command_no_link_routes_waits_pending_then_expires_by_its_time_to_live(
    rt: Runtime,
) -> None:
    """A meter on no gateway, and one behind an HTTP platform nobody dispatches to: the
    filtered dispatchers never take their cuts, and leave them untouched until the time
    to live passes; then any claim settles them as expired."""
    home = a_home(rt)
    http = _meter_behind(rt, Transport.HTTP)
    stranded = [_cut(rt, home.meter.id, "cut:nowhere"), _cut(rt, http, "cut:http")]
    served = {Transport.DTU, Transport.MQTT, Transport.MODBUS_TCP}
    for _ in range(3):
        assert outbox.claim(rt, transports=served) == []
        _clock(rt).advance(timedelta(minutes=15))
    for command in stranded:
        assert outbox.get(rt, command.id) == command  # pending, never sent, not even touched
    _clock(rt).advance(timedelta(minutes=15))  # the cut's hour is up
    assert outbox.claim(rt, transports={Transport.MQTT}) == []
    for command in stranded:
        settled = outbox.get(rt, command.id)
        assert (settled.state, settled.attempts) == (CommandState.EXPIRED, 0)


def test_a_filtered_claim_resends_its_own_unanswered_commands_only(rt: Runtime) -> None:
    dtu, mqtt = _meter_behind(rt, Transport.DTU), _meter_behind(rt, Transport.MQTT)
    on_dtu, on_mqtt = _cut(rt, dtu, "cut:dtu"), _cut(rt, mqtt, "cut:mqtt")
    assert len(outbox.claim(rt)) == 2  # both sent once, by an old unfiltered dispatcher
    _clock(rt).advance(timedelta(seconds=31))  # neither answered before its next try
    [again] = outbox.claim(rt, transports={Transport.MQTT})
    assert (again.id, again.attempts) == (on_mqtt.id, 2)
    assert outbox.get(rt, on_dtu.id).attempts == 1  # left for the DTU's dispatcher


def test_two_dispatchers_of_one_transport_never_claim_the_same_command(pg_rt: Runtime) -> None:
    mqtt, dtu = _meter_behind(pg_rt, Transport.MQTT), _meter_behind(pg_rt, Transport.DTU)
    wanted = {_cut(pg_rt, mqtt, f"cut:mqtt:{n}").id for n in range(30)}
    others = {_cut(pg_rt, dtu, f"cut:dtu:{n}").id for n in range(10)}
    claimed: list[list[int]] = [[], []]

    def dispatcher(slot: int) -> None:
        while batch := outbox.claim(pg_rt, limit=3, transports={Transport.MQTT}):
            claimed[slot].extend(c.id for c in batch)

    threads = [threading.Thread(target=dispatcher, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = claimed[0] + claimed[1]
    assert len(everything) == len(set(everything)) == len(wanted)
    assert set(everything) == wanted
    assert all(outbox.get(pg_rt, c).state is CommandState.PENDING for c in others)
