"""The seam between our Modbus messages and pymodbus: endpoints, calls, replies, frames."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from pymodbus.pdu import ExceptionResponse
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse

from meterpay.drivers import modbus
from meterpay.links.modbus_calls import (
    TcpEndpoint,
    describe,
    frame_in,
    meter_absent,
    parse_endpoint,
    reply_message,
    send,
)


@pytest.mark.parametrize(
    ("code", "endpoint"),
    [
        ("10.0.3.17", TcpEndpoint("10.0.3.17", 502)),
        ("10.0.3.17:8899", TcpEndpoint("10.0.3.17", 8899)),
        (" meter-7.site.lan:502 ", TcpEndpoint("meter-7.site.lan", 502)),
        ("[fd00::7]:1502", TcpEndpoint("fd00::7", 1502)),
        ("fd00::7", TcpEndpoint("fd00::7", 502)),
    ],
)
def test_a_gateway_code_names_the_endpoint_with_port_502_by_default(
    code: str, endpoint: TcpEndpoint
) -> None:
    assert parse_endpoint(code) == endpoint


@pytest.mark.parametrize("code", ["", ":502", "host:0", "host:70000", "host:http", "[fd00::7]x"])
def test_a_gateway_code_that_is_not_host_and_port_is_refused(code: str) -> None:
    with pytest.raises(ValueError, match="Modbus TCP gateway code"):
        parse_endpoint(code)


def test_an_ipv6_endpoint_prints_in_brackets() -> None:
    assert str(TcpEndpoint("fd00::7")) == "[fd00::7]:502"


@dataclass
class RecordingClient:
    """Stands in for ``AsyncModbusTcpClient``: records which call a message became."""

    calls: list[tuple[str, tuple[object, ...], dict[str, object]]] = field(default_factory=list)

    def __getattr__(self, name: str) -> object:
        def call(*args: object, **kwargs: object) -> None:
            self.calls.append((name, args, kwargs))

        return call


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (
            modbus.read_holding_registers(7, 0x0100, 2),
            ("read_holding_registers", (0x0100,), {"count": 2, "device_id": 7}),
        ),
        (
            modbus.read_input_registers(1, 0x0048, 2),
            ("read_input_registers", (0x0048,), {"count": 2, "device_id": 1}),
        ),
        (modbus.write_coil(3, 0, on=True), ("write_coil", (0, True), {"device_id": 3})),
        (modbus.write_coil(3, 0, on=False), ("write_coil", (0, False), {"device_id": 3})),
        (
            modbus.write_register(9, 0x0010, 1),
            ("write_register", (0x0010, 1), {"device_id": 9}),
        ),
    ],
)
def test_each_request_goes_out_as_the_pymodbus_call_with_the_unit_as_device_id(
    request_: modbus.Message, expected: tuple[str, tuple[object, ...], dict[str, object]]
) -> None:
    client = RecordingClient()
    send(client, request_)  # type: ignore[arg-type]
    assert client.calls == [expected]


def test_a_request_the_link_does_not_send_is_refused() -> None:
    with pytest.raises(ValueError, match="0x10"):
        send(RecordingClient(), modbus.write_registers(1, 0, (1, 2)))  # type: ignore[arg-type]


def test_a_pymodbus_reply_becomes_the_pdu_the_meter_sent() -> None:
    registers = ReadHoldingRegistersResponse(registers=[0x42CA, 0x8000], dev_id=1)
    assert reply_message(registers) == modbus.Message(1, 0x03, bytes.fromhex("04 42CA 8000"))
    refused = ExceptionResponse(0x03, 0x02, device_id=6)
    assert reply_message(refused) == modbus.Message(6, 0x83, b"\x02")


@pytest.mark.parametrize(
    ("reply", "absent", "note"),
    [
        (modbus.Message(5, 0x83, b"\x0b"), True, "exception 0x0B gateway_target_failed_to_respond"),
        (modbus.Message(5, 0x83, b"\x0a"), True, "exception 0x0A gateway_path_unavailable"),
        (modbus.Message(6, 0x83, b"\x02"), False, "exception 0x02 illegal_data_address"),
        (modbus.Message(1, 0x03, bytes.fromhex("04 42CA 8000")), False, ""),
    ],
)
def test_only_a_gateways_own_exceptions_mean_the_meter_did_not_answer(
    reply: modbus.Message, absent: bool, note: str
) -> None:
    assert meter_absent(reply) is absent
    assert describe(reply) == note


def test_the_logged_reply_is_the_frame_of_our_transaction_not_a_late_one() -> None:
    late = bytes.fromhex("0004 0000 0007 01 03 04 42CA 8000")
    ours = bytes.fromhex("0005 0000 0007 01 03 04 42CD 0000")
    assert frame_in(late + ours, 5) == ours
    assert frame_in(ours, 5) == ours
    assert frame_in(b"\x00\x05garbage", 5) == b"\x00\x05garbage"  # unframed: logged whole
