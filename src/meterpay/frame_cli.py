"""``meterpay frame decode`` and ``meterpay frame encode``: the codecs at a terminal.

``frame decode "FE FE 68 25 04 ..."`` prints, as JSON, every frame found in the bytes
(and every run of bytes skipped, with why), guessing the protocol unless told.
``frame encode dlt645 read --address 000102030425 --di 00010000`` prints the request
in hex. Exit codes: 0 done, 2 bad input (the reason on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Final

from meterpay.drivers import cjt188, cjt188_messages, dlt645, modbus
from meterpay.drivers import dlt645_requests as dlt645_out
from meterpay.drivers.describe import describe, wire_hex
from meterpay.drivers.stream import (
    FrameStream,
    ModbusRtuStream,
    Skipped,
    cjt188_stream,
    dlt645_stream,
    modbus_tcp_stream,
)

if TYPE_CHECKING:  # argparse's class is not subscriptable at run time
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

DECODE_PROTOCOLS: Final = ("auto", "dlt645", "dlt645_1997", "cjt188", "modbus", "modbus_tcp")
BAD_INPUT: Final = 2


def add_frame_commands(sub: SubParsers) -> None:
    frame = sub.add_parser(
        "frame", help="decode or encode meter frames (DL/T 645, CJ/T 188, Modbus)"
    )
    frame.set_defaults(run=_usage(frame))
    commands = frame.add_subparsers(title="frame commands")
    decode = commands.add_parser("decode", help="print every frame in hex bytes as JSON")
    decode.add_argument("hex", nargs="+", help='hex bytes, with or without spaces ("68 25 04 ...")')
    decode.add_argument("--protocol", choices=DECODE_PROTOCOLS, default="auto")
    decode.set_defaults(run=_decode)
    encode = commands.add_parser("encode", help="print a request in hex")
    encode.set_defaults(run=_usage(encode))
    protocols = encode.add_subparsers(title="protocols")
    _add_dlt645(protocols)
    _add_dlt645_1997(protocols)
    _add_cjt188(protocols)
    _add_modbus(protocols)


def _usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def run(_: argparse.Namespace) -> int:
        parser.print_usage(sys.stderr)
        return BAD_INPUT

    return run


# --- decode ----------------------------------------------------------------------------------


def _decode(args: argparse.Namespace) -> int:
    text = "".join(args.hex).replace(" ", "").replace(":", "")
    try:
        data = bytes.fromhex(text)
    except ValueError:
        return _bad_input(f"not hex bytes: {' '.join(args.hex)!r}")
    protocol = _guess(data) if args.protocol == "auto" else args.protocol
    events = _events(protocol, data)
    found = {"protocol": protocol, "events": [describe(event) for event in events]}
    print(json.dumps(found, ensure_ascii=False, indent=2))
    return 0


def _events(protocol: str, data: bytes) -> list[object]:
    capacity = max(len(data), 1)
    if protocol in ("dlt645", "dlt645_1997"):
        return _drain(dlt645_stream(capacity), data)
    if protocol == "cjt188":
        return _drain(cjt188_stream(capacity), data)
    if protocol == "modbus_tcp":
        return _drain(modbus_tcp_stream(capacity), data)
    return _drain(ModbusRtuStream(capacity), data)


def _drain(stream: FrameStream[object], data: bytes) -> list[object]:
    stream.feed(data)
    return list(stream.flush())


def _guess(data: bytes) -> str:
    """The protocol under which the most frames decode (ties: the order listed)."""
    counts = {
        protocol: sum(not isinstance(e, Skipped) for e in _events(protocol, data))
        for protocol in ("dlt645", "cjt188", "modbus", "modbus_tcp")
    }
    return max(counts, key=lambda protocol: counts[protocol])


# --- encode ----------------------------------------------------------------------------------


def _add_dlt645(protocols: SubParsers) -> None:
    parser = protocols.add_parser("dlt645", help="DL/T 645-2007 requests")
    parser.set_defaults(run=_usage(parser))
    commands = parser.add_subparsers(title="commands")
    read = commands.add_parser("read", help="11H read a data item")
    _address(read)
    read.add_argument("--di", required=True, type=_hex_int, help="e.g. 00010000")
    _wake_up(read, 0)
    read.set_defaults(run=_encoder(lambda a: dlt645_out.read_request(a.address, a.di)))
    address = commands.add_parser("read-address", help="13H read the address of the only meter")
    _wake_up(address, 0)
    address.set_defaults(run=_encoder(lambda a: dlt645_out.read_address_request()))
    relay = commands.add_parser("relay", help="1CH relay control (plaintext password)")
    _address(relay)
    relay.add_argument(
        "--command", required=True, type=_relay_command, help="trip, close-now, close-allowed, ..."
    )
    relay.add_argument("--expires", required=True, type=datetime.fromisoformat, help="meter time")
    relay.add_argument("--password-level", type=_hex_int, default=dlt645_out.PLAINTEXT_LEVEL)
    relay.add_argument("--password", default="000000")
    relay.add_argument("--operator-code", default="00000000")
    _wake_up(relay, 0)
    relay.set_defaults(run=_encoder(_relay))
    sync = commands.add_parser("time-sync", help="08H broadcast time sync")
    sync.add_argument("--at", required=True, type=datetime.fromisoformat, help="meter time")
    _wake_up(sync, 0)
    sync.set_defaults(run=_encoder(lambda a: dlt645_out.time_sync_request(a.at)))


def _relay(args: argparse.Namespace) -> dlt645.Frame:
    password = dlt645_out.Password(args.password_level, args.password, args.operator_code)
    return dlt645_out.relay_request(
        args.address, args.command, expires_at=args.expires, password=password
    )


def _add_dlt645_1997(protocols: SubParsers) -> None:
    parser = protocols.add_parser("dlt645_1997", help="DL/T 645-1997 requests")
    parser.set_defaults(run=_usage(parser))
    commands = parser.add_subparsers(title="commands")
    read = commands.add_parser("read", help="01H read a two-byte data item")
    _address(read)
    read.add_argument("--di", required=True, type=_hex_int, help="e.g. 9010")
    _wake_up(read, 0)
    read.set_defaults(run=_encoder(lambda a: dlt645_out.read_request_1997(a.address, a.di)))


def _add_cjt188(protocols: SubParsers) -> None:
    parser = protocols.add_parser("cjt188", help="CJ/T 188-2004 requests")
    parser.set_defaults(run=_usage(parser))
    commands = parser.add_subparsers(title="commands")
    read = commands.add_parser("read", help="01H read (901F current data by default)")
    _cjt188_options(read, address=True)
    read.add_argument("--di", type=_hex_int, default=cjt188_messages.DI_CURRENT_DATA)
    read.set_defaults(run=_encoder(_cjt188_read))
    valve = commands.add_parser("valve", help="04H write A017: open (55) or close (99)")
    _cjt188_options(valve, address=True)
    action = valve.add_mutually_exclusive_group(required=True)
    action.add_argument("--open", dest="open_valve", action="store_true")
    action.add_argument("--close", dest="open_valve", action="store_false")
    valve.set_defaults(run=_encoder(_cjt188_valve))
    address = commands.add_parser("read-address", help="03H read address (DI 810A)")
    _cjt188_options(address, address=False)
    address.set_defaults(run=_encoder(_cjt188_read_address))


def _cjt188_options(parser: argparse.ArgumentParser, *, address: bool) -> None:
    if address:
        _address(parser, "14 digits: manufacturer code then meter number, e.g. 78330011223344")
    parser.add_argument("--meter-type", type=_hex_int, default=cjt188.MeterType.COLD_WATER)
    parser.add_argument(
        "--di-order",
        type=cjt188_messages.DiOrder,
        default=cjt188_messages.DiOrder.LOW_FIRST,
        help="low_first (901F sent 1F 90) or high_first (90 1F)",
    )
    parser.add_argument("--seq", type=int, default=0)
    _wake_up(parser, 4)


def _cjt188_read(args: argparse.Namespace) -> cjt188.Frame:
    return cjt188_messages.read_request(
        args.address, di_order=args.di_order, meter_type=args.meter_type, seq=args.seq, di=args.di
    )


def _cjt188_valve(args: argparse.Namespace) -> cjt188.Frame:
    return cjt188_messages.valve_request(
        args.address,
        open_valve=args.open_valve,
        di_order=args.di_order,
        meter_type=args.meter_type,
        seq=args.seq,
    )


def _cjt188_read_address(args: argparse.Namespace) -> cjt188.Frame:
    return cjt188_messages.read_address_request(
        di_order=args.di_order, meter_type=args.meter_type, seq=args.seq
    )


def _add_modbus(protocols: SubParsers) -> None:
    parser = protocols.add_parser("modbus", help="Modbus RTU requests (--tcp for MBAP)")
    parser.set_defaults(run=_usage(parser))
    commands = parser.add_subparsers(title="commands")
    for name, function in (
        ("read-holding", modbus.FunctionCode.READ_HOLDING_REGISTERS),
        ("read-input", modbus.FunctionCode.READ_INPUT_REGISTERS),
    ):
        read = _modbus_command(commands, name, f"{function:02X}: read registers")
        read.add_argument("--register", required=True, type=_number, help="42 or 0x2A")
        read.add_argument("--count", required=True, type=int)
        read.set_defaults(run=_encoder(_register_reader(function)))
    coil = _modbus_command(commands, "write-coil", "05: switch a coil (FF00 on / 0000 off)")
    coil.add_argument("--coil", required=True, type=_number, help="coil address, 0 or 0x0000")
    state = coil.add_mutually_exclusive_group(required=True)
    state.add_argument("--on", dest="on", action="store_true")
    state.add_argument("--off", dest="on", action="store_false")
    coil.set_defaults(run=_encoder(lambda a: modbus.write_coil(a.unit, a.coil, on=a.on)))
    register = _modbus_command(commands, "write-register", "06: write one register")
    register.add_argument("--register", required=True, type=_number, help="42 or 0x2A")
    register.add_argument("--value", required=True, type=_number, help="100 or 0x0064")
    register.set_defaults(
        run=_encoder(lambda a: modbus.write_register(a.unit, a.register, a.value))
    )


def _register_reader(function: int) -> Callable[[argparse.Namespace], Request]:
    return lambda args: modbus.read_registers(args.unit, function, args.register, args.count)


def _modbus_command(commands: SubParsers, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text)
    parser.add_argument("--unit", required=True, type=int, help="unit id (slave address)")
    parser.add_argument("--tcp", type=int, metavar="TRANSACTION_ID", help="MBAP instead of RTU")
    return parser


def _address(parser: argparse.ArgumentParser, help_text: str = "12 digits as printed") -> None:
    parser.add_argument("--address", required=True, help=help_text)


def _wake_up(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument("--wake-up", type=int, default=default, help="FE bytes before the frame")


def _hex_int(text: str) -> int:
    try:
        return int(text, 16)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a hex number") from exc


def _number(text: str) -> int:
    """Modbus addresses and values: decimal, or hex with 0x (as vendors' sheets mix both)."""
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (42 or 0x2A)") from exc


def _relay_command(text: str) -> dlt645_out.RelayCommand:
    try:
        return dlt645_out.RelayCommand(text.replace("-", "_").lower())
    except ValueError as exc:
        names = ", ".join(c.value.replace("_", "-") for c in dlt645_out.RelayCommand)
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {names}") from exc


Request = dlt645.Frame | cjt188.Frame | modbus.Message


def _encoder(build: Callable[[argparse.Namespace], Request]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            request = build(args)
            print(wire_hex(_wire(request, args)))
        except ValueError as exc:
            return _bad_input(str(exc))
        return 0

    return run


def _wire(request: Request, args: argparse.Namespace) -> bytes:
    if isinstance(request, dlt645.Frame):
        return dlt645.encode(request, wake_up=args.wake_up)
    if isinstance(request, cjt188.Frame):
        return cjt188.encode(request, wake_up=args.wake_up)
    tcp = getattr(args, "tcp", None)
    return modbus.encode_rtu(request) if tcp is None else modbus.encode_tcp(request, tcp)


def _bad_input(problem: str) -> int:
    print(f"frame: {problem}", file=sys.stderr)
    return BAD_INPUT
