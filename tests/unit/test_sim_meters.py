"""Simulated meters answer the drivers' own requests as field meters would: replies are
decoded with ``polling`` and ``supply``, and recorded frames from the protocol reference
come back byte for byte."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from meterpay.drivers import cjt188, dlt645, modbus
from meterpay.drivers import dlt645_requests as out
from meterpay.drivers.cjt188_messages import DiOrder, di_wire, read_request
from meterpay.drivers.dlt645_replies import Ack, AddressReply, ReadReply, parse_reply
from meterpay.drivers.models import (
    Cjt188Model,
    Dlt645Model,
    MeterModel,
    bundled_models,
    load_model_text,
)
from meterpay.drivers.polling import Reading, ReplyFrame, poll_requests, reading_from_replies
from meterpay.drivers.stream import Skipped, dlt645_stream
from meterpay.drivers.supply import (
    CommandOutcome,
    SupplyAction,
    command_outcome,
    supply_command,
    supply_confirmed,
)
from meterpay.sim.meter_cjt188 import WaterMeter
from meterpay.sim.meter_dlt645 import Dlt645Meter
from meterpay.sim.meter_faults import Garbage
from meterpay.sim.meters import COLLISION, Meter, RS485Bus, meter_for
from meterpay.sites.model import UnitKind

ZONE = ZoneInfo("Asia/Shanghai")
MODELS = bundled_models()
PREPAID = MODELS["generic-dds-645-2007-prepaid"]
OLD_645 = MODELS["generic-645-1997"]
WATER_LSB = MODELS["generic-cjt188-cold-water-valve-lsb"]
WATER_MSB = MODELS["generic-cjt188-cold-water-valve-msb"]
SDM120 = MODELS["eastron-sdm120-modbus"]
EVENING = datetime(2026, 11, 3, 18, 0, tzinfo=ZONE)
NIGHT = datetime(2026, 11, 4, 1, 0, tzinfo=ZONE)
HOURS = timedelta(hours=1)
ELECTRIC = "000000000101"
WATER = "78330011223344"

# a Modbus meter with a relay coil and a relay-state register, as some DIN-rail meters have
COIL_MODEL = load_model_text(
    """
id: test-modbus-coil
maker: test
utility: electricity
protocol: modbus_rtu
registers:
  - {field: total, function: holding, address: 0, type: uint32, scale: "0.01", every_minutes: 15}
  - {field: relay_open, function: holding, address: 16, bit: 0, every_minutes: 15}
relay: {style: coil, address: 0, disconnect_value: 0, reconnect_value: 0xFF00}
""",
    "test-modbus-coil.yaml",
)


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text)


def decode(model: MeterModel, raw: bytes) -> ReplyFrame:
    if isinstance(model, Dlt645Model):
        return dlt645.decode(raw)
    if isinstance(model, Cjt188Model):
        return cjt188.decode(raw)
    return modbus.decode_rtu(raw)


def started(
    model: MeterModel,
    address: str,
    at: datetime = EVENING,
    *,
    kind: UnitKind = UnitKind.HOME,
    speed: float = 1.0,
    seed: int | None = None,
) -> Meter:
    meter = meter_for(model, address, kind=kind, speed=speed, opening=Decimal(100), seed=seed)
    meter.advance(at)
    return meter


def read(meter: Meter, at: datetime) -> Reading:
    replies = []
    for poll in poll_requests(meter.model, meter.address):
        raw = meter.answer(poll.frame, at)
        assert raw is not None, f"no reply to {poll.item}"
        replies.append((poll, decode(meter.model, raw)))
    return reading_from_replies(meter.model, meter.address, replies)


def switch(
    meter: Meter, action: SupplyAction, at: datetime, now: datetime | None = None
) -> CommandOutcome:
    command = supply_command(meter.model, meter.address, action, now=now or at)
    raw = meter.answer(command.frame, at)
    assert raw is not None
    return command_outcome(command, decode(meter.model, raw))


def electric(at: datetime = EVENING, *, speed: float = 1.0, seed: int | None = None) -> Dlt645Meter:
    meter = started(PREPAID, ELECTRIC, at, speed=speed, seed=seed)
    assert isinstance(meter, Dlt645Meter)
    return meter


# --- recorded frames from the reference -----------------------------------------------------


def test_meter_answers_the_reference_read_with_the_reference_reply() -> None:
    """Meter 000102030425 at 1206.42 kWh answers the recorded read with the recorded reply."""
    assert isinstance(PREPAID, Dlt645Model)
    meter = Dlt645Meter(PREPAID, "000102030425", opening=Decimal("1206.42"), wake_up=0)
    request = hexbytes("68 25 04 03 02 01 00 68 11 04 33 33 34 33 E1 16")
    reply = hexbytes("68 25 04 03 02 01 00 68 91 08 33 33 34 33 75 39 45 33 8B 16")
    assert meter.answer(request, EVENING) == reply


def test_unknown_data_identifier_gets_the_reference_no_data_reply() -> None:
    """A DI the meter does not keep (combined total) is refused with ERR bit 1."""
    assert isinstance(PREPAID, Dlt645Model)
    meter = Dlt645Meter(PREPAID, "000102030425", wake_up=0)
    request = dlt645.encode(out.read_request("000102030425", 0x00000000))
    assert meter.answer(request, EVENING) == hexbytes("68 25 04 03 02 01 00 68 D1 01 35 06 16")


def test_recorded_trip_with_password_level_00_is_refused_as_unauthorised() -> None:
    """The reference trip (PA 00, long expired) meets a level-02 meter: ERR bit 2 first."""
    assert isinstance(PREPAID, Dlt645Model)
    meter = Dlt645Meter(PREPAID, "111111111111", wake_up=0)
    trip = hexbytes(
        "68 11 11 11 11 11 11 68 1C 10 33 33 33 33 33 33 33 33 4D 33 57 74 48 45 38 4B 55 16"
    )
    assert meter.answer(trip, EVENING) == hexbytes("68 11 11 11 11 11 11 68 DC 01 37 4A 16")
    assert not meter.relay_open


def test_water_meter_answers_the_reference_valve_order_with_the_reference_reply() -> None:
    """Meter 1505900569/7833 (DI high byte first) opens its valve and says so in ST."""
    meter = started(WATER_MSB, "78331505900569")
    request = hexbytes("FE FE FE FE 68 10 69 05 90 05 15 33 78 04 04 A0 17 01 55 50 16")
    reply = hexbytes("FE FE FE FE 68 10 69 05 90 05 15 33 78 84 05 A0 17 01 00 00 7C 16")
    assert meter.answer(request, EVENING) == reply


def test_sdm120_refuses_holding_registers_with_the_reference_exception() -> None:
    """The SDM120 model keeps input registers only: FC03 at 0 is exception 02."""
    meter = started(SDM120, "1")
    assert meter.answer(hexbytes("01 03 00 00 00 0A C5 CD"), EVENING) == hexbytes("01 83 02 C0 F1")


# --- DL/T 645 electricity -----------------------------------------------------------------


def test_evening_consumption_advances_the_total_and_the_peak_register() -> None:
    """Three evening hours add to total and peak, not valley, and the block adds up."""
    meter = electric()
    before, after = read(meter, EVENING), read(meter, EVENING + 3 * HOURS)
    assert before.total is not None and after.total is not None
    assert after.total > before.total
    assert after.peak is not None and before.peak is not None and after.peak > before.peak
    assert after.valley == before.valley
    parts = [after.tip, after.peak, after.flat, after.valley]
    assert abs(sum(p for p in parts if p is not None) - after.total) <= Decimal("0.04")
    assert after.voltage is not None and Decimal(200) < after.voltage < Decimal(240)


def test_night_consumption_goes_to_the_valley_register() -> None:
    """From 01:00 to 05:00 only the valley register moves."""
    meter = electric(NIGHT)
    before, after = read(meter, NIGHT), read(meter, NIGHT + 4 * HOURS)
    assert after.peak == before.peak
    assert after.valley is not None and before.valley is not None and after.valley > before.valley


def test_a_shop_draws_more_than_a_home_in_the_morning() -> None:
    """Load follows the unit kind: 10:00-12:00 a shop is open and a flat mostly empty."""
    morning = EVENING.replace(hour=10)
    home = started(PREPAID, ELECTRIC, morning, seed=1)
    shop = started(PREPAID, ELECTRIC, morning, kind=UnitKind.SHOP, seed=1)
    for meter in (home, shop):
        meter.advance(morning + 2 * HOURS)
    assert shop.usage.total - 100 > 2 * (home.usage.total - 100)


def test_speed_multiplies_consumption_not_the_clock() -> None:
    """A meter at speed 10 uses ten times as much as its twin while its clock stays true."""
    slow, fast = electric(seed=7), electric(seed=7, speed=10.0)
    slow.advance(EVENING + 2 * HOURS)
    fast.advance(EVENING + 2 * HOURS)
    used_slow, used_fast = slow.usage.total - 100, fast.usage.total - 100
    assert abs(used_fast - 10 * used_slow) < Decimal("0.01")
    assert fast.clock.wall(EVENING) == EVENING.replace(tzinfo=None)


def test_trip_opens_the_relay_and_stops_consumption() -> None:
    """A trip is acknowledged, status word 3 bit 4 reads it back, and nothing accrues."""
    meter = electric()
    assert switch(meter, SupplyAction.DISCONNECT, EVENING + HOURS).accepted
    tripped = read(meter, EVENING + HOURS)
    assert tripped.relay_open is True and supply_confirmed(SupplyAction.DISCONNECT, tripped)
    assert tripped.other["status_word_3"] == 0b0101_0000  # relay open, trip commanded
    assert read(meter, EVENING + 4 * HOURS).total == tripped.total


def test_close_now_restores_supply_and_consumption_resumes() -> None:
    """After a trip, the model's reconnect (close now) closes the relay at once."""
    meter = electric()
    switch(meter, SupplyAction.DISCONNECT, EVENING)
    assert switch(meter, SupplyAction.RECONNECT, EVENING + HOURS).accepted
    restored, later = read(meter, EVENING + HOURS), read(meter, EVENING + 3 * HOURS)
    assert restored.relay_open is False
    assert later.total is not None and restored.total is not None and later.total > restored.total


def test_close_allowed_waits_for_the_customer_to_press_the_button() -> None:
    """1B arms an open relay; only the button closes it."""
    meter = electric()
    switch(meter, SupplyAction.DISCONNECT, EVENING)
    armed = out.relay_request(
        ELECTRIC,
        out.RelayCommand.CLOSE_ALLOWED,
        expires_at=EVENING + HOURS,
        password=out.Password(),
    )
    reply = meter.answer(dlt645.encode(armed), EVENING)
    assert parse_reply(dlt645.decode(reply or b"")) == Ack(ELECTRIC, 0x1C)
    assert read(meter, EVENING).relay_open is True
    meter.press_button(EVENING + HOURS)
    assert read(meter, EVENING + HOURS).relay_open is False


def test_an_expired_command_is_refused_by_the_meters_clock() -> None:
    """A trip built an hour ago (expiry 50 minutes ago) is refused and does nothing."""
    meter = electric()
    outcome = switch(meter, SupplyAction.DISCONNECT, EVENING, now=EVENING - HOURS)
    assert outcome == CommandOutcome(False, ("other",))
    assert not meter.relay_open


def test_a_wrong_password_is_refused_as_unauthorised() -> None:
    """A command under another password is refused with ERR bit 2."""
    assert isinstance(PREPAID, Dlt645Model)
    relay = PREPAID.relay.model_copy(update={"password": "123456"})
    meter = electric()
    command = supply_command(
        PREPAID.model_copy(update={"relay": relay}), ELECTRIC, SupplyAction.DISCONNECT, now=EVENING
    )
    reply = meter.answer(command.frame, EVENING)
    outcome = command_outcome(command, dlt645.decode(reply or b""))
    assert outcome == CommandOutcome(False, ("password_or_unauthorised",))


def test_keep_supply_makes_the_meter_refuse_trips() -> None:
    """Under 保电 (3A) a trip is refused until 3B lifts it."""
    meter = electric()
    meter.obey(out.RelayCommand.KEEP_SUPPLY)
    assert not switch(meter, SupplyAction.DISCONNECT, EVENING).accepted
    meter.obey(out.RelayCommand.KEEP_SUPPLY_OFF)
    assert switch(meter, SupplyAction.DISCONNECT, EVENING).accepted


def test_broadcast_time_sync_sets_the_clock_without_a_reply() -> None:
    """08H to 999999999999 is obeyed silently; 04000101/04000102 then read the new time."""
    meter = electric()
    shown = datetime(2026, 11, 3, 18, 5, 30)  # noqa: DTZ001 - a meter's wall time has no zone
    assert meter.answer(dlt645.encode(out.time_sync_request(shown)), EVENING) is None
    fields = {}
    for di in (0x04000101, 0x04000102):
        raw = meter.answer(dlt645.encode(out.read_request(ELECTRIC, di)), EVENING + HOURS)
        reply = parse_reply(dlt645.decode(raw or b""))
        assert isinstance(reply, ReadReply)
        fields.update(reply.fields)
    assert fields["meter_date"] == shown.date() and fields["weekday"] == 2  # a Tuesday
    assert fields["meter_time"] == (shown + HOURS).time()


def test_read_address_is_answered_with_the_meters_address() -> None:
    """13H to AAAAAAAAAAAA comes back 93H with the meter's own address."""
    raw = electric().answer(dlt645.encode(out.read_address_request()), EVENING)
    assert parse_reply(dlt645.decode(raw or b"")) == AddressReply(ELECTRIC)


def test_bypass_counts_consumption_with_the_relay_open() -> None:
    """A bridged relay: status says open, yet the register keeps counting."""
    meter = electric()
    switch(meter, SupplyAction.DISCONNECT, EVENING)
    meter.faults.bypass = True
    before, after = read(meter, EVENING), read(meter, EVENING + 2 * HOURS)
    assert after.relay_open is True
    assert after.total is not None and before.total is not None and after.total > before.total


def test_register_tamper_goes_backwards_once_then_counts_on() -> None:
    """A rollback lowers the total once; consumption continues from the lower value."""
    meter = electric()
    first = read(meter, EVENING).total
    meter.usage.rollback(Decimal("5"))
    rewound, later = read(meter, EVENING).total, read(meter, EVENING + 2 * HOURS).total
    assert first is not None and rewound is not None and later is not None
    assert rewound == first - 5 and later > rewound


def test_1997_meter_answers_9010_and_ignores_a_2007_read() -> None:
    """A 1997 meter reads its total with 01H and stays silent on 11H."""
    meter = started(OLD_645, ELECTRIC)
    reading = read(meter, EVENING + HOURS)
    assert reading.total is not None and reading.total > Decimal(100)
    assert meter.answer(dlt645.encode(out.read_request(ELECTRIC, 0x00010000)), EVENING) is None


# --- CJ/T 188 water -----------------------------------------------------------------------


@pytest.mark.parametrize("model", [WATER_LSB, WATER_MSB], ids=["low_first", "high_first"])
@pytest.mark.parametrize("asked", list(DiOrder))
def test_water_meter_accepts_either_di_order_and_replies_in_its_own(
    model: MeterModel, asked: DiOrder
) -> None:
    """901F asked either way round is answered with the DI in the model's byte order."""
    assert isinstance(model, Cjt188Model)
    meter = started(model, WATER)
    raw = meter.answer(cjt188.encode(read_request(WATER, di_order=asked)), EVENING + HOURS)
    assert cjt188.decode(raw or b"").data[:2] == di_wire(0x901F, model.di_order)
    reading = read(meter, EVENING + HOURS)
    assert reading.valve == "open" and reading.other["meter_unit"] == "m3"
    assert reading.total is not None and reading.total > Decimal(100)


def test_closing_the_valve_stops_the_flow_until_it_opens() -> None:
    """Valve close is confirmed in ST; no water is counted until it opens again."""
    meter = started(WATER_LSB, WATER)
    assert switch(meter, SupplyAction.DISCONNECT, EVENING) == CommandOutcome(True, valve="closed")
    closed = read(meter, EVENING + 3 * HOURS)
    assert closed.valve == "closed" and closed.total == Decimal("100.00")
    assert switch(meter, SupplyAction.RECONNECT, EVENING + 3 * HOURS).valve == "open"
    reopened = read(meter, EVENING + 5 * HOURS)
    assert reopened.total is not None and reopened.total > Decimal(100)


def test_a_leak_flows_at_night_while_the_household_is_away() -> None:
    """Away from home, only the leak moves the register: 0.02 m3/h for four night hours."""
    meter, dry = started(WATER_LSB, WATER, NIGHT), started(WATER_MSB, WATER, NIGHT)
    for away in (meter, dry):
        away.usage.away = True
    meter.faults.leak_per_hour = Decimal("0.02")
    assert read(meter, NIGHT + 4 * HOURS).total == Decimal("100.08")
    assert read(dry, NIGHT + 4 * HOURS).total == Decimal("100.00")


def test_settlement_day_flow_is_frozen_at_midnight_on_the_first() -> None:
    """Crossing 1 December 00:00, the settlement-day flow is the total at that moment."""
    eve = datetime(2026, 11, 30, 23, 59, 59, tzinfo=ZONE)
    meter = started(WATER_LSB, WATER, eve - 5 * HOURS)
    at_midnight = read(meter, eve).total
    after = read(meter, eve + 8 * HOURS)
    assert after.other["settlement_total"] == at_midnight


def test_clock_tamper_reports_a_reading_from_the_future_and_battery_low() -> None:
    """A jumped clock dates the reading three days ahead; a weak battery shows in ST."""
    meter = started(WATER_LSB, WATER)
    meter.clock.jump(timedelta(days=3))
    assert isinstance(meter, WaterMeter)
    meter.battery_low = True
    reading = read(meter, EVENING)
    assert reading.other["meter_time"] == (EVENING + timedelta(days=3)).replace(tzinfo=None)
    assert reading.battery_low is True


# --- Modbus RTU ---------------------------------------------------------------------------


def test_sdm120_reads_back_through_its_model() -> None:
    """Float32 input registers, high word first: total, voltage, current and power agree."""
    meter = started(SDM120, "7")
    first, later = read(meter, EVENING), read(meter, EVENING + 2 * HOURS)
    assert first.total is not None and abs(first.total - 100) < Decimal("0.001")
    assert later.total is not None and later.total > first.total
    assert later.voltage is not None and Decimal(200) < later.voltage < Decimal(240)
    power, current = later.other["power"], later.other["current"]
    assert isinstance(power, Decimal) and isinstance(current, Decimal) and power > 0
    assert abs(current * later.voltage / 1000 - power) < Decimal("0.01")


def test_modbus_illegal_addresses_and_functions_are_exceptions() -> None:
    """Reading past the table is exception 02; a coil write without a relay is 01."""
    meter = started(SDM120, "7")
    past = meter.answer(modbus.encode_rtu(modbus.read_input_registers(7, 0x0048, 4)), EVENING)
    coil = meter.answer(modbus.encode_rtu(modbus.write_coil(7, 0, on=False)), EVENING)
    assert modbus.decode_rtu(past or b"").data == b"\x02"
    assert modbus.decode_rtu(coil or b"").data == b"\x01"
    assert meter.answer(modbus.encode_rtu(modbus.read_input_registers(8, 0, 2)), EVENING) is None


def test_modbus_relay_coil_switches_supply_and_reads_back() -> None:
    """A coil model disconnects, reads relay_open back, and stops counting."""
    meter = started(COIL_MODEL, "3")
    assert switch(meter, SupplyAction.DISCONNECT, EVENING).accepted
    off, later = read(meter, EVENING), read(meter, EVENING + 2 * HOURS)
    assert off.relay_open is True and off.total == later.total == Decimal("100.00")


# --- faults and the bus -------------------------------------------------------------------


def test_offline_meter_is_silent_but_keeps_counting() -> None:
    """No reply while offline; the register moved on all the same."""
    meter = electric()
    meter.faults.offline = True
    assert meter.answer(poll_requests(PREPAID, ELECTRIC)[0].frame, EVENING + HOURS) is None
    meter.faults.offline = False
    total = read(meter, EVENING + HOURS).total
    assert total is not None and total > Decimal(100)


def test_garbage_around_a_reply_is_skipped_and_instead_of_it_leaves_no_frame() -> None:
    """Noise before a reply is skipped by the stream decoder; noise instead is all there is."""
    meter, request = electric(), poll_requests(PREPAID, ELECTRIC)[0].frame
    meter.faults.garbage = Garbage.BEFORE
    stream = dlt645_stream()
    stream.feed(meter.answer(request, EVENING) or b"")
    events = list(stream)
    assert isinstance(events[0], Skipped) and isinstance(events[-1], dlt645.Frame)
    meter.faults.garbage = Garbage.INSTEAD
    stream.feed(meter.answer(request, EVENING) or b"")
    assert not any(isinstance(event, dlt645.Frame) for event in [*stream, *stream.flush()])


def test_bus_answers_the_addressed_meter_once_for_a_split_request() -> None:
    """Of three meters and three protocols, only the addressed one answers, once, late if slow."""
    other = started(PREPAID, "000000000102")
    meter, water, din = electric(), started(WATER_LSB, WATER), started(SDM120, "1")
    meter.faults.slow_seconds = 1.5
    bus = RS485Bus([other, meter, water, din])
    frame = poll_requests(PREPAID, ELECTRIC)[0].frame
    assert bus.feed(frame[:7], EVENING) == [] and bus.pending
    [reply] = bus.feed(frame[7:], EVENING)
    assert reply.address == ELECTRIC and reply.delay_seconds == 1.5
    for model, address in ((WATER_LSB, WATER), (SDM120, "1")):
        [answered] = bus.feed(poll_requests(model, address)[0].frame, EVENING)
        assert answered.address == address


def test_bus_is_silent_on_broadcasts_and_garbles_colliding_replies() -> None:
    """Time sync gets no reply; a wildcard read with two meters on the bus collides."""
    bus = RS485Bus([electric(), started(PREPAID, "000000000102")])
    sync = out.time_sync_request(EVENING.replace(tzinfo=None))
    assert bus.feed(dlt645.encode(sync), EVENING) == []
    [reply] = bus.feed(dlt645.encode(out.read_address_request()), EVENING)
    assert reply.address == COLLISION
    with pytest.raises(ValueError, match="checksum"):
        dlt645.decode(reply.data)


def test_silence_on_the_line_drops_a_partial_frame() -> None:
    """Half a request, then quiet: nothing is answered, and the next request is heard whole."""
    bus = RS485Bus([electric()])
    frame = poll_requests(PREPAID, ELECTRIC)[0].frame
    bus.feed(frame[:9], EVENING)
    assert bus.silence(EVENING) == [] and not bus.pending
    assert len(bus.feed(frame, EVENING)) == 1
