"""DL/T 645 frames, requests and replies, against the reference vectors and by round trip."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterpay.drivers import dlt645
from meterpay.drivers.bcd import bcd_from_decimal
from meterpay.drivers.dlt645_items import PrepaidType, item_2007
from meterpay.drivers.dlt645_replies import (
    AbnormalReply,
    Ack,
    AddressReply,
    ReadReply,
    Refusal,
    answer,
    join_follow_ups,
    parse_reply,
    refusals,
)
from meterpay.drivers.dlt645_requests import (
    Password,
    RelayCommand,
    read_address_request,
    read_follow_up_request,
    read_request,
    read_request_1997,
    relay_request,
    time_sync_request,
    write_request,
)
from meterpay.drivers.errors import FrameError, UnexpectedReply

from .vectors import (
    DLT645_READ_NO_DATA,
    DLT645_READ_TOTAL,
    DLT645_READ_TOTAL_REPLY,
    DLT645_TRIP,
    DLT645_TRIP_ACK,
    DLT645_TRIP_REFUSED,
)

METER = "000102030425"


def reply_frame(address: str, function: int, data: bytes, **flags: bool) -> dlt645.Frame:
    return dlt645.Frame(address, dlt645.Control(function, from_meter=True, **flags), data)


# --- the reference vectors ---------------------------------------------------------------------


def test_a_read_of_the_forward_total_encodes_as_the_reference_frame() -> None:
    """11H read of 00010000 at 000102030425 is byte for byte the published frame."""
    assert dlt645.encode(read_request(METER, 0x00010000)) == DLT645_READ_TOTAL


def test_the_reference_read_reply_is_1206_42_kwh() -> None:
    """The 91H reply decodes to DI 00010000 and total 1206.42 as a Decimal."""
    reply = answer(read_request(METER, 0x00010000), dlt645.decode(DLT645_READ_TOTAL_REPLY))
    assert isinstance(reply, ReadReply)
    assert reply.di == 0x00010000
    assert reply.fields == {"total": Decimal("1206.42")}
    assert not reply.more_follows


def test_the_reference_trip_command_encodes_byte_for_byte() -> None:
    """1CH trip, PA 00, password 000000, operator 00000000, expiry 2018-05-12 15:41:24."""
    request = relay_request(
        "111111111111",
        RelayCommand.TRIP,
        expires_at=datetime(2018, 5, 12, 15, 41, 24),  # noqa: DTZ001 - meter wall clock
        password=Password(level=0x00),
    )
    assert dlt645.encode(request) == DLT645_TRIP


def test_the_trip_command_data_is_password_operator_n1_n2_then_expiry_seconds_first() -> None:
    """The 16 data bytes decode to PA P0-P2 C0-C3 1A 00 24 41 15 12 05 18."""
    frame = dlt645.decode(DLT645_TRIP)
    assert frame.data.hex(" ") == "00 00 00 00 00 00 00 00 1a 00 24 41 15 12 05 18"


def test_the_reference_relay_ack_is_an_ack_of_1ch() -> None:
    """9CH with L=0 is a plain acknowledgement."""
    reply = parse_reply(dlt645.decode(DLT645_TRIP_ACK))
    assert reply == Ack("111111111111", 0x1C)


def test_a_relay_refusal_carries_the_password_error_bit() -> None:
    """DCH with ERR=04 is an abnormal reply naming the password/unauthorised bit."""
    reply = parse_reply(dlt645.decode(DLT645_TRIP_REFUSED))
    assert reply == AbnormalReply("111111111111", 0x1C, 0x04, (Refusal.UNAUTHORISED,))


def test_a_read_refusal_says_there_is_no_such_data() -> None:
    """D1H with ERR=02 is 'no such data'."""
    reply = answer(read_request(METER, 0x00010000), dlt645.decode(DLT645_READ_NO_DATA))
    assert isinstance(reply, AbnormalReply)
    assert reply.reasons == (Refusal.NO_SUCH_DATA,)


def test_err_bits_are_named_per_edition_and_reserved_bits_are_ignored() -> None:
    """Bits 0-6 have names (2007 and 1997 differ in bits 0-2); bit 7 is reserved."""
    assert refusals(0xFF) == (
        Refusal.OTHER,
        Refusal.NO_SUCH_DATA,
        Refusal.UNAUTHORISED,
        Refusal.BAUD_RATE_FIXED,
        Refusal.TOO_MANY_YEAR_ZONES,
        Refusal.TOO_MANY_DAY_PERIODS,
        Refusal.TOO_MANY_TARIFFS,
    )
    assert refusals(0x07, edition_1997=True) == (
        Refusal.ILLEGAL_DATA,
        Refusal.WRONG_DATA_IDENTIFIER,
        Refusal.WRONG_PASSWORD,
    )


# --- the other requests ----------------------------------------------------------------------


def test_every_relay_command_sends_its_n1_code() -> None:
    """All seven N1 commands go out with the standard's codes."""
    expected = {
        RelayCommand.TRIP: 0x1A,
        RelayCommand.CLOSE_ALLOWED: 0x1B,
        RelayCommand.CLOSE_NOW: 0x1C,
        RelayCommand.ALARM: 0x2A,
        RelayCommand.ALARM_OFF: 0x2B,
        RelayCommand.KEEP_SUPPLY: 0x3A,
        RelayCommand.KEEP_SUPPLY_OFF: 0x3B,
    }
    expiry = datetime(2026, 12, 1)  # noqa: DTZ001 - meter wall clock
    for command, code in expected.items():
        request = relay_request(METER, command, expires_at=expiry, password=Password())
        assert request.data[8] == code
        assert request.data[0] == 0x02  # plaintext password level by default


def test_password_and_operator_code_go_out_least_significant_byte_first() -> None:
    """Password 123456 is sent 56 34 12; operator 00000001 is sent 01 00 00 00."""
    assert Password(2, "123456", "00000001").to_bytes() == bytes.fromhex("02 563412 01000000")


def test_esam_password_level_98_is_refused() -> None:
    """Ciphertext commands need the utility's encryption machine: refuse, don't send wrong."""
    with pytest.raises(ValueError, match="98"):
        Password(level=0x98).to_bytes()


def test_broadcast_time_sync_goes_to_all_nines_seconds_first() -> None:
    """08H to 999999999999 with ss mm hh DD MM YY."""
    request = time_sync_request(datetime(2026, 11, 5, 8, 30, 15))  # noqa: DTZ001
    assert request.address == dlt645.BROADCAST_ADDRESS
    assert request.control.function == 0x08
    assert request.data == bytes.fromhex("15 30 08 05 11 26")


def test_read_address_goes_to_the_any_address_and_its_reply_names_the_meter() -> None:
    """13H to AAAAAAAAAAAA; 93H carries the meter's address in its data."""
    request = read_address_request()
    assert dlt645.encode(request).hex().startswith("68aaaaaaaaaaaa6813")
    wire_address = bytes.fromhex("25 04 03 02 01 00")
    reply = answer(request, reply_frame(METER, 0x13, wire_address))
    assert reply == AddressReply(METER)


def test_a_write_carries_di_password_operator_then_value() -> None:
    """14H data: DI, PA, P0-P2, C0-C3, value."""
    request = write_request(METER, 0x04000102, b"\x00\x30\x12", Password())
    assert request.data == bytes.fromhex("02 01 00 04 02 000000 00000000 00 30 12")
    assert parse_reply(reply_frame(METER, 0x14, b"")) == Ack(METER, 0x14)


def test_a_follow_up_request_carries_its_sequence_and_parts_join() -> None:
    """12H asks for part n; B1H + 92H parts join into one value."""
    assert read_follow_up_request(METER, 0x0001FF00, 1).data == bytes.fromhex("00 FF 01 00 01")
    values = [bcd_from_decimal(Decimal(v), 4, 2) for v in ("300", "10", "100", "150", "40")]
    first = parse_reply(
        reply_frame(METER, 0x11, bytes.fromhex("00FF0100") + values[0] + values[1], follow_up=True)
    )
    second = parse_reply(
        reply_frame(METER, 0x12, bytes.fromhex("00FF0100") + b"".join(values[2:]) + b"\x01")
    )
    assert isinstance(first, ReadReply) and first.more_follows and first.fields == {}
    assert isinstance(second, ReadReply) and second.seq == 1
    fields = join_follow_ups([first, second])
    assert fields["total"] == Decimal("300.00") and fields["valley"] == Decimal("40.00")


# --- data items ------------------------------------------------------------------------------


def read_fields(di: int, value: bytes) -> dict[str, object]:
    reply = parse_reply(reply_frame(METER, 0x11, di.to_bytes(4, "little") + value))
    assert isinstance(reply, ReadReply)
    return dict(reply.fields)


def test_the_tou_block_names_total_tip_peak_flat_valley() -> None:
    """0001FF00: five 4-byte values in the order total, 尖, 峰, 平, 谷."""
    values = ("1000.00", "100.00", "300.00", "400.00", "200.00")
    data = b"".join(bcd_from_decimal(Decimal(v), 4, 2) for v in values)
    fields = read_fields(0x0001FF00, data)
    names = ("total", "tip", "peak", "flat", "valley")
    assert fields == dict(zip(names, map(Decimal, values), strict=True))


def test_voltage_current_and_power_read_with_their_decimals_and_signs() -> None:
    """XXX.X V; XXX.XXX A and XX.XXXX kW signed by the top bit."""
    assert read_fields(0x02010100, bytes.fromhex("12 22")) == {"voltage": Decimal("221.2")}
    assert read_fields(0x02020100, bytes.fromhex("50 12 80")) == {"current": Decimal("-1.250")}
    assert read_fields(0x02030000, bytes.fromhex("34 12 01")) == {"power": Decimal("1.1234")}
    assert read_fields(0x0201FF00, bytes.fromhex("12 22 00 22 95 21")) == {
        "voltage_a": Decimal("221.2"),
        "voltage_b": Decimal("220.0"),
        "voltage_c": Decimal("219.5"),
    }


def test_meter_date_and_time_read_from_their_wire_order() -> None:
    """04000101 is sent WW DD MM YY; 04000102 is sent ss mm hh."""
    assert read_fields(0x04000101, bytes.fromhex("03 05 11 26")) == {
        "meter_date": date(2026, 11, 5),
        "weekday": 3,
    }
    assert read_fields(0x04000102, bytes.fromhex("15 30 08")) == {"meter_time": time(8, 30, 15)}


def test_status_word_3_decodes_relay_alarm_and_prepaid_type() -> None:
    """Bit 4 relay open, bit 6 commanded open, bit 7 pre-trip alarm, bits 8-9 prepaid type."""
    fields = read_fields(0x04000503, (0b01_1101_0000).to_bytes(2, "little"))
    assert fields["relay_open"] is True
    assert fields["relay_command_open"] is True
    assert fields["pre_trip_alarm"] is True
    assert fields["prepaid_type"] == PrepaidType.ENERGY
    closed = read_fields(0x04000503, (0b10_0000_0000).to_bytes(2, "little"))
    assert closed["relay_open"] is False and closed["prepaid_type"] == PrepaidType.MONEY


def test_a_value_of_the_wrong_length_or_not_bcd_is_a_frame_error() -> None:
    """A 3-byte total, or a total with a nibble above 9, is refused with the reason."""
    with pytest.raises(FrameError, match="carries 3 bytes, expected 4"):
        read_fields(0x00010000, b"\x00\x00\x00")
    with pytest.raises(FrameError, match="not a BCD byte"):
        read_fields(0x00010000, bytes.fromhex("00 0A 00 00"))


def test_an_unknown_di_keeps_its_raw_value_and_names_no_fields() -> None:
    """A DI outside our table is not an error: the bytes are kept for the log."""
    reply = parse_reply(reply_frame(METER, 0x11, bytes.fromhex("01 02 03 04 99")))
    assert isinstance(reply, ReadReply) and reply.fields == {} and reply.value == b"\x99"
    assert item_2007(0x04030201) is None


# --- DL/T 645-1997 -----------------------------------------------------------------------------


def test_a_1997_read_uses_01h_and_a_two_byte_di() -> None:
    """Read 9010: C=01H, DI sent 10 90, +0x33 on the wire."""
    wire = dlt645.encode(read_request_1997(METER, 0x9010))
    assert wire == bytes.fromhex("68 25 04 03 02 01 00 68 01 02 43 C3") + bytes([wire[-2], 0x16])
    assert wire[-2] == sum(wire[:-2]) & 0xFF


def test_a_1997_reply_reads_9010_as_the_forward_total() -> None:
    """81H with DI 9010 and 4 BCD bytes is the forward active total."""
    request = read_request_1997(METER, 0x9010)
    value = bcd_from_decimal(Decimal("1206.42"), 4, 2)
    reply = answer(request, reply_frame(METER, 0x01, bytes.fromhex("10 90") + value))
    assert isinstance(reply, ReadReply) and reply.fields == {"total": Decimal("1206.42")}


def test_a_1997_refusal_uses_c1h_and_the_1997_bit_names() -> None:
    """C1H with ERR=04 is a wrong password in 1997 terms."""
    reply = parse_reply(reply_frame(METER, 0x01, b"\x04", abnormal=True))
    assert isinstance(reply, AbnormalReply) and reply.reasons == (Refusal.WRONG_PASSWORD,)


# --- strict decoding and matching --------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "problem"),
    [
        (DLT645_READ_TOTAL[:-2] + b"\xe2\x16", "checksum 0xE2 != computed 0xE1"),
        (DLT645_READ_TOTAL[:-1] + b"\x17", "missing end byte 0x16"),
        (DLT645_READ_TOTAL[:9] + b"\xc8" + DLT645_READ_TOTAL[10:], "length 200 beyond buffer"),
        (DLT645_READ_TOTAL + b"\x00", "1 bytes after the end byte"),
        (b"\x68\x25\x04\x03\x02\x01\x00\x69\x11\x00\x00\x16", "second start byte 0x69"),
        (b"\x68\x25", "too short for a header"),
    ],
)
def test_decode_refuses_a_broken_frame_and_says_what_is_wrong(wire: bytes, problem: str) -> None:
    """Wrong CS, missing 16, L beyond the buffer, trailing bytes, bad header, truncation."""
    with pytest.raises(FrameError, match=problem):
        dlt645.decode(wire)


def test_decode_skips_any_number_of_wake_up_bytes() -> None:
    """FE FE FE FE before 68 are not part of the frame."""
    assert dlt645.decode(b"\xfe" * 4 + DLT645_READ_TOTAL) == dlt645.decode(DLT645_READ_TOTAL)


def test_a_reply_from_another_address_does_not_answer_the_request() -> None:
    """The same reply bytes from meter 000102030426 are refused as unexpected."""
    other = dlt645.Frame("000102030426", dlt645.decode(DLT645_READ_TOTAL_REPLY).control,
                         dlt645.decode(DLT645_READ_TOTAL_REPLY).data)  # fmt: skip
    with pytest.raises(UnexpectedReply, match="reply from 000102030426, expected 000102030425"):
        answer(read_request(METER, 0x00010000), other)


def test_a_reply_for_another_di_does_not_answer_the_request() -> None:
    """A reply for 00020000 does not answer a read of 00010000."""
    reply = dlt645.decode(DLT645_READ_TOTAL_REPLY)
    with pytest.raises(UnexpectedReply, match="DI"):
        answer(read_request(METER, 0x00020000), reply)


def test_a_request_frame_is_not_a_reply() -> None:
    """Parsing our own request as a reply is refused (direction bit clear)."""
    with pytest.raises(FrameError, match="request, not a reply"):
        parse_reply(dlt645.decode(DLT645_READ_TOTAL))


# --- round trips -------------------------------------------------------------------------------

addresses = st.text(alphabet="0123456789A", min_size=12, max_size=12)
controls = st.builds(
    dlt645.Control,
    function=st.integers(0, 0x1F),
    from_meter=st.booleans(),
    abnormal=st.booleans(),
    follow_up=st.booleans(),
)
frames = st.builds(dlt645.Frame, addresses, controls, st.binary(max_size=255))


@given(frames, st.integers(0, 4))
def test_every_frame_survives_encode_then_decode(frame: dlt645.Frame, wake_up: int) -> None:
    """decode(encode(frame)) == frame for any address, control, data and wake-up count."""
    assert dlt645.decode(dlt645.encode(frame, wake_up=wake_up)) == frame


@given(st.decimals(min_value=0, max_value=Decimal("999999.99"), places=2))
def test_every_total_survives_bcd_and_the_offset(total: Decimal) -> None:
    """A total written as a meter would reads back exactly."""
    value = bcd_from_decimal(total, 4, 2)
    frame = reply_frame(METER, 0x11, bytes.fromhex("00 00 01 00") + value)
    reply = parse_reply(dlt645.decode(dlt645.encode(frame)))
    assert isinstance(reply, ReadReply) and reply.fields == {"total": total}
