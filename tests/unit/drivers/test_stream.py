"""Stream decoders: noise, preambles, split and merged reads, resync, a bounded buffer, fuzz."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterpay.drivers import cjt188, dlt645, modbus
from meterpay.drivers.errors import FrameError, StreamOverflow
from meterpay.drivers.stream import (
    FrameStream,
    ModbusRtuStream,
    Skipped,
    cjt188_stream,
    dlt645_stream,
    modbus_tcp_stream,
)

from .vectors import (
    CJT188_CURRENT_DATA_REPLY,
    CJT188_CURRENT_DATA_REPLY_WRONG_CS,
    CJT188_OPEN_VALVE_REPLY,
    DLT645_READ_NO_DATA,
    DLT645_READ_TOTAL,
    DLT645_READ_TOTAL_REPLY,
    DLT645_TRIP_ACK,
    MODBUS_EXCEPTION_02,
    MODBUS_READ_10,
    MODBUS_REPLY_100,
)

REPLY = dlt645.decode(DLT645_READ_TOTAL_REPLY)
NO_DATA = dlt645.decode(DLT645_READ_NO_DATA)


def drain(stream: FrameStream[object], *chunks: bytes) -> list[object]:
    events: list[object] = []
    for chunk in chunks:
        stream.feed(chunk)
        events.extend(stream)
    return events


def test_garbage_before_the_preamble_is_reported_and_the_frame_found() -> None:
    """Noise is one Skipped event; the FE wake-up bytes vanish silently."""
    events = drain(dlt645_stream(), b"\x00\x11\x22" + b"\xfe" * 4 + DLT645_READ_TOTAL_REPLY)
    assert events == [Skipped(b"\x00\x11\x22", "no frame start"), REPLY]


def test_two_frames_in_one_read_come_out_as_two_frames() -> None:
    """A TCP read that merged two replies yields both, in order."""
    events = drain(dlt645_stream(), DLT645_READ_TOTAL_REPLY + b"\xfe\xfe" + DLT645_READ_NO_DATA)
    assert events == [REPLY, NO_DATA]


@pytest.mark.parametrize("split", range(1, len(DLT645_READ_TOTAL_REPLY)))
def test_one_frame_split_over_two_reads_is_reassembled(split: int) -> None:
    """Whatever byte the read splits at, the frame comes out once, after the second read."""
    stream = dlt645_stream()
    assert drain(stream, DLT645_READ_TOTAL_REPLY[:split]) == []
    assert drain(stream, DLT645_READ_TOTAL_REPLY[split:]) == [REPLY]


def test_a_bad_checksum_drops_one_byte_and_the_next_frame_is_found() -> None:
    """The corrupt frame costs its first byte (with the reason), then the rest as noise."""
    corrupt = DLT645_READ_TOTAL_REPLY[:-2] + b"\x00\x16"
    events = drain(dlt645_stream(), corrupt + DLT645_READ_NO_DATA)
    assert events[0] == Skipped(b"\x68", "checksum 0x00 != computed 0x8B")
    assert events[1] == Skipped(corrupt[1:], "no frame start")
    assert events[2:] == [NO_DATA]


def test_a_missing_end_byte_is_reported_and_skipped() -> None:
    """A frame ending in 0x17 instead of 0x16 is not a frame."""
    events = drain(dlt645_stream(), DLT645_READ_TOTAL_REPLY[:-1] + b"\x17" + DLT645_TRIP_ACK)
    assert events[0] == Skipped(b"\x68", "missing end byte 0x16 (found 0x17)")
    assert events[-1] == dlt645.decode(DLT645_TRIP_ACK)


def test_a_length_beyond_the_data_waits_then_flush_recovers_the_frame_behind_it() -> None:
    """A header claiming L=200 stalls the stream; on a timeout, flush finds the real reply."""
    false_start = DLT645_READ_TOTAL_REPLY[:9] + b"\xc8"
    stream = dlt645_stream()
    assert drain(stream, false_start + DLT645_READ_TOTAL_REPLY) == []
    events = stream.flush()
    assert events[0] == Skipped(false_start, "incomplete frame of 10 byte(s)")
    assert events[1:] == [REPLY]
    assert stream.buffered == 0


def test_a_partial_frame_at_the_end_is_reported_on_flush() -> None:
    """Half a frame and then silence: flush reports every byte rather than hold them forever
    (the 68 inside the address could start a frame, so it is given up on separately)."""
    stream = dlt645_stream()
    partial = DLT645_READ_TOTAL_REPLY[:12]
    assert drain(stream, partial) == []
    events = stream.flush()
    assert all(isinstance(e, Skipped) and "incomplete frame" in e.reason for e in events)
    assert b"".join(e.data for e in events if isinstance(e, Skipped)) == partial
    assert stream.buffered == 0


def test_a_stream_refuses_more_bytes_than_its_capacity() -> None:
    """The buffer is bounded; the caller must drain between feeds."""
    stream = dlt645_stream(capacity=64)
    stream.feed(bytes(60))
    with pytest.raises(StreamOverflow, match="exceeds 64 bytes"):
        stream.feed(bytes(10))


def test_a_reply_from_another_address_is_still_a_frame_for_the_matcher() -> None:
    """The stream frames bytes; matching a reply to its request is dlt645_replies.answer's job."""
    other = dlt645.encode(dlt645.Frame("000102030426", REPLY.control, REPLY.data))
    assert drain(dlt645_stream(), other) == [dlt645.decode(other)]


def test_cjt188_stream_skips_the_wrong_checksum_frame_and_finds_the_next() -> None:
    """The widely copied 901F reply with CS 08 is dropped; the valve reply after it is found."""
    events = drain(cjt188_stream(), CJT188_CURRENT_DATA_REPLY_WRONG_CS + CJT188_OPEN_VALVE_REPLY)
    frames = [e for e in events if not isinstance(e, Skipped)]
    skipped = [e for e in events if isinstance(e, Skipped)]
    assert frames == [cjt188.decode(CJT188_OPEN_VALVE_REPLY)]
    assert skipped[0].reason == "checksum 0x08 != computed 0x13"


def test_cjt188_stream_resynchronises_only_on_a_plausible_meter_type() -> None:
    """A 68 followed by a byte that cannot be a meter type is noise, not a frame start."""
    events = drain(cjt188_stream(), b"\x68\x05\x68" + CJT188_CURRENT_DATA_REPLY)
    assert events == [
        Skipped(b"\x68\x05\x68", "no frame start"),
        cjt188.decode(CJT188_CURRENT_DATA_REPLY),
    ]


def test_modbus_rtu_stream_finds_the_expected_reply_among_noise() -> None:
    """Expecting unit 1 function 03 with 1 register, noise before the reply is skipped."""
    stream = ModbusRtuStream()
    stream.expect(modbus.read_holding_registers(1, 0, 1))
    events = drain(stream, b"\x55\x01\x07" + MODBUS_REPLY_100[:4], MODBUS_REPLY_100[4:])
    assert events == [
        Skipped(b"\x55\x01\x07", "no frame start"),
        modbus.decode_rtu(MODBUS_REPLY_100),
    ]


def test_modbus_rtu_stream_takes_an_exception_as_the_reply() -> None:
    """fc | 0x80 is a five-byte reply to the expected request."""
    stream = ModbusRtuStream()
    stream.expect(modbus.read_holding_registers(1, 0, 10))
    assert drain(stream, MODBUS_EXCEPTION_02) == [modbus.decode_rtu(MODBUS_EXCEPTION_02)]


def test_modbus_rtu_stream_rejects_a_reply_with_the_wrong_register_count() -> None:
    """Expecting 10 registers, a 1-register reply is not taken as the answer."""
    stream = ModbusRtuStream()
    stream.expect(modbus.read_holding_registers(1, 0, 10))
    events = drain(stream, MODBUS_REPLY_100)
    assert all(isinstance(e, Skipped) for e in events)
    assert events[0] == Skipped(b"\x01", "byte count 2, expected 20")


def test_modbus_rtu_stream_without_expectation_reads_requests_and_replies() -> None:
    """Listening to a bus, both a read request and its reply are framed."""
    events = drain(ModbusRtuStream(), MODBUS_READ_10 + MODBUS_REPLY_100)
    assert events == [modbus.decode_rtu(MODBUS_READ_10), modbus.decode_rtu(MODBUS_REPLY_100)]


def test_modbus_tcp_stream_frames_by_the_mbap_length() -> None:
    """Two MBAP frames merged in one read, split oddly, both come out."""
    one = modbus.encode_tcp(modbus.read_holding_registers(1, 0, 10), 1)
    two = modbus.encode_tcp(modbus.Message(1, 3, b"\x02\x00\x64"), 2)
    events = drain(modbus_tcp_stream(), (one + two)[:5], (one + two)[5:])
    assert events == [modbus.decode_tcp(one), modbus.decode_tcp(two)]


def test_expect_is_a_no_op_for_framed_protocols() -> None:
    """A caller can call expect() on any stream; only RTU uses it."""
    stream = dlt645_stream()
    stream.expect(dlt645.decode(DLT645_READ_TOTAL))
    assert drain(stream, DLT645_READ_TOTAL_REPLY) == [REPLY]


# --- fuzz --------------------------------------------------------------------------------------


def _expecting() -> FrameStream[object]:
    stream = ModbusRtuStream()
    stream.expect(modbus.read_holding_registers(1, 0, 2))
    return stream


STREAMS: dict[str, Callable[[], FrameStream[object]]] = {
    "dlt645": dlt645_stream,
    "cjt188": cjt188_stream,
    "modbus_rtu": ModbusRtuStream,
    "modbus_rtu_expecting": _expecting,
    "modbus_tcp": modbus_tcp_stream,
}
FRAME_TYPES: dict[str, type] = {
    "dlt645": dlt645.Frame,
    "cjt188": cjt188.Frame,
    "modbus_rtu": modbus.Message,
    "modbus_rtu_expecting": modbus.Message,
    "modbus_tcp": modbus.TcpFrame,
}
LONGEST_FRAME = max(dlt645.MAX_FRAME, cjt188.MAX_FRAME, modbus.MAX_RTU_FRAME, 6 + 254)


SAMPLES = [DLT645_READ_TOTAL_REPLY, CJT188_CURRENT_DATA_REPLY, MODBUS_REPLY_100, MODBUS_READ_10]
noise = st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(SAMPLES)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(STREAMS)), noise.map(b"".join), st.lists(st.integers(1, 64), max_size=30)
)
def test_random_bytes_in_random_chunks_yield_frames_skips_or_need_more(
    protocol: str, data: bytes, chunk_sizes: list[int]
) -> None:
    """Every step is a frame, a Skipped or 'need more'; nothing else is raised, nothing hangs,
    and after draining the buffer holds less than one frame."""
    stream = STREAMS[protocol]()
    position, steps = 0, 0
    chunks = [*chunk_sizes, len(data)]
    for size in chunks:
        chunk = data[position : position + size]
        position += len(chunk)
        stream.feed(chunk)
        while (event := stream.next_event()) is not None:
            steps += 1
            assert steps <= len(data) + 1, "a step consumed no bytes"
            assert isinstance(event, Skipped | FRAME_TYPES[protocol])
        assert stream.buffered <= LONGEST_FRAME
    for event in stream.flush():
        assert isinstance(event, Skipped | FRAME_TYPES[protocol])
    assert stream.buffered == 0


frames_645 = st.builds(
    dlt645.Frame,
    st.text(alphabet="0123456789", min_size=12, max_size=12),
    st.builds(dlt645.Control, st.integers(0, 0x1F), st.booleans(), st.booleans(), st.booleans()),
    st.binary(max_size=60),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(frames_645, st.integers(0, 4)), min_size=1, max_size=5), st.data())
def test_valid_frames_split_anywhere_all_come_out_in_order_with_nothing_skipped(
    frames: list[tuple[dlt645.Frame, int]], data: st.DataObject
) -> None:
    """Only valid frames (with wake-up bytes), chunked at random: every frame, in order."""
    wire = b"".join(dlt645.encode(frame, wake_up=wake_up) for frame, wake_up in frames)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(wire) - 1)), max_size=8)))
    pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    assert drain(dlt645_stream(), *pieces) == [frame for frame, _ in frames]


def test_feeding_never_raises_anything_but_frame_error() -> None:
    """StreamOverflow is the documented error, and it is a FrameError."""
    assert issubclass(StreamOverflow, FrameError)
