"""``meterpay frame decode/encode`` in-process through argparse, output captured."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from meterpay.frame_cli import add_frame_commands

from .vectors import CJT188_CURRENT_DATA_REPLY_WRONG_CS


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="meterpay")
    add_frame_commands(parser.add_subparsers(title="commands"))
    args = parser.parse_args(list(argv))
    code = args.run(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def decoded(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    """The JSON printed by ``frame decode`` (exit code 0)."""
    code, out, _ = run(capsys, "frame", "decode", *argv)
    assert code == 0
    return json.loads(out)


def test_decode_finds_a_645_reply_after_noise_and_reads_the_total(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Auto-detected DL/T 645; the noise is listed; the total is text, not a float."""
    result = decoded(
        capsys, "00 11 FE FE 68 25 04 03 02 01 00 68 91 08 33 33 34 33 75 39 45 33 8B 16"
    )
    assert result["protocol"] == "dlt645"
    skipped, frame = result["events"]
    assert skipped == {"skipped": "00 11", "reason": "no frame start"}
    assert frame["address"] == "000102030425"
    assert frame["di"] == "00010000"
    assert frame["reply"]["fields"] == {"total": "1206.42"}


def test_decode_accepts_hex_without_spaces_and_detects_cjt188(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The valve reply, written solid, is CJ/T 188 with meter number and manufacturer."""
    result = decoded(capsys, "FEFEFEFE6810690590051533788405A0170100007C16")
    assert result["protocol"] == "cjt188"
    (frame,) = result["events"]
    assert (frame["meter_number"], frame["manufacturer_code"]) == ("1505900569", "7833")
    assert frame["reply"]["status"]["valve"] == "open"


def test_decode_reports_the_wrong_checksum_of_the_copied_901f_reply(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Told it is CJ/T 188, the CS-08 frame comes out as skipped bytes with the reason."""
    frame = CJT188_CURRENT_DATA_REPLY_WRONG_CS.hex(" ")
    result = decoded(capsys, frame, "--protocol", "cjt188")
    reasons = [e["reason"] for e in result["events"]]
    assert "checksum 0x08 != computed 0x13" in reasons


def test_decode_reads_modbus_requests_replies_and_exceptions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """All four Modbus vectors in one input, auto-detected as Modbus RTU."""
    result = decoded(
        capsys,
        "01 03 00 00 00 0A C5 CD 01 03 02 00 64 B9 AF 01 05 00 00 FF 00 8C 3A 01 83 02 C0 F1",
    )
    assert result["protocol"] == "modbus"
    request, reply, coil, exception = result["events"]
    assert request["request"] == {"unit": 1, "function": "0x03", "address": 0, "count": 10}
    assert reply["reply"]["registers"] == [100]
    assert coil["reply"]["value"] == 0xFF00
    assert exception["reply"]["name"] == "illegal_data_address"


def test_decode_refuses_text_that_is_not_hex(capsys: pytest.CaptureFixture[str]) -> None:
    """Exit code 2 and the reason on stderr."""
    code, out, err = run(capsys, "frame", "decode", "68 zz")
    assert (code, out) == (2, "")
    assert "not hex bytes" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ("dlt645", "read", "--address", "000102030425", "--di", "00010000"),
            "68 25 04 03 02 01 00 68 11 04 33 33 34 33 E1 16",
        ),
        (
            ("dlt645", "relay", "--address", "111111111111", "--command", "trip", "--expires",
             "2018-05-12T15:41:24", "--password-level", "00"),
            "68 11 11 11 11 11 11 68 1C 10 33 33 33 33 33 33 33 33 4D 33 57 74 48 45 38 4B 55 16",
        ),
        (
            ("cjt188", "read", "--address", "78330011223344"),
            "FE FE FE FE 68 10 44 33 22 11 00 33 78 01 03 1F 90 00 80 16",
        ),
        (
            ("cjt188", "valve", "--address", "78331505900569", "--open", "--di-order", "high_first",
             "--seq", "1"),
            "FE FE FE FE 68 10 69 05 90 05 15 33 78 04 04 A0 17 01 55 50 16",
        ),
        (
            ("modbus", "read-holding", "--unit", "1", "--register", "0", "--count", "10"),
            "01 03 00 00 00 0A C5 CD",
        ),
        (("modbus", "write-coil", "--unit", "1", "--coil", "0", "--on"), "01 05 00 00 FF 00 8C 3A"),
        (
            ("modbus", "read-input", "--unit", "1", "--register", "0x48", "--count=2", "--tcp=7"),
            "00 07 00 00 00 06 01 04 00 48 00 02",
        ),
        (("dlt645_1997", "read", "--address", "000102030425", "--di", "9010"), None),
    ],
)  # fmt: skip
def test_encode_prints_the_request_in_hex(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], expected: str | None
) -> None:
    """Each protocol's commands print the reference frame (exit code 0)."""
    code, out, err = run(capsys, "frame", "encode", *argv)
    assert (code, err) == (0, "")
    if expected is not None:
        assert out.strip() == expected
    else:
        assert out.startswith("68 25 04 03 02 01 00 68 01 02 43 C3")


def test_encode_refuses_a_short_address_with_a_clear_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit code 2; stderr names the field and the rule."""
    code, out, err = run(
        capsys, "frame", "encode", "dlt645", "read", "--address", "12345", "--di", "00010000"
    )
    assert (code, out) == (2, "")
    assert "address '12345' must be 12 digits" in err


def test_encode_without_a_protocol_prints_usage_and_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bare 'frame encode' is bad input, not a crash."""
    code, _, err = run(capsys, "frame", "encode")
    assert code == 2 and "usage" in err


def test_an_unknown_relay_command_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse exits with code 2 and lists the commands."""
    with pytest.raises(SystemExit) as exit_:
        run(
            capsys,
            "frame",
            "encode",
            "dlt645",
            "relay",
            "--address",
            "1" * 12,
            "--command",
            "explode",
            "--expires",
            "2026-01-01T00:00:00",
        )
    assert exit_.value.code == 2
    assert "trip, close-allowed, close-now" in capsys.readouterr().err
