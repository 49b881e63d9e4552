"""Our Modbus messages as pymodbus client calls, pymodbus replies as our messages.

The drivers build requests (``polling.poll_requests``, ``supply.supply_command``) and
read replies (``polling.interpret``, ``supply.command_outcome``) as ``modbus.Message``;
pymodbus owns the Modbus TCP socket (MBAP framing, transaction ids, resends). This
module is the seam between the two, so the register map, word order and scale stay in
the meter model and ``modbus_values`` and never in link code.

Invariants:
- a request is sent as exactly the function, address, count or value it carries (no
  batching or rewriting), so the reply checks in ``modbus.answer`` hold unchanged;
- a reply comes back as the PDU the meter sent (``function | data``), exception replies
  included, so ``modbus.parse_reply`` names the exception;
- a gateway's own exceptions (0x0A path unavailable, 0x0B target failed to respond)
  mean the meter behind it did not answer: ``meter_absent`` says so.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Final

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ModbusPDU

from meterpay.drivers import modbus
from meterpay.drivers.errors import FrameError

DEFAULT_PORT: Final = 502
GATEWAY_PATH_UNAVAILABLE: Final = 0x0A
GATEWAY_TARGET_SILENT: Final = 0x0B


@dataclass(frozen=True, slots=True)
class TcpEndpoint:
    """Where a Modbus TCP gateway listens: its code ``host[:port]`` parsed."""

    host: str
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_endpoint(code: str) -> TcpEndpoint:
    """``10.0.3.17``, ``10.0.3.17:8899``, ``meter-7.site.lan:502`` or ``[fd00::7]:502``."""
    text = code.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"Modbus TCP gateway code {code!r} is not [host]:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""  # a bare host (or a bare IPv6 address)
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"Modbus TCP gateway code {code!r} is not host[:port]")
    if not port_text:
        return TcpEndpoint(host)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"Modbus TCP gateway code {code!r} has no valid port")
    return TcpEndpoint(host, int(port_text))


def send(client: AsyncModbusTcpClient, request: modbus.Message) -> Awaitable[ModbusPDU]:
    """The pymodbus call that sends ``request`` (a read 01/03/04 or a write 05/06)."""
    unit, function = request.unit, request.function
    if function == modbus.FunctionCode.READ_COILS:  # a relay's read-back
        coils = modbus.parse_read_request(request)
        return client.read_coils(coils.address, count=coils.count, device_id=unit)
    if function in (
        modbus.FunctionCode.READ_HOLDING_REGISTERS,
        modbus.FunctionCode.READ_INPUT_REGISTERS,
    ):
        read = modbus.parse_read_request(request)
        call = (
            client.read_holding_registers
            if function == modbus.FunctionCode.READ_HOLDING_REGISTERS
            else client.read_input_registers
        )
        return call(read.address, count=read.count, device_id=unit)
    if function in (
        modbus.FunctionCode.WRITE_SINGLE_COIL,
        modbus.FunctionCode.WRITE_SINGLE_REGISTER,
    ):
        address = int.from_bytes(request.data[:2], "big")
        value = int.from_bytes(request.data[2:4], "big")
        if function == modbus.FunctionCode.WRITE_SINGLE_COIL:
            return client.write_coil(address, value == modbus.COIL_ON, device_id=unit)
        return client.write_register(address, value, device_id=unit)
    raise ValueError(f"function 0x{function:02X} is not one the Modbus TCP link sends")


def reply_message(pdu: ModbusPDU) -> modbus.Message:
    """The reply as the meter sent it: pymodbus keeps ``function | 0x80`` on exceptions
    and encodes exactly the data bytes it decoded."""
    return modbus.Message(pdu.dev_id, pdu.function_code, pdu.encode())


def meter_absent(reply: modbus.Message) -> bool:
    """Whether a gateway answered for a meter that did not answer it."""
    if not reply.function & modbus.EXCEPTION_BIT or len(reply.data) != 1:
        return False
    return reply.data[0] in (GATEWAY_PATH_UNAVAILABLE, GATEWAY_TARGET_SILENT)


def describe(reply: modbus.Message) -> str:
    """A frame-log note for a reply: the exception's name, or nothing."""
    try:
        parsed = modbus.parse_reply(reply)
    except FrameError as exc:
        return f"malformed: {exc}"
    if isinstance(parsed, modbus.ExceptionReply):
        return f"exception 0x{parsed.code:02X} {parsed.name}"
    return ""


def frame_in(buffer: bytes, transaction_id: int) -> bytes:
    """The Modbus TCP frame of ``transaction_id`` in what pymodbus received (a late
    reply to an earlier request may precede it); the whole buffer if none matches."""
    start = 0
    while start < len(buffer):
        try:
            size = modbus.tcp_size(buffer[start:])
        except FrameError:
            break
        if size is None or start + size > len(buffer):
            break
        if int.from_bytes(buffer[start : start + 2], "big") == transaction_id:
            return buffer[start : start + size]
        start += size
    return buffer
