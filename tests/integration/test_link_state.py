"""Gateways, meter lookup by (gateway, address), online state and the raw frame log."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from meterpay.kernel.clock import FixedClock
from meterpay.kernel.errors import Conflict, NotFound
from meterpay.links.sink import LinkSink
from meterpay.metering import link_service as links
from meterpay.metering import service as metering
from meterpay.metering.gateways import Direction, FrameRecord, Transport
from meterpay.metering.meters import ReadingIn, ReadingSource
from meterpay.runtime import Runtime
from tests.integration.builders import ACTOR, a_home
from tests.integration.http import API, created, error, ok

DTU = ReadingSource.DTU


def test_a_meter_is_found_by_its_gateway_code_and_bus_address(rt: Runtime) -> None:
    home = a_home(rt)
    dtu = links.create_gateway(
        rt,
        site_id=home.site.id,
        code="864000000000001",
        name="1栋DTU",
        transport=Transport.DTU,
        actor=ACTOR,
    )
    metering.update_meter(rt, home.meter.id, gateway_id=dtu.id, actor=ACTOR)
    assert links.meter_ids_by_address(rt, dtu.code, [home.meter.address, "999999999999"]) == {
        home.meter.address: home.meter.id
    }
    assert links.meter_ids_by_address(rt, "another-dtu", [home.meter.address]) == {}
    [linked] = links.meters_on(rt, dtu.code)
    assert (linked.id, linked.address, linked.link_status) == (
        home.meter.id,
        home.meter.address,
        "unknown",
    )


def test_gateway_codes_are_unique_and_unknown_codes_are_not_found(rt: Runtime) -> None:
    home = a_home(rt)
    links.create_gateway(
        rt, site_id=home.site.id, code="DTU-1", name="", transport=Transport.DTU, actor=ACTOR
    )
    with pytest.raises(Conflict):
        links.create_gateway(
            rt, site_id=home.site.id, code="DTU-1", name="", transport=Transport.MQTT, actor=ACTOR
        )
    with pytest.raises(NotFound):
        links.gateway_connected(rt, "DTU-unknown", remote_addr="10.0.0.1:5000")


def test_an_old_connection_closing_does_not_take_a_newer_one_offline(rt: Runtime) -> None:
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    home = a_home(rt)
    links.create_gateway(
        rt, site_id=home.site.id, code="DTU-2", name="", transport=Transport.DTU, actor=ACTOR
    )
    first = links.gateway_connected(rt, "DTU-2", remote_addr="10.0.0.1:5000")
    clock.advance(timedelta(seconds=90))
    second = links.gateway_connected(rt, "DTU-2", remote_addr="10.0.0.2:6000")
    links.gateway_disconnected(rt, "DTU-2", connected_at=first.connected_at)
    assert links.gateway_by_code(rt, "DTU-2").status == "online"
    links.gateway_disconnected(rt, "DTU-2", connected_at=second.connected_at)
    now_offline = links.gateway_by_code(rt, "DTU-2")
    assert now_offline.status == "offline"
    assert now_offline.remote_addr == "10.0.0.2:6000"


def test_meters_go_online_when_heard_and_offline_when_silent(rt: Runtime) -> None:
    home = a_home(rt)
    links.mark_meters(rt, heard=[home.meter.id])
    heard = metering.get_meter(rt, home.meter.id)
    assert (heard.link_status, heard.last_heard_at) == ("online", rt.clock.now())
    links.mark_meters(rt, silent=[home.meter.id])
    silent = metering.get_meter(rt, home.meter.id)
    assert (silent.link_status, silent.last_heard_at) == ("offline", rt.clock.now())


def test_the_console_pages_through_a_gateways_raw_frames_newest_first(
    rt: Runtime, api: TestClient
) -> None:
    home = a_home(rt)
    gateway = created(
        api.post(
            f"{API}/gateways",
            json={"site_id": home.site.id, "code": "864000000000009", "name": "2栋DTU"},
        )
    )
    assert (gateway["transport"], gateway["status"]) == ("dtu", "offline")
    request = bytes.fromhex("68 25 04 03 02 01 00 68 11 04 33 33 34 33 E1 16")
    links.log_frames(
        rt,
        [
            FrameRecord.of(rt.clock.now(), "864000000000009", Direction.TX, "dlt645", request)
            for _ in range(3)
        ]
        + [FrameRecord.of(rt.clock.now(), "elsewhere", Direction.RX, "dlt645", b"\x16")],
    )
    first = ok(api.get(f"{API}/gateways/{gateway['id']}/frames", params={"limit": 2}))
    assert [f["hex"] for f in first["items"]] == [request.hex(" ").upper()] * 2
    assert first["items"][0]["id"] > first["items"][1]["id"]
    rest = ok(
        api.get(
            f"{API}/gateways/{gateway['id']}/frames",
            params={"limit": 2, "before_id": first["next_before_id"]},
        )
    )
    assert len(rest["items"]) == 1 and rest["next_before_id"] is None
    error(api.get(f"{API}/meters/999999/frames"), 404, "not_found")
    meter = ok(api.get(f"{API}/meters/{home.meter.id}"))
    assert meter["link_status"] == "unknown" and meter["last_heard_at"] is None


def test_the_link_sink_drops_a_refused_reading_and_stores_the_rest(rt: Runtime) -> None:
    """One reading the service refuses (too precise) never holds back the batch it came in."""
    home = a_home(rt)
    other = metering.register_meter(
        rt,
        unit_id=home.meter.unit_id,
        utility=home.meter.utility,
        protocol=home.meter.protocol,
        address="000000000102",
        account_id=home.account.id,
        actor=ACTOR,
    )
    clock = rt.clock
    assert isinstance(clock, FixedClock)
    clock.advance(timedelta(hours=1))
    sink = LinkSink(rt, actor="dtu", flush_seconds=0.05)
    sink.start()
    sink.put_reading(ReadingIn(home.meter.id, rt.clock.now(), Decimal("1.234567"), DTU))
    sink.put_reading(ReadingIn(other.id, rt.clock.now(), Decimal("2.5"), DTU))
    sink.stop()
    assert sink.pending_readings == 0
    assert metering.get_meter(rt, other.id).last_total == Decimal("2.5000")
    assert metering.get_meter(rt, home.meter.id).last_total == Decimal("0.0000")
