"""Simulated meters on a simulated RS-485 bus: the far end of a DTU link, with no sockets.

Three meters speak the real protocols, built from a meter model by ``meter_for``:
``Dlt645Meter`` (DL/T 645-2007 or -1997, relay), ``WaterMeter`` (CJ/T 188-2004, valve)
and ``ModbusMeter`` (Modbus RTU, the model's register map). Each counts consumption from
the daily load profile of its unit kind (``sim.load``) and answers request bytes with
the reply bytes a field meter would send. Time is always passed in::

    meter = meter_for(bundled_models()["generic-dds-645-2007-prepaid"], "000000000101")
    reply = meter.answer(poll.frame, at)          # bytes, or None for silence
    bus = RS485Bus([meter, ...])
    for reply in bus.feed(chunk_from_tcp, at):    # BusReply: who, the bytes, how late
        ...

Faults are switched at run time on ``meter.faults`` (``offline``, ``slow_seconds``,
``garbage``, ``leak_per_hour``, ``bypass``; see ``meter_faults``); the tamper events are
``meter.usage.rollback(Decimal("5"))`` and ``meter.clock.jump(timedelta(days=3))``;
``meter.usage.away``, ``kind``, ``scale`` and ``speed`` shape the load.

Invariants of the bus:
- every meter hears every frame of its protocol family (645 editions share one framing);
  frames are found with the drivers' stream decoders, so a request split over TCP reads,
  behind wake-up bytes or noise is still heard whole;
- at most one reply per request, as on a half-duplex line: if several meters answer one
  frame (a wildcard read with two meters on the bus) their replies collide and the DTU
  relays the garbled mix;
- ``silence`` (the line going quiet) ends any partial frame, as a UART's frame gap does;
  so does a whole request in another protocol (its reply time is a quiet line), so the
  master must keep one request outstanding per bus, as a half-duplex bus demands.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final, Generic, Protocol, TypeVar

from meterpay.drivers import cjt188, dlt645, modbus
from meterpay.drivers.models import Cjt188Model, Dlt645Model, MeterModel
from meterpay.drivers.stream import FrameStream, Skipped, cjt188_stream, dlt645_stream
from meterpay.sim.meter_cjt188 import WaterMeter
from meterpay.sim.meter_dlt645 import Dlt645Meter
from meterpay.sim.meter_faults import MeterFaults
from meterpay.sim.meter_modbus import ModbusMeter
from meterpay.sites.model import UnitKind

Meter = Dlt645Meter | WaterMeter | ModbusMeter
COLLISION: Final = "collision"
FEED_SLICE: Final = 1024  # well under a stream's capacity once drained, so it never overflows
MAX_UNIT: Final = 247
_RTU_REQUESTS: Final = frozenset({0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F, 0x10})

F = TypeVar("F")
F_contra = TypeVar("F_contra", contravariant=True)


def meter_for(
    model: MeterModel,
    address: str,
    *,
    kind: UnitKind = UnitKind.HOME,
    scale: float = 1.0,
    speed: float = 1.0,
    opening: Decimal = Decimal(0),
    seed: int | str | None = None,
) -> Meter:
    """A simulated meter of ``model`` at ``address`` (12 digits for DL/T 645, 14 for
    CJ/T 188, a unit id for Modbus); ``scale`` sizes the unit's load, ``speed`` makes it
    consume that many times faster than real time, ``opening`` is its starting total."""
    if isinstance(model, Dlt645Model):
        return Dlt645Meter(
            model, address, kind=kind, scale=scale, speed=speed, opening=opening, seed=seed
        )
    if isinstance(model, Cjt188Model):
        return WaterMeter(
            model, address, kind=kind, scale=scale, speed=speed, opening=opening, seed=seed
        )
    return ModbusMeter(
        model, address, kind=kind, scale=scale, speed=speed, opening=opening, seed=seed
    )


@dataclass(frozen=True, slots=True)
class BusReply:
    """What came back on the bus for one request: the meter that answered (``COLLISION``
    when several did), its bytes, and how long after the request it answered."""

    address: str
    data: bytes
    delay_seconds: float = 0.0


class _Listener(Protocol[F_contra]):
    address: str
    faults: MeterFaults

    def hear(self, frame: F_contra, at: datetime) -> bytes | None: ...


class _Lane(Generic[F]):
    """One protocol family on the bus: a stream decoder and the meters that speak it."""

    def __init__(self, stream: FrameStream[F], meters: Sequence[_Listener[F]]) -> None:
        self.stream = stream
        self.meters = meters
        self.heard = False  # whether the last feed completed a frame

    def feed(self, data: bytes, at: datetime) -> list[BusReply]:
        events: list[F | Skipped] = []
        for start in range(0, len(data), FEED_SLICE):
            self.stream.feed(data[start : start + FEED_SLICE])
            events += self.stream
        self.heard = any(not isinstance(event, Skipped) for event in events)
        return self._replies(events, at)

    def forget(self) -> None:
        """Drop a partial frame: the line went quiet after another protocol's request."""
        self.stream.flush()

    def silence(self, at: datetime) -> list[BusReply]:
        return self._replies(self.stream.flush(), at)

    def _replies(self, events: Iterable[F | Skipped], at: datetime) -> list[BusReply]:
        replies = []
        for event in events:
            # noise on the line is no meter's business: only whole frames are heard
            reply = None if isinstance(event, Skipped) else self._answer(event, at)
            if reply is not None:
                replies.append(reply)
        return replies

    def _answer(self, frame: F, at: datetime) -> BusReply | None:
        answers = [(m, data) for m in self.meters if (data := m.hear(frame, at)) is not None]
        if not answers:
            return None
        delay = max(meter.faults.slow_seconds for meter, _ in answers)
        if len(answers) == 1:
            return BusReply(answers[0][0].address, answers[0][1], delay)
        return BusReply(COLLISION, collide([data for _, data in answers]), delay)


class RS485Bus:
    """The meters behind one DTU (see the module docstring for the bus's invariants)."""

    def __init__(self, meters: Iterable[Meter]) -> None:
        self.meters = list(meters)
        lanes = (
            _Lane[dlt645.Frame](
                dlt645_stream(), [m for m in self.meters if isinstance(m, Dlt645Meter)]
            ),
            _Lane[cjt188.Frame](
                cjt188_stream(), [m for m in self.meters if isinstance(m, WaterMeter)]
            ),
            _Lane[modbus.Message](
                rtu_request_stream(), [m for m in self.meters if isinstance(m, ModbusMeter)]
            ),
        )
        self._lanes = [lane for lane in lanes if lane.meters]

    @property
    def pending(self) -> bool:
        """Whether part of a frame is waiting for more bytes."""
        return any(lane.stream.buffered for lane in self._lanes)

    def feed(self, data: bytes, at: datetime) -> list[BusReply]:
        """The replies to every request completed by ``data``, lane by lane."""
        replies = [reply for lane in self._lanes for reply in lane.feed(data, at)]
        if any(lane.heard for lane in self._lanes):
            # a whole request means a quiet line follows (the reply time), which resets
            # every UART: another protocol's bytes are not left as a stalled partial frame
            for lane in self._lanes:
                if not lane.heard:
                    lane.forget()
        return replies

    def silence(self, at: datetime) -> list[BusReply]:
        """The line went quiet: partial frames are dropped (frames found behind a false
        start are still answered)."""
        return [reply for lane in self._lanes for reply in lane.silence(at)]

    def meter(self, address: str) -> Meter:
        for meter in self.meters:
            if meter.address == address.upper():
                return meter
        raise KeyError(f"no meter {address} on this bus")


def collide(replies: Sequence[bytes]) -> bytes:
    """Several meters transmitting at once. Modelled as a wired AND (a 0 bit from either
    wins, an idle line reads 1): enough to garble frames, which is what matters here."""
    mixed = bytearray(b"\xff" * max(len(reply) for reply in replies))
    for reply in replies:
        for index, byte in enumerate(reply):
            mixed[index] &= byte
    return bytes(mixed)


@dataclass(frozen=True, slots=True)
class _RtuRequestFraming:
    """Modbus RTU as a meter hears it: only requests, sized by ``modbus.request_size``
    (the drivers' RTU stream sizes replies, or both, for a master)."""

    head_size: int = 7  # unit, function, address, count/value, byte count of FC0F/10
    wake_up: int | None = None

    def candidate_at(self, buffer: bytearray, index: int) -> bool:
        function = index + 1
        return buffer[index] <= MAX_UNIT and (
            function >= len(buffer) or buffer[function] in _RTU_REQUESTS
        )

    def sizes(self, head: bytes) -> tuple[int, ...] | None:
        size = modbus.request_size(head)
        return None if size is None else (size,)

    def decode(self, raw: bytes) -> modbus.Message:
        return modbus.decode_rtu(raw)


def rtu_request_stream() -> FrameStream[modbus.Message]:
    """A stream decoder of Modbus RTU requests (what a slave on the bus listens for)."""
    return FrameStream(_RtuRequestFraming())
