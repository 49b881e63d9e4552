"""Cross-check with the independent ``dlt645`` package (PyPI, 3.2.x; a test-only peer).

Its ``DLT645Protocol`` builds and parses frames, and its ``MeterServerService`` answers
a request frame without any I/O (``handle_request``), so our requests can be answered by
their simulated meter and their frames read by our decoder. It has no relay control (1CH)
and no CJ/T 188, so those rest on the reference vectors alone.
"""

from __future__ import annotations

import struct
from decimal import Decimal

from dlt645 import MeterServerService  # type: ignore[import-untyped]
from dlt645.protocol.protocol import DLT645Protocol  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from meterpay.drivers import dlt645
from meterpay.drivers.dlt645_replies import (
    AbnormalReply,
    AddressReply,
    ReadReply,
    Refusal,
    answer,
)
from meterpay.drivers.dlt645_requests import read_address_request, read_request

from .vectors import DLT645_READ_NO_DATA, DLT645_READ_TOTAL, DLT645_READ_TOTAL_REPLY

METER = "000102030425"
METER_ON_WIRE = bytes.fromhex("25 04 03 02 01 00")


def peer_meter() -> MeterServerService:
    """Their simulated meter at 000102030425; the server argument is only stored."""
    return MeterServerService(None, address=bytearray(METER_ON_WIRE))


def ask_peer(meter: MeterServerService, request: dlt645.Frame) -> dlt645.Frame:
    """Send our request bytes to their meter and decode its reply bytes with ours."""
    reply = meter.handle_request(DLT645Protocol.deserialize(dlt645.encode(request, wake_up=4)))
    return dlt645.decode(bytes(reply))


def test_our_read_request_is_the_frame_their_builder_makes() -> None:
    """Same address, control, DI: byte-identical frames, with or without wake-up bytes."""
    theirs = DLT645Protocol.build_frame(METER_ON_WIRE, 0x11, struct.pack("<I", 0x00010000), 4)
    assert dlt645.encode(read_request(METER, 0x00010000), wake_up=4) == bytes(theirs)
    assert dlt645.encode(read_request(METER, 0x00010000)) == DLT645_READ_TOTAL


def test_their_parser_reads_our_request_as_a_read_of_the_forward_total() -> None:
    """Their decoder sees our address, C=11H and DI 00010000 (offset removed)."""
    frame = DLT645Protocol.deserialize(dlt645.encode(read_request(METER, 0x00010000)))
    assert bytes(frame.addr) == METER_ON_WIRE
    assert frame.ctrl_code == 0x11
    assert struct.unpack("<I", bytes(frame.data))[0] == 0x00010000


def test_their_meter_answers_our_read_with_the_reference_reply_and_we_read_it() -> None:
    """Their meter holding 1206.42 kWh replies the reference bytes; we read 1206.42."""
    meter = peer_meter()
    assert meter.set_00(0x00010000, 1206.42)
    reply_frame = ask_peer(meter, read_request(METER, 0x00010000))
    assert dlt645.encode(reply_frame) == DLT645_READ_TOTAL_REPLY
    reply = answer(read_request(METER, 0x00010000), reply_frame)
    assert isinstance(reply, ReadReply) and reply.fields == {"total": Decimal("1206.42")}


def test_their_meter_reports_voltage_that_we_read_to_the_decivolt() -> None:
    """A-phase voltage 221.2 V (XXX.X) through their encoder and our decoder."""
    meter = peer_meter()
    assert meter.set_02(0x02010100, 221.2)
    reply = answer(
        read_request(METER, 0x02010100), ask_peer(meter, read_request(METER, 0x02010100))
    )
    assert isinstance(reply, ReadReply) and reply.fields == {"voltage": Decimal("221.2")}


def test_their_refusal_of_a_block_read_is_the_reference_no_data_reply() -> None:
    """Their meter has no 0001FF00: D1H ERR=02, the reference abnormal vector."""
    reply_frame = ask_peer(peer_meter(), read_request(METER, 0x0001FF00))
    assert dlt645.encode(reply_frame) == DLT645_READ_NO_DATA
    reply = answer(read_request(METER, 0x0001FF00), reply_frame)
    assert isinstance(reply, AbnormalReply) and reply.reasons == (Refusal.NO_SUCH_DATA,)


def test_their_meter_answers_our_read_address_with_its_address() -> None:
    """13H to AAAAAAAAAAAA; their 93H reply carries 000102030425."""
    request = read_address_request()
    assert answer(request, ask_peer(peer_meter(), request)) == AddressReply(METER)


addresses = st.text(alphabet="0123456789", min_size=12, max_size=12)
controls = st.integers(0, 0xFF)
data = st.binary(max_size=200)


@given(addresses, controls, data)
def test_any_frame_they_build_we_decode_to_the_same_fields(
    address: str, control: int, payload: bytes
) -> None:
    """Their build_frame -> our decode: same address, control byte and data."""
    wire_address = bytes.fromhex(address)[::-1]
    theirs = bytes(DLT645Protocol.build_frame(wire_address, control, payload, 2))
    ours = dlt645.decode(theirs)
    assert (ours.address, ours.control.to_byte(), ours.data) == (address, control, payload)


@given(addresses, controls, data)
def test_any_frame_we_build_they_decode_to_the_same_fields(
    address: str, control: int, payload: bytes
) -> None:
    """Our encode -> their deserialize: same address bytes, control byte and data."""
    frame = dlt645.Frame(address, dlt645.Control.from_byte(control), payload)
    theirs = DLT645Protocol.deserialize(dlt645.encode(frame, wake_up=1))
    assert bytes(theirs.addr) == bytes.fromhex(address)[::-1]
    assert (theirs.ctrl_code, bytes(theirs.data)) == (control, payload)
