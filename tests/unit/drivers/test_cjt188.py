"""CJ/T 188 frames, the DI byte order setting, 901F and valve replies, against the vectors."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterpay.drivers import cjt188
from meterpay.drivers.cjt188_messages import (
    AbnormalReply,
    AddressReply,
    CurrentData,
    DiOrder,
    MeterStatus,
    OtherReply,
    Valve,
    ValveReply,
    answer,
    parse_reply,
    read_address_request,
    read_request,
    valve_request,
)
from meterpay.drivers.errors import FrameError, UnexpectedReply

from .vectors import (
    CJT188_CURRENT_DATA_REPLY,
    CJT188_CURRENT_DATA_REPLY_WRONG_CS,
    CJT188_OPEN_VALVE,
    CJT188_OPEN_VALVE_REPLY,
    CJT188_READ,
)

METER = cjt188.address_of("0011223344", "7833")
VALVE_METER = cjt188.address_of("1505900569", "7833")


def test_the_address_is_manufacturer_code_then_meter_number_as_printed() -> None:
    """Bytes 44 33 22 11 00 33 78 are meter 0011223344 of manufacturer 7833."""
    frame = cjt188.decode(CJT188_READ)
    assert frame.address == "78330011223344" == METER
    assert cjt188.meter_number(frame.address) == "0011223344"
    assert cjt188.manufacturer_code(frame.address) == "7833"


def test_a_901f_read_in_low_first_order_is_the_reference_frame() -> None:
    """Read 901F sent 1F 90 with SER 00 after four wake-up bytes."""
    assert cjt188.encode(read_request(METER, di_order=DiOrder.LOW_FIRST)) == CJT188_READ


def test_the_same_read_in_high_first_order_sends_90_1f() -> None:
    """The byte order is the model's setting; only the DI bytes and checksum change."""
    frame = read_request(METER, di_order=DiOrder.HIGH_FIRST)
    assert frame.data == bytes.fromhex("90 1F 00")


def test_opening_the_valve_is_the_reference_frame() -> None:
    """Write A017 (sent A0 17, high first) with SER 01 and 55 = open."""
    request = valve_request(VALVE_METER, open_valve=True, di_order=DiOrder.HIGH_FIRST, seq=1)
    assert cjt188.encode(request) == CJT188_OPEN_VALVE


def test_closing_the_valve_sends_99() -> None:
    """99 closes the valve; with low-first order A017 goes out as 17 A0."""
    request = valve_request(VALVE_METER, open_valve=False, di_order=DiOrder.LOW_FIRST)
    assert request.data == bytes.fromhex("17 A0 00 99")


def test_the_valve_reply_reports_the_valve_open() -> None:
    """84H with ST 00 00: accepted, valve open, battery fine."""
    request = valve_request(VALVE_METER, open_valve=True, di_order=DiOrder.HIGH_FIRST, seq=1)
    reply = answer(request, cjt188.decode(CJT188_OPEN_VALVE_REPLY))
    assert isinstance(reply, ValveReply)
    assert reply.status.valve is Valve.OPEN and not reply.status.battery_low


def test_the_corrected_901f_reply_reads_flow_time_and_status() -> None:
    """556677.00 m3 cumulative and settlement-day, 2015-05-11 22:01:31, ST 21 84 = closed."""
    reply = answer(
        read_request(METER, di_order=DiOrder.LOW_FIRST), cjt188.decode(CJT188_CURRENT_DATA_REPLY)
    )
    assert reply == CurrentData(
        address=METER,
        meter_type=0x10,
        seq=0,
        total=Decimal("556677.00"),
        total_unit="m3",
        settlement_total=Decimal("556677.00"),
        settlement_unit="m3",
        meter_time=datetime(2015, 5, 11, 22, 1, 31),  # noqa: DTZ001 - the meter's wall clock
        status=MeterStatus(bytes.fromhex("21 84"), Valve.CLOSED, battery_low=False),
    )


def test_the_widely_copied_901f_reply_with_checksum_08_is_refused() -> None:
    """The published frame's checksum is wrong: the sum is 0x13."""
    with pytest.raises(FrameError, match="checksum 0x08 != computed 0x13"):
        cjt188.decode(CJT188_CURRENT_DATA_REPLY_WRONG_CS)


def test_a_reply_is_read_in_either_di_order() -> None:
    """A 901F reply sent 90 1F decodes like one sent 1F 90."""
    body = cjt188.decode(CJT188_CURRENT_DATA_REPLY)
    swapped = cjt188.Frame(body.meter_type, body.address, body.control, b"\x90\x1f" + body.data[2:])
    request = read_request(METER, di_order=DiOrder.HIGH_FIRST)
    assert answer(request, swapped) == parse_reply(body)


def test_battery_low_and_abnormal_valve_bits_are_decoded() -> None:
    """ST bit 2 is battery low; bits 0-1 = 11 is a valve fault."""
    reply = parse_reply(
        cjt188.Frame(0x10, VALVE_METER, cjt188.Control(4, True), bytes.fromhex("A0 17 00 07 00"))
    )
    assert isinstance(reply, ValveReply)
    assert reply.status.valve is Valve.ABNORMAL and reply.status.battery_low


def test_an_abnormal_reply_keeps_its_bytes_and_status() -> None:
    """C4H: refused; the last two bytes are read as ST when present."""
    frame = cjt188.Frame(
        0x10, VALVE_METER, cjt188.Control(4, True, True), bytes.fromhex("01 01 00")
    )
    reply = parse_reply(frame)
    assert isinstance(reply, AbnormalReply) and reply.status is not None
    assert reply.status.valve is Valve.CLOSED


def test_litres_and_unknown_units_are_named() -> None:
    """Unit 29 is litres; an unknown code is kept as unit_0xNN."""
    body = cjt188.decode(CJT188_CURRENT_DATA_REPLY)
    data = bytearray(body.data)
    data[7], data[12] = 0x29, 0x77
    reply = parse_reply(cjt188.Frame(body.meter_type, body.address, body.control, bytes(data)))
    assert isinstance(reply, CurrentData)
    assert (reply.total_unit, reply.settlement_unit) == ("L", "unit_0x77")


def test_a_meter_without_a_clock_reads_with_no_time() -> None:
    """A real-time field of zeros is not a date: meter_time is None, not an error."""
    body = cjt188.decode(CJT188_CURRENT_DATA_REPLY)
    data = body.data[:15] + bytes(7) + body.data[22:]
    reply = parse_reply(cjt188.Frame(body.meter_type, body.address, body.control, data))
    assert isinstance(reply, CurrentData) and reply.meter_time is None


def test_read_address_goes_to_the_any_address() -> None:
    """03H with DI 810A to AA..AA; the 83H reply's address field is the meter's."""
    request = read_address_request(di_order=DiOrder.HIGH_FIRST)
    assert request.address == cjt188.ANY_ADDRESS and request.data == bytes.fromhex("81 0A 00")
    reply = answer(
        request, cjt188.Frame(0x10, METER, cjt188.Control(3, True), bytes.fromhex("81 0A 00"))
    )
    assert reply == AddressReply(METER, 0x10)


def test_a_heat_meters_901f_is_kept_raw() -> None:
    """Heat meters lay 901F out differently: we keep the payload rather than misread it."""
    frame = cjt188.Frame(0x20, METER, cjt188.Control(1, True), bytes.fromhex("1F 90 00 01 02"))
    assert parse_reply(frame) == OtherReply(METER, 1, 0x901F, 0, b"\x01\x02")


@pytest.mark.parametrize(
    ("wire", "problem"),
    [
        (CJT188_READ[:-1] + b"\x00", "missing end byte 0x16"),
        (CJT188_READ[:14] + b"\x09" + CJT188_READ[15:], "length 9 beyond buffer"),
        (CJT188_READ + b"\x16", "1 bytes after the end byte"),
        (CJT188_READ[4:10], "too short for a header"),
    ],
)
def test_decode_refuses_a_broken_frame_and_says_what_is_wrong(wire: bytes, problem: str) -> None:
    """Missing 16, L beyond the buffer, trailing bytes, truncation."""
    with pytest.raises(FrameError, match=problem):
        cjt188.decode(wire)


def test_a_reply_from_another_meter_does_not_answer_the_request() -> None:
    """The 901F reply of 0011223344 does not answer a read of 1505900569."""
    with pytest.raises(UnexpectedReply, match="reply from 78330011223344"):
        answer(
            read_request(VALVE_METER, di_order=DiOrder.LOW_FIRST),
            cjt188.decode(CJT188_CURRENT_DATA_REPLY),
        )


def test_a_valve_reply_does_not_answer_a_read() -> None:
    """Function 04 does not answer function 01."""
    request = read_request(VALVE_METER, di_order=DiOrder.HIGH_FIRST)
    with pytest.raises(UnexpectedReply, match="function"):
        answer(request, cjt188.decode(CJT188_OPEN_VALVE_REPLY))


addresses = st.text(alphabet="0123456789A", min_size=14, max_size=14)
controls = st.builds(cjt188.Control, st.integers(0, 0x3F), st.booleans(), st.booleans())
frames = st.builds(cjt188.Frame, st.integers(0, 0xFF), addresses, controls, st.binary(max_size=255))


@given(frames, st.integers(0, 4))
def test_every_frame_survives_encode_then_decode(frame: cjt188.Frame, wake_up: int) -> None:
    """decode(encode(frame)) == frame for any type, address, control, data, wake-up."""
    assert cjt188.decode(cjt188.encode(frame, wake_up=wake_up)) == frame
