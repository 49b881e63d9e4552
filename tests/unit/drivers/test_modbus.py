"""Modbus RTU and TCP: CRC, requests, replies and exceptions, register values by word order."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterpay.drivers import modbus
from meterpay.drivers.errors import FrameError, UnexpectedReply
from meterpay.drivers.modbus_values import RegisterType, WordOrder, decode_value, encode_value

from .vectors import MODBUS_COIL_ON, MODBUS_EXCEPTION_02, MODBUS_READ_10, MODBUS_REPLY_100


def test_reading_ten_holding_registers_is_the_reference_frame() -> None:
    """01 03 0000 000A with CRC C5 CD (low byte first)."""
    assert modbus.encode_rtu(modbus.read_holding_registers(1, 0, 10)) == MODBUS_READ_10


def test_the_reference_reply_holds_one_register_of_100() -> None:
    """01 03 02 0064: one register, value 100."""
    request = modbus.read_holding_registers(1, 0, 1)
    reply = modbus.answer(request, modbus.decode_rtu(MODBUS_REPLY_100))
    assert reply == modbus.RegistersReply(1, 3, (100,))


def test_switching_coil_0_on_is_the_reference_frame_and_its_echo_is_accepted() -> None:
    """05 with FF00; the meter echoes the request."""
    request = modbus.write_coil(1, 0, on=True)
    assert modbus.encode_rtu(request) == MODBUS_COIL_ON
    assert modbus.answer(request, modbus.decode_rtu(MODBUS_COIL_ON)) == modbus.WriteEcho(
        1, 5, 0, 0xFF00
    )
    assert modbus.write_coil(1, 0, on=False).data == bytes.fromhex("0000 0000")


def test_the_reference_exception_is_an_illegal_data_address() -> None:
    """83 02: function 03 refused with exception 02, by name."""
    reply = modbus.answer(
        modbus.read_holding_registers(1, 0, 10), modbus.decode_rtu(MODBUS_EXCEPTION_02)
    )
    assert reply == modbus.ExceptionReply(1, 3, 2, "illegal_data_address")


def test_single_and_multiple_register_writes_and_input_reads() -> None:
    """06 and 10 carry address and values; 04 reads input registers."""
    assert modbus.write_register(1, 0x10, 0x1234).data == bytes.fromhex("0010 1234")
    many = modbus.write_registers(1, 0x10, (1, 2))
    assert many.data == bytes.fromhex("0010 0002 04 0001 0002")
    echo = modbus.decode_rtu(modbus.encode_rtu(modbus.Message(1, 0x10, bytes.fromhex("0010 0002"))))
    assert modbus.answer(many, echo) == modbus.WriteEcho(1, 0x10, 0x10, 2)
    assert modbus.read_input_registers(2, 0x48, 2).function == 0x04


def test_a_wrong_crc_is_refused_with_both_values() -> None:
    """The CRC sent and the CRC computed are both in the message."""
    with pytest.raises(FrameError, match="CRC 0xCEC5 != computed 0xCDC5"):
        modbus.decode_rtu(MODBUS_READ_10[:-2] + b"\xc5\xce")


def test_replies_that_do_not_answer_the_request_are_refused() -> None:
    """Another unit, another function, or another register count."""
    reply = modbus.decode_rtu(MODBUS_REPLY_100)
    with pytest.raises(UnexpectedReply, match="unit 1, expected 2"):
        modbus.answer(modbus.read_holding_registers(2, 0, 1), reply)
    with pytest.raises(UnexpectedReply, match="function"):
        modbus.answer(modbus.read_input_registers(1, 0, 1), reply)
    with pytest.raises(UnexpectedReply, match="1 registers, expected 10"):
        modbus.answer(modbus.read_holding_registers(1, 0, 10), reply)


def test_a_byte_count_that_does_not_fit_is_a_frame_error() -> None:
    """A read reply whose byte count disagrees with its length is malformed."""
    with pytest.raises(FrameError, match="byte count"):
        modbus.parse_reply(modbus.Message(1, 3, bytes.fromhex("04 0064")))


def test_reply_and_request_sizes_follow_from_the_function() -> None:
    """Without a length field, the function (and byte count) give the size."""
    assert modbus.reply_size(MODBUS_REPLY_100[:3]) == 7
    assert modbus.reply_size(MODBUS_EXCEPTION_02[:2]) == 5
    assert modbus.reply_size(MODBUS_COIL_ON[:2]) == 8
    assert modbus.reply_size(b"\x01") is None
    assert modbus.request_size(MODBUS_READ_10[:2]) == 8
    with pytest.raises(FrameError, match="0x2B"):
        modbus.reply_size(b"\x01\x2b")


def test_mbap_wraps_the_same_message_for_modbus_tcp() -> None:
    """TID, PID 0000, LEN (unit + PDU), unit, PDU; no CRC."""
    request = modbus.read_holding_registers(1, 0, 10)
    wire = modbus.encode_tcp(request, 7)
    assert wire == bytes.fromhex("0007 0000 0006 01 03 0000 000A")
    assert modbus.decode_tcp(wire) == modbus.TcpFrame(7, request)
    with pytest.raises(FrameError, match="protocol id"):
        modbus.decode_tcp(bytes.fromhex("0007 0001 0006 01 03 0000 000A"))


# --- register values ---------------------------------------------------------------------------


def test_a_float32_reads_as_its_shortest_decimal_in_either_word_order() -> None:
    """1234.567 kWh stored high word first (Eastron) or low word first."""
    high, low = struct.unpack(">HH", struct.pack(">f", 1234.567))
    assert decode_value((high, low), RegisterType.FLOAT32) == Decimal("1234.567")
    assert decode_value((low, high), RegisterType.FLOAT32, word_order=WordOrder.LITTLE) == Decimal(
        "1234.567"
    )


def test_integers_read_signed_or_not_and_scaled_exactly() -> None:
    """uint32 123456 x 0.01 = 1234.56; int16 0xFFFF = -1."""
    registers = encode_value(Decimal("1234.56"), RegisterType.UINT32, scale=Decimal("0.01"))
    assert registers == (0x0001, 0xE240)
    assert decode_value(registers, RegisterType.UINT32, scale=Decimal("0.01")) == Decimal("1234.56")
    assert decode_value((0xFFFF,), RegisterType.INT16) == Decimal(-1)
    assert decode_value((0xFFFF,), RegisterType.UINT16) == Decimal(65535)


def test_a_nan_float_or_the_wrong_register_count_is_a_frame_error() -> None:
    """A meter sending NaN is not metering; two registers are needed for 32 bits."""
    with pytest.raises(FrameError, match="not a finite number"):
        decode_value((0x7FC0, 0x0000), RegisterType.FLOAT32)
    with pytest.raises(FrameError, match="needs 2 registers"):
        decode_value((1,), RegisterType.UINT32)


@given(
    st.sampled_from(list(RegisterType)),
    st.sampled_from(list(WordOrder)),
    st.integers(-(2**31), 2**31 - 1),
)
def test_every_integer_survives_registers_in_both_word_orders(
    kind: RegisterType, order: WordOrder, number: int
) -> None:
    """encode_value then decode_value gives the value back (when it fits the type)."""
    if kind is RegisterType.FLOAT32:
        number = number % 100000
    bits = 16 * kind.registers
    signed = kind in (RegisterType.INT16, RegisterType.INT32)
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2**bits)
    if kind is not RegisterType.FLOAT32 and not low <= number < high:
        return
    registers = encode_value(Decimal(number), kind, word_order=order)
    assert decode_value(registers, kind, word_order=order) == Decimal(number)


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=252))
def test_every_rtu_message_survives_encode_then_decode(
    unit: int, function: int, data: bytes
) -> None:
    """decode_rtu(encode_rtu(m)) == m."""
    message = modbus.Message(unit, function, data)
    assert modbus.decode_rtu(modbus.encode_rtu(message)) == message


@given(st.integers(0, 0xFFFF), st.integers(0, 255), st.integers(0, 127), st.binary(max_size=252))
def test_every_tcp_frame_survives_encode_then_decode(
    tid: int, unit: int, function: int, data: bytes
) -> None:
    """decode_tcp(encode_tcp(m, tid)) gives the transaction id and message back."""
    message = modbus.Message(unit, function, data)
    assert modbus.decode_tcp(modbus.encode_tcp(message, tid)) == modbus.TcpFrame(tid, message)
