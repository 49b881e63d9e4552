"""Modbus messages for DIN-rail meters: RTU framing (CRC-16/MODBUS), the PDUs a meter
platform needs, and the MBAP header of Modbus TCP.

RTU: ``unit | function | data | CRC lo | CRC hi``; registers are big-endian 16-bit.
A DTU in transparent mode carries RTU frames (not MBAP) over TCP.

Invariants:
- a ``Message`` is the same for RTU and TCP (unit, function, data); only the
  envelope differs (``encode_rtu``/``encode_tcp``);
- an RTU frame has no length field: a reply's length follows from its function code
  (and byte count), a request's from its own, so ``reply_size``/``request_size``
  say how many bytes to wait for; the stream decoder uses them;
- an exception reply (function | 0x80 + code) is a reply with a named code, not an
  exception raised; ``answer`` checks a reply against its request.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from meterpay.drivers.errors import FrameError, UnexpectedReply

EXCEPTION_BIT: Final = 0x80
COIL_ON: Final = 0xFF00
COIL_OFF: Final = 0x0000
MAX_REGISTERS: Final = 125
MAX_RTU_FRAME: Final = 256
MBAP_SIZE: Final = 7


class FunctionCode(IntEnum):
    READ_COILS = 0x01
    READ_DISCRETE_INPUTS = 0x02
    READ_HOLDING_REGISTERS = 0x03
    READ_INPUT_REGISTERS = 0x04
    WRITE_SINGLE_COIL = 0x05
    WRITE_SINGLE_REGISTER = 0x06
    WRITE_MULTIPLE_COILS = 0x0F
    WRITE_MULTIPLE_REGISTERS = 0x10


EXCEPTION_NAMES: Final = {
    0x01: "illegal_function",
    0x02: "illegal_data_address",
    0x03: "illegal_data_value",
    0x04: "server_device_failure",
    0x05: "acknowledge",
    0x06: "server_device_busy",
    0x08: "memory_parity_error",
    0x0A: "gateway_path_unavailable",
    0x0B: "gateway_target_failed_to_respond",
}
_READS: Final = frozenset(range(0x01, 0x05))
_ECHOES: Final = frozenset({0x05, 0x06, 0x0F, 0x10})


@dataclass(frozen=True, slots=True)
class Message:
    """A Modbus request or reply: unit id, function code, and the PDU data after it."""

    unit: int
    function: int
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class RegistersReply:
    unit: int
    function: int
    registers: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class WriteEcho:
    """The reply to 05/06 (address, value) or 0F/10 (address, count): an echo."""

    unit: int
    function: int
    address: int
    value: int


@dataclass(frozen=True, slots=True)
class ExceptionReply:
    unit: int
    function: int
    code: int
    name: str


@dataclass(frozen=True, slots=True)
class ReadRequest:
    unit: int
    function: int
    address: int
    count: int


@dataclass(frozen=True, slots=True)
class TcpFrame:
    """A Modbus TCP frame: the MBAP transaction id (to match a reply) and the message."""

    transaction_id: int
    message: Message


Reply = RegistersReply | WriteEcho | ExceptionReply


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS: reflected polynomial 0xA001, initial 0xFFFF; sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _u16(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{what} {value} does not fit 16 bits")
    return value.to_bytes(2, "big")


def _unit(unit: int) -> int:
    if not 0 <= unit <= 0xFF:
        raise ValueError(f"unit {unit} does not fit a byte")
    return unit


def read_registers(unit: int, function: int, address: int, count: int) -> Message:
    """03 (holding) or 04 (input): ``count`` registers from ``address``."""
    if function not in (FunctionCode.READ_HOLDING_REGISTERS, FunctionCode.READ_INPUT_REGISTERS):
        raise ValueError(f"function {function} does not read registers")
    if not 1 <= count <= MAX_REGISTERS:
        raise ValueError(f"register count {count} is outside 1..{MAX_REGISTERS}")
    return Message(_unit(unit), function, _u16(address, "address") + _u16(count, "count"))


def read_holding_registers(unit: int, address: int, count: int) -> Message:
    return read_registers(unit, FunctionCode.READ_HOLDING_REGISTERS, address, count)


def read_input_registers(unit: int, address: int, count: int) -> Message:
    return read_registers(unit, FunctionCode.READ_INPUT_REGISTERS, address, count)


def write_coil(unit: int, address: int, *, on: bool) -> Message:
    """05: FF00 switches the coil on, 0000 off."""
    value = COIL_ON if on else COIL_OFF
    data = _u16(address, "address") + _u16(value, "value")
    return Message(_unit(unit), FunctionCode.WRITE_SINGLE_COIL, data)


def write_register(unit: int, address: int, value: int) -> Message:
    data = _u16(address, "address") + _u16(value, "value")
    return Message(_unit(unit), FunctionCode.WRITE_SINGLE_REGISTER, data)


def write_registers(unit: int, address: int, values: tuple[int, ...]) -> Message:
    """16 (0x10): several registers in one request."""
    if not 1 <= len(values) <= 123:
        raise ValueError(f"{len(values)} registers is outside 1..123")
    payload = b"".join(_u16(value, "value") for value in values)
    data = _u16(address, "address") + _u16(len(values), "count") + bytes([len(payload)]) + payload
    return Message(_unit(unit), FunctionCode.WRITE_MULTIPLE_REGISTERS, data)


def encode_rtu(message: Message) -> bytes:
    body = bytes([_unit(message.unit), message.function, *message.data])
    return body + crc16(body).to_bytes(2, "little")


def decode_rtu(raw: bytes) -> Message:
    """One RTU frame, CRC checked; its length must be the whole of ``raw``."""
    if len(raw) < 4:
        raise FrameError(f"{len(raw)} bytes are too short for an RTU frame")
    sent, computed = int.from_bytes(raw[-2:], "little"), crc16(raw[:-2])
    if sent != computed:
        raise FrameError(f"CRC 0x{sent:04X} != computed 0x{computed:04X}")
    return Message(raw[0], raw[1], bytes(raw[2:-2]))


def reply_size(head: bytes) -> int | None:
    """Bytes of the RTU reply starting with ``head`` (unit, function[, byte count]), or
    None if ``head`` is too short to tell; a function we do not know is a FrameError."""
    if len(head) < 2:
        return None
    function = head[1]
    if function & EXCEPTION_BIT:
        return 5
    if function in _ECHOES:
        return 8
    if function in _READS:
        return 5 + head[2] if len(head) >= 3 else None
    raise FrameError(f"function 0x{function:02X} is not one we decode")


def request_size(head: bytes) -> int | None:
    """Bytes of the RTU request starting with ``head``, or None if too short to tell."""
    if len(head) < 2:
        return None
    function = head[1]
    if function in _READS or function in (0x05, 0x06):
        return 8
    if function in (0x0F, 0x10):
        return 9 + head[6] if len(head) >= 7 else None
    raise FrameError(f"function 0x{function:02X} is not a request we decode")


def parse_reply(message: Message) -> Reply:
    """What a meter answered; a reply whose data does not fit its function is a FrameError."""
    unit, function, data = message.unit, message.function, message.data
    if function & EXCEPTION_BIT:
        if len(data) != 1:
            raise FrameError(f"exception reply with {len(data)} data bytes, expected 1")
        name = EXCEPTION_NAMES.get(data[0], f"exception_0x{data[0]:02X}")
        return ExceptionReply(unit, function & ~EXCEPTION_BIT, data[0], name)
    if function in (FunctionCode.READ_HOLDING_REGISTERS, FunctionCode.READ_INPUT_REGISTERS):
        if not data or data[0] != len(data) - 1 or data[0] % 2:
            raise FrameError(f"byte count {data[:1].hex()} does not fit {len(data) - 1} bytes")
        registers = tuple(int.from_bytes(data[i : i + 2], "big") for i in range(1, len(data), 2))
        return RegistersReply(unit, function, registers)
    if function in _ECHOES:
        if len(data) != 4:
            raise FrameError(f"write reply with {len(data)} data bytes, expected 4")
        address, value = int.from_bytes(data[:2], "big"), int.from_bytes(data[2:], "big")
        return WriteEcho(unit, function, address, value)
    raise FrameError(f"function 0x{function:02X} is not one we decode")


def parse_read_request(message: Message) -> ReadRequest:
    """A read request (01-04) as sent: unit, function, first address, count."""
    data = message.data
    if message.function not in _READS or len(data) != 4:
        raise FrameError(
            f"function 0x{message.function:02X} with {len(data)} bytes is not a read request"
        )
    address, count = int.from_bytes(data[:2], "big"), int.from_bytes(data[2:], "big")
    return ReadRequest(message.unit, message.function, address, count)


def answer(request: Message, reply_message: Message) -> Reply:
    """``reply_message`` parsed, after checking it answers ``request``."""
    reply = parse_reply(reply_message)
    if reply_message.unit != request.unit:
        raise UnexpectedReply(f"reply from unit {reply_message.unit}, expected {request.unit}")
    if reply_message.function & ~EXCEPTION_BIT != request.function:
        raise UnexpectedReply(
            f"reply to function 0x{reply_message.function:02X}, expected 0x{request.function:02X}"
        )
    if isinstance(reply, RegistersReply):
        asked = parse_read_request(request).count
        if len(reply.registers) != asked:
            raise UnexpectedReply(f"{len(reply.registers)} registers, expected {asked}")
    if isinstance(reply, WriteEcho) and reply_message.data[:4] != request.data[:4]:
        raise UnexpectedReply(f"write echo {reply_message.data.hex()} != {request.data[:4].hex()}")
    return reply


def encode_tcp(message: Message, transaction_id: int) -> bytes:
    """MBAP ``TID | PID 0000 | LEN | UNIT`` then the PDU (no CRC); LEN counts unit + PDU."""
    pdu = bytes([message.function, *message.data])
    header = _u16(transaction_id, "transaction id") + b"\x00\x00" + _u16(len(pdu) + 1, "length")
    return header + bytes([_unit(message.unit)]) + pdu


def tcp_size(head: bytes) -> int | None:
    """Bytes of the Modbus TCP frame starting with ``head``, or None if too short to tell."""
    if len(head) < 6:
        return None
    length = int.from_bytes(head[4:6], "big")
    if head[2:4] != b"\x00\x00":
        raise FrameError(f"protocol id {head[2:4].hex()} != 0000")
    if not 2 <= length <= 254:
        raise FrameError(f"MBAP length {length} is outside 2..254")
    return 6 + length


def decode_tcp(raw: bytes) -> TcpFrame:
    """The one Modbus TCP frame filling ``raw``."""
    size = tcp_size(raw)
    if size is None or len(raw) < size:
        raise FrameError(f"length beyond buffer ({len(raw)} bytes)")
    if len(raw) > size:
        raise FrameError(f"{len(raw) - size} bytes after the frame")
    return TcpFrame(int.from_bytes(raw[:2], "big"), Message(raw[6], raw[7], bytes(raw[8:])))
