"""MQTT gateway payloads: what parses, what is refused (naming the field), and
that what we encode parses back to the same readings, commands and results."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterpay.links.mqtt_commands import (
    CommandAction,
    CommandOutcome,
    CommandResult,
    MeterCommand,
    RelayState,
    encode_command,
    encode_command_result,
    parse_command,
    parse_command_result,
)
from meterpay.links.mqtt_delivery import Garbage, ReadingsContent, StatusContent, read_delivery
from meterpay.links.mqtt_json import MAX_PAYLOAD_BYTES, PayloadError
from meterpay.links.mqtt_payloads import (
    ADDRESS,
    MAX_READINGS_PER_MESSAGE,
    GatewayReading,
    GatewayTopic,
    TopicKind,
    encode_readings,
    encode_status,
    parse_readings,
    parse_status,
    parse_topic,
    shared,
    topic_filter,
    topic_for,
)
from meterpay.metering.gateways import GatewayStatus

PREFIX = "meterpay/v1"
CST = timezone(timedelta(hours=8))


def _one(**reading: object) -> bytes:
    doc = {"address": "000000000101", "read_at": "2026-11-01T08:15:00+08:00", "total": "1234.56"}
    doc.update(reading)
    return json.dumps({"readings": [{k: v for k, v in doc.items() if v is not ...}]}).encode()


def _refusal(payload: bytes) -> PayloadError:
    message = parse_readings(payload)
    assert message.readings == ()
    [rejected] = message.rejected
    return rejected.error


# --- good payloads ---------------------------------------------------------------------


def test_a_reading_with_decimal_strings_parses_exactly() -> None:
    """Totals and TOU registers keep every digit; the offset is kept."""
    payload = _one(tip="1.1", peak="200.25", flat="300", valley="0.0001", status_word=3)
    [reading] = parse_readings(payload).readings
    assert reading == GatewayReading(
        address="000000000101",
        read_at=datetime(2026, 11, 1, 8, 15, tzinfo=CST),
        total=Decimal("1234.56"),
        tip=Decimal("1.1"),
        peak=Decimal("200.25"),
        flat=Decimal("300"),
        valley=Decimal("0.0001"),
        status_word=3,
    )


def test_json_numbers_are_read_as_decimals_from_their_text_never_as_floats() -> None:
    """0.1 + 0.2 style float noise cannot creep in: 1234.56 stays 1234.56."""
    payload = (
        b'{"readings": [{"address": "1", "read_at": "2026-11-01T00:00:00Z",'
        b' "total": 1234.56, "peak": 7}]}'
    )
    [reading] = parse_readings(payload).readings
    assert (reading.total, reading.peak) == (Decimal("1234.56"), Decimal(7))
    assert reading.read_at == datetime(2026, 11, 1, tzinfo=UTC)


def test_an_empty_readings_array_is_a_valid_message() -> None:
    """A gateway with nothing to report may say so."""
    assert parse_readings(b'{"readings": []}').readings == ()


def test_topics_name_the_gateway_and_the_kind_of_message() -> None:
    """The gateway code comes from the topic; filters and shared subscriptions match it."""
    topic = topic_for(PREFIX, "GW-01", TopicKind.READINGS)
    assert topic == "meterpay/v1/gw/GW-01/readings"
    assert parse_topic(PREFIX, topic) == GatewayTopic("GW-01", TopicKind.READINGS)
    assert topic_filter(PREFIX, TopicKind.STATUS) == "meterpay/v1/gw/+/status"
    assert shared("mp", "a/+/b") == "$share/mp/a/+/b"


def test_status_is_json_or_a_bare_word_and_an_empty_payload_clears_it() -> None:
    """``{"status": "offline"}``, ``online`` and a cleared retained message."""
    assert parse_status(encode_status(GatewayStatus.OFFLINE)) is GatewayStatus.OFFLINE
    assert parse_status(b"online") is GatewayStatus.ONLINE
    assert parse_status(b"") is None


# --- bad input: a clear error naming the field --------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        (b"\xff\xfe", "payload", "not UTF-8"),
        (b"{not json", "payload", "not JSON"),
        (b"[1, 2]", "payload", "must be a JSON object"),
        (b'{"reading": []}', "readings", "must be an array"),
        (b'{"readings": {"address": "1"}}', "readings", "must be an array"),
        (b'{"readings": [' + b"{}," * MAX_READINGS_PER_MESSAGE + b"{}]}", "readings", "at most"),
        (b'{"readings": [], "x": NaN}', "payload", "not JSON"),
        (b" " * (MAX_PAYLOAD_BYTES + 1), "payload", "bytes is more than"),
    ],
)
def test_a_message_that_is_not_a_readings_object_is_refused_whole(
    payload: bytes, field: str, words: str
) -> None:
    """Not UTF-8, not JSON, not an object, no readings array, too many, too big."""
    with pytest.raises(PayloadError) as caught:
        parse_readings(payload)
    assert caught.value.field == field
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("reading", "field", "words"),
    [
        ({"address": ...}, "readings[0].address", "must be a string"),
        ({"address": 101}, "readings[0].address", "must be a string"),
        ({"address": "has space"}, "readings[0].address", "does not match"),
        ({"read_at": ...}, "readings[0].read_at", "must be an ISO 8601 string"),
        ({"read_at": "2026-11-01T08:15:00"}, "readings[0].read_at", "no time zone offset"),
        ({"read_at": "yesterday"}, "readings[0].read_at", "not an ISO 8601 time"),
        ({"read_at": "1999-12-31T23:00:00Z"}, "readings[0].read_at", "outside 2000-2099"),
        ({"total": ...}, "readings[0].total", "is required"),
        ({"total": None}, "readings[0].total", "is required"),
        ({"total": "12,5"}, "readings[0].total", "not a decimal number"),
        ({"total": "1e3"}, "readings[0].total", "not a decimal number"),
        ({"total": "-1"}, "readings[0].total", "outside 0 <= value"),
        ({"total": "1.00001"}, "readings[0].total", "more than 4 decimals"),
        ({"total": True}, "readings[0].total", "not a boolean"),
        ({"total": 1e13}, "readings[0].total", "outside 0 <= value"),
        ({"peak": [1]}, "readings[0].peak", "not an array"),
        ({"status_word": "3"}, "readings[0].status_word", "must be an integer"),
        ({"status_word": -1}, "readings[0].status_word", "outside 0.."),
    ],
)
def test_each_bad_field_of_a_reading_is_named_in_its_refusal(
    reading: dict[str, object], field: str, words: str
) -> None:
    """Missing, mistyped, naive, implausible, negative, too precise, too large."""
    error = _refusal(_one(**reading))
    assert error.field == field
    assert words in error.message and error.message.startswith(field)


def test_one_bad_reading_does_not_take_the_good_ones_of_its_message_with_it() -> None:
    """Readings are judged one by one; the refusal says which one (by index)."""
    good = {"address": "1", "read_at": "2026-11-01T00:00:00+08:00", "total": "1"}
    naive = {**good, "read_at": "2026-11-01T00:15:00"}
    message = parse_readings(json.dumps({"readings": [good, naive, good, "x"]}).encode())
    assert len(message.readings) == 2
    assert [(r.index, r.error.field) for r in message.rejected] == [
        (1, "readings[1].read_at"),
        (3, "readings[3]"),
    ]


def test_topics_outside_the_scheme_and_bad_statuses_are_refused() -> None:
    """Wrong prefix, extra levels, odd gateway codes and kinds; unknown statuses."""
    for topic in (
        "other/gw/GW/readings",
        "meterpay/v1/gw/GW/x/readings",
        "meterpay/v1/gw/G W/readings",
    ):
        with pytest.raises(PayloadError) as caught:
            parse_topic(PREFIX, topic)
        assert caught.value.field == "topic"
    with pytest.raises(PayloadError, match="not a kind of gateway message"):
        parse_topic(PREFIX, "meterpay/v1/gw/GW/weather")
    with pytest.raises(PayloadError, match="status: must be 'online' or 'offline'"):
        parse_status(b'{"status": "asleep"}')


def test_commands_and_results_refuse_unknown_actions_outcomes_and_naive_times() -> None:
    """Each field of a command or a result is checked like a reading's."""
    with pytest.raises(PayloadError, match="action: 'explode' is not one of cut, restore"):
        parse_command(
            b'{"command_id": "c1", "address": "1", "action": "explode",'
            b' "expires_at": "2026-11-01T00:00:00Z"}'
        )
    with pytest.raises(PayloadError, match=r"at: .* no time zone offset"):
        parse_command_result(
            b'{"command_id": "c1", "address": "1", "outcome": "done", "at": "2026-11-01T00:00:00"}'
        )
    with pytest.raises(PayloadError, match="relay: 'half' is not one of"):
        parse_command_result(
            b'{"command_id": "c1", "address": "1", "outcome": "done",'
            b' "at": "2026-11-01T00:00:00Z", "relay": "half"}'
        )


def test_a_delivery_that_cannot_be_read_becomes_garbage_with_its_gateway() -> None:
    """The consumer never raises on input: bad messages become ``Garbage``."""
    bad = read_delivery(PREFIX, "meterpay/v1/gw/GW-7/readings", b"nope")
    assert isinstance(bad, Garbage) and bad.gateway_code == "GW-7"
    assert bad.error.field == "payload"
    good = read_delivery(PREFIX, "meterpay/v1/gw/GW-7/readings", b'{"readings": []}')
    assert isinstance(good, ReadingsContent)
    status = read_delivery(PREFIX, "meterpay/v1/gw/GW-7/status", b"offline")
    assert status == StatusContent("GW-7", GatewayStatus.OFFLINE)
    commands = read_delivery(PREFIX, "meterpay/v1/gw/GW-7/commands", b"{}")
    assert isinstance(commands, Garbage) and "does not consume commands" in commands.error.message


# --- round trips -------------------------------------------------------------------------

offsets = st.integers(min_value=-12 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.datetimes(
    min_value=datetime(2000, 1, 2),  # noqa: DTZ001  hypothesis bounds are naive local times
    max_value=datetime(2099, 12, 30),  # noqa: DTZ001
    timezones=offsets,
)
registers = st.decimals(
    min_value=0, max_value=Decimal("999999999999.9999"), places=4, allow_nan=False
)
readings = st.builds(
    GatewayReading,
    address=st.from_regex(r"[0-9A-Za-z_.:-]{1,32}", fullmatch=True),
    read_at=moments,
    total=registers,
    tip=st.none() | registers,
    peak=st.none() | registers,
    flat=st.none() | registers,
    valley=st.none() | registers,
    status_word=st.none() | st.integers(min_value=0, max_value=2**31 - 1),
)


@given(st.lists(readings, max_size=20))
def test_encoded_readings_parse_back_to_the_same_readings(batch: list[GatewayReading]) -> None:
    """encode_readings then parse_readings is the identity, with nothing rejected."""
    message = parse_readings(encode_readings(batch))
    assert message.rejected == ()
    assert list(message.readings) == batch


ids = st.from_regex(r"[0-9A-Za-z_.:-]{1,64}", fullmatch=True)
addresses = st.from_regex(r"[0-9A-Za-z_.:-]{1,32}", fullmatch=True)


@given(st.builds(MeterCommand, ids, addresses, st.sampled_from(CommandAction), moments))
def test_encoded_commands_parse_back_to_the_same_command(command: MeterCommand) -> None:
    """What meterpay publishes is exactly what a gateway reads."""
    assert parse_command(encode_command(command)) == command


@given(
    st.builds(
        CommandResult,
        ids,
        addresses,
        st.sampled_from(CommandOutcome),
        moments,
        st.none() | st.sampled_from(RelayState),
        st.text(max_size=200),
    )
)
def test_encoded_command_results_parse_back_to_the_same_result(result: CommandResult) -> None:
    """What a gateway answers is exactly what the consumer hands on."""
    assert parse_command_result(encode_command_result(result)) == result


# --- the published schemas agree with the parsers -----------------------------------------

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def _schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"mqtt-{name}.json").read_text("utf-8"))
    return loaded


def test_the_documented_examples_parse_with_the_parsers() -> None:
    """Every example in docs/schemas/mqtt-*.json is accepted, with nothing refused."""
    for example in _schema("readings")["examples"]:
        message = parse_readings(json.dumps(example).encode())
        assert message.rejected == () and len(message.readings) == len(example["readings"])
    for example in _schema("status")["examples"]:
        assert parse_status(json.dumps(example).encode()) is not None
    for example in _schema("command")["examples"]:
        parse_command(json.dumps(example).encode())
    for example in _schema("command-result")["examples"]:
        parse_command_result(json.dumps(example).encode())


def test_the_schemas_list_the_same_choices_and_patterns_as_the_code() -> None:
    """Actions, outcomes, relay states, statuses and the address pattern match."""
    command, result = _schema("command")["properties"], _schema("command-result")["properties"]
    assert command["action"]["enum"] == [a.value for a in CommandAction]
    assert result["outcome"]["enum"] == [o.value for o in CommandOutcome]
    assert result["relay"]["enum"] == [r.value for r in RelayState]
    assert _schema("status")["properties"]["status"]["enum"] == [s.value for s in GatewayStatus]
    reading = _schema("readings")["$defs"]["reading"]["properties"]
    assert reading["address"]["pattern"] == f"^{ADDRESS.pattern}$"
    assert command["address"]["pattern"] == result["address"]["pattern"] == f"^{ADDRESS.pattern}$"
    assert _schema("readings")["properties"]["readings"]["maxItems"] == MAX_READINGS_PER_MESSAGE
