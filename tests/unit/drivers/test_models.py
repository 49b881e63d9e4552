"""Meter models as YAML: every bundled file loads, bad files are refused by field, and a
model turns into poll requests, replies into a reading, and supply actions into commands."""

from __future__ import annotations

import struct
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from meterpay.drivers import cjt188, dlt645, modbus
from meterpay.drivers.bcd import bcd_from_decimal
from meterpay.drivers.errors import UnexpectedReply
from meterpay.drivers.models import (
    Cjt188Model,
    Dlt645Model,
    InvalidMeterModel,
    ModbusModel,
    Protocol,
    bundled_models,
    load_model_file,
    load_model_text,
)
from meterpay.drivers.polling import (
    Refused,
    interpret,
    new_stream,
    poll_requests,
    reading_from_replies,
)
from meterpay.drivers.stream import ModbusRtuStream
from meterpay.drivers.supply import (
    NoRemoteSwitch,
    SupplyAction,
    command_outcome,
    supply_command,
    supply_confirmed,
)

from .vectors import (
    CJT188_CURRENT_DATA_REPLY,
    CJT188_OPEN_VALVE_REPLY,
    CJT188_READ,
    DLT645_READ_NO_DATA,
    DLT645_READ_TOTAL_REPLY,
    DLT645_TRIP_ACK,
    DLT645_TRIP_REFUSED,
    MODBUS_COIL_ON,
)

MODELS = bundled_models()
MODELS_DIR = Path(__file__).parents[3] / "src/meterpay/drivers/models"
PREPAID = MODELS["generic-dds-645-2007-prepaid"]
WATER_LSB = MODELS["generic-cjt188-cold-water-valve-lsb"]
WATER_MSB = MODELS["generic-cjt188-cold-water-valve-msb"]
SDM120 = MODELS["eastron-sdm120-modbus"]
METER = "000102030425"
WATER_METER = cjt188.address_of("0011223344", "7833")
NOW = datetime(2026, 11, 5, 8, 30)  # noqa: DTZ001 - the meter's local wall clock

DIN_RAIL_WITH_RELAY = """\
id: test-din-rail-relay
maker: test
utility: electricity
protocol: modbus_rtu
registers:
  - field: total
    function: holding
    address: 0x0000
    type: uint32
    word_order: little      # low word first
    scale: "0.01"
    every_minutes: 15
  - {field: tip, function: holding, address: 0x0002, type: uint32, scale: "0.01", every_minutes: 60}
  - {field: relay_open, function: holding, address: 0x0010, type: uint16, bit: 0, every_minutes: 60}
relay:
  style: coil
  address: 0x0000
  disconnect_value: 0x0000
  reconnect_value: 0xFF00
"""


def test_every_bundled_model_loads_and_is_named_after_its_file() -> None:
    """Seven ship: three DL/T 645, two CJ/T 188 (one per DI order), a Modbus RTU and a TCP."""
    assert sorted(MODELS) == [
        "eastron-sdm120-modbus",
        "generic-645-1997",
        "generic-645-2007-no-switch",
        "generic-cjt188-cold-water-valve-lsb",
        "generic-cjt188-cold-water-valve-msb",
        "generic-dds-645-2007-prepaid",
        "generic-dts-modbus-tcp",
    ]
    assert isinstance(PREPAID, Dlt645Model) and PREPAID.relay.style == "plaintext"
    assert isinstance(WATER_LSB, Cjt188Model) and WATER_LSB.meter_type == 0x10
    assert isinstance(SDM120, ModbusModel) and SDM120.registers[0].address == 0x48


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            ("utility: electricity", "utility: gas"),
            "utility: Input should be 'electricity' or 'water'",
        ),
        (('di: "00010000"', 'di: "0001000"'), "reads[0].di: '0001000' must be 8 hex digits"),
        (
            ('di: "00010000"', 'di: "04030201"'),
            "reads[0].di: 04030201 has no format in the dlt645_2007 table",
        ),
        (
            ("every_minutes: 15", "every_minutes: 0"),
            "reads[0].every_minutes: Input should be greater than or equal to 1",
        ),
        (
            ("style: plaintext", "style: ciphertext"),
            "relay.style: Input should be 'plaintext' or 'none'",
        ),
        (("wake_up: 4", "wake_up: 4\ncolour: red"), "colour: Extra inputs are not permitted"),
        (("protocol: dlt645_2007", "protocol: iec62056"), "protocol: must be one of dlt645_2007"),
    ],
)
def test_a_bad_model_file_is_refused_naming_the_file_field_and_rule(
    change: tuple[str, str], problem: str
) -> None:
    """Each error names the file, the path to the field and the rule it broke."""
    text = (MODELS_DIR / "generic-dds-645-2007-prepaid.yaml").read_text()
    assert change[0] in text
    with pytest.raises(InvalidMeterModel) as error:
        load_model_text(text.replace(change[0], change[1], 1), "broken.yaml")
    assert str(error.value).startswith("broken.yaml: ")
    assert problem in str(error.value)


def test_byte_codes_are_quoted_hex_and_esam_relays_are_refused() -> None:
    """meter_type 10 (unquoted) is ambiguous; password level "98" cannot be produced."""
    water = (MODELS_DIR / "generic-cjt188-cold-water-valve-lsb.yaml").read_text()
    with pytest.raises(InvalidMeterModel, match="meter_type: 16 must be two hex digits"):
        load_model_text(water.replace('meter_type: "10"', "meter_type: 0x10"), "w.yaml")
    prepaid = (MODELS_DIR / "generic-dds-645-2007-prepaid.yaml").read_text()
    with pytest.raises(InvalidMeterModel, match='relay: password_level "98" is ESAM'):
        load_model_text(prepaid.replace('password_level: "02"', 'password_level: "98"'), "p.yaml")


def test_a_1997_model_cannot_claim_a_relay() -> None:
    """DL/T 645-1997 has no 1CH; a 1997 model with a relay style is refused."""
    text = (MODELS_DIR / "generic-645-1997.yaml").read_text()
    with pytest.raises(InvalidMeterModel, match=r"relay\.style: DL/T 645-1997 has no standard"):
        load_model_text(text.replace("style: none", "style: plaintext"), "old.yaml")


def test_a_model_file_must_be_named_after_its_id(tmp_path: Path) -> None:
    """Renaming a file without changing its id is refused."""
    path = tmp_path / "renamed.yaml"
    path.write_text(DIN_RAIL_WITH_RELAY)
    with pytest.raises(
        InvalidMeterModel, match=r"renamed\.yaml: id: 'test-din-rail-relay' must match"
    ):
        load_model_file(path)


def test_a_coil_relay_needs_ff00_and_0000() -> None:
    """A coil written 0x0001 is not a coil write."""
    with pytest.raises(InvalidMeterModel, match="relay: a coil is written 0xFF00"):
        load_model_text(
            DIN_RAIL_WITH_RELAY.replace("reconnect_value: 0xFF00", "reconnect_value: 0x0001"),
            "x.yaml",
        )


def test_a_bit_is_only_for_flag_fields() -> None:
    """'bit' on a quantity register is refused, naming the register."""
    with pytest.raises(InvalidMeterModel, match=r"registers\[1\]: bit is only for flags"):
        load_model_text(
            DIN_RAIL_WITH_RELAY.replace(
                'scale: "0.01", every_minutes: 60', "bit: 1, every_minutes: 60"
            ),
            "x.yaml",
        )


# --- polling DL/T 645 ----------------------------------------------------------------------------


def test_the_prepaid_model_polls_total_every_15_minutes_and_the_rest_hourly() -> None:
    """Four reads; the quarter-hourly one is the forward total, sent after FE wake-up bytes."""
    polls = poll_requests(PREPAID, METER)
    assert [(p.item, p.every_minutes) for p in polls] == [
        ("00010000", 15),
        ("0001FF00", 60),
        ("04000503", 60),
        ("02010100", 60),
    ]
    quarter_hourly = poll_requests(PREPAID, METER, every_minutes=15)
    assert [p.frame for p in quarter_hourly] == [
        b"\xfe" * 4 + bytes.fromhex("68 25 04 03 02 01 00 68 11 04 33 33 34 33 E1 16")
    ]
    assert polls[1].yields == ("total", "tip", "peak", "flat", "valley")


def meter_reply(di: int, value: bytes) -> dlt645.Frame:
    return dlt645.Frame(
        METER, dlt645.Control(0x11, from_meter=True), di.to_bytes(4, "little") + value
    )


def test_a_polling_round_becomes_one_reading_with_tou_relay_and_voltage() -> None:
    """Total, 尖峰平谷, relay state and voltage, as Decimals and flags."""
    polls = {p.item: p for p in poll_requests(PREPAID, METER)}
    tou = b"".join(
        bcd_from_decimal(Decimal(v), 4, 2) for v in ("1206.42", "100", "400", "500.42", "206")
    )
    replies = [
        (polls["00010000"], dlt645.decode(DLT645_READ_TOTAL_REPLY)),
        (polls["0001FF00"], meter_reply(0x0001FF00, tou)),
        (polls["04000503"], meter_reply(0x04000503, bytes.fromhex("10 01"))),
        (polls["02010100"], meter_reply(0x02010100, bytes.fromhex("12 22"))),
    ]
    reading = reading_from_replies(PREPAID, METER, replies)
    assert reading.as_dict() == {
        "model_id": "generic-dds-645-2007-prepaid",
        "address": METER,
        "unit": "kWh",
        "total": Decimal("1206.42"),
        "tip": Decimal("100.00"),
        "peak": Decimal("400.00"),
        "flat": Decimal("500.42"),
        "valley": Decimal("206.00"),
        "voltage": Decimal("221.2"),
        "relay_open": True,
        "status_word_3": 0x0110,
        "relay_command_open": False,
        "pre_trip_alarm": False,
        "prepaid_type": "energy",
    }


def test_a_refused_read_is_recorded_not_raised() -> None:
    """D1H 'no such data' for the total leaves total unread and names the refusal."""
    poll = poll_requests(PREPAID, METER)[0]
    reading = reading_from_replies(PREPAID, METER, [(poll, dlt645.decode(DLT645_READ_NO_DATA))])
    assert reading.total is None
    assert reading.refused == {"00010000": ("no_such_data",)}


def test_a_reply_from_another_meter_is_not_taken_into_the_reading() -> None:
    """Polling 000102030426, the reply of 000102030425 is an UnexpectedReply."""
    poll = poll_requests(PREPAID, "000102030426")[0]
    with pytest.raises(UnexpectedReply, match="reply from 000102030425"):
        interpret(poll, dlt645.decode(DLT645_READ_TOTAL_REPLY))


def test_the_1997_model_reads_9010_with_c_01() -> None:
    """DL/T 645-1997: two-byte DIs and C=01H."""
    model = MODELS["generic-645-1997"]
    poll = poll_requests(model, METER)[0]
    assert isinstance(poll.request, dlt645.Frame)
    assert (poll.item, poll.request.control.function, poll.request.data) == (
        "9010",
        0x01,
        b"\x10\x90",
    )
    reply = dlt645.Frame(
        METER,
        dlt645.Control(0x01, from_meter=True),
        b"\x10\x90" + bcd_from_decimal(Decimal("88.5"), 4, 2),
    )
    assert reading_from_replies(model, METER, [(poll, reply)]).total == Decimal("88.50")


# --- supply: relay ------------------------------------------------------------------------------


def test_disconnecting_a_prepaid_meter_sends_a_plaintext_trip_expiring_in_ten_minutes() -> None:
    """1CH, level 02, password 000000, N1=1A, expiry now + 10 min (seconds first)."""
    command = supply_command(PREPAID, METER, SupplyAction.DISCONNECT, now=NOW)
    assert isinstance(command.request, dlt645.Frame)
    assert command.request.data == bytes.fromhex("02 000000 00000000 1A 00 00 40 08 05 11 26")
    assert command.expires_at == datetime(2026, 11, 5, 8, 40)  # noqa: DTZ001
    assert command.frame.startswith(b"\xfe" * 4)
    reconnect = supply_command(PREPAID, METER, SupplyAction.RECONNECT, now=NOW)
    assert isinstance(reconnect.request, dlt645.Frame) and reconnect.request.data[8] == 0x1C
    allowed = supply_command(PREPAID, METER, SupplyAction.RECONNECT_ALLOWED, now=NOW)
    assert isinstance(allowed.request, dlt645.Frame) and allowed.request.data[8] == 0x1B


def test_the_relay_ack_and_refusal_become_outcomes() -> None:
    """9CH accepted; DCH ERR=04 refused for the password."""
    command = supply_command(PREPAID, "111111111111", SupplyAction.DISCONNECT, now=NOW)
    assert command_outcome(command, dlt645.decode(DLT645_TRIP_ACK)).accepted
    refused = command_outcome(command, dlt645.decode(DLT645_TRIP_REFUSED))
    assert not refused.accepted and refused.reasons == ("password_or_unauthorised",)


def test_models_without_a_switch_refuse_supply_commands() -> None:
    """The no-switch 645 model, the 1997 model and the SDM120 cannot cut supply."""
    for model_id in ("generic-645-2007-no-switch", "generic-645-1997", "eastron-sdm120-modbus"):
        address = "1" if model_id.startswith("eastron") else METER
        with pytest.raises(NoRemoteSwitch, match=model_id):
            supply_command(MODELS[model_id], address, SupplyAction.DISCONNECT, now=NOW)


def test_the_read_back_of_status_word_3_confirms_the_trip() -> None:
    """After a trip, relay_open True confirms it; a reading without relay state cannot tell."""
    poll = poll_requests(PREPAID, METER)[2]
    tripped = reading_from_replies(
        PREPAID, METER, [(poll, meter_reply(0x04000503, bytes.fromhex("10 00")))]
    )
    assert supply_confirmed(SupplyAction.DISCONNECT, tripped) is True
    assert supply_confirmed(SupplyAction.RECONNECT, tripped) is False
    nothing = reading_from_replies(PREPAID, METER, [])
    assert supply_confirmed(SupplyAction.DISCONNECT, nothing) is None


# --- CJ/T 188 -----------------------------------------------------------------------------------


def test_the_water_models_send_901f_in_their_own_byte_order() -> None:
    """The low-first model sends the reference frame; the high-first one sends 90 1F."""
    assert poll_requests(WATER_LSB, WATER_METER)[0].frame == CJT188_READ
    assert b"\x90\x1f\x00" in poll_requests(WATER_MSB, WATER_METER)[0].frame


def test_a_901f_reply_becomes_a_water_reading_in_m3_with_valve_and_battery() -> None:
    """556677.00 m3, valve closed (ST 21), battery fine, meter time kept."""
    poll = poll_requests(WATER_LSB, WATER_METER)[0]
    reading = reading_from_replies(
        WATER_LSB, WATER_METER, [(poll, cjt188.decode(CJT188_CURRENT_DATA_REPLY))]
    )
    assert (reading.total, reading.unit, reading.valve, reading.battery_low) == (
        Decimal("556677.00"),
        "m³",
        "closed",
        False,
    )
    assert reading.other["meter_time"] == datetime(2015, 5, 11, 22, 1, 31)  # noqa: DTZ001


def test_a_litre_meter_is_read_in_m3() -> None:
    """Unit 29 (L): 1234.00 L is 1.234 m3."""
    frame = cjt188.decode(CJT188_CURRENT_DATA_REPLY)
    data = bytearray(frame.data)
    data[3:7], data[7] = bcd_from_decimal(Decimal("1234"), 4, 2), 0x29
    poll = poll_requests(WATER_LSB, WATER_METER)[0]
    reply = cjt188.Frame(frame.meter_type, frame.address, frame.control, bytes(data))
    assert reading_from_replies(WATER_LSB, WATER_METER, [(poll, reply)]).total == Decimal("1.234")


def test_opening_a_valve_and_its_reply() -> None:
    """A017 with 55 in the model's order; the 84H reply says the valve is open."""
    address = cjt188.address_of("1505900569", "7833")
    command = supply_command(WATER_MSB, address, SupplyAction.RECONNECT, now=NOW)
    assert isinstance(command.request, cjt188.Frame)
    assert command.request.data == bytes.fromhex("A0 17 00 55")
    reply = cjt188.decode(CJT188_OPEN_VALVE_REPLY)
    outcome = command_outcome(command, reply)
    assert outcome.accepted and outcome.valve == "open"
    closing = supply_command(WATER_LSB, address, SupplyAction.DISCONNECT, now=NOW)
    assert isinstance(closing.request, cjt188.Frame) and closing.request.data == bytes.fromhex(
        "17 A0 00 99"
    )


# --- Modbus -------------------------------------------------------------------------------------


def float_registers(value: float) -> bytes:
    return struct.pack(">f", value)


def test_the_sdm120_reads_float_registers_as_decimals() -> None:
    """Import energy 1234.567 kWh and power 2300 W (= 2.3 kW) from float32 input registers."""
    polls = {p.item: p for p in poll_requests(SDM120, "1")}
    assert polls["total"].frame == modbus.encode_rtu(modbus.read_input_registers(1, 0x48, 2))
    replies = [
        (polls["total"], modbus.Message(1, 4, b"\x04" + float_registers(1234.567))),
        (polls["power"], modbus.Message(1, 4, b"\x04" + float_registers(2300.0))),
    ]
    reading = reading_from_replies(SDM120, "1", replies)
    assert reading.total == Decimal("1234.567")
    assert reading.other["power"] == Decimal("2.300")


def test_a_modbus_exception_is_a_refusal_in_the_reading() -> None:
    """Exception 02 on a register read: the field is unread and the reason named."""
    poll = poll_requests(SDM120, "1")[0]
    answer = interpret(poll, modbus.Message(1, 0x84, b"\x02"))
    assert answer == Refused("total", ("illegal_data_address",))


def test_a_modbus_relay_model_reads_word_swapped_totals_and_a_relay_bit() -> None:
    """uint32 low word first x 0.01; relay_open from bit 0; a coil switches supply."""
    model = load_model_text(DIN_RAIL_WITH_RELAY, "test-din-rail-relay.yaml")
    polls = {p.item: p for p in poll_requests(model, "1")}
    replies = [
        (polls["total"], modbus.Message(1, 3, bytes.fromhex("04 E240 0001"))),
        (polls["relay_open"], modbus.Message(1, 3, bytes.fromhex("02 0001"))),
    ]
    reading = reading_from_replies(model, "1", replies)
    assert (reading.total, reading.relay_open) == (Decimal("1234.56"), True)
    reconnect = supply_command(model, "1", SupplyAction.RECONNECT, now=NOW)
    assert reconnect.frame == MODBUS_COIL_ON
    assert command_outcome(reconnect, modbus.decode_rtu(MODBUS_COIL_ON)).accepted
    assert not command_outcome(reconnect, modbus.Message(1, 0x85, b"\x02")).accepted


def test_a_modbus_tcp_model_wraps_polls_in_mbap_and_checks_the_transaction() -> None:
    """The same registers over Modbus TCP; a reply with another transaction id is refused."""
    model = load_model_text(DIN_RAIL_WITH_RELAY.replace("modbus_rtu", "modbus_tcp"), "t.yaml")
    assert model.protocol is Protocol.MODBUS_TCP
    poll = poll_requests(model, "1")[0]
    assert poll.frame == modbus.encode_tcp(modbus.read_holding_registers(1, 0, 2), 1)
    reply = modbus.Message(1, 3, bytes.fromhex("04 E240 0001"))
    assert interpret(poll, modbus.TcpFrame(1, reply)) == {"total": Decimal("1234.56")}
    with pytest.raises(UnexpectedReply, match="transaction 2, expected 1"):
        interpret(poll, modbus.TcpFrame(2, reply))


def test_new_stream_gives_an_rtu_stream_that_waits_for_the_polled_reply() -> None:
    """Feeding noise and the expected exception reply yields it after expect()."""
    stream = new_stream(SDM120)
    assert isinstance(stream, ModbusRtuStream)
    stream.expect(poll_requests(SDM120, "1")[0].request)
    stream.feed(
        b"\x00"
        + bytes.fromhex("01 84 02")
        + modbus.crc16(bytes.fromhex("01 84 02")).to_bytes(2, "little")
    )
    events = list(stream)
    assert events[-1] == modbus.Message(1, 0x84, b"\x02")
