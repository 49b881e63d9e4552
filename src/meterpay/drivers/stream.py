"""Streaming decoders: bytes as TCP delivers them in, frames and skipped bytes out.

A DTU relays the RS-485 bus over TCP, so one read may hold half a frame, two frames,
wake-up bytes, line noise or a heartbeat. Use one decoder per link::

    stream = dlt645_stream()
    stream.feed(chunk)           # after every read
    for event in stream:         # until it needs more bytes
        if isinstance(event, Skipped): log(event)
        else: handle(event)      # a dlt645.Frame
    stream.flush()               # on a reply timeout: give up on a partial frame

Invariants:
- each step yields a frame, a ``Skipped`` (the bytes dropped and why) or stops for more
  bytes; it never raises while iterating, and every step consumes bytes or stops;
- a candidate frame that fails its checksum or header loses one byte and the search
  resumes at the next possible start, so a frame hidden behind noise is still found;
- FE wake-up bytes before a frame are dropped silently; other bytes are reported;
- the buffer is bounded: ``feed`` raises ``StreamOverflow`` (a ``FrameError``) rather
  than hold more than ``capacity`` bytes; draining after each feed keeps it under
  one frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

from meterpay.drivers import cjt188, dlt645, modbus
from meterpay.drivers.errors import FrameError, StreamOverflow

F_co = TypeVar("F_co", covariant=True)
DEFAULT_CAPACITY: Final = 8192


@dataclass(frozen=True, slots=True)
class Skipped:
    """Bytes the decoder dropped, and why (noise, a bad checksum, a partial frame)."""

    data: bytes
    reason: str


class Framing(Protocol[F_co]):
    """How one protocol finds, sizes and decodes a frame at the head of a buffer."""

    @property
    def head_size(self) -> int:
        """Bytes ``sizes`` needs to see to size a frame."""
        ...

    @property
    def wake_up(self) -> int | None:
        """The byte dropped silently before a frame, if any (FE)."""
        ...

    def candidate_at(self, buffer: bytearray, index: int) -> bool:
        """Whether a frame could start at ``index`` (judged on the bytes present)."""
        ...

    def sizes(self, head: bytes) -> tuple[int, ...] | None:
        """Possible frame sizes, shortest first, from the first ``head_size`` bytes;
        None if more bytes are needed to tell; a FrameError if no frame starts here."""
        ...

    def decode(self, raw: bytes) -> F_co: ...


class FrameStream(Generic[F_co]):
    """A bounded buffer plus a framing: ``feed`` bytes, iterate events. Covariant: a
    ``FrameStream[dlt645.Frame]`` is a ``FrameStream[object]`` to code that only reads it."""

    def __init__(self, framing: Framing[F_co], capacity: int = DEFAULT_CAPACITY) -> None:
        self._framing = framing
        self._capacity = capacity
        self._buffer = bytearray()
        self._final = False

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def expect(self, request: object | None) -> None:
        """Note the request just sent. Framed protocols (DL/T 645, CJ/T 188, MBAP) find
        their frames without it; Modbus RTU overrides this."""

    def feed(self, data: bytes) -> None:
        if len(self._buffer) + len(data) > self._capacity:
            raise StreamOverflow(
                f"{len(self._buffer)} buffered + {len(data)} fed exceeds {self._capacity} bytes;"
                " drain the stream after each feed"
            )
        self._buffer += data

    def __iter__(self) -> Iterator[F_co | Skipped]:
        while (event := self.next_event()) is not None:
            yield event

    def flush(self) -> list[F_co | Skipped]:
        """Every event left, treating a partial frame as lost (end of input, or a reply
        timeout); frames after a false start are still found."""
        self._final = True
        try:
            return list(self)
        finally:
            self._final = False

    def next_event(self) -> F_co | Skipped | None:
        """The next frame or skipped run, or None when more bytes are needed."""
        while self._buffer:
            start = self._first_candidate(0)
            if start:
                junk = bytes(self._buffer[:start])
                del self._buffer[:start]
                shown = self._without_wake_up(junk)
                if shown:
                    return Skipped(shown, "no frame start")
                continue
            return self._frame_at_head()
        return None

    def _first_candidate(self, after: int) -> int:
        index = after
        while index < len(self._buffer) and not self._framing.candidate_at(self._buffer, index):
            index += 1
        return index

    def _without_wake_up(self, junk: bytes) -> bytes:
        wake_up = self._framing.wake_up
        return junk.rstrip(bytes([wake_up])) if wake_up is not None else junk

    def _frame_at_head(self) -> F_co | Skipped | None:
        head = bytes(self._buffer[: self._framing.head_size])
        try:
            sizes = self._framing.sizes(head)
        except FrameError as exc:
            return self._drop(1, str(exc))
        if sizes is None:
            return self._stalled()
        problem = "no size"
        for size in sizes:
            if size > len(self._buffer):
                return self._stalled()
            try:
                frame = self._framing.decode(bytes(self._buffer[:size]))
            except FrameError as exc:
                problem = str(exc)
                continue
            del self._buffer[:size]
            return frame
        return self._drop(1, problem)

    def _drop(self, count: int, reason: str) -> Skipped:
        dropped = bytes(self._buffer[:count])
        del self._buffer[:count]
        return Skipped(dropped, reason)

    def _stalled(self) -> Skipped | None:
        if not self._final:
            return None
        # give up on the partial frame, up to the next place a frame could start
        end = self._first_candidate(1)
        return self._drop(end, f"incomplete frame of {end} byte(s)")


@dataclass(frozen=True, slots=True)
class _Dlt645Framing:
    head_size: int = dlt645.HEADER_SIZE
    wake_up: int | None = dlt645.WAKE_UP

    def candidate_at(self, buffer: bytearray, index: int) -> bool:
        second = index + 7
        return buffer[index] == dlt645.START and (
            second >= len(buffer) or buffer[second] == dlt645.START
        )

    def sizes(self, head: bytes) -> tuple[int, ...] | None:
        if len(head) < self.head_size:
            return None
        dlt645.check_header(head)
        return (dlt645.frame_size(head),)

    def decode(self, raw: bytes) -> dlt645.Frame:
        return dlt645.decode(raw)


@dataclass(frozen=True, slots=True)
class _Cjt188Framing:
    head_size: int = cjt188.HEADER_SIZE
    wake_up: int | None = cjt188.WAKE_UP

    def candidate_at(self, buffer: bytearray, index: int) -> bool:
        kind = index + 1
        return buffer[index] == cjt188.START and (
            kind >= len(buffer) or cjt188.plausible_type(buffer[kind])
        )

    def sizes(self, head: bytes) -> tuple[int, ...] | None:
        if len(head) < self.head_size:
            return None
        cjt188.check_header(head)
        return (cjt188.frame_size(head),)

    def decode(self, raw: bytes) -> cjt188.Frame:
        return cjt188.decode(raw)


_KNOWN_FUNCTIONS: Final = frozenset(
    {*range(0x01, 0x07), 0x0F, 0x10, *(f | modbus.EXCEPTION_BIT for f in (*range(1, 7), 15, 16))}
)


@dataclass(frozen=True, slots=True)
class Expectation:
    """The reply an RTU master waits for: without a length field, knowing the request
    is what makes resynchronisation reliable (unit, function, register count)."""

    unit: int
    function: int
    count: int | None = None

    @classmethod
    def of(cls, request: modbus.Message) -> Expectation:
        reads = (
            modbus.FunctionCode.READ_HOLDING_REGISTERS,
            modbus.FunctionCode.READ_INPUT_REGISTERS,
        )
        if request.function in reads:
            return cls(request.unit, request.function, modbus.parse_read_request(request).count)
        return cls(request.unit, request.function)


class _RtuFraming:
    """Replies only when expecting one; requests and replies when just listening."""

    head_size = 7
    wake_up: int | None = None

    def __init__(self) -> None:
        self.expectation: Expectation | None = None

    def candidate_at(self, buffer: bytearray, index: int) -> bool:
        expected = self.expectation
        if expected is None:
            return index + 1 >= len(buffer) or buffer[index + 1] in _KNOWN_FUNCTIONS
        functions = (expected.function, expected.function | modbus.EXCEPTION_BIT)
        return buffer[index] == expected.unit and (
            index + 1 >= len(buffer) or buffer[index + 1] in functions
        )

    def sizes(self, head: bytes) -> tuple[int, ...] | None:
        expected = self.expectation
        if expected is not None:
            counted = expected.count is not None and len(head) >= 3
            if counted and head[1] == expected.function and head[2] != 2 * (expected.count or 0):
                raise FrameError(f"byte count {head[2]}, expected {2 * (expected.count or 0)}")
            size = modbus.reply_size(head)
            return None if size is None else (size,)
        return self._any_sizes(head)

    @staticmethod
    def _any_sizes(head: bytes) -> tuple[int, ...] | None:
        found: set[int] = set()
        for sizer in (modbus.reply_size, modbus.request_size):
            try:
                size = sizer(head)
            except FrameError:
                continue
            if size is None:
                return None  # cannot rule this reading out yet
            found.add(size)
        if not found:
            raise FrameError(f"function 0x{head[1]:02X} is not one we decode")
        return tuple(sorted(found))

    def decode(self, raw: bytes) -> modbus.Message:
        return modbus.decode_rtu(raw)


class ModbusRtuStream(FrameStream[modbus.Message]):
    """An RTU stream; call ``expect(request)`` when sending, ``expect(None)`` to listen."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._rtu = _RtuFraming()
        super().__init__(self._rtu, capacity)

    def expect(self, request: object | None) -> None:
        """Wait for the reply to ``request`` (a ``modbus.Message``); None to just listen."""
        if request is not None and not isinstance(request, modbus.Message):
            raise TypeError(f"a Modbus RTU stream expects a modbus.Message, not {request!r}")
        self._rtu.expectation = None if request is None else Expectation.of(request)


@dataclass(frozen=True, slots=True)
class _TcpFraming:
    head_size: int = 6
    wake_up: int | None = None

    def candidate_at(self, buffer: bytearray, index: int) -> bool:
        pid = buffer[index + 2 : index + 4]
        return all(byte == 0 for byte in pid)

    def sizes(self, head: bytes) -> tuple[int, ...] | None:
        size = modbus.tcp_size(head)
        return None if size is None else (size,)

    def decode(self, raw: bytes) -> modbus.TcpFrame:
        return modbus.decode_tcp(raw)


def dlt645_stream(capacity: int = DEFAULT_CAPACITY) -> FrameStream[dlt645.Frame]:
    return FrameStream(_Dlt645Framing(), capacity)


def cjt188_stream(capacity: int = DEFAULT_CAPACITY) -> FrameStream[cjt188.Frame]:
    return FrameStream(_Cjt188Framing(), capacity)


def modbus_tcp_stream(capacity: int = DEFAULT_CAPACITY) -> FrameStream[modbus.TcpFrame]:
    return FrameStream(_TcpFraming(), capacity)
